//! The coordinator of one run as a state machine: one method per thing that can happen to a
//! run (a batch of worker events, room in the queue, a cancel, an abort, a watchdog tick, the
//! pool going away), each returning the events it wants sent. It does no I/O and reads no
//! clock (callers pass `now`, the time since the run started), so every transition is
//! tested without threads or processes.

use std::time::Duration;

use super::RunReport;
use super::tally::Tally;
use super::watchdog::Watchdog;
use crate::event::{EventBatch, EventKind, Phase, PoolEvent, RunId, TaskId};
use crate::pool::{Chunk, TaskRx, TaskTx};

/// Chunks kept waiting in the queue at most; more are fed as workers take them.
pub(super) const QUEUE_TARGET: usize = 256;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Tasks are being fed to the queue (or all are in it) and results come back.
    Running,
    /// A cancel emptied the queue; the tasks already taken run to their end.
    Cancelling,
    /// An abort: workers are being ended; what they do not report is failed.
    Aborted,
    /// Every worker is gone with tasks outstanding.
    PoolGone,
}

/// Feeds a run's tasks to the pool's queue, counts what comes back, and settles what is left.
pub(super) struct Dispatcher {
    run: RunId,
    tasks: u64,
    /// Tasks per chunk.
    chunk: u64,
    /// The next task to put in the queue.
    next: TaskId,
    state: State,
    tally: Tally,
    watch: Option<Watchdog>,
    queue_tx: TaskTx,
    queue_rx: TaskRx,
    /// When the run's end was decided (all settled, abort, pool gone), for `wall` when no
    /// task ended at all.
    ended_at: Option<Duration>,
}

impl Dispatcher {
    /// A run of `tasks` tasks fed in chunks of `chunk` into `queue`; `watch` flags overdue
    /// thread tasks.
    pub(super) fn new(
        run: RunId,
        (tasks, chunk): (u64, u64),
        queue: (TaskTx, TaskRx),
        watch: Option<Watchdog>,
        collect_results: bool,
    ) -> Self {
        Dispatcher {
            run,
            tasks,
            chunk: chunk.max(1),
            next: 0,
            state: State::Running,
            tally: Tally::new(tasks, collect_results),
            watch,
            queue_tx: queue.0,
            queue_rx: queue.1,
            ended_at: None,
        }
    }

    pub(super) fn state(&self) -> State {
        self.state
    }

    /// How often the thread watchdog wants a tick, if there is one.
    pub(super) fn watchdog_period(&self) -> Option<Duration> {
        self.watch.as_ref().map(Watchdog::period)
    }

    /// Closes the queue once the run's end is decided, so idle workers leave.
    pub(super) fn close_queue(&mut self) {
        self.drop_queued();
    }

    /// Whether the coordinator still waits for tasks to end.
    pub(super) fn is_waiting(&self) -> bool {
        !self.tally.all_settled() && matches!(self.state, State::Running | State::Cancelling)
    }

    fn stamp(&self, now: Duration, kind: EventKind) -> PoolEvent {
        PoolEvent {
            run: self.run,
            at: now,
            kind,
        }
    }

    /// Workers reported: counts the ends, drops a second end of the same task, and refills
    /// the queue (a report means a worker took work, so there may be room). Returns what to
    /// send on.
    pub(super) fn on_batch(&mut self, mut batch: EventBatch, now: Duration) -> EventBatch {
        let (tally, watch) = (&mut self.tally, &mut self.watch);
        batch.retain(|ev| {
            if let Some(w) = watch.as_mut() {
                w.observe(ev);
            }
            tally.observe(ev)
        });
        batch.extend(self.on_queue_space(now));
        batch
    }

