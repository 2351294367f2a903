//! The signals that end poolscope early (Ctrl-C, `kill`, a closed terminal, Ctrl-\), and
//! job control for the dashboard.

use poolscope::dashboard::Input;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

/// Listens for SIGINT, SIGTERM, SIGHUP and SIGQUIT.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    quit: Signal,
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
            quit: signal(SignalKind::quit())?,
        })
    }

    /// Waits for the next of them and returns its number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
            _ = self.quit.recv() => libc::SIGQUIT,
        }
    }
}

/// Sends the dashboard every ending signal as [`Input::Stop`], SIGTSTP as
/// [`Input::Suspend`] and SIGCONT as [`Input::Resume`], from a task on the current runtime.
pub fn forward(inputs: mpsc::Sender<Input>) -> std::io::Result<()> {
    let mut ending = Signals::new()?;
    let mut tstp = signal(SignalKind::from_raw(libc::SIGTSTP))?;
    let mut cont = signal(SignalKind::from_raw(libc::SIGCONT))?;
    tokio::spawn(async move {
        loop {
            let input = tokio::select! {
                sig = ending.recv() => Input::Stop(sig),
                _ = tstp.recv() => Input::Suspend,
                _ = cont.recv() => Input::Resume,
            };
            if inputs.send(input).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}
