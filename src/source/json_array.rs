//! Streams the objects of a JSON array (`[…]` or `{"traceEvents": […], …}`) one at a time,
//! without holding the file: each object's bytes are handed out for serde to parse. The final
//! `]` may be missing (Chrome traces allow it); a file cut inside an object ends the stream
//! with `cut_off` set, keeping what came before.

use std::io::{self, Read};

use super::{MAX_RECORD, SourceError};

const CHUNK: usize = 64 * 1024;
/// Longest number or literal skipped.
const MAX_SCALAR: usize = 64;
/// Longest value skipped whole (a top-level member such as viztracer's `file_info`, which
/// holds source text, or an over-long event): past it the file is refused, not read on.
const MAX_MEMBER: u64 = 256 * 1024 * 1024;

/// One item of the array, or the end.
pub(crate) enum Item<'a> {
    /// An object's bytes, and the line it started on.
    Object(&'a [u8], u64),
    /// Something that is not an object (a number, a string…), skipped; its line.
    NotObject(u64),
    /// An object longer than [`MAX_RECORD`], skipped; its line.
    TooLong(u64),
    /// The array (or the file) ended; `true` if it was cut inside an item.
    End { cut_off: bool },
}

/// The streaming splitter.
pub(crate) struct JsonArray<R> {
    r: R,
    file: String,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    line: u64,
    item: Vec<u8>,
    done: bool,
    /// The array is a member of a top-level object (`{"traceEvents": […], …}`).
    in_object: bool,
}

impl<R: Read> JsonArray<R> {
    /// Opens the array: reads up to its `[` (at the top, or as the value of `key` in a
    /// top-level object).
    pub(crate) fn open(r: R, file: &str, key: &str) -> Result<Self, SourceError> {
        let mut a = JsonArray {
            r,
            file: file.to_string(),
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            line: 1,
            item: Vec::new(),
            done: false,
            in_object: false,
        };
        match a.skip_ws()? {
            Some(b'[') => Ok(a),
            Some(b'{') => {
                a.in_object = true;
                a.find_key(key)?;
                Ok(a)
            }
            Some(_) => Err(a.invalid("not a JSON array or object")),
            None => Err(a.invalid("empty file")),
        }
    }

