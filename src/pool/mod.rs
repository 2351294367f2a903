//! Where blocking tasks run: a pool of OS threads or a pool of child processes.
//!
//! Design, and why:
//! - One queue for both kinds (an `async_channel` the coordinator feeds): an idle worker
//!   takes the next work exactly as `ThreadPoolExecutor` workers do. It carries [`Chunk`]s of
//!   consecutive task ids: one task per chunk when tasks take time (strict pull, so no worker
//!   sits on another's backlog), 256 when they are instant (one queue operation for many).
//! - Events travel in batches ([`crate::event::EventBatch`]) over bounded channels, so a
//!   stream of instant tasks costs one channel operation per batch and a slow consumer
//!   applies back-pressure instead of growing memory. A worker sends its batch before it
//!   waits (for work, or on a task that takes time) and never holds an event past
//!   [`BATCH_MAX_AGE_NS`], so the dashboard stays live.
//! - Workers stamp start and finish themselves on the shared monotonic clock; queueing and
//!   pipe delays never stretch a lane's bars.
//! - Process workers are the `poolscope` binary re-executed as `poolscope worker`, spoken to
//!   over stdin/stdout with the compact framed protocol of [`wire`] (a length prefix and a
//!   few postcard bytes per message). With instant tasks each child is kept up to
//!   `pipeline` tasks ahead, so its pipe never runs dry; the child flushes its reports only
//!   when it is about to wait, and the coordinator side decodes every buffered frame from one
//!   large read. A task too short to be seen running reports its start and finish in one
//!   frame (`announce_starts`), halving the messages.

pub mod child;
pub mod process;
pub mod task;
pub mod thread;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::Mode;
use crate::error::PoolError;
use crate::event::{EventBatch, EventKind, PoolEvent, RunId, since};
use crate::workload::Workload;

pub use task::{Chunk, Faults, Task};

/// Sending side of the event channel every worker writes to.
pub type EventTx = mpsc::Sender<EventBatch>;
/// Events a worker collects before it must send them anyway.
pub const BATCH_MAX: usize = 1024;
/// The longest an event waits in a worker's batch.
pub const BATCH_MAX_AGE_NS: u64 = 20_000_000;
/// Receiving side of the task queue every worker pulls from.
pub type TaskRx = async_channel::Receiver<Chunk>;
/// Sending side of the task queue (the coordinator's, and the process pool's for retries).
pub type TaskTx = async_channel::Sender<Chunk>;

/// What every worker of a run needs to know.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    /// The run the events belong to.
    pub run: RunId,
    /// The run's start on the shared monotonic clock.
    pub run_start_ns: u64,
    /// Number of workers.
    pub workers: u32,
    /// The work each task does.
    pub workload: Workload,
    /// How long each task works.
    pub task_ms: u64,
    /// Seed of the `mixed` workload.
    pub seed: u64,
    /// Tasks a process worker may hold at once (1 = strict pull).
    pub pipeline: usize,
    /// Workers report each task's start as soon as it happens. Off for tasks too short to
    /// be seen running, whose start then travels with their finish: half the messages.
    pub announce_starts: bool,
    /// The binary re-executed as `poolscope worker` in process mode.
    pub worker_exe: PathBuf,
    /// Faults injected from the dashboard.
    pub faults: Arc<Faults>,
    /// Tasks running longer than this are overdue (process workers get killed).
    pub task_timeout: Option<std::time::Duration>,
}

impl PoolSpec {
    /// An event of this run stamped at `at_ns` on the monotonic clock.
    pub fn event(&self, at_ns: u64, kind: EventKind) -> PoolEvent {
        PoolEvent {
            run: self.run,
            at: since(self.run_start_ns, at_ns),
            kind,
        }
    }
}

/// A running pool of either kind.
pub enum Pool {
    /// OS threads in this process.
    Thread(thread::ThreadPool),
    /// Child processes.
    Process(process::ProcessPool),
}

impl Pool {
    /// Starts `spec.workers` workers of the given mode, pulling from the `queue` pair's receiver.
    ///
    /// Process mode must be called inside a tokio runtime.
    pub fn start(
        mode: Mode,
        spec: PoolSpec,
        queue: (&TaskTx, &TaskRx),
        events: EventTx,
    ) -> Result<Pool, PoolError> {
        let (tx, rx) = queue;
        Ok(match mode {
            Mode::Thread => Pool::Thread(thread::ThreadPool::start(spec, rx.clone(), events)?),
            Mode::Process => Pool::Process(process::ProcessPool::start(
                spec,
                rx.clone(),
                tx.clone(),
                events,
            )?),
        })
    }

    /// Ends workers that outstayed the shutdown grace: processes are killed; threads, which
    /// cannot be killed safely, are left to finish their task on their own.
    pub fn abort(&self) {
        if let Pool::Process(p) = self {
            p.abort();
        }
    }

    /// Reaps what is left once every worker has stopped sending events.
    pub async fn finish(self) {
        match self {
            Pool::Thread(p) => p.finish(),
            Pool::Process(p) => p.finish().await,
        }
    }
}
