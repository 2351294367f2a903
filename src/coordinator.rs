//! The seed's `run_blocking_tasks`, on tokio: submit every task to the pool, await them all,
//! and report the results in completion order, streaming every event as it happens.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Mode, RunConfig};
use crate::error::PoolError;
use crate::event::{EventKind, Phase, PoolEvent, RunId, TaskId, WorkerId, since};
use crate::pool::{Faults, Pool, PoolSpec, Task, TaskRx, TaskTx};
use crate::sys::mono_ns;

/// Tasks waiting in the queue at most; the coordinator submits more as workers take them.
const QUEUE_CAPACITY: usize = 1024;
/// Events in flight from workers to the coordinator at most.
const EVENT_CAPACITY: usize = 4096;
/// How long workers get to leave after the last task before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Tasks a process worker holds at once when tasks are instant (see `pool`).
const SHORT_TASK_PIPELINE: usize = 32;

/// How a run is identified and where its process workers come from.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run's id in this session.
    pub run: RunId,
    /// The `poolscope` binary to re-execute as `poolscope worker`.
    pub worker_exe: PathBuf,
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
    /// Results of the tasks that finished, in completion order.
    pub results: Vec<u64>,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks dropped from the queue by a cancel before they started.
    pub cancelled: u64,
    /// Wall time from start to the last task's end.
    pub wall: Duration,
}

/// Runs the experiment, sending every event to `out`, steered by `control`.
pub async fn run_blocking_tasks(
    config: &RunConfig,
    opts: &RunOptions,
    control: &RunControl,
    out: mpsc::Sender<PoolEvent>,
) -> Result<RunReport, PoolError> {
    config.validate()?;
    let start_ns = mono_ns();
    let emit = |kind: EventKind| {
        let ev = PoolEvent {
            run: opts.run,
            at: since(start_ns, mono_ns()),
            kind,
        };
        let out = out.clone();
        async move { out.send(ev).await.map_err(|_| PoolError::ConsumerGone) }
    };
    emit(EventKind::RunStarted {
        config: config.clone(),
        coordinator_pid: std::process::id(),
        origin_ns: start_ns,
    })
    .await?;
    emit(EventKind::Phase(Phase::Starting)).await?;
    emit(EventKind::Phase(Phase::CreatingTasks)).await?;

    let (queue_tx, queue_rx) = async_channel::bounded::<Task>(QUEUE_CAPACITY);
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
        worker_exe: opts.worker_exe.clone(),
        faults: Arc::clone(&control.faults),
        task_timeout: config.task_timeout_ms.map(Duration::from_millis),
    };
    let pool = Pool::start(config.mode, spec, (&queue_tx, &queue_rx), event_tx)?;

    let mut tally = Tally::new(config.tasks);
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
                for task in close_and_empty(&queue_tx, &queue_rx) {
                    tally.cancel(task.id);
                }
                tally.cancel_unsubmitted(config.tasks - next);
                next = config.tasks;
            }
            _ = check.tick(), if watch.is_some() => {
                if let Some(w) = watch.as_mut() {
                    for (task, worker) in w.overdue(since(start_ns, mono_ns())) {
                        emit(EventKind::TaskOverdue { task, worker }).await?;
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(ev) => {
                    tally.observe(&ev.kind);
                    if let Some(w) = watch.as_mut() {
                        w.observe(&ev);
                    }
                    out.send(ev).await.map_err(|_| PoolError::ConsumerGone)?;
                }
                None => {
                    pool_gone = true;
                    break;
                }
            },
            sent = queue_tx.send(Task::new(next)), if submit => {
                if sent.is_ok() {
                    tally.submit(next);
                    emit(EventKind::TaskQueued { task: next }).await?;
                    next += 1;
                    if next == config.tasks {
                        emit(EventKind::Phase(Phase::Waiting)).await?;
                    }
                }
            }
        }
    }
    let wall = since(start_ns, mono_ns());
    queue_tx.close();

    if aborted {
        for task in close_and_empty(&queue_tx, &queue_rx) {
            tally.cancel(task.id);
        }
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
        for task in tally.outstanding() {
            let error = error.to_string();
            let kind = EventKind::TaskFailed {
                task,
                worker: None,
                error,
            };
            tally.observe(&kind);
            emit(kind).await?;
        }
        tally.cancel_unsubmitted(config.tasks - next);
    } else {
        drain(&mut events, &out, &pool).await?;
    }
    pool.finish().await;

    emit(EventKind::Phase(Phase::Exiting)).await?;
    emit(EventKind::RunFinished {
        finished: tally.results.len() as u64,
        failed: tally.failed,
        cancelled: tally.cancelled,
    })
    .await?;
    Ok(RunReport {
        results: tally.results,
        failed: tally.failed,
        cancelled: tally.cancelled,
        wall,
    })
}

