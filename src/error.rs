//! The library's error types.
//!
//! Each error shows its cause once: either its message includes the cause (and it has no
//! `source()`), or it returns the cause as `source()` and leaves it out of the message.
//! Errors that reach the user only through their message (a worker's exit reason, say)
//! include it; errors that travel up to `main` return it, which prints the chain.

use std::cell::Cell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A run configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A numeric field outside its allowed range.
    #[error("{field} must be in {range}, got {value}")]
    OutOfRange {
        /// The option's name as typed (`workers`).
        field: &'static str,
        /// The rejected value.
        value: String,
        /// The allowed range.
        range: String,
    },
}

/// A failure of the wire protocol between the coordinator and a worker process.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The pipe failed or closed mid-frame.
    #[error("pipe error: {0}")]
    Io(io::Error),
    /// A frame longer than the protocol allows: garbage, or a desynchronised stream.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLong {
        /// Announced length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// A frame whose payload does not decode as a message.
    #[error("undecodable frame: {0}")]
    Decode(postcard::Error),
    /// A well-formed message out of place in the protocol.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
}

// Written out rather than `#[from]`, which would also make the cause the `source()` and
// so print it twice in a chain.
impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

impl From<postcard::Error> for WireError {
    fn from(e: postcard::Error) -> Self {
        WireError::Decode(e)
    }
}

/// A pool that could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An OS thread could not be created.
    #[error("cannot start worker thread")]
    SpawnThread(#[source] io::Error),
    /// A worker process could not be started.
    #[error("cannot start worker process {exe}")]
    SpawnProcess {
        /// The executable that was run.
        exe: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The event consumer went away, so nobody is listening to the run any more.
    #[error("event consumer closed")]
    ConsumerGone,
    /// A live source (a watched program, an attached process) could not be started or read;
    /// boxed so that this module does not depend on the sources above it.
    #[error(transparent)]
    Watch(Box<dyn std::error::Error + Send + Sync>),
}

/// The interactive dashboard could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A frame could not be drawn.
    #[error("cannot draw")]
    Draw(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The terminal could not be read.
    #[error("cannot read the terminal")]
    Input(#[source] io::Error),
    /// The terminal could not be given back or taken again (suspend, resume).
    #[error("cannot switch the terminal's mode")]
    Terminal(#[source] io::Error),
    /// The `--trace` file could not be written.
    #[error("cannot write the trace")]
    Trace(#[source] io::Error),
}

/// `e` and its causes on one line, `outer: inner: innermost`, each shown once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

thread_local! {
    /// Set while a library call that reports some OS failures by panicking is made.
    static PANIC_EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the panic under way on this thread is one [`without_panicking`] turns into an
/// error (a panic hook then stays silent).
pub fn panic_expected() -> bool {
    PANIC_EXPECTED.with(Cell::get)
}

/// Runs `f`, turning a panic inside it into an error with the panic's message. tokio panics
/// when the OS refuses it a thread or a descriptor (a tiny `ulimit -u` or `ulimit -n`).
pub fn without_panicking<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let was = PANIC_EXPECTED.with(|p| p.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    PANIC_EXPECTED.with(|p| p.set(was));
    outcome.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        // The panic carries the OS error only as text; give the common one its code back.
        if msg.contains("Too many open files") {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        Err(io::Error::other(
            msg.lines().next().unwrap_or_default().to_string(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_each_cause_once() {
        let e = PoolError::SpawnProcess {
            exe: "/bin/x".into(),
            source: io::Error::from_raw_os_error(libc::EISDIR),
        };
        assert_eq!(
            chain(&e),
            "cannot start worker process /bin/x: Is a directory (os error 21)"
        );
        let wire = WireError::from(io::Error::from_raw_os_error(libc::EISDIR));
        assert_eq!(chain(&wire), "pipe error: Is a directory (os error 21)");
    }
}
