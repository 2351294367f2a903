//! The seed's `run_blocking_tasks`, on tokio: submit every task to the pool, await them all,
//! and report the results in completion order, streaming every event as it happens.

mod tally;
mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Mode, RunConfig};
use crate::error::PoolError;
use crate::event::{EventBatch, EventKind, Phase, PoolEvent, RunId, TaskId, since};
use crate::pool::{Chunk, Faults, Pool, PoolSpec, TaskRx, TaskTx};
use crate::sys::mono_ns;
use tally::Tally;
use watchdog::Watchdog;

/// Chunks waiting in the queue at most; the coordinator submits more as workers take them.
const QUEUE_CAPACITY: usize = 256;
/// Event batches in flight from workers to the coordinator at most (each up to `BATCH_MAX`).
const EVENT_CAPACITY: usize = 32;
/// How long workers get to leave after the last task before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Tasks per queued chunk when tasks are instant: few queue operations, yet enough chunks
/// that workers finish together.
const SHORT_TASK_CHUNK: usize = 256;
/// Tasks a process worker holds at once when tasks are instant, so its pipe never runs dry.
const SHORT_TASK_PIPELINE: usize = 1024;

/// How a run is identified and where its process workers come from.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run's id in this session.
    pub run: RunId,
    /// The `poolscope` binary to re-execute as `poolscope worker`.
    pub worker_exe: PathBuf,
    /// Keep every result for the report (the seed's return value). A consumer that reads
    /// results from the events turns this off, so memory does not grow with the run.
    pub collect_results: bool,
}

impl RunOptions {
    /// Options for run `run`, workers from `worker_exe`, results collected.
    pub fn new(run: RunId, worker_exe: PathBuf) -> Self {
        RunOptions {
            run,
            worker_exe,
            collect_results: true,
        }
    }
}

/// How the outside steers a run that is under way.
#[derive(Clone, Debug, Default)]
pub struct RunControl {
    /// Drop the queued tasks and let the running ones end.
    pub cancel: CancellationToken,
    /// End the workers now (gracefully, then by force) and settle what is left.
    pub abort: CancellationToken,
    /// Faults to inject into the run's next tasks.
    pub faults: Arc<Faults>,
}

impl RunControl {
    /// A control that has not fired.
    pub fn new() -> Self {
        RunControl::default()
    }
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// Results of the tasks that finished, in completion order (empty unless collected).
    pub results: Vec<u64>,
    /// Tasks that finished.
    pub finished: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks dropped from the queue by a cancel before they started.
    pub cancelled: u64,
    /// Wall time from start to the last task's end.
    pub wall: Duration,
}

