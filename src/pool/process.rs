//! The process pool: `poolscope worker` children, one lane per PID, replaced when they die.
//!
//! Each worker slot is one tokio task that feeds its child tasks over stdin, reads framed
//! reports from stdout and forwards stderr as log lines. A child that dies, or that breaks
//! the protocol, fails only the task it had started; tasks it had been given but not begun go
//! back into the queue, and a new child takes the slot (Python's pool would be broken).

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStderr, ChildStdin, Command};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::error::PoolError;
use crate::event::{EventKind, TaskId, WorkerExit, WorkerId, WorkerLabel};
use crate::pool::wire::{self, FromWorker, ToWorker};
use crate::pool::{EventTx, PoolSpec, Task, TaskRx, TaskTx};
use crate::sys::{die_with_parent, mono_ns};

/// How long a child may take to exit after its stdin closes before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
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
struct Shared {
    spec: PoolSpec,
    queue: TaskRx,
    /// Puts back tasks a dead worker had been given but had not started.
    requeue: TaskTx,
    events: EventTx,
    kill: CancellationToken,
    next_worker: AtomicU32,
}

/// A child that has just been started.
struct Spawned {
    id: WorkerId,
    child: Child,
    pid: u32,
    spawned_ns: u64,
}

/// How a slot's child ended, as far as the slot is concerned.
enum SlotEnd {
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

/// Sends an event, reporting whether anyone is still listening.
async fn emit(shared: &Shared, at_ns: u64, kind: EventKind) -> bool {
    shared
        .events
        .send(shared.spec.event(at_ns, kind))
        .await
        .is_ok()
}

async fn emit_output(shared: &Shared, worker: WorkerId, line: String) {
    emit(shared, mono_ns(), EventKind::WorkerOutput { worker, line }).await;
}

/// The next task for this slot, or `None` once the queue is closed and empty.
async fn next_task(shared: &Shared) -> Option<Task> {
    shared.queue.recv().await.ok()
}

/// A task handed to the child, and whether the child has said it started it.
struct InFlight {
    task: Task,
    started: bool,
}

/// Feeds one child until its work is over or it dies, then reaps it.
async fn drive(worker: Spawned, shared: &Shared) -> SlotEnd {
    let Spawned {
        id,
        mut child,
        pid,
        spawned_ns,
    } = worker;
    let label = WorkerLabel::Process { pid };
    if !emit(
        shared,
        spawned_ns,
        EventKind::WorkerSpawned { worker: id, label },
    )
    .await
    {
        let _ = child.start_kill();
        return SlotEnd::Done;
    }
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.start_kill();
        return SlotEnd::Done;
    };
    let stderr_task = tokio::spawn(forward_stderr(
        stderr,
        id,
        shared.spec.clone(),
        shared.events.clone(),
    ));
    let mut frames = FramedRead::new(stdout, wire::codec());
    let mut stdin: Option<ChildStdin> = Some(stdin);
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut queue_done = false;
    let mut broken: Option<String> = None;
    let mut progressed = false;
    let mut out = Vec::new();
    let depth = shared.spec.pipeline.max(1);

    loop {
        if queue_done && in_flight.is_empty() {
            // EOF on its stdin is the child's signal to exit cleanly.
            stdin = None;
        }
        let want = stdin.is_some() && !queue_done && in_flight.len() < depth;
        tokio::select! {
            biased;
            _ = shared.kill.cancelled() => break,
            frame = frames.next() => {
                let msg = match frame {
                    None => break,
                    Some(Ok(bytes)) => wire::decode::<FromWorker>(&bytes),
                    Some(Err(e)) => Err(crate::error::WireError::Io(e)),
                };
                let msg = match msg {
                    Ok(msg) => msg,
                    Err(e) => {
                        broken = Some(format!("protocol error: {e}"));
                        break;
                    }
                };
                match accept(msg, &mut in_flight, id) {
                    Ok((at_ns, kind)) => {
                        progressed |= matches!(kind, EventKind::TaskFinished { .. } | EventKind::TaskFailed { .. });
                        if !emit(shared, at_ns, kind).await {
                            break;
                        }
                    }
                    Err(why) => {
                        broken = Some(why);
                        break;
                    }
                }
            }
            got = next_task(shared), if want => match got {
                None => queue_done = true,
                Some(task) => {
                    out.clear();
                    let mut batch = vec![task];
                    while in_flight.len() + batch.len() < depth {
                        match shared.queue.try_recv() {
                            Ok(t) => batch.push(t),
                            Err(_) => break,
                        }
                    }
                    let mut encoded = Ok(());
                    for t in &batch {
                        encoded = encoded.and_then(|()| wire::encode(&ToWorker::Task { id: t.id, n: t.n }, &mut out));
                    }
                    in_flight.extend(batch.into_iter().map(|task| InFlight { task, started: false }));
                    if let Err(e) = encoded {
                        broken = Some(format!("cannot encode task: {e}"));
                        break;
                    }
                    if let Some(pipe) = stdin.as_mut() {
                        // A write error means the child is gone; its exit status says why.
                        if pipe.write_all(&out).await.is_err() {
                            break;
                        }
                    }
                }
            },
        }
    }
    drop(stdin);

