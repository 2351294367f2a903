//! The process pool: `poolscope worker` children, one lane per PID, replaced when they die.
//!
//! Each worker slot is one tokio task. It has its child started on a spawner thread, sends
//! it the run's settings as the protocol's first frame, and hands it work once the child
//! answers (`WorkerReady`): slots start side by side, at most one child starting per core,
//! and each takes work as soon as its own child is ready. It then feeds tasks over stdin,
//! reads framed reports from stdout (each checked where it enters, by the `session` state machine) and
//! forwards stderr, cleaned, as log lines.
//!
//! A child that dies, times out or breaks the protocol fails only the task it was on; the
//! tasks it had been given but not begun go to the pool's retry lane, which every slot takes
//! from first and which never blocks, and a new child takes the slot at once (Python's pool
//! would be broken). A slot whose children die three times in a row before finishing a task
//! gives up and says so.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::StreamExt;
use tokio::process::{Child, ChildStderr};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::config::{Mode, RunConfig};
use crate::error::PoolError;
use crate::event::{EventKind, WorkerId};
use crate::pool::wire::{MAX_TEXT_LINE, clean_line};
use crate::pool::{Chunk, EventTx, PoolSpec, Task, TaskRx, TaskTx};
use crate::sys::{mono_ns, open_fds, raise_fd_limit};

mod driver;
mod round_trip;
mod session;
mod spawner;

use driver::drive;
pub use round_trip::pipe_round_trip;
pub use spawner::PARENT_ENV;

/// A slot whose children keep dying before finishing a single task gives up after this many.
const MAX_FRUITLESS_RESPAWNS: u32 = 3;
/// Longest stderr line read; the rest of such a line is dropped.
const MAX_STDERR_LINE: usize = 4 * 1024;
/// File descriptors a worker costs the coordinator: one socket both ways, a stderr pipe,
/// and a pidfd.
const FDS_PER_WORKER: u64 = 3;

/// A running process pool.
pub struct ProcessPool {
    kill: CancellationToken,
    slots: Vec<JoinHandle<()>>,
}

/// What all slots of one pool share.
pub(super) struct Shared {
    pub(super) spec: PoolSpec,
    pub(super) queue: TaskRx,
    /// Tasks a dead worker held but had not begun. Unbounded, so settling a dead worker
    /// never waits on a queue someone else keeps full; slots take from it first.
    pub(super) retry: (async_channel::Sender<Task>, async_channel::Receiver<Task>),
    pub(super) events: EventTx,
    pub(super) kill: CancellationToken,
    pub(super) next_worker: AtomicU32,
    /// Children starting at once, at most one per core: more only queue for the CPU and
    /// make every one of them look slow to start.
    pub(super) starting: Arc<tokio::sync::Semaphore>,
}

/// A child that has just been started.
pub(super) struct Spawned {
    pub(super) id: WorkerId,
    pub(super) child: Child,
    /// poolscope's end of the child's stdin/stdout socket.
    pub(super) channel: tokio::net::UnixStream,
    pub(super) pid: u32,
    pub(super) spawn_ns: u64,
    /// Held until the child is ready, so the next one starts then.
    pub(super) starting: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How a slot's child ended, as far as the slot is concerned.
pub(super) enum SlotEnd {
    /// Its work is over (queue closed and drained, or the pool is shutting down).
    Done,
    /// It died with work left; `progressed` if it had finished at least one task.
    Died { progressed: bool },
}

impl ProcessPool {
    /// Starts `spec.workers` slots, each spawning its child at once and concurrently (off the
    /// async runtime's thread) and taking work as soon as that child is ready.
    ///
    /// Retries go through the pool's own lane, not `_requeue`: a dying worker must never wait
    /// on the queue the coordinator keeps full.
    pub fn start(
        spec: PoolSpec,
        queue: TaskRx,
        _requeue: TaskTx,
        events: EventTx,
    ) -> Result<Self, PoolError> {
        check_can_spawn(&spec)?;
        let kill = CancellationToken::new();
        let shared = Arc::new(Shared {
            next_worker: AtomicU32::new(spec.workers),
            spec,
            queue,
            retry: async_channel::unbounded(),
            events,
            kill: kill.clone(),
            starting: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
        });
        let slots = (0..shared.spec.workers)
            .map(|i| tokio::spawn(run_slot(WorkerId(i), Arc::clone(&shared))))
            .collect();
        Ok(ProcessPool { kill, slots })
    }

    /// Kills every child now.
    pub fn abort(&self) {
        self.kill.cancel();
    }

