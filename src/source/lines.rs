//! The one bounded line reader of the line-based formats (event-protocol recordings, GNU
//! parallel joblogs): it never holds more than [`MAX_LINE`] bytes of a line, and a recording
//! whose line runs past [`MAX_SKIP`] without a newline (`/dev/zero`, a binary file, a huge
//! line) is refused at once rather than read to its end.

use std::io::{BufRead, ErrorKind};

use super::{MAX_LINE, SourceError};

/// How far a recording's over-long line is skipped before the file is refused: far enough
/// for any line a real writer makes, short enough to refuse garbage in milliseconds.
pub(crate) const MAX_SKIP: u64 = 16 * 1024 * 1024;

/// One read of a line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line ended by a newline; its bytes are in [`LineReader::text`].
    Whole,
    /// The input's last bytes, with no newline after them (a cut-off or unterminated line).
    Last,
    /// A line over [`MAX_LINE`]: consumed, not kept.
    TooLong,
    /// The input ended.
    Eof,
}

/// Reads lines of at most [`MAX_LINE`] bytes; counts them from 1.
pub(crate) struct LineReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    /// `Some(n)`: refuse the input once a line runs past `n` bytes (recordings); `None`:
    /// skip over-long lines however long (a live stream, which its writer ends).
    ceiling: Option<u64>,
}

impl<R: BufRead> LineReader<R> {
    /// A reader that refuses an input whose line runs past [`MAX_SKIP`] bytes.
    pub(crate) fn new(input: R) -> Self {
        LineReader {
            input,
            buf: Vec::with_capacity(4096),
            line: 0,
            ceiling: Some(MAX_SKIP),
        }
    }

    /// A reader of a live stream: over-long lines are skipped, however long.
    pub(crate) fn live(input: R) -> Self {
        LineReader {
            ceiling: None,
            ..LineReader::new(input)
        }
    }

    /// The number of the line last read (1 for the first).
    pub(crate) fn number(&self) -> u64 {
        self.line
    }

    /// The bytes of the line last read (without its newline); empty after `TooLong`.
    pub(crate) fn text(&self) -> &[u8] {
        &self.buf
    }

    /// Reads the next line. An error is the input's, or a line past the ceiling (`file`
    /// names the input in it).
    pub(crate) fn next_line(&mut self, file: &str) -> Result<Line, SourceError> {
        self.buf.clear();
        self.line += 1;
        let mut seen: u64 = 0;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(SourceError::io(file, e)),
            };
            if chunk.is_empty() {
                return Ok(match (seen > MAX_LINE as u64, self.buf.is_empty()) {
                    (true, _) => Line::TooLong,
                    (false, true) => Line::Eof,
                    (false, false) => Line::Last,
                });
            }
            let (part, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            seen += part.len() as u64;
            if seen > MAX_LINE as u64 {
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(part);
            }
            let used = found.unwrap_or(chunk.len());
            self.input.consume(used);
            if found.is_some() {
                return Ok(if seen > MAX_LINE as u64 {
                    Line::TooLong
                } else {
                    Line::Whole
                });
            }
            if self.ceiling.is_some_and(|c| seen > c) {
                return Err(SourceError::invalid(
                    file,
                    Some(self.line),
                    format!(
                        "a line runs past {} MiB without a newline: not a line-based recording",
                        MAX_SKIP / (1024 * 1024)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    fn lines(input: &[u8]) -> Vec<(Line, Vec<u8>)> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        loop {
            let l = r.next_line("t").unwrap();
            let end = l == Line::Eof;
            out.push((l, r.text().to_vec()));
            if end {
                return out;
            }
        }
    }

    #[test]
    fn lines_whole_last_and_too_long() {
        let mut input = b"a\n\nbc\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        input.extend(b"\nend");
        let got = lines(&input);
        assert_eq!(got[0], (Line::Whole, b"a".to_vec()));
        assert_eq!(got[1], (Line::Whole, Vec::new()));
        assert_eq!(got[2], (Line::Whole, b"bc".to_vec()));
        assert_eq!(got[3], (Line::TooLong, Vec::new()));
        assert_eq!(got[4], (Line::Last, b"end".to_vec()));
        assert_eq!(got[5].0, Line::Eof);
        // exactly MAX_LINE is kept
        let mut input = vec![b'y'; MAX_LINE];
        input.push(b'\n');
        assert_eq!(lines(&input)[0].0, Line::Whole);
    }

    #[test]
    fn an_endless_line_is_refused_at_the_ceiling_but_skipped_live() {
        let zero = BufReader::new(std::io::repeat(0));
        let mut r = LineReader::new(zero);
        let err = r.next_line("/dev/zero").unwrap_err().to_string();
        assert!(err.contains("without a newline"), "{err}");
        // a live stream skips a long line (here 20 MiB) and reads the next
        let long = std::io::repeat(b'z').take(MAX_SKIP + 4 * 1024 * 1024);
        let input = BufReader::new(long.chain(&b"\nnext\n"[..]));
        let mut r = LineReader::live(input);
        assert_eq!(r.next_line("live").unwrap(), Line::TooLong);
        assert_eq!(r.next_line("live").unwrap(), Line::Whole);
        assert_eq!(r.text(), b"next");
        assert_eq!(r.number(), 2);
    }
}
