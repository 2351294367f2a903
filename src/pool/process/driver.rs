//! Drives one worker child: feeds it tasks, reads its reports, watches its deadline, and
//! reaps it, turning whatever happened into events.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::time::Instant;

use super::{Shared, SlotEnd, Spawned, emit, emit_output, forward_stderr, next_chunk};
use crate::event::{EventBatch, EventKind, TaskId, WorkerExit, WorkerId, WorkerLabel, since};
use crate::pool::wire::{self, FrameReader, FromWorker, ToWorker};
use crate::pool::{Chunk, Task};
use crate::sys::{mono_ns, signal_process};

/// How long a child may take to exit after its stdin closes before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long a child asked to stop with SIGTERM gets before SIGKILL.
const ABORT_GRACE: Duration = Duration::from_millis(500);

/// A task handed to the child, and whether the child has said it started it.
struct InFlight {
    task: Task,
    started: bool,
}

/// Feeds one child until its work is over or it dies, then reaps it.
pub(super) async fn drive(worker: Spawned, shared: &Shared) -> SlotEnd {
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
    let mut frames = FrameReader::new(stdout);
    let mut stdin: Option<ChildStdin> = Some(stdin);
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut queue_done = false;
    let mut broken: Option<String> = None;
    let mut overdue: Option<TaskId> = None;
    let mut deadline: Option<Instant> = None;
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
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if let Some(f) = in_flight.front() {
                    overdue = Some(f.task.id);
                    let kind = EventKind::TaskOverdue { task: f.task.id, worker: id };
                    emit(shared, mono_ns(), kind).await;
                }
                break;
            }
            filled = frames.fill() => {
                let mut stop = false;
                match filled {
                    Ok(true) => {}
                    Ok(false) => stop = true,
                    Err(e) => {
                        broken = Some(format!("protocol error: {e}"));
                        stop = true;
                    }
                }
                // Every complete report now buffered, sent on as one batch.
                let mut batch: EventBatch = Vec::new();
                while broken.is_none() {
                    let report = match frames.next_frame::<FromWorker>() {
                        Ok(Some(msg)) => accept(msg, &mut in_flight, id, shared.spec.run_start_ns),
                        Ok(None) => break,
                        Err(e) => Err(format!("protocol error: {e}")),
                    };
                    match report {
                        Ok((at_ns, kind)) => {
                            let ended = matches!(kind, EventKind::TaskFinished { .. } | EventKind::TaskRan { .. } | EventKind::TaskFailed { .. });
                            progressed |= ended;
                            deadline = match (&kind, shared.spec.task_timeout) {
                                (EventKind::TaskStarted { .. }, Some(limit)) => Some(Instant::now() + limit),
                                _ if ended => None,
                                _ => deadline,
                            };
                            batch.push(shared.spec.event(at_ns, kind));
                        }
                        Err(why) => {
                            broken = Some(why);
                            stop = true;
                        }
                    }
                }
                if !batch.is_empty() && shared.events.send(batch).await.is_err() {
                    break;
                }
                if stop {
                    break;
                }
            }
            got = next_chunk(shared), if want => match got {
                None => queue_done = true,
                Some(chunk) => {
                    out.clear();
                    let mut tasks: Vec<Task> = chunk.tasks().collect();
                    while in_flight.len() + tasks.len() < depth {
                        match shared.queue.try_recv() {
                            Ok(more) => tasks.extend(more.tasks()),
                            Err(_) => break,
                        }
                    }
                    let mut encoded = Ok(());
                    for t in &tasks {
                        let t = shared.spec.faults.arm(*t);
                        let msg = ToWorker::Task { id: t.id, n: t.n, panic: t.panic };
                        encoded = encoded.and_then(|()| wire::encode(&msg, &mut out));
                    }
                    in_flight.extend(tasks.into_iter().map(|task| InFlight { task, started: false }));
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
    let status = if broken.is_some() || overdue.is_some() {
        let _ = child.start_kill();
        reap(&mut child, EXIT_GRACE).await
    } else if killed {
        // Graceful first: SIGTERM ends the worker as any process is asked to end.
        let _ = signal_process(pid, libc::SIGTERM);
        reap(&mut child, ABORT_GRACE).await
    } else {
        reap(&mut child, EXIT_GRACE).await
    };
    let exit = match broken {
        Some(why) => WorkerExit::Broken(why),
        None => exit_of(status),
    };
    if !matches!(exit, WorkerExit::Clean) {
        emit_output(shared, id, format!("worker PID {pid} {exit}")).await;
    }
    let expected = queue_done && in_flight.is_empty() && exit.is_clean();
    let reason = match (overdue, shared.spec.task_timeout) {
        (Some(_), Some(limit)) => format!(
            "timed out after {} ms; worker PID {pid} {exit}",
            limit.as_millis()
        ),
        _ => format!("worker PID {pid} {exit}"),
    };
    settle_orphans(shared, id, &reason, in_flight).await;
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
        // A timeout is the task's fault, not the worker's: it does not count against the slot.
        SlotEnd::Died {
            progressed: progressed || overdue.is_some(),
        }
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
    run_start_ns: u64,
) -> Result<(u64, EventKind), String> {
    let front = in_flight.front_mut();
    let out_of_turn = |id: TaskId| format!("protocol error: report for task {id} out of turn");
    let one = |at_ns, kind| Ok((at_ns, kind));
    match msg {
        FromWorker::Started { id, at_ns } => match front {
            Some(f) if f.task.id == id && !f.started => {
                f.started = true;
                one(at_ns, EventKind::TaskStarted { task: id, worker })
            }
            _ => Err(out_of_turn(id)),
        },
        FromWorker::Ran {
            id,
            started_ns,
            at_ns,
            result,
        } => match front {
            Some(f) if f.task.id == id && !f.started => {
                in_flight.pop_front();
                let ran = EventKind::TaskRan {
                    task: id,
                    worker,
                    started: since(run_start_ns, started_ns),
                    result,
                };
                one(at_ns, ran)
            }
            _ => Err(out_of_turn(id)),
        },
        FromWorker::Finished { id, at_ns, result } => match front {
            Some(f) if f.task.id == id && f.started => {
                in_flight.pop_front();
                one(
                    at_ns,
                    EventKind::TaskFinished {
                        task: id,
                        worker,
                        result,
                    },
                )
            }
            _ => Err(out_of_turn(id)),
        },
        FromWorker::Failed { id, at_ns, error } => match front {
            Some(f) if f.task.id == id && f.started => {
                in_flight.pop_front();
                one(
                    at_ns,
                    EventKind::TaskFailed {
                        task: id,
                        worker: Some(worker),
                        error,
                    },
                )
            }
            _ => Err(out_of_turn(id)),
        },
    }
}

/// Fails the task a dead child was running and puts back the ones it never began.
async fn settle_orphans(
    shared: &Shared,
    id: WorkerId,
    reason: &str,
    in_flight: VecDeque<InFlight>,
) {
    for f in in_flight {
        if f.started {
            let error = reason.to_string();
            let kind = EventKind::TaskFailed {
                task: f.task.id,
                worker: Some(id),
                error,
            };
            emit(shared, mono_ns(), kind).await;
        } else if shared.requeue.send(Chunk::of(f.task)).await.is_err() {
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

/// Waits `grace` for the child to exit, then kills it; `None` if it could not be reaped.
async fn reap(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Ok(status)) = tokio::time::timeout(grace, child.wait()).await {
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
