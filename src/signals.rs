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
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
            hup: listen(SignalKind::hangup())?,
            quit: listen(SignalKind::quit())?,
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
    let mut tstp = listen(SignalKind::from_raw(libc::SIGTSTP))?;
    let mut cont = listen(SignalKind::from_raw(libc::SIGCONT))?;
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

/// A handler for `kind`. tokio panics when its first handler cannot get the descriptors it
/// needs (a tiny `ulimit -n`); that becomes an error here.
fn listen(kind: SignalKind) -> std::io::Result<Signal> {
    crate::cmd::without_panicking(|| signal(kind))
}
