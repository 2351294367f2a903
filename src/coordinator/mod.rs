//! The example's `run_blocking_tasks`, on tokio: submit every task to the pool, await them all,
//! and report the results in completion order, streaming every event as it happens.

mod dispatch;
mod tally;
mod watchdog;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Mode, RunConfig};
use crate::error::PoolError;
use crate::event::{EventBatch, EventKind, Phase, PoolEvent, RunId, since};
use crate::pool::{Faults, Pool, PoolSpec, TaskRx, TaskTx};
use crate::sys::mono_ns;
use dispatch::{Dispatcher, State};
use watchdog::Watchdog;
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
    /// Keep every result for the report (the example's return value). A consumer that reads
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
    /// Results of the tasks that finished, in the order they ended by their workers' clocks
    /// (empty unless collected).
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
///
/// The example's `run_blocking_tasks`: start the pool, feed it every task, await them all, and
/// report the results in the order the tasks ended. The bookkeeping is a `Dispatcher` (a
/// state machine with one method per event, in `coordinator::dispatch`); this
/// function only wires it to the pool, the consumer and the clock.
pub async fn run_blocking_tasks(
    config: &RunConfig,
    opts: &RunOptions,
    control: &RunControl,
    out: mpsc::Sender<EventBatch>,
) -> Result<RunReport, PoolError> {
    config.validate()?;
    let start_ns = mono_ns();
    let now = || since(start_ns, mono_ns());
    let stamp = |kind: EventKind| PoolEvent {
        run: opts.run,
        at: now(),
        kind,
    };
    let mut sink = Sink::new(out, control.abort.clone());
    sink.send(vec![
        stamp(EventKind::RunStarted {
            config: config.clone(),
            coordinator_pid: std::process::id(),
            origin_ns: start_ns,
            source: Box::default(),
        }),
        stamp(EventKind::Phase(Phase::Starting)),
        stamp(EventKind::Phase(Phase::CreatingTasks)),
    ])
    .await?;

    // Unbounded: the dispatcher bounds what it puts in, and a process slot that puts back
    // the tasks of a dead worker must never wait on it.
    let (queue_tx, queue_rx) = async_channel::unbounded::<crate::pool::Chunk>();
    // Whatever happens below, closing the queue is what tells idle workers to leave.
    let _close_queue = EmptyOnDrop(queue_tx.clone(), queue_rx.clone());
    let (event_tx, mut events) = mpsc::channel(EVENT_CAPACITY);
    let spec = pool_spec(config, opts, control, start_ns);
    let pool = Pool::start(config.mode, spec, (&queue_tx, &queue_rx), event_tx)?;
    // Process workers are timed by their pool, which can kill them; threads only get flagged.
    let watch = match (config.mode, config.task_timeout_ms) {
        (Mode::Thread, Some(ms)) => Some(Watchdog::new(Duration::from_millis(ms))),
        _ => None,
    };
    let chunk = if config.task_ms == 0 {
        SHORT_TASK_CHUNK
    } else {
        1
    };
    let mut run = Dispatcher::new(
        opts.run,
        (config.tasks, chunk as u64),
        (queue_tx, queue_rx),
        watch,
        opts.collect_results,
    );
    sink.send(run.on_queue_space(now())).await?;
    await_tasks(&mut run, &mut events, control, &mut sink, start_ns).await?;

    let closed = wind_down(&mut run, &mut events, &mut sink, &pool, start_ns).await?;
    sink.send(run.settle(now())).await?;
    let report = run.report(now());
    pool.finish().await;
    if !closed {
        // Threads still in a task (they cannot be killed) report their exit later, so the
        // dashboard can show them as leftovers of this run.
        tokio::spawn(forward_leftovers(events, sink.out.clone()));
    }
    sink.send(vec![
        stamp(EventKind::Phase(Phase::Exiting)),
        run.finished(now()),
    ])
    .await?;
    sink.flush().await?;
    Ok(report)
}

/// The pool settings of a run.
fn pool_spec(
    config: &RunConfig,
    opts: &RunOptions,
    control: &RunControl,
    start_ns: u64,
) -> PoolSpec {
    PoolSpec {
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
    }
}