    /// The next item of the array.
    pub(crate) fn next_item(&mut self) -> Result<Item<'_>, SourceError> {
        if self.done {
            return Ok(Item::End { cut_off: false });
        }
        loop {
            match self.skip_ws()? {
                Some(b',') => {}
                None => return Ok(self.end(false)),
                Some(b']') => {
                    self.end_document()?;
                    return Ok(self.end(false));
                }
                Some(b'{') => {
                    let line = self.line;
                    return match self.capture_object()? {
                        Captured::Whole => Ok(Item::Object(&self.item, line)),
                        Captured::InBuffer(a, b) => Ok(Item::Object(&self.buf[a..b], line)),
                        Captured::TooLong => Ok(Item::TooLong(line)),
                        Captured::CutOff => Ok(self.end(true)),
                    };
                }
                Some(b) => {
                    let line = self.line;
                    if !self.skip_value(b, MAX_RECORD as u64)? {
                        return Ok(self.end(true));
                    }
                    return Ok(Item::NotObject(line));
                }
            }
        }
    }

    /// Moves to the next item: `None` if it is an object, which then begins the
    /// [`window`](Self::window) to be parsed in place; else the item (not an object, or
    /// the end).
    pub(crate) fn next_object(&mut self) -> Result<Option<Item<'_>>, SourceError> {
        if self.done {
            return Ok(Some(Item::End { cut_off: false }));
        }
        loop {
            match self.skip_ws()? {
                Some(b',') => {}
                None => return Ok(Some(self.end(false))),
                Some(b']') => {
                    self.end_document()?;
                    return Ok(Some(self.end(false)));
                }
                Some(b'{') => {
                    self.pos -= 1; // `byte` took it from the buffer: give it back
                    return Ok(None);
                }
                Some(b) => {
                    let line = self.line;
                    if !self.skip_value(b, MAX_RECORD as u64)? {
                        return Ok(Some(self.end(true)));
                    }
                    return Ok(Some(Item::NotObject(line)));
                }
            }
        }
    }

    /// The line the window begins on.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The bytes read and not yet consumed: after [`next_object`](Self::next_object), an
    /// object and what follows it.
    pub(crate) fn window(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    /// Consumes the window's first `n` bytes (an object parsed in place).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len - self.pos);
        #[allow(clippy::naive_bytecount)]
        let newlines = self.buf[self.pos..self.pos + n]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line += newlines as u64;
        self.pos += n;
    }

    /// Reads more into the window (an object ran past it); `false` at the end of the input
    /// or when the window already holds [`MAX_RECORD`]: then [`take_object`](Self::take_object).
    pub(crate) fn more(&mut self) -> Result<bool, SourceError> {
        let held = self.len - self.pos;
        if held >= MAX_RECORD {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.len, 0);
        self.pos = 0;
        self.len = held;
        if self.len == self.buf.len() {
            self.buf
                .resize((self.buf.len() * 2).min(MAX_RECORD + CHUNK), 0);
        }
        let n = loop {
            match self.r.read(&mut self.buf[self.len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::io(&self.file, e)),
            }
        };
        self.len += n;
        Ok(n > 0)
    }

    /// The object beginning the window, split by scanning rather than parsed in place: one
    /// that did not parse, or runs past [`MAX_RECORD`] or the input.
    pub(crate) fn take_object(&mut self) -> Result<Item<'_>, SourceError> {
        self.byte()?; // its `{`
        let line = self.line;
        match self.capture_object()? {
            Captured::Whole => Ok(Item::Object(&self.item, line)),
            Captured::InBuffer(a, b) => Ok(Item::Object(&self.buf[a..b], line)),
            Captured::TooLong => Ok(Item::TooLong(line)),
            Captured::CutOff => Ok(self.end(true)),
        }
    }

    fn end(&mut self, cut_off: bool) -> Item<'static> {
        self.done = true;
        Item::End { cut_off }
    }

    fn invalid(&self, what: &str) -> SourceError {
        SourceError::invalid(&self.file, Some(self.line), what)
    }

    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, SourceError> {
        if self.pos == self.len && !self.refill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, SourceError> {
        loop {
            match self.byte()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {}
                Some(0xEF | 0xBB | 0xBF) if self.line == 1 => {} // a UTF-8 byte-order mark
                other => return Ok(other),
            }
        }
    }

    /// In a top-level object, skips members until `key`, then its `[`.
    fn find_key(&mut self, key: &str) -> Result<(), SourceError> {
        loop {
            match self.skip_ws()? {
                Some(b',') => continue,
                Some(b'"') => {}
                Some(b'}') | None => {
                    return Err(self.invalid(&format!("no \"{key}\" array in the object")));
                }
                Some(_) => return Err(self.invalid("malformed JSON object")),
            }
            let name = self.read_key()?;
            if self.skip_ws()? != Some(b':') {
                return Err(self.invalid("malformed JSON object: expected ':'"));
            }
            let Some(first) = self.skip_ws()? else {
                return Err(self.invalid("file ends inside the top-level object"));
            };
            if name == key.as_bytes() {
                if first == b'[' {
                    return Ok(());
                }
                return Err(self.invalid(&format!("\"{key}\" is not an array")));
            }
            if !self.skip_value(first, MAX_MEMBER)? {
                return Err(self.invalid("file ends inside the top-level object"));
            }
        }
    }

    fn read_key(&mut self) -> Result<Vec<u8>, SourceError> {
        let mut name = Vec::new();
        let mut escaped = false;
        while let Some(b) = self.byte()? {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => return Ok(name),
                _ => {
                    escaped = false;
                    if name.len() < 256 {
                        name.push(b);
                    }
                }
            }
        }
        Err(self.invalid("file ends inside a key"))
    }

    /// Skips a value that began with `first`; `false` if the file ended inside it. A byte
    /// no JSON value begins with, or a value over `budget` bytes, refuses the file: it is
    /// not JSON (or not a trace), and reading on would only take time.
    fn skip_value(&mut self, first: u8, budget: u64) -> Result<bool, SourceError> {
        let (depth, in_str) = match first {
            b'{' | b'[' => (1u32, false),
            b'"' => (0, true),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => return self.skip_scalar(),
            other => return Err(self.not_json(other)),
        };
        let mut nest = Nesting {
            depth,
            in_str,
            escaped: false,
        };
        let mut seen = 0u64;
        while let Some(b) = self.byte()? {
            if nest.closes_with(b) {
                return Ok(true);
            }
            seen += 1;
            if seen > budget {
                return Err(self.invalid(&format!(
                    "a JSON value runs past {} MiB: not a trace poolscope reads",
                    budget / (1024 * 1024)
                )));
            }
        }
        Ok(false)
    }

    /// Skips a number or `true`/`false`/`null`: runs to the next delimiter, which must not
    /// be consumed away. No real scalar is long; a long run of other bytes is garbage.
    fn skip_scalar(&mut self) -> Result<bool, SourceError> {
        for _ in 0..MAX_SCALAR {
            match self.peek()? {
                None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') => return Ok(true),
                Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+') => {
                    self.byte()?;
                }
                Some(b) => return Err(self.not_json(b)),
            }
        }
        Err(self.invalid("a JSON number or literal of over 64 bytes: not JSON"))
    }

    fn not_json(&self, b: u8) -> SourceError {
        let what = match b {
            0 => "a NUL byte".to_string(),
            b if b.is_ascii_graphic() => format!("{:?}", char::from(b)),
            b => format!("the byte {b:#04x}"),
        };
        self.invalid(&format!("not JSON: {what} where a value should begin"))
    }

    fn peek(&mut self) -> Result<Option<u8>, SourceError> {
        let b = self.byte()?;
        if b.is_some() {
            self.pos -= 1;
            if b == Some(b'\n') {
                self.line -= 1;
            }
        }
        Ok(b)
    }

    /// Captures an object (its `{` already read): in place when the buffer holds it whole,
    /// else copied into `self.item`.
    fn capture_object(&mut self) -> Result<Captured, SourceError> {
        let begin = self.pos - 1; // its `{`, still in the buffer
        self.item.clear();
        let mut in_item = false;
        let mut nest = Nesting {
            depth: 1,
            in_str: false,
            escaped: false,
        };
        let mut too_long = false;
        let mut seen = 0u64;
        // A buffer's worth at a time: the scan is one tight loop, the copy one memcpy.
        loop {
            if self.pos == self.len {
                if !in_item {
                    // the object runs past the buffer: keep what it has so far
                    self.item.extend_from_slice(&self.buf[begin..self.pos]);
                    in_item = true;
                }
                if !self.refill()? {
                    return Ok(Captured::CutOff);
                }
            }
            let chunk = &self.buf[self.pos..self.len];
            let stop = nest.scan(chunk);
            let used = stop.map_or(chunk.len(), |(n, _)| n);
            let part = &chunk[..used];
            // no new dependency for this: the compiler vectorises the plain count
            #[allow(clippy::naive_bytecount)]
            let newlines = part.iter().filter(|&&b| b == b'\n').count();
            self.line += newlines as u64;
            seen += used as u64;
            if in_item && !too_long {
                if self.item.len() + used > MAX_RECORD {
                    too_long = true;
                    self.item.clear();
                } else {
                    self.item.extend_from_slice(part);
                }
            }
            self.pos += used;
            match stop {
                Some((_, false)) => return Err(self.not_json(0)),
                Some((_, true)) if too_long || seen >= MAX_RECORD as u64 => {
                    return Ok(Captured::TooLong);
                }
                Some((_, true)) if in_item => return Ok(Captured::Whole),
                Some((_, true)) => return Ok(Captured::InBuffer(begin, self.pos)),
                None if seen > MAX_MEMBER => {
                    return Err(self.invalid(&format!(
                        "a trace event runs past {} MiB: not a trace poolscope reads",
                        MAX_MEMBER / (1024 * 1024)
                    )));
                }
                None => {}
            }
        }
    }

    /// Reads the next buffer's worth; `false` at the end of the input.
    fn refill(&mut self) -> Result<bool, SourceError> {
        self.len = loop {
            match self.r.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::io(&self.file, e)),
            }
        };
        self.pos = 0;
        Ok(self.len > 0)
    }
}

