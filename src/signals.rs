//! The signals that end poolscope early: Ctrl-C, `kill`, a closed terminal.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Listens for SIGINT, SIGTERM and SIGHUP.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

/// The run was ended by a signal; the process exits with 128 + its number.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}", poolscope::sys::signal_name(*.0))]
pub struct Interrupted(pub i32);

impl Signals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next of them and returns its number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}
