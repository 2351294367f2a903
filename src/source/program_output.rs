//! A watched program's stdout and stderr, passed on a chunk at a time: a flood is drained
//! as fast as it comes (the program never waits on poolscope) and costs a bounded amount
//! per chunk, never an event per line.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::{MAX_ERROR, clip};

/// Longest output line kept; the rest of a longer line is cut.
const MAX_OUTPUT_LINE: usize = 4096;
/// Bytes of the program's output read at once: a flood is drained in large chunks.
const OUTPUT_CHUNK: usize = 256 * 1024;
/// Lines of one chunk passed on (its last ones); the log panel keeps a few hundred lines,
/// so a flood costs a bounded amount per chunk, not an event per line.
const OUTPUT_LINES_KEPT: usize = 64;

/// Lines of output: the last of a chunk, after how many earlier ones were left out.
#[derive(Debug)]
pub(super) struct OutputChunk {
    /// The lines passed on, in order.
    pub lines: Vec<String>,
    /// Lines before them in the chunk that were left out.
    pub skipped: u64,
    /// Whether they came from stderr.
    pub stderr: bool,
}

/// Passes the program's output on a chunk at a time: of each chunk read, its last
/// [`OUTPUT_LINES_KEPT`] lines (each cut to a bounded length) and how many came before them.
/// A flood is drained as fast as it comes, so it never waits on poolscope.
pub(super) async fn forward_output<M>(
    mut from: impl AsyncRead + Unpin,
    stderr: bool,
    tx: mpsc::Sender<M>,
    wrap: fn(OutputChunk) -> M,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(OUTPUT_CHUNK);
    loop {
        buf.reserve(OUTPUT_CHUNK);
        match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let (kept, skipped, used) = last_lines(&buf);
        let mut lines: Vec<String> = kept.iter().map(|l| line_of(l)).collect();
        buf.drain(..used);
        if buf.len() > MAX_OUTPUT_LINE {
            // A line longer than any kept: its start is shown, the rest dropped.
            lines.push(line_of(&buf));
            buf.clear();
        }
        let chunk = OutputChunk {
            lines,
            skipped,
            stderr,
        };
        if !chunk.lines.is_empty() && tx.send(wrap(chunk)).await.is_err() {
            return;
        }
    }
    if !buf.is_empty() {
        let chunk = OutputChunk {
            lines: vec![line_of(&buf)],
            skipped: 0,
            stderr,
        };
        let _ = tx.send(wrap(chunk)).await;
    }
}

/// The last [`OUTPUT_LINES_KEPT`] complete lines of `buf`, how many complete lines came
/// before them, and how many bytes the complete lines span.
fn last_lines(buf: &[u8]) -> (Vec<&[u8]>, u64, usize) {
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return (Vec::new(), 0, 0);
    };
    let complete = &buf[..end];
    // A plain loop the compiler vectorises; not worth a crate.
    #[allow(clippy::naive_bytecount)]
    let total = complete.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut kept: Vec<&[u8]> = complete
        .rsplit(|&b| b == b'\n')
        .take(OUTPUT_LINES_KEPT)
        .collect();
    kept.reverse();
    let skipped = (total - kept.len()) as u64;
    (kept, skipped, end + 1)
}

/// One line of output as text: invalid UTF-8 replaced, cut to a bounded length.
fn line_of(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_OUTPUT_LINE)];
    let text = String::from_utf8_lossy(bytes);
    clip(
        text.trim_end_matches('\r'),
        MAX_ERROR.max(MAX_OUTPUT_LINE / 8),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_keeps_its_last_lines_and_counts_the_rest() {
        let (kept, skipped, used) = last_lines(b"a\nb\nc");
        assert_eq!((kept, skipped, used), (vec![&b"a"[..], b"b"], 0, 4));
        let flood: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let (kept, skipped, used) = last_lines(&flood);
        assert_eq!(kept.len(), OUTPUT_LINES_KEPT);
        assert_eq!(kept.last(), Some(&&b"line 999"[..]));
        assert_eq!(skipped, 1000 - OUTPUT_LINES_KEPT as u64);
        assert_eq!(used, flood.len());
        assert_eq!(last_lines(b"no newline").2, 0);
    }
}
