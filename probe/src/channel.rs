//! The channel to poolscope: the FIFO named by `POOLSCOPE_EVENTS`, written by the protocol's
//! rules (`docs/protocol.md`). Lines gather in a bounded buffer; a flusher thread (and the
//! process's exit) writes them in whole-line chunks of at most 4096 bytes with non-blocking
//! writes. A chunk the FIFO has no room for is dropped and counted, never waited for; a full
//! buffer drops new lines likewise. Watching never slows or stops the program.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crate::line::Line;
use crate::sys::mono_ns;

/// Largest write: `PIPE_BUF`, so writes of several processes never interleave in a line.
const MAX_WRITE: usize = 4096;
/// Most bytes waiting to be written; beyond it new lines are dropped and counted.
const MAX_BUFFER: usize = 1 << 20;
/// How often the flusher writes what has gathered: soon enough that a task's start shows
/// while it runs, seldom enough that a stream of short tasks costs a write per batch.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How long after a failed open (nobody reading yet) the next try waits.
const REOPEN_AFTER_NS: u64 = 500_000_000;

/// The writer's state. Tasks only ever take `pending`, for a copy of their line; a flush
/// takes `writer` (one flush at a time), swaps the pending lines out, and makes its system
/// calls with `pending` free again, so a task never waits for a write.
struct Channel {
    pending: Mutex<Vec<u8>>,
    writer: Mutex<Writer>,
    dropped: AtomicU64,
    /// poolscope has gone (`EPIPE`): stop for good.
    gone: AtomicBool,
}

/// What only a flush touches.
struct Writer {
    path: CString,
    fd: Option<libc::c_int>,
    next_open_ns: u64,
    /// The lines being written (swapped with `pending`, so both keep their capacity).
    out: Vec<u8>,
}

/// The process's channel, or `None` when `POOLSCOPE_EVENTS` is not set.
static CHANNEL: OnceLock<Option<Channel>> = OnceLock::new();

/// The channel, opened on first use (the header queued first, the flusher started).
fn channel() -> Option<&'static Channel> {
    CHANNEL.get_or_init(open_channel).as_ref()
}

fn open_channel() -> Option<Channel> {
    let path = std::env::var_os("POOLSCOPE_EVENTS").filter(|p| !p.is_empty())?;
    let path = CString::new(path.as_bytes()).ok()?;
    let ch = Channel::new(path);
    // Only the program's first process writes the header (a child started by a probed
    // Python parent finds `_POOLSCOPE_STARTED` set).
    if std::env::var_os("_POOLSCOPE_STARTED").is_none() {
        ch.push(Line::header(mono_ns(), std::process::id()).as_bytes());
    }
    // A thread that cannot start only means lines wait for the next flush at exit.
    let _ = std::thread::Builder::new()
        .name("poolscope-probe".into())
        .spawn(|| {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            }
        });
    // SAFETY: `flush_at_exit` is a plain `extern "C" fn` that lives as long as the process.
    #[allow(unsafe_code)]
    unsafe {
        libc::atexit(flush_at_exit);
    }
    Some(ch)
}

/// Whether this process reports to poolscope (`POOLSCOPE_EVENTS` is set).
pub fn enabled() -> bool {
    channel().is_some()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere never stops the reports: the buffers are whole lines at every unlock.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues one finished line.
pub(crate) fn push(line: &str) {
    if let Some(ch) = channel() {
        ch.push(line.as_bytes());
    }
}

/// Writes every queued line now, as far as the FIFO takes them. The probe also flushes every
/// 20 ms and when the process exits normally (`exit`, or returning from `main`).
pub fn flush() {
    if let Some(ch) = CHANNEL.get().and_then(Option::as_ref) {
        ch.flush();
    }
}

/// Lines dropped so far because the channel was full or not open.
pub fn dropped() -> u64 {
    CHANNEL
        .get()
        .and_then(Option::as_ref)
        .map_or(0, |ch| ch.dropped.load(Ordering::Relaxed))
}

extern "C" fn flush_at_exit() {
    if let Some(ch) = CHANNEL.get().and_then(Option::as_ref) {
        ch.flush();
        let dropped = ch.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let line = Line::event("dropped", mono_ns())
                .num("count", dropped)
                .num("pid", std::process::id())
                .end();
            ch.push(line.as_bytes());
            ch.flush();
        }
    }
}

