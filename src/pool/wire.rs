//! The framed protocol between the coordinator and a `poolscope worker` child.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of postcard-encoded
//! message. Postcard keeps a task to a handful of bytes; the length prefix lets either side
//! reject garbage (an absurd length, an undecodable payload) instead of guessing.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::RunConfig;
use crate::error::WireError;
use crate::event::TaskId;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest error text carried in a frame; longer texts are cut.
const MAX_ERROR_TEXT: usize = 4 * 1024;

/// Coordinator → worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// The run's settings: always the first frame, answered with [`FromWorker::Ready`].
    Settings(RunConfig),
    /// Run `workload(n)` as task `id`.
    Task {
        /// The task's id.
        id: TaskId,
        /// Its argument.
        n: u64,
        /// Panic instead of working (an injected fault).
        panic: bool,
    },
}

/// Worker → coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker has its settings and waits for tasks (stamped at `at_ns`).
    Ready {
        /// When.
        at_ns: u64,
    },
    /// The worker began task `id` at `at_ns` on `CLOCK_MONOTONIC`.
    Started {
        /// The task.
        id: TaskId,
        /// When.
        at_ns: u64,
    },
    /// Task `id` returned `result`.
    Finished {
        /// The task.
        id: TaskId,
        /// When.
        at_ns: u64,
        /// Its value.
        result: u64,
        /// CPU time the worker's thread spent on it, if the clock could be read.
        cpu_ns: Option<u64>,
    },
    /// Task `id` ran from `started_ns` to `at_ns` and returned `result`: a start and a finish
    /// in one frame, for tasks so short that the start was not worth a frame of its own.
    Ran {
        /// The task.
        id: TaskId,
        /// When it started.
        started_ns: u64,
        /// When it finished.
        at_ns: u64,
        /// Its value.
        result: u64,
        /// CPU time the worker's thread spent on it, if the clock could be read.
        cpu_ns: Option<u64>,
    },
    /// Task `id` failed (returned an error or panicked).
    Failed {
        /// The task.
        id: TaskId,
        /// When.
        at_ns: u64,
        /// Why, one line.
        error: String,
        /// CPU time the worker's thread spent on it, if the clock could be read.
        cpu_ns: Option<u64>,
    },
}

impl FromWorker {
    /// A failure report, with the error text cut to what a frame may carry.
    pub fn failed(id: TaskId, at_ns: u64, error: &str, cpu_ns: Option<u64>) -> Self {
        let mut cut = MAX_ERROR_TEXT.min(error.len());
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        FromWorker::Failed {
            id,
            at_ns,
            error: error[..cut].to_string(),
            cpu_ns,
        }
    }
}

/// Longest line of worker-written text shown anywhere (stderr lines, error strings).
pub const MAX_TEXT_LINE: usize = 512;

/// Makes text a worker wrote safe to show: the first line only, control characters and
/// escape sequences removed (a worker must not drive the terminal), cut to `max` bytes on a
/// character boundary with `…` marking the cut.
pub fn clean_line(text: &str, max: usize) -> String {
    let line = text
        .split(['\n', '\r'])
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len().min(max));
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            skip_escape(&mut chars);
        } else if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            if out.len() + c.len_utf8() > max {
                out.push('…');
                break;
            }
            out.push(c);
        }
    }
    out
}

/// Skips the rest of an escape sequence whose ESC was just read: a CSI (`ESC [ … final`),
/// an OSC (`ESC ] … BEL` or `ESC ] … ESC \\`), or a two-character escape.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                    break;
                }
            }
        }
        _ => {}
    }
}

/// Appends `msg` as one frame to `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = postcard::to_io(msg, &mut *out) {
        out.truncate(start);
        return Err(e.into());
    }
    let len = out.len() - start - 4;
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(WireError::FrameTooLong {
            len,
            max: MAX_FRAME,
        });
    }
    // Fits: MAX_FRAME is far below u32::MAX.
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Writes `msg` as one frame (buffered: the caller decides when to flush).
pub fn write_frame<T: Serialize, W: Write>(
    msg: &T,
    scratch: &mut Vec<u8>,
    w: &mut W,
) -> Result<(), WireError> {
    scratch.clear();
    encode(msg, scratch)?;
    w.write_all(scratch)?;
    Ok(())
}

/// Decodes one frame's payload.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    Ok(postcard::from_bytes(payload)?)
}