    /// Puts tasks in the queue until it holds [`QUEUE_TARGET`] chunks. The queue itself is
    /// unbounded, so whoever else puts work back (a process slot whose worker died) never
    /// waits on a queue the coordinator keeps full. Returns the `TasksQueued` events, and
    /// `waiting` once the last task is in.
    pub(super) fn on_queue_space(&mut self, now: Duration) -> EventBatch {
        let mut queued = Vec::new();
        if self.state != State::Running {
            return queued;
        }
        while self.next < self.tasks && self.queue_tx.len() < QUEUE_TARGET {
            let chunk = Chunk {
                first: self.next,
                count: self.chunk.min(self.tasks - self.next),
            };
            if self.queue_tx.try_send(chunk).is_err() {
                break;
            }
            self.next += chunk.count;
            queued.push(self.stamp(
                now,
                EventKind::TasksQueued {
                    first: chunk.first,
                    count: chunk.count,
                },
            ));
            if self.next == self.tasks {
                queued.push(self.stamp(now, EventKind::Phase(Phase::Waiting)));
            }
        }
        queued
    }

    /// Drops the queued and unsubmitted tasks; the running ones end on their own.
    pub(super) fn on_cancel(&mut self) {
        if self.state == State::Running {
            self.state = State::Cancelling;
            self.drop_queued();
        }
    }

    /// Stops feeding and drops the queue; the caller ends the workers, lets them report for
    /// a grace period, then calls [`Dispatcher::settle`].
    pub(super) fn on_abort(&mut self, now: Duration) {
        self.drop_queued();
        self.state = State::Aborted;
        self.ended_at.get_or_insert(now);
    }

    /// The pool's event channel closed: no worker is left.
    pub(super) fn on_pool_gone(&mut self, now: Duration) {
        self.drop_queued();
        if self.state != State::Aborted {
            self.state = State::PoolGone;
        }
        self.ended_at.get_or_insert(now);
    }

    /// The thread watchdog looks for overdue tasks. Returns a `TaskOverdue` per new one.
    pub(super) fn on_watchdog_tick(&mut self, now: Duration) -> EventBatch {
        let Some(w) = self.watch.as_mut() else {
            return Vec::new();
        };
        let late = w.overdue(now);
        late.into_iter()
            .map(|(task, worker)| self.stamp(now, EventKind::TaskOverdue { task, worker }))
            .collect()
    }

    /// Ends every task that is still outstanding after an abort or the pool's loss, once
    /// each: the ones workers did report have their end already. Returns the failures.
    pub(super) fn settle(&mut self, now: Duration) -> EventBatch {
        self.ended_at.get_or_insert(now);
        let error = match self.state {
            State::Aborted => "aborted",
            State::PoolGone => "no worker left to run it",
            State::Running | State::Cancelling => return Vec::new(),
        };
        let failed: EventBatch = self
            .tally
            .outstanding(self.next)
            .into_iter()
            .map(|task| {
                self.stamp(
                    now,
                    EventKind::TaskFailed {
                        task,
                        worker: None,
                        error: error.to_string(),
                    },
                )
            })
            .collect();
        for ev in &failed {
            self.tally.observe(ev);
        }
        self.tally.cancel_unsubmitted(self.next);
        failed
    }

    /// Closes the queue (idle workers leave) and counts what was still in it, and what was
    /// never submitted, as cancelled.
    fn drop_queued(&mut self) {
        self.queue_tx.close();
        // Closing alone is not enough: a receiver goes on taking what was already queued.
        while let Ok(chunk) = self.queue_rx.try_recv() {
            for task in chunk.tasks() {
                self.tally.cancel(task.id);
            }
        }
        self.tally.cancel_unsubmitted(self.next);
        self.next = self.tasks;
    }

    /// The run's `RunFinished` event.
    pub(super) fn finished(&self, now: Duration) -> PoolEvent {
        self.stamp(
            now,
            EventKind::RunFinished {
                finished: self.tally.finished,
                failed: self.tally.failed,
                cancelled: self.tally.cancelled,
            },
        )
    }

    /// What the run produced. `wall` runs from the start to the last task's end (to the
    /// moment the run was given up if no task ended).
    pub(super) fn report(&mut self, now: Duration) -> RunReport {
        RunReport {
            results: self.tally.take_results(),
            finished: self.tally.finished,
            failed: self.tally.failed,
            cancelled: self.tally.cancelled,
            wall: self.tally.last_end.or(self.ended_at).unwrap_or(now),
        }
    }
}