impl Channel {
    fn new(path: CString) -> Channel {
        let ch = Channel {
            pending: Mutex::new(Vec::with_capacity(MAX_WRITE)),
            writer: Mutex::new(Writer {
                path,
                fd: None,
                next_open_ns: 0,
                out: Vec::with_capacity(MAX_WRITE),
            }),
            dropped: AtomicU64::new(0),
            gone: AtomicBool::new(false),
        };
        lock(&ch.writer).open();
        ch
    }

    fn push(&self, line: &[u8]) {
        if !self.gone.load(Ordering::Relaxed) {
            let mut pending = lock(&self.pending);
            if pending.len() + line.len() <= MAX_BUFFER {
                pending.extend_from_slice(line);
                let half_full = pending.len() > MAX_BUFFER / 2;
                drop(pending);
                // The flusher is late (a busy machine): this thread writes, unless a flush
                // is under way already. The writes never block, so neither does this.
                if half_full && let Ok(writer) = self.writer.try_lock() {
                    self.flush_with(writer);
                }
                return;
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&self) {
        self.flush_with(lock(&self.writer));
    }

    fn flush_with(&self, mut writer: MutexGuard<'_, Writer>) {
        let w = &mut *writer;
        std::mem::swap(&mut *lock(&self.pending), &mut w.out);
        if w.out.is_empty() {
            return;
        }
        if w.fd.is_none() && !self.gone.load(Ordering::Relaxed) && mono_ns() >= w.next_open_ns {
            w.open();
        }
        let lost = match w.fd.filter(|_| !self.gone.load(Ordering::Relaxed)) {
            Some(fd) => write_lines(fd, &w.out, &self.gone),
            None => count_lines(&w.out),
        };
        self.dropped.fetch_add(lost, Ordering::Relaxed);
        w.out.clear();
    }
}

impl Writer {
    /// Opens the FIFO without blocking; `ENXIO` (nobody reads yet) leaves it closed.
    fn open(&mut self) {
        let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_APPEND | libc::O_CLOEXEC;
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::open(self.path.as_ptr(), flags) };
        if fd >= 0 {
            self.fd = Some(fd);
        } else {
            self.next_open_ns = mono_ns().saturating_add(REOPEN_AFTER_NS);
        }
    }
}

/// Writes `buf` (whole lines) to `fd` in chunks of whole lines of at most [`MAX_WRITE`]
/// bytes; returns how many lines were dropped: those of a chunk the FIFO had no room for
/// (and all after it: a full FIFO stays full for a while), or of a line too long to send
/// whole. Sets `gone` on `EPIPE`.
fn write_lines(fd: libc::c_int, buf: &[u8], gone: &AtomicBool) -> u64 {
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let window = &rest[..rest.len().min(MAX_WRITE)];
        let Some(last_nl) = window.iter().rposition(|&b| b == b'\n') else {
            // No whole line fits a write: it cannot be sent without tearing; skip it.
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            at += end;
            return 1 + write_lines(fd, &buf[at..], gone);
        };
        let chunk = &rest[..=last_nl];
        // SAFETY: `fd` is open (ours) and `chunk` is a valid slice of `chunk.len()` bytes.
        #[allow(unsafe_code)]
        let n = unsafe { libc::write(fd, chunk.as_ptr().cast(), chunk.len()) };
        if let Ok(n) = usize::try_from(n) {
            at += n;
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EPIPE) => {
                gone.store(true, Ordering::Relaxed);
                return count_lines(rest);
            }
            // Full (EAGAIN) or broken: drop what waits, count it, go on with the program.
            _ => return count_lines(rest),
        }
    }
    0
}