/// Runs the experiment, sending every event to `out` in batches, steered by `control`.
pub async fn run_blocking_tasks(
    config: &RunConfig,
    opts: &RunOptions,
    control: &RunControl,
    out: mpsc::Sender<EventBatch>,
) -> Result<RunReport, PoolError> {
    config.validate()?;
    let start_ns = mono_ns();
    let stamp = |kind: EventKind| PoolEvent {
        run: opts.run,
        at: since(start_ns, mono_ns()),
        kind,
    };
    let send = |batch: EventBatch| {
        let out = out.clone();
        async move { out.send(batch).await.map_err(|_| PoolError::ConsumerGone) }
    };
    send(vec![
        stamp(EventKind::RunStarted {
            config: config.clone(),
            coordinator_pid: std::process::id(),
            origin_ns: start_ns,
        }),
        stamp(EventKind::Phase(Phase::Starting)),
        stamp(EventKind::Phase(Phase::CreatingTasks)),
    ])
    .await?;

    let chunk = if config.task_ms == 0 {
        SHORT_TASK_CHUNK
    } else {
        1
    };
    let (queue_tx, queue_rx) = async_channel::bounded::<Chunk>(QUEUE_CAPACITY);
    // Whatever happens below, closing the queue is what tells idle workers to leave.
    let _close_queue = EmptyOnDrop(queue_tx.clone(), queue_rx.clone());
    let (event_tx, mut events) = mpsc::channel(EVENT_CAPACITY);
    let spec = PoolSpec {
        run: opts.run,
        run_start_ns: start_ns,
        workers: config.workers,
        workload: config.workload,
        task_ms: config.task_ms,
        seed: config.seed,
        pipeline: if config.task_ms == 0 {
            SHORT_TASK_PIPELINE
        } else {
            1
        },
        announce_starts: config.announces_starts(),
        worker_exe: opts.worker_exe.clone(),
        faults: Arc::clone(&control.faults),
        task_timeout: config.task_timeout_ms.map(Duration::from_millis),
    };
    let pool = Pool::start(config.mode, spec, (&queue_tx, &queue_rx), event_tx)?;

    let mut tally = Tally::new(config.tasks, opts.collect_results);
    // Process workers are timed by their pool, which can kill them; threads only get flagged.
    let mut watch = match (config.mode, config.task_timeout_ms) {
        (Mode::Thread, Some(ms)) => Some(Watchdog::new(Duration::from_millis(ms))),
        _ => None,
    };
    let mut check = tokio::time::interval(
        watch
            .as_ref()
            .map_or(Duration::from_secs(3600), Watchdog::period),
    );
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let chunk_at = |first: TaskId| Chunk {
        first,
        count: (chunk as u64).min(config.tasks - first),
    };
    let mut next: TaskId = 0;
    let mut cancelling = false;
    let mut pool_gone = false;
    let mut aborted = false;
    while !tally.all_settled() {
        let submit = next < config.tasks && !cancelling;
        tokio::select! {
            biased;
            _ = control.abort.cancelled() => {
                aborted = true;
                break;
            }
            _ = control.cancel.cancelled(), if !cancelling => {
                cancelling = true;
                cancel_queued(&queue_tx, &queue_rx, &mut tally);
                tally.cancel_unsubmitted(next);
                next = config.tasks;
            }
            _ = check.tick(), if watch.is_some() => {
                if let Some(w) = watch.as_mut() {
                    let late: EventBatch = w
                        .overdue(since(start_ns, mono_ns()))
                        .into_iter()
                        .map(|(task, worker)| stamp(EventKind::TaskOverdue { task, worker }))
                        .collect();
                    if !late.is_empty() {
                        send(late).await?;
                    }
                }
            }
            batch = events.recv() => match batch {
                Some(batch) => {
                    for ev in &batch {
                        tally.observe(&ev.kind);
                        if let Some(w) = watch.as_mut() {
                            w.observe(ev);
                        }
                    }
                    send(batch).await?;
                }
                None => {
                    pool_gone = true;
                    break;
                }
            },
            sent = queue_tx.send(chunk_at(next)), if submit => {
                if sent.is_ok() {
                    // One chunk waited for; as many more as fit go in without waiting.
                    let mut queued = vec![queued_event(&stamp, chunk_at(next))];
                    next += chunk_at(next).count;
                    while next < config.tasks && queue_tx.try_send(chunk_at(next)).is_ok() {
                        queued.push(queued_event(&stamp, chunk_at(next)));
                        next += chunk_at(next).count;
                    }
                    if next == config.tasks {
                        queued.push(stamp(EventKind::Phase(Phase::Waiting)));
                    }
                    send(queued).await?;
                }
            }
        }
    }
    let wall = since(start_ns, mono_ns());
    queue_tx.close();

    if aborted {
        cancel_queued(&queue_tx, &queue_rx, &mut tally);
        pool.abort();
        // Killed children are reaped by their slots; stuck threads are not waited for.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, forward_rest(&mut events, &out)).await;
    }
    if pool_gone || aborted {
        // Every worker is gone with tasks outstanding: fail what is left instead of hanging.
        let error = if aborted {
            "aborted"
        } else {
            "no worker left to run it"
        };
        let failed: EventBatch = tally
            .outstanding(next)
            .into_iter()
            .map(|task| {
                stamp(EventKind::TaskFailed {
                    task,
                    worker: None,
                    error: error.to_string(),
                })
            })
            .collect();
        for ev in &failed {
            tally.observe(&ev.kind);
        }
        if !failed.is_empty() {
            send(failed).await?;
        }
        tally.cancel_unsubmitted(next);
    } else {
        drain(&mut events, &out, &pool).await?;
    }
    pool.finish().await;

    send(vec![
        stamp(EventKind::Phase(Phase::Exiting)),
        stamp(EventKind::RunFinished {
            finished: tally.finished,
            failed: tally.failed,
            cancelled: tally.cancelled,
        }),
    ])
    .await?;
    Ok(RunReport {
        finished: tally.finished,
        results: tally.results,
        failed: tally.failed,
        cancelled: tally.cancelled,
        wall,
    })
}

fn queued_event(stamp: &impl Fn(EventKind) -> PoolEvent, chunk: Chunk) -> PoolEvent {
    stamp(EventKind::TasksQueued {
        first: chunk.first,
        count: chunk.count,
    })
}

/// Forwards the workers' last events (their exits) until all have left, killing stragglers.
async fn drain(
    events: &mut mpsc::Receiver<EventBatch>,
    out: &mpsc::Sender<EventBatch>,
    pool: &Pool,
) -> Result<(), PoolError> {
    match tokio::time::timeout(SHUTDOWN_GRACE, forward_rest(events, out)).await {
        Ok(result) => result,
        Err(_) => {
            pool.abort();
            // Threads stuck in a task cannot be killed; their events are not waited for.
            tokio::time::timeout(SHUTDOWN_GRACE, forward_rest(events, out))
                .await
                .unwrap_or(Ok(()))
        }
    }
}

async fn forward_rest(
    events: &mut mpsc::Receiver<EventBatch>,
    out: &mpsc::Sender<EventBatch>,
) -> Result<(), PoolError> {
    while let Some(batch) = events.recv().await {
        out.send(batch).await.map_err(|_| PoolError::ConsumerGone)?;
    }
    Ok(())
}

/// Closes and empties the task queue when dropped, so no worker starts another task.
struct EmptyOnDrop(TaskTx, TaskRx);

impl Drop for EmptyOnDrop {
    fn drop(&mut self) {
        close_and_empty(&self.0, &self.1);
    }
}

/// Closes the queue and counts what was still in it as cancelled.
fn cancel_queued(tx: &TaskTx, rx: &TaskRx, tally: &mut Tally) {
    for chunk in close_and_empty(tx, rx) {
        for task in chunk.tasks() {
            tally.cancel(task.id);
        }
    }
}

/// Closes the queue and takes out what is still in it. Closing alone is not enough: an
/// async-channel receiver goes on taking the messages already queued after a close.
fn close_and_empty(tx: &TaskTx, rx: &TaskRx) -> Vec<Chunk> {
    tx.close();
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}
