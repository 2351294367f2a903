//! The event channel's reader: a thread that decodes the program's protocol lines and hands
//! them on in batches.

use std::io::BufReader;

use tokio::sync::mpsc;

use super::Msg;
use crate::source::{ReadStats, protocol};

/// Reads the FIFO on a thread of its own (its reads block), sending what it decodes in
/// batches: one message per buffer read (at most [`READ_BATCH`] events), sent before the
/// reader waits for more, so a busy program costs one channel send per batch, not per event.
pub(super) fn spawn_reader(reader: std::fs::File, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let mut counted = Counted {
            inner: reader,
            bytes: 0,
        };
        let pending = std::cell::RefCell::new(Vec::with_capacity(READ_BATCH));
        let send = || {
            let events = std::mem::take(&mut *pending.borrow_mut());
            if !events.is_empty() {
                let _ = tx.blocking_send(Msg::Events(events));
            }
        };
        let input = BufReader::with_capacity(
            256 * 1024,
            SendBeforeRead {
                inner: &mut counted,
                before: &send,
            },
        );
        let mut on_header = |origin| {
            send();
            let _ = tx.blocking_send(Msg::Header(origin));
        };
        let mut result =
            protocol::read_live(input, "the program's events", &mut on_header, &mut |ev| {
                let full = {
                    let mut p = pending.borrow_mut();
                    p.push(ev);
                    p.len() >= READ_BATCH
                };
                if full {
                    send();
                }
            });
        send();
        // A program that speaks no protocol wrote nothing: not an error, its lanes are
        // the kernel's.
        if result.is_err() && counted.bytes == 0 {
            result = Ok(ReadStats::default());
        }
        let _ = tx.blocking_send(Msg::StreamEnded(result));
    });
}

/// A reader that counts the bytes it gave.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Most events the FIFO reader gathers into one message.
const READ_BATCH: usize = 1024;

/// A reader that runs `before` each time it is about to read (and so perhaps wait): what
/// was decoded so far goes out before the reader blocks.
struct SendBeforeRead<'a, R> {
    inner: R,
    before: &'a dyn Fn(),
}

impl<R: std::io::Read> std::io::Read for SendBeforeRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (self.before)();
        self.inner.read(buf)
    }
}