impl<R: Read> JsonArray<R> {
    /// After the array's `]`: skips the rest of a top-level object (other members, `}`),
    /// then refuses anything but whitespace. A file holds one document: a second one after
    /// it (`cat a.json b.json`) would otherwise be silently left unread.
    fn end_document(&mut self) -> Result<(), SourceError> {
        while self.in_object {
            match self.skip_ws()? {
                Some(b',') => {}
                Some(b'}') => self.in_object = false,
                None => return Ok(()), // cut inside the object, after the events: all read
                Some(b'"') => {
                    self.read_key()?;
                    if self.skip_ws()? != Some(b':') {
                        return Err(self.invalid("malformed JSON object: expected ':'"));
                    }
                    match self.skip_ws()? {
                        Some(first) if self.skip_value(first, MAX_MEMBER)? => {}
                        _ => return Ok(()),
                    }
                }
                Some(_) => return Err(self.invalid("malformed JSON object after the events")),
            }
        }
        match self.skip_ws()? {
            None => Ok(()),
            Some(b) => {
                let what = if matches!(b, b'{' | b'[') {
                    "a second JSON document"
                } else {
                    "data"
                };
                Err(self.invalid(&format!(
                    "{what} follows the end of the first: a file holds one recording \
                     (concatenated recordings are not read; split them into files)"
                )))
            }
        }
    }
}

