//! The one trait of the sources watched live, and their one list.
//!
//! A live source is started afresh for each run (`r` in the dashboard runs it again) and
//! sends that run's events as they come until it ends or is cancelled. A recording is not
//! live: it is read whole ([`crate::source::read_file`]) and replayed as events
//! ([`crate::source::adapt::replay_events`]). To add a live source: implement [`Live`] in
//! its module and add it to [`LIVE_SOURCES`].

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::event::{EventBatch, RunId};

/// The live sources, by the option that chooses them.
pub const LIVE_SOURCES: &[(&str, &str)] = &[
    (
        "-- PROGRAM",
        "a program started and watched (source::program, source::kernel)",
    ),
    (
        "--pid PID",
        "a running process watched from /proc (source::kernel::attach)",
    ),
];

/// A watch under way, as a future the dashboard or a command can drive.
pub type Watching = Pin<Box<dyn Future<Output = Result<(), LiveError>> + Send>>;

/// Why a live source could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A watched program could not be started or read.
    #[error(transparent)]
    Program(#[from] crate::source::program::ProgramError),
    /// A running process could not be watched.
    #[error(transparent)]
    Attach(#[from] crate::source::kernel::attach::AttachError),
}

/// A source watched live.
pub trait Live: Send + Sync {
    /// Watches as run `run` until the source ends or `cancel` fires, sending its events to
    /// `out` (a `RunStarted` first, a `RunFinished` last).
    fn watch(
        &self,
        run: RunId,
        cancel: CancellationToken,
        out: mpsc::Sender<EventBatch>,
    ) -> Watching;
}

impl Live for crate::source::program::ProgramSpec {
    fn watch(
        &self,
        run: RunId,
        cancel: CancellationToken,
        out: mpsc::Sender<EventBatch>,
    ) -> Watching {
        let spec = self.clone();
        Box::pin(async move {
            crate::source::program::watch(&spec, run, cancel, out).await?;
            Ok(())
        })
    }
}

impl Live for crate::source::kernel::attach::AttachSpec {
    fn watch(
        &self,
        run: RunId,
        cancel: CancellationToken,
        out: mpsc::Sender<EventBatch>,
    ) -> Watching {
        let spec = self.clone();
        Box::pin(async move {
            let tree = crate::source::kernel::attach::open(spec.pid)?;
            crate::source::kernel::attach::watch(tree, &spec, run, cancel, out).await?;
            Ok(())
        })
    }
}
