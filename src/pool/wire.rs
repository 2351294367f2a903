//! The framed protocol between the coordinator and a `poolscope worker` child.
//!
//! A frame is a little-endian `u32` length followed by that many bytes of postcard-encoded
//! message. Postcard keeps a task to a handful of bytes; the length prefix lets either side
//! reject garbage (an absurd length, an undecodable payload) instead of guessing.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio_util::codec::LengthDelimitedCodec;

use crate::error::WireError;
use crate::event::TaskId;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest error text carried in a frame; longer texts are cut.
const MAX_ERROR_TEXT: usize = 4 * 1024;

/// Coordinator → worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
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
    /// The worker began task `id` at `at_ns` on CLOCK_MONOTONIC.
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
    },
    /// Task `id` failed (returned an error or panicked).
    Failed {
        /// The task.
        id: TaskId,
        /// When.
        at_ns: u64,
        /// Why, one line.
        error: String,
    },
}

impl FromWorker {
    /// A failure report, with the error text cut to what a frame may carry.
    pub fn failed(id: TaskId, at_ns: u64, error: &str) -> Self {
        let mut cut = MAX_ERROR_TEXT.min(error.len());
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        FromWorker::Failed {
            id,
            at_ns,
            error: error[..cut].to_string(),
        }
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

/// The async codec for the same framing, used by the coordinator side.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME)
        .new_codec()
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
            },
            FromWorker::failed(4, 100, "boom"),
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

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_ERROR_TEXT);
        let FromWorker::Failed { error, .. } = FromWorker::failed(1, 1, &text) else {
            unreachable!()
        };
        assert!(error.len() <= MAX_ERROR_TEXT);
        let mut bytes = Vec::new();
        encode(&FromWorker::failed(1, 1, &text), &mut bytes).unwrap();
    }
}
