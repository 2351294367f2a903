//! The process pool: `poolscope worker` children, one lane per PID, replaced when they die.
//!
//! Each worker slot is one tokio task that feeds its child tasks over stdin, reads framed
//! reports from stdout and forwards stderr as log lines. A child that dies, or that breaks
//! the protocol, fails only the task it had started; tasks it had been given but not begun go
//! back into the queue, and a new child takes the slot (Python's pool would be broken).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::StreamExt;
use tokio::process::{Child, ChildStderr, Command};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::error::PoolError;
use crate::event::{EventKind, WorkerId};
use crate::pool::{Chunk, EventTx, PoolSpec, TaskRx, TaskTx};
use crate::sys::{die_with_parent, mono_ns};

mod driver;

use driver::drive;

/// A slot whose children keep dying before finishing a single task gives up after this many.
const MAX_FRUITLESS_RESPAWNS: u32 = 3;
/// Longest stderr line forwarded; the rest of such a line is dropped.
const MAX_STDERR_LINE: usize = 1024;

/// A running process pool.
pub struct ProcessPool {
    kill: CancellationToken,
    slots: Vec<JoinHandle<()>>,
}

/// What all slots of one pool share.
pub(super) struct Shared {
    pub(super) spec: PoolSpec,
    pub(super) queue: TaskRx,
    /// Puts back tasks a dead worker had been given but had not started.
    pub(super) requeue: TaskTx,
    pub(super) events: EventTx,
    pub(super) kill: CancellationToken,
    pub(super) next_worker: AtomicU32,
}

/// A child that has just been started.
pub(super) struct Spawned {
    pub(super) id: WorkerId,
    pub(super) child: Child,
    pub(super) pid: u32,
    pub(super) spawned_ns: u64,
}

/// How a slot's child ended, as far as the slot is concerned.
pub(super) enum SlotEnd {
    /// Its work is over (queue closed and drained, or the pool is shutting down).
    Done,
    /// It died with work left; `progressed` if it had finished at least one task.
    Died { progressed: bool },
}

impl ProcessPool {
    /// Starts `spec.workers` children; `requeue` must feed the same queue as `queue`.
    pub fn start(
        spec: PoolSpec,
        queue: TaskRx,
        requeue: TaskTx,
        events: EventTx,
    ) -> Result<Self, PoolError> {
        let mut first = Vec::with_capacity(spec.workers as usize);
        for i in 0..spec.workers {
            // On error the children started so far are dropped, and kill_on_drop ends them.
            first.push(spawn(&spec, WorkerId(i))?);
        }
        let kill = CancellationToken::new();
        let shared = Arc::new(Shared {
            next_worker: AtomicU32::new(spec.workers),
            spec,
            queue,
            requeue,
            events,
            kill: kill.clone(),
        });
        let slots = first
            .into_iter()
            .map(|w| tokio::spawn(run_slot(w, Arc::clone(&shared))))
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

/// Starts one `poolscope worker` child that dies with us.
fn spawn(spec: &PoolSpec, id: WorkerId) -> Result<Spawned, PoolError> {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
    let mut cmd = Command::new(&spec.worker_exe);
    cmd.arg("worker")
        .arg("--workload")
        .arg(spec.workload.name())
        .arg("--task-ms")
        .arg(spec.task_ms.to_string())
        .arg("--seed")
        .arg(spec.seed.to_string())
        .args(spec.announce_starts.then_some("--announce-starts"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || die_with_parent(parent));
    }
    let spawned_ns = mono_ns();
    let child = cmd.spawn().map_err(|source| PoolError::SpawnProcess {
        exe: spec.worker_exe.display().to_string(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    Ok(Spawned {
        id,
        child,
        pid,
        spawned_ns,
    })
}

/// Keeps one worker slot staffed until the queue is done.
async fn run_slot(mut worker: Spawned, shared: Arc<Shared>) {
    let mut fruitless = 0;
    loop {
        let id = worker.id;
        match drive(worker, &shared).await {
            SlotEnd::Done => return,
            SlotEnd::Died { progressed } => {
                fruitless = if progressed { 0 } else { fruitless + 1 };
                if fruitless >= MAX_FRUITLESS_RESPAWNS {
                    emit_output(&shared, id, "workers keep dying; slot not refilled".into()).await;
                    return;
                }
                let next = WorkerId(shared.next_worker.fetch_add(1, Ordering::Relaxed));
                match spawn(&shared.spec, next) {
                    Ok(w) => worker = w,
                    Err(e) => {
                        emit_output(&shared, id, format!("no replacement: {e}")).await;
                        return;
                    }
                }
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

pub(super) async fn emit_output(shared: &Shared, worker: WorkerId, line: String) {
    emit(shared, mono_ns(), EventKind::WorkerOutput { worker, line }).await;
}

/// The next chunk of tasks for this slot, or `None` once the queue is closed and empty.
pub(super) async fn next_chunk(shared: &Shared) -> Option<Chunk> {
    shared.queue.recv().await.ok()
}

/// Turns a child's stderr into log lines, so it never reaches the terminal raw.
pub(super) async fn forward_stderr(
    stderr: ChildStderr,
    worker: WorkerId,
    spec: PoolSpec,
    events: EventTx,
) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => {
                "(overlong stderr line cut)".to_string()
            }
            Err(tokio_util::codec::LinesCodecError::Io(_)) => break,
        };
        let ev = spec.event(mono_ns(), EventKind::WorkerOutput { worker, line });
        if events.send(vec![ev]).await.is_err() {
            break;
        }
    }
}