/// Reads the next frame's payload into `buf`; `Ok(false)` on a clean end of stream.
pub fn read_frame<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, WireError> {
    let mut len_bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len_bytes[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_FRAME {
        return Err(WireError::FrameTooLong {
            len,
            max: MAX_FRAME,
        });
    }
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

/// Reads frames from a child's stdout on the coordinator side: large reads into one buffer,
/// every complete frame decoded in place, so a burst of reports costs one syscall.
pub struct FrameReader<R> {
    input: R,
    buf: Vec<u8>,
    start: usize,
}

/// Bytes asked for per read.
const READ_CHUNK: usize = 64 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `input`.
    pub fn new(input: R) -> Self {
        FrameReader {
            input,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
        }
    }

    /// Waits for more bytes: `Ok(true)` if some came, `Ok(false)` at a clean end of stream.
    /// An end in the middle of a frame is an error. Cancel-safe: a cancelled read reads nothing.
    pub async fn fill(&mut self) -> Result<bool, WireError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self.input.read_buf(&mut self.buf).await?;
        if n == 0 && !self.buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated frame").into());
        }
        Ok(n > 0)
    }

    /// The next complete frame already read, decoded; `Ok(None)` when more bytes are needed.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        let rest = &self.buf[self.start..];
        let Some(len_bytes) = rest.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len_bytes) as usize;
        if len > MAX_FRAME {
            return Err(WireError::FrameTooLong {
                len,
                max: MAX_FRAME,
            });
        }
        let Some(payload) = rest.get(4..4 + len) else {
            return Ok(None);
        };
        let msg = decode(payload)?;
        self.start += 4 + len;
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msgs = vec![
            FromWorker::Started { id: 3, at_ns: 42 },
            FromWorker::Finished {
                id: 3,
                at_ns: 99,
                result: 9,
                cpu_ns: Some(12_345),
            },
            FromWorker::failed(4, 100, "boom", None),
        ];
        let mut bytes = Vec::new();
        for m in &msgs {
            encode(m, &mut bytes).unwrap();
        }
        let mut r = &bytes[..];
        let mut buf = Vec::new();
        let mut back = Vec::new();
        while read_frame(&mut r, &mut buf).unwrap() {
            back.push(decode::<FromWorker>(&buf).unwrap());
        }
        assert_eq!(back, msgs);
    }

    #[test]
    fn garbage_is_rejected_not_trusted() {
        let mut buf = Vec::new();
        let mut r: &[u8] = b"hello, worker!";
        assert!(matches!(
            read_frame(&mut r, &mut buf),
            Err(WireError::FrameTooLong { .. })
        ));
        let mut r: &[u8] = &[2, 0, 0, 0, 0xff, 0xff];
        assert!(read_frame(&mut r, &mut buf).unwrap());
        assert!(decode::<ToWorker>(&buf).is_err());
        let mut r: &[u8] = &[9, 0, 0, 0, 1];
        assert!(matches!(
            read_frame(&mut r, &mut buf),
            Err(WireError::Io(_))
        ));
    }

    #[tokio::test]
    async fn the_async_reader_takes_frames_across_reads_and_rejects_a_cut_one() {
        let msgs: Vec<FromWorker> = (0..500)
            .map(|id| FromWorker::Ran {
                id,
                started_ns: id * 10,
                at_ns: id * 10 + 5,
                result: id * id,
                cpu_ns: Some(id),
            })
            .collect();
        let mut bytes = Vec::new();
        for m in &msgs {
            encode(m, &mut bytes).unwrap();
        }
        // A reader that hands out 7 bytes at a time, splitting frames everywhere.
        let (client, mut server) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            server.write_all(&bytes).await.unwrap();
            server.write_all(&[9, 0, 0, 0, 1, 2]).await.unwrap();
        });
        let mut reader = FrameReader::new(client);
        let mut back = Vec::new();
        let end = loop {
            while let Some(m) = reader.next_frame::<FromWorker>().unwrap() {
                back.push(m);
            }
            match reader.fill().await {
                Ok(true) => {}
                other => break other,
            }
        };
        writer.await.unwrap();
        assert_eq!(back, msgs);
        assert!(matches!(end, Err(WireError::Io(_))), "{end:?}");
    }

    #[test]
    fn worker_text_is_one_clean_bounded_line() {
        assert_eq!(
            clean_line("\x1b[2J\x1b[31mred\x1b[0m\ttext\nsecond", 100),
            "red text"
        );
        assert_eq!(clean_line("\x1b]0;title\x07ok\x07\x08", 100), "ok");
        assert_eq!(clean_line("\x1b]8;;http://x\x1b\\link", 100), "link");
        assert_eq!(clean_line("\n\nlater", 100), "later");
        let long = clean_line(&"é".repeat(1000), 11);
        assert_eq!(long, "ééééé…");
        assert!(
            !clean_line("a\u{9b}b\u{0}c", 100)
                .chars()
                .any(char::is_control)
        );
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_ERROR_TEXT);
        let FromWorker::Failed { error, .. } = FromWorker::failed(1, 1, &text, None) else {
            unreachable!()
        };
        assert!(error.len() <= MAX_ERROR_TEXT);
        let mut bytes = Vec::new();
        encode(&FromWorker::failed(1, 1, &text, None), &mut bytes).unwrap();
    }
}
