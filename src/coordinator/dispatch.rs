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

/// Chunks kept waiting in the queue at most; more are fed as workers report (a report means
/// a worker took work). Deep enough that instant tasks (256 a chunk) never run dry between
/// two reports, even when the coordinator is descheduled for a few milliseconds.
pub(super) const QUEUE_TARGET: usize = 1024;

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
                        worker: self.tally.worker_of(task),
                        error: error.to_string(),
                        cpu: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WorkerId;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn dispatcher(tasks: u64, chunk: u64) -> Dispatcher {
        let (tx, rx) = async_channel::unbounded();
        Dispatcher::new(0, (tasks, chunk), (tx, rx), None, true)
    }

    fn ev(at: u64, kind: EventKind) -> PoolEvent {
        PoolEvent {
            run: 0,
            at: ms(at),
            kind,
        }
    }

    fn finished(at: u64, task: TaskId) -> PoolEvent {
        ev(
            at,
            EventKind::TaskFinished {
                task,
                worker: WorkerId(0),
                result: Some(task * task),
                cpu: None,
            },
        )
    }

    fn started(at: u64, task: TaskId) -> PoolEvent {
        ev(
            at,
            EventKind::TaskStarted {
                task,
                worker: WorkerId(0),
            },
        )
    }

    fn is_waiting_phase(e: &PoolEvent) -> bool {
        e.kind == EventKind::Phase(Phase::Waiting)
    }

    #[test]
    fn the_queue_is_kept_at_its_target_and_refilled_as_workers_take_work() {
        let mut d = dispatcher(QUEUE_TARGET as u64 + 44, 1);
        let first = d.on_queue_space(ms(0));
        assert_eq!(
            first.len(),
            QUEUE_TARGET,
            "one TasksQueued per chunk, no more"
        );
        assert_eq!(d.queue_rx.len(), QUEUE_TARGET);
        assert!(!first.iter().any(is_waiting_phase));
        // A worker takes two tasks and reports a start: two more go in.
        for _ in 0..2 {
            assert!(d.queue_rx.try_recv().is_ok());
        }
        let out = d.on_batch(vec![started(1, 0)], ms(1));
        let queued: Vec<_> = out
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TasksQueued { .. }))
            .collect();
        assert_eq!(queued.len(), 2);
        assert_eq!(out.first(), Some(&started(1, 0)), "the report goes first");
        // Someone else (a process slot putting work back) can always add to the queue.
        assert!(d.queue_tx.try_send(Chunk { first: 0, count: 1 }).is_ok());
    }

    #[test]
    fn waiting_is_logged_once_when_the_last_task_is_in() {
        let mut d = dispatcher(10, 4);
        let out = d.on_queue_space(ms(0));
        let counts: Vec<u64> = out
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::TasksQueued { count, .. } => Some(count),
                _ => None,
            })
            .collect();
        assert_eq!(counts, vec![4, 4, 2]);
        assert_eq!(out.iter().filter(|e| is_waiting_phase(e)).count(), 1);
        assert!(d.on_queue_space(ms(1)).is_empty());
    }

    #[test]
    fn a_second_end_of_a_task_is_not_passed_on() {
        let mut d = dispatcher(2, 1);
        d.on_queue_space(ms(0));
        let out = d.on_batch(vec![finished(5, 0), finished(6, 0)], ms(6));
        assert_eq!(out, vec![finished(5, 0)]);
        assert!(d.is_waiting());
        d.on_batch(vec![finished(7, 1)], ms(7));
        assert!(!d.is_waiting());
        let report = d.report(ms(9));
        assert_eq!((report.finished, report.failed), (2, 0));
        assert_eq!(report.wall, ms(7), "wall ends at the last task's end");
    }

    #[test]
    fn an_abort_fails_each_unreported_task_once_and_drops_later_reports() {
        let mut d = dispatcher(6, 1);
        d.on_queue_space(ms(0));
        // Workers took tasks 0..3; 0 finished, 1 and 2 are running.
        for _ in 0..3 {
            assert!(d.queue_rx.try_recv().is_ok());
        }
        d.on_batch(vec![started(1, 0), started(1, 1), finished(4, 0)], ms(4));
        d.on_abort(ms(5));
        assert_eq!(d.state(), State::Aborted);
        assert!(!d.is_waiting());
        assert!(d.queue_tx.is_closed(), "idle workers leave");
        // During the grace period a killed worker's pool fails task 1 itself.
        let failed_by_pool = ev(
            6,
            EventKind::TaskFailed {
                task: 1,
                worker: Some(WorkerId(0)),
                error: "worker killed".into(),
                cpu: None,
            },
        );
        assert_eq!(d.on_batch(vec![failed_by_pool.clone()], ms(6)).len(), 1);
        let settled = d.settle(ms(7));
        let failed: Vec<TaskId> = settled
            .iter()
            .filter_map(|e| e.task_end().map(|(t, _, _)| t))
            .collect();
        assert_eq!(failed, vec![2], "only the task nobody reported");
        // A report arriving after the run gave the task its end is dropped.
        assert!(
            d.on_batch(vec![failed_by_pool, finished(8, 2)], ms(8))
                .is_empty()
        );
        let report = d.report(ms(9));
        assert_eq!(
            (report.finished, report.failed, report.cancelled),
            (1, 2, 3)
        );
    }

    #[test]
    fn a_cancel_drops_the_queue_and_waits_for_the_running_tasks() {
        let mut d = dispatcher(QUEUE_TARGET as u64 + 44, 1);
        d.on_queue_space(ms(0));
        assert!(d.queue_rx.try_recv().is_ok());
        d.on_cancel();
        assert_eq!(d.state(), State::Cancelling);
        assert!(d.is_waiting(), "task 0 is still running");
        assert!(d.on_batch(vec![], ms(1)).is_empty(), "nothing more is fed");
        d.on_batch(vec![finished(3, 0)], ms(3));
        assert!(!d.is_waiting());
        assert!(d.settle(ms(4)).is_empty());
        let report = d.report(ms(4));
        assert_eq!(
            (report.finished, report.cancelled),
            (1, QUEUE_TARGET as u64 + 43)
        );
        assert_eq!(report.results, vec![0]);
    }

    #[test]
    fn losing_the_pool_fails_what_is_left_once() {
        let mut d = dispatcher(3, 1);
        d.on_queue_space(ms(0));
        for _ in 0..3 {
            assert!(d.queue_rx.try_recv().is_ok());
        }
        d.on_batch(vec![finished(2, 1)], ms(2));
        d.on_pool_gone(ms(3));
        assert_eq!(d.state(), State::PoolGone);
        let failed = d.settle(ms(3));
        assert_eq!(failed.len(), 2);
        assert!(failed.iter().all(|e| matches!(&e.kind,
            EventKind::TaskFailed { error, worker: None, .. } if error == "no worker left to run it")));
        assert!(d.settle(ms(4)).is_empty(), "settled once");
    }

    #[test]
    fn results_are_reported_in_the_order_the_workers_stamped_their_ends() {
        let mut d = dispatcher(3, 1);
        d.on_queue_space(ms(0));
        d.on_batch(vec![finished(9, 2)], ms(9));
        d.on_batch(vec![finished(7, 1), finished(8, 0)], ms(9));
        assert_eq!(d.report(ms(10)).results, vec![1, 0, 4]);
    }
}