    let killed = shared.kill.is_cancelled();
    if broken.is_some() || killed {
        let _ = child.start_kill();
    }
    let status = reap(&mut child).await;
    let exit = match broken {
        Some(why) => WorkerExit::Broken(why),
        None => exit_of(status),
    };
    if !matches!(exit, WorkerExit::Clean) {
        emit_output(shared, id, format!("worker PID {pid} {exit}")).await;
    }
    let expected = queue_done && in_flight.is_empty() && exit.is_clean();
    settle_orphans(shared, id, pid, &exit, in_flight).await;
    // stderr closes when the child is gone; don't let a stray holder of the pipe stall us.
    if tokio::time::timeout(Duration::from_secs(1), stderr_task)
        .await
        .is_err()
    {
        emit_output(shared, id, "stderr still open after exit".into()).await;
    }
    emit(
        shared,
        mono_ns(),
        EventKind::WorkerExited { worker: id, exit },
    )
    .await;
    if expected || killed {
        SlotEnd::Done
    } else {
        SlotEnd::Died { progressed }
    }
}

/// Checks a report against what this child was given and turns it into an event.
///
/// A child works through its tasks in order, so a report must be about the oldest task in
/// flight; anything else means the child is lying or confused, and it is treated as broken.
fn accept(
    msg: FromWorker,
    in_flight: &mut VecDeque<InFlight>,
    worker: WorkerId,
) -> Result<(u64, EventKind), String> {
    let front = in_flight.front_mut();
    let out_of_turn = |id: TaskId| format!("protocol error: report for task {id} out of turn");
    match msg {
        FromWorker::Started { id, at_ns } => match front {
            Some(f) if f.task.id == id && !f.started => {
                f.started = true;
                Ok((at_ns, EventKind::TaskStarted { task: id, worker }))
            }
            _ => Err(out_of_turn(id)),
        },
        FromWorker::Finished { id, at_ns, result } => match front {
            Some(f) if f.task.id == id && f.started => {
                in_flight.pop_front();
                Ok((
                    at_ns,
                    EventKind::TaskFinished {
                        task: id,
                        worker,
                        result,
                    },
                ))
            }
            _ => Err(out_of_turn(id)),
        },
        FromWorker::Failed { id, at_ns, error } => match front {
            Some(f) if f.task.id == id && f.started => {
                in_flight.pop_front();
                Ok((
                    at_ns,
                    EventKind::TaskFailed {
                        task: id,
                        worker: Some(worker),
                        error,
                    },
                ))
            }
            _ => Err(out_of_turn(id)),
        },
    }
}

/// Fails the task a dead child was running and puts back the ones it never began.
async fn settle_orphans(
    shared: &Shared,
    id: WorkerId,
    pid: u32,
    exit: &WorkerExit,
    in_flight: VecDeque<InFlight>,
) {
    for f in in_flight {
        if f.started {
            let error = format!("worker PID {pid} {exit}");
            let kind = EventKind::TaskFailed {
                task: f.task.id,
                worker: Some(id),
                error,
            };
            emit(shared, mono_ns(), kind).await;
        } else if shared.requeue.send(f.task).await.is_err() {
            // The queue was closed by a cancel: this task will not run.
            let kind = EventKind::TaskFailed {
                task: f.task.id,
                worker: None,
                error: "cancelled after its worker died".into(),
            };
            emit(shared, mono_ns(), kind).await;
        }
    }
}

/// Waits for the child to exit, killing it if it lingers; `None` if it could not be reaped.
async fn reap(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Ok(status)) = tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        return Some(status);
    }
    let _ = child.start_kill();
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => None,
    }
}

/// Describes an exit status the way the lanes show it.
fn exit_of(status: Option<ExitStatus>) -> WorkerExit {
    match status {
        Some(s) if s.success() => WorkerExit::Clean,
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => WorkerExit::Code(code),
            (None, Some(sig)) => WorkerExit::Signal(sig),
            (None, None) => WorkerExit::Broken(format!("unknown exit status {s}")),
        },
        None => WorkerExit::Broken("could not be reaped".into()),
    }
}

/// Turns a child's stderr into log lines, so it never reaches the terminal raw.
async fn forward_stderr(stderr: ChildStderr, worker: WorkerId, spec: PoolSpec, events: EventTx) {
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
        if events.send(ev).await.is_err() {
            break;
        }
    }
}