    /// Waits for every slot to have reaped its child.
    pub async fn finish(mut self) {
        for slot in std::mem::take(&mut self.slots) {
            // A slot task only fails to join if it panicked; its child is killed on drop.
            let _ = slot.await;
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.kill.cancel();
    }
}

/// The settings a worker gets as its first frame.
pub(super) fn worker_settings(spec: &PoolSpec) -> RunConfig {
    RunConfig {
        mode: Mode::Process,
        workers: spec.workers,
        workload: spec.workload,
        task_ms: spec.task_ms,
        task_timeout_ms: spec
            .task_timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        seed: spec.seed,
        // A worker takes tasks one by one and never needs the run's total.
        ..RunConfig::default()
    }
}

/// Fails early, with one clear line, where spawning cannot work: no such binary, or too few
/// file descriptors for this many workers (after raising the soft limit to the hard one).
fn check_can_spawn(spec: &PoolSpec) -> Result<(), PoolError> {
    let fail = |source: io::Error| PoolError::SpawnProcess {
        exe: spec.worker_exe.display().to_string(),
        source,
    };
    std::fs::metadata(&spec.worker_exe).map_err(fail)?;
    let limit = raise_fd_limit();
    let needed = open_fds() + FDS_PER_WORKER * u64::from(spec.workers) + 16;
    if let Some(limit) = limit.filter(|&l| l < needed) {
        return Err(fail(too_many_files(spec.workers, limit)));
    }
    Ok(())
}

/// The error for running out of descriptors, saying what to do about it.
fn too_many_files(workers: u32, limit: u64) -> io::Error {
    io::Error::other(format!(
        "too many open files: {workers} workers need ~{FDS_PER_WORKER} descriptors each and \
         the limit is {limit}; raise it with ulimit -n"
    ))
}

/// Starts one `poolscope worker` child (see [`spawner`]).
async fn spawn(shared: &Shared, id: WorkerId) -> Result<Spawned, io::Error> {
    // The semaphore lives as long as `shared` and is never closed.
    let starting = Arc::clone(&shared.starting).acquire_owned().await.ok();
    let (child, channel, spawn_ns) = spawner::spawn_worker(shared).await?;
    let pid = child.id().unwrap_or(0);
    Ok(Spawned {
        id,
        child,
        channel,
        pid,
        spawn_ns,
        starting,
    })
}

/// Says what to do about the errors a spawn most often meets.
fn explain_spawn_error(e: io::Error, workers: u32) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => {
            too_many_files(workers, crate::sys::fd_limit().unwrap_or(0))
        }
        Some(libc::EAGAIN) => io::Error::other(format!(
            "too many processes: cannot start one of {workers} workers; raise ulimit -u"
        )),
        _ => e,
    }
}

/// Keeps one worker slot staffed until the queue is done; a dead child is replaced at once.
async fn run_slot(first: WorkerId, shared: Arc<Shared>) {
    let mut fruitless = 0;
    let mut id = first;
    loop {
        let worker = match spawn(&shared, id).await {
            Ok(w) => w,
            Err(e) => {
                if !shared.kill.is_cancelled() {
                    let e = explain_spawn_error(e, shared.spec.workers);
                    note(&shared, id, format!("no worker started: {e}")).await;
                }
                return;
            }
        };
        match drive(worker, &shared).await {
            SlotEnd::Done => return,
            SlotEnd::Died { progressed } => {
                fruitless = if progressed { 0 } else { fruitless + 1 };
                if fruitless >= MAX_FRUITLESS_RESPAWNS {
                    let line =
                        format!("workers keep dying; slot not refilled after {fruitless} tries");
                    note(&shared, id, line).await;
                    return;
                }
                id = WorkerId(shared.next_worker.fetch_add(1, Ordering::Relaxed));
            }
        }
    }
}

/// Sends one event on its own, reporting whether anyone is still listening.
pub(super) async fn emit(shared: &Shared, at_ns: u64, kind: EventKind) -> bool {
    shared
        .events
        .send(vec![shared.spec.event(at_ns, kind)])
        .await
        .is_ok()
}

/// A line the pool writes about a worker.
pub(super) async fn note(shared: &Shared, worker: WorkerId, line: String) {
    emit(shared, mono_ns(), EventKind::PoolNote { worker, line }).await;
}

/// Up to `room` tasks for a slot, retries first; `None` once the queue is closed and empty
/// and no retry waits. A task another worker leaves behind later goes to that worker's
/// replacement.
pub(super) async fn next_work(shared: &Shared, room: usize) -> Option<Vec<Task>> {
    let mut tasks = Vec::new();
    let retry = &shared.retry.1;
    while tasks.len() < room {
        match retry.try_recv() {
            Ok(t) => tasks.push(t),
            Err(_) => break,
        }
    }
    if !tasks.is_empty() {
        return Some(tasks);
    }
    // Without waiting first: a wait registers a listener on each channel, per hand-out.
    let chunk = match shared.queue.try_recv() {
        Ok(chunk) => chunk,
        Err(_) => match wait_for_work(shared).await {
            Work::Chunk(chunk) => chunk,
            Work::Retry(task) => return Some(vec![task]),
            Work::Closed => return retry.try_recv().ok().map(|t| vec![t]),
        },
    };
    tasks.extend(chunk.tasks());
    // Instant tasks: as many more chunks as the child has room for, without waiting.
    while tasks.len() < room {
        match shared.queue.try_recv() {
            Ok(more) => tasks.extend(more.tasks()),
            Err(_) => break,
        }
    }
    Some(tasks)
}

/// What a slot waiting for work gets.
enum Work {
    Retry(Task),
    Chunk(Chunk),
    Closed,
}

/// Waits for a retry or the queue's next chunk, retries first.
async fn wait_for_work(shared: &Shared) -> Work {
    tokio::select! {
        biased;
        Ok(t) = shared.retry.1.recv() => Work::Retry(t),
        got = shared.queue.recv() => got.map_or(Work::Closed, Work::Chunk),
    }
}

/// Turns a child's stderr into log lines, cleaned of anything that could drive a terminal.
pub(super) async fn forward_stderr(
    stderr: ChildStderr,
    worker: WorkerId,
    spec: PoolSpec,
    events: EventTx,
) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    while let Some(line) = lines.next().await {
        let kind = match line {
            Ok(line) => EventKind::WorkerOutput {
                worker,
                line: clean_line(&line, MAX_TEXT_LINE),
            },
            Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => EventKind::PoolNote {
                worker,
                line: format!("a stderr line over {MAX_STDERR_LINE} bytes was dropped"),
            },
            Err(tokio_util::codec::LinesCodecError::Io(_)) => break,
        };
        if matches!(&kind, EventKind::WorkerOutput { line, .. } if line.is_empty()) {
            continue;
        }
        let ev = spec.event(mono_ns(), kind);
        if events.send(vec![ev]).await.is_err() {
            break;
        }
    }
}