/// Forwards the workers' last events (their exits) until all have left, killing stragglers.
async fn drain(
    events: &mut mpsc::Receiver<PoolEvent>,
    out: &mpsc::Sender<PoolEvent>,
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
    events: &mut mpsc::Receiver<PoolEvent>,
    out: &mpsc::Sender<PoolEvent>,
) -> Result<(), PoolError> {
    while let Some(ev) = events.recv().await {
        out.send(ev).await.map_err(|_| PoolError::ConsumerGone)?;
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

/// Closes the queue and takes out what is still in it. Closing alone is not enough: an
/// async-channel receiver goes on taking the messages already queued after a close.
fn close_and_empty(tx: &TaskTx, rx: &TaskRx) -> Vec<Task> {
    tx.close();
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Flags thread tasks that run past the timeout, once each.
struct Watchdog {
    limit: Duration,
    running: HashMap<TaskId, (WorkerId, Duration)>,
}

impl Watchdog {
    fn new(limit: Duration) -> Self {
        Watchdog {
            limit,
            running: HashMap::new(),
        }
    }

    /// How often to look: often enough to flag a task soon after its time is up.
    fn period(&self) -> Duration {
        (self.limit / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    fn observe(&mut self, ev: &PoolEvent) {
        match &ev.kind {
            EventKind::TaskStarted { task, worker } => {
                self.running.insert(*task, (*worker, ev.at));
            }
            EventKind::TaskFinished { task, .. } | EventKind::TaskFailed { task, .. } => {
                self.running.remove(task);
            }
            _ => {}
        }
    }

    /// The tasks that became overdue by `now`; each is reported once.
    fn overdue(&mut self, now: Duration) -> Vec<(TaskId, WorkerId)> {
        let late: Vec<(TaskId, WorkerId)> = self
            .running
            .iter()
            .filter(|(_, (_, start))| now.saturating_sub(*start) > self.limit)
            .map(|(task, (worker, _))| (*task, *worker))
            .collect();
        for (task, _) in &late {
            self.running.remove(task);
        }
        late
    }
}

/// The coordinator's bookkeeping: which tasks are still owed a result.
struct Tally {
    tasks: u64,
    outstanding: HashSet<TaskId>,
    results: Vec<u64>,
    failed: u64,
    cancelled: u64,
}

impl Tally {
    fn new(tasks: u64) -> Self {
        Tally {
            tasks,
            outstanding: HashSet::new(),
            results: Vec::new(),
            failed: 0,
            cancelled: 0,
        }
    }

    fn submit(&mut self, task: TaskId) {
        self.outstanding.insert(task);
    }

    fn cancel(&mut self, task: TaskId) {
        if self.outstanding.remove(&task) {
            self.cancelled += 1;
        }
    }

    fn cancel_unsubmitted(&mut self, count: u64) {
        self.cancelled += count;
    }

    fn observe(&mut self, kind: &EventKind) {
        match kind {
            EventKind::TaskFinished { task, result, .. } if self.outstanding.remove(task) => {
                self.results.push(*result);
            }
            EventKind::TaskFailed { task, .. } if self.outstanding.remove(task) => {
                self.failed += 1;
            }
            _ => {}
        }
    }

    fn all_settled(&self) -> bool {
        self.results.len() as u64 + self.failed + self.cancelled == self.tasks
    }

    fn outstanding(&self) -> Vec<TaskId> {
        let mut ids: Vec<_> = self.outstanding.iter().copied().collect();
        ids.sort_unstable();
        ids
    }
}