// Counted only when dropping, over at most 1 MiB: no crate is worth it.
#[allow(clippy::naive_bytecount)]
fn count_lines(buf: &[u8]) -> u64 {
    buf.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(name: &str) -> (std::path::PathBuf, CString) {
        let dir =
            std::env::temp_dir().join(format!("poolscope-probe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events");
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path string; mode 0600.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        (path, c)
    }

    fn channel_to(path: CString) -> Channel {
        Channel::new(path)
    }

    fn fd(ch: &Channel) -> Option<libc::c_int> {
        lock(&ch.writer).fd
    }

    fn dropped(ch: &Channel) -> u64 {
        ch.dropped.load(Ordering::Relaxed)
    }

    #[test]
    fn with_nobody_reading_lines_are_dropped_and_counted_without_waiting() {
        let (_, c) = fifo("noreader");
        let ch = channel_to(c);
        assert!(
            fd(&ch).is_none(),
            "a FIFO nobody reads does not open (ENXIO)"
        );
        ch.push(b"{\"ev\":\"x\"}\n");
        ch.push(b"{\"ev\":\"y\"}\n");
        ch.flush();
        assert_eq!((dropped(&ch), lock(&ch.pending).len()), (2, 0));
    }

    #[test]
    fn a_full_fifo_drops_whole_chunks_and_never_blocks() {
        let (path, c) = fifo("full");
        // A reader that never reads: the FIFO fills (64 KiB) and writes fail with EAGAIN.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let ch = channel_to(c);
        let line = format!("{{\"ev\":\"pad\",\"s\":\"{}\"}}\n", "x".repeat(90));
        let n = 5_000u64;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            ch.push(line.as_bytes());
            ch.flush();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "writes never wait");
        assert!(dropped(&ch) > 0, "the FIFO was full");
        // What got through is whole lines.
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut &reader, &mut got);
        let text = String::from_utf8(got).unwrap();
        assert!(text.ends_with('\n'));
        let through = text.lines().count() as u64;
        assert!(text.lines().all(|l| l == line.trim_end()));
        assert_eq!(through + dropped(&ch), n, "every line written or counted");
    }

    #[test]
    fn a_fast_stream_to_a_reader_that_keeps_up_loses_nothing_without_a_flusher() {
        // /dev/null takes everything. No flusher thread runs here: the pushing thread writes
        // once the buffer is half full, so four buffers' worth arrive with nothing dropped.
        let ch = channel_to(CString::new("/dev/null").unwrap());
        let line = format!("{{\"ev\":\"pad\",\"s\":\"{}\"}}\n", "x".repeat(90));
        for _ in 0..4 * MAX_BUFFER / line.len() {
            ch.push(line.as_bytes());
        }
        assert_eq!(dropped(&ch), 0);
        assert!(lock(&ch.pending).len() <= MAX_BUFFER / 2 + line.len());
        ch.flush();
        assert!(lock(&ch.pending).is_empty());
    }

    #[test]
    fn a_long_stream_arrives_in_whole_lines_of_at_most_4096_bytes() {
        let (path, c) = fifo("stream");
        let reader = std::thread::spawn(move || std::fs::read_to_string(path).unwrap());
        // Wait for the reader's open, as poolscope opens before the program starts.
        let mut ch = channel_to(c.clone());
        for _ in 0..200 {
            if fd(&ch).is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            ch = channel_to(c.clone());
        }
        for i in 0..2_000 {
            ch.push(format!("{{\"ev\":\"n\",\"i\":{i}}}\n").as_bytes());
        }
        ch.flush();
        let dropped = dropped(&ch);
        // SAFETY: our own descriptor, closed once.
        #[allow(unsafe_code)]
        unsafe {
            libc::close(lock(&ch.writer).fd.take().unwrap());
        }
        let text = reader.join().unwrap();
        assert_eq!(text.lines().count() as u64 + dropped, 2_000);
        assert!(
            text.lines()
                .all(|l| l.starts_with("{\"ev\":\"n\"") && l.ends_with('}'))
        );
    }

    use std::os::unix::fs::OpenOptionsExt as _;
}