/// The run's main loop: hands each thing that happens to the dispatcher until every task
/// has settled, the run is aborted, or the pool is gone.
async fn await_tasks(
    run: &mut Dispatcher,
    events: &mut mpsc::Receiver<EventBatch>,
    control: &RunControl,
    sink: &mut Sink,
    start_ns: u64,
) -> Result<(), PoolError> {
    let now = || since(start_ns, mono_ns());
    let period = run.watchdog_period().unwrap_or(Duration::from_secs(3600));
    let mut check = tokio::time::interval(period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let watching = run.watchdog_period().is_some();
    while run.is_waiting() {
        let cancelling = run.state() == State::Cancelling;
        tokio::select! {
            biased;
            () = control.abort.cancelled() => run.on_abort(now()),
            () = control.cancel.cancelled(), if !cancelling => run.on_cancel(),
            _ = check.tick(), if watching => sink.send(run.on_watchdog_tick(now())).await?,
            batch = events.recv() => match batch {
                Some(batch) => sink.send(run.on_batch(batch, now())).await?,
                None => run.on_pool_gone(now()),
            },
        }
    }
    Ok(())
}

/// After the last task: closes the queue so workers leave, and forwards their last events
/// (their exits, and after an abort whatever they still report) for a grace period,
/// ending processes that outstay it. Returns whether every worker has gone.
async fn wind_down(
    run: &mut Dispatcher,
    events: &mut mpsc::Receiver<EventBatch>,
    sink: &mut Sink,
    pool: &Pool,
    start_ns: u64,
) -> Result<bool, PoolError> {
    run.close_queue();
    if run.state() == State::Aborted {
        // Killed children are reaped by their slots; stuck threads are not waited for.
        pool.abort();
        return forward_for_grace(run, events, sink, start_ns).await;
    }
    if forward_for_grace(run, events, sink, start_ns).await? {
        return Ok(true);
    }
    // Threads stuck in a task cannot be killed; their events are not waited for.
    pool.abort();
    forward_for_grace(run, events, sink, start_ns).await
}

/// Passes the workers' events through the dispatcher until they all have gone (true) or
/// [`SHUTDOWN_GRACE`] has passed (false).
async fn forward_for_grace(
    run: &mut Dispatcher,
    events: &mut mpsc::Receiver<EventBatch>,
    sink: &mut Sink,
    start_ns: u64,
) -> Result<bool, PoolError> {
    let forward = async {
        while let Some(batch) = events.recv().await {
            sink.send(run.on_batch(batch, since(start_ns, mono_ns())))
                .await?;
        }
        Ok::<(), PoolError>(())
    };
    match tokio::time::timeout(SHUTDOWN_GRACE, forward).await {
        Ok(result) => result.map(|()| true),
        Err(_) => Ok(false),
    }
}

/// Forwards what the threads of a finished run still report (their exits), leaving out their
/// tasks' ends: the run has already given every task its one end.
async fn forward_leftovers(mut events: mpsc::Receiver<EventBatch>, out: mpsc::Sender<EventBatch>) {
    while let Some(mut batch) = events.recv().await {
        batch.retain(|ev| ev.task_start().is_none() && ev.task_end().is_none());
        if !batch.is_empty() && out.send(batch).await.is_err() {
            return;
        }
    }
}

/// The consumer's end of the run's events. Sending waits for the consumer, but not beyond
/// an abort: a consumer that stopped reading (a blocked stdout) must not keep the run from
/// ending its workers and draining their events. After an abort, what the consumer has no
/// room for is kept, and [`Sink::flush`] delivers it at the end, waiting at most until one
/// shared deadline.
struct Sink {
    out: mpsc::Sender<EventBatch>,
    abort: CancellationToken,
    deadline: Option<Instant>,
    kept: VecDeque<EventBatch>,
}

impl Sink {
    fn new(out: mpsc::Sender<EventBatch>, abort: CancellationToken) -> Self {
        Sink {
            out,
            abort,
            deadline: None,
            kept: VecDeque::new(),
        }
    }

    async fn send(&mut self, batch: EventBatch) -> Result<(), PoolError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.deadline.is_some() {
            self.kept.push_back(batch);
            return self.deliver_kept();
        }
        let permit = tokio::select! {
            biased;
            permit = self.out.reserve() => Some(permit),
            () = self.abort.cancelled() => None,
        };
        match permit {
            Some(Ok(permit)) => permit.send(batch),
            Some(Err(_)) => return Err(PoolError::ConsumerGone),
            None => {
                self.deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                self.kept.push_back(batch);
            }
        }
        Ok(())
    }

    /// Sends what was kept, in order, as far as the consumer has room now.
    fn deliver_kept(&mut self) -> Result<(), PoolError> {
        while let Some(batch) = self.kept.pop_front() {
            match self.out.try_send(batch) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(batch)) => {
                    self.kept.push_front(batch);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(PoolError::ConsumerGone),
            }
        }
        Ok(())
    }

    /// Delivers what an abort kept back, waiting for the consumer until the deadline and
    /// dropping the rest after it.
    async fn flush(&mut self) -> Result<(), PoolError> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        while let Some(batch) = self.kept.pop_front() {
            match tokio::time::timeout_at(deadline, self.out.send(batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(PoolError::ConsumerGone),
                Err(_) => self.kept.clear(),
            }
        }
        Ok(())
    }
}

/// Closes and empties the task queue when dropped, so no worker starts another task.
struct EmptyOnDrop(TaskTx, TaskRx);

impl Drop for EmptyOnDrop {
    fn drop(&mut self) {
        self.0.close();
        while self.1.try_recv().is_ok() {}
    }
}