/// The bytes that can change a scan's state: quotes, backslashes, brackets, and NUL.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let special = *b"\"\\{}[]\0";
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    t
};

/// Where a scan is inside a JSON value: nesting depth, and whether in a string (and just
/// after its backslash). One byte at a time, so a value is skipped or copied without parsing.
struct Nesting {
    depth: u32,
    in_str: bool,
    escaped: bool,
}

impl Nesting {
    /// Scans `chunk` on from this state: the length up to and with the byte that closes
    /// the value (`true`), or up to a NUL, never in JSON (`false`); `None` if neither is in
    /// it. Bytes that cannot change the state are passed over by a table lookup each.
    fn scan(&mut self, chunk: &[u8]) -> Option<(usize, bool)> {
        let mut i = 0;
        loop {
            // after a backslash, the next byte is taken whatever it is
            if !self.escaped {
                while i < chunk.len() && !SPECIAL[usize::from(chunk[i])] {
                    i += 1;
                }
            }
            let &b = chunk.get(i)?;
            if b == 0 {
                return Some((i, false));
            }
            if self.closes_with(b) {
                return Some((i + 1, true));
            }
            i += 1;
        }
    }

    /// Takes the next byte; true once it closes the value the scan began in.
    #[inline]
    fn closes_with(&mut self, b: u8) -> bool {
        if self.in_str {
            match (self.escaped, b) {
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_str = false,
                _ => self.escaped = false,
            }
            // A value that was a lone string ends with its closing quote.
            return !self.in_str && self.depth == 0;
        }
        match b {
            b'"' => self.in_str = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                return self.depth == 0;
            }
            _ => {}
        }
        false
    }
}

enum Captured {
    /// In the buffer, between these offsets.
    InBuffer(usize, usize),
    /// In `item`.
    Whole,
    TooLong,
    CutOff,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `n` bytes at a time, so items straddle every refill.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn items(text: &[u8], step: usize) -> Vec<String> {
        let mut a = JsonArray::open(Trickle(text, step), "t", "traceEvents").unwrap();
        let mut out = Vec::new();
        loop {
            match a.next_item().unwrap() {
                Item::Object(b, line) => out.push(format!("{line}:{}", String::from_utf8_lossy(b))),
                Item::NotObject(line) => out.push(format!("{line}:not")),
                Item::TooLong(line) => out.push(format!("{line}:long")),
                Item::End { cut_off } => {
                    out.push(format!("end {cut_off}"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn objects_are_split_whole_whatever_their_strings_hold_and_wherever_reads_end() {
        let text = br#"{"traceEvents":[{"a":"x\"}y","b":[1,{"c":"\\"}]},
 {"n":"{[\\\"]}"} , 3, {"d":{}}
,{"cut":"#;
        let want = [
            r#"1:{"a":"x\"}y","b":[1,{"c":"\\"}]}"#,
            r#"2:{"n":"{[\\\"]}"}"#,
            "2:not",
            r#"2:{"d":{}}"#,
            "end true",
        ];
        for step in [1, 2, 3, 7, 64 * 1024] {
            assert_eq!(items(text, step), want, "reads of {step} bytes");
        }
    }

    #[test]
    fn a_nul_inside_an_object_refuses_the_file() {
        let mut a = JsonArray::open(&b"[{\"a\":\"x\0\"}]"[..], "t", "k").unwrap();
        assert!(a.next_item().is_err());
    }
}
