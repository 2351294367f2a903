//! The coordinator's bookkeeping: which tasks are settled (finished, failed or cancelled).
//!
//! A bitset over task ids: one bit per task, O(1) per event, and the outstanding tasks are
//! simply the submitted ids whose bit is clear.

use std::collections::HashMap;
use std::time::Duration;

use crate::event::{EventKind, PoolEvent, TaskId, WorkerId};

/// Settled tasks and what became of them.
pub(super) struct Tally {
    tasks: u64,
    settled: Vec<u64>,
    /// Results of finished tasks with their (worker-stamped) end in nanoseconds (16 bytes a
    /// result, not 24 with a `Duration`), if they are collected.
    results: Vec<(u64, u64)>,
    collect: bool,
    /// Tasks whose start was announced and whose end has not come, with their worker: at
    /// most one per worker (or a pipeline's worth), so an ending imposed from outside (an
    /// abort) still lands on the lane that ran the task.
    running: HashMap<TaskId, WorkerId>,
    /// When the last task to end so far ended.
    pub(super) last_end: Option<Duration>,
    pub(super) finished: u64,
    pub(super) failed: u64,
    pub(super) cancelled: u64,
}

impl Tally {
    pub(super) fn new(tasks: u64, collect: bool) -> Self {
        Tally {
            tasks,
            settled: vec![0; tasks.div_ceil(64) as usize],
            results: Vec::new(),
            collect,
            running: HashMap::new(),
            last_end: None,
            finished: 0,
            failed: 0,
            cancelled: 0,
        }
    }

    /// Marks `task` settled; false if it already was (or is out of range).
    fn settle(&mut self, task: TaskId) -> bool {
        let (word, bit) = ((task / 64) as usize, task % 64);
        match self.settled.get_mut(word) {
            Some(w) if *w & (1 << bit) == 0 => {
                *w |= 1 << bit;
                true
            }
            _ => false,
        }
    }

    fn is_settled(&self, task: TaskId) -> bool {
        let (word, bit) = ((task / 64) as usize, task % 64);
        self.settled.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// A queued task that will never run.
    pub(super) fn cancel(&mut self, task: TaskId) {
        if self.settle(task) {
            self.cancelled += 1;
        }
    }

    /// Tasks `from..tasks`, never submitted, that will never run.
    pub(super) fn cancel_unsubmitted(&mut self, from: TaskId) {
        for task in from..self.tasks {
            self.cancel(task);
        }
    }

    /// Counts a task's end. Returns false for an event that must not be passed on: a second
    /// end of the same task (every task has exactly one end), or the end of a task out of
    /// range.
    pub(super) fn observe(&mut self, ev: &PoolEvent) -> bool {
        if let EventKind::TaskStarted { task, worker } = ev.kind {
            self.running.insert(task, worker);
        }
        let Some((task, _, at)) = ev.task_end() else {
            return true;
        };
        self.running.remove(&task);
        if !self.settle(task) {
            return false;
        }
        self.last_end = Some(self.last_end.map_or(at, |t| t.max(at)));
        match &ev.kind {
            EventKind::TaskFailed { .. } => self.failed += 1,
            EventKind::TaskFinished { result, .. } | EventKind::TaskRan { result, .. } => {
                self.finished += 1;
                if self.collect
                    && let Some(result) = *result
                {
                    self.results.push((nanos(at), result));
                }
            }
            _ => {}
        }
        true
    }

    /// The results in the order their tasks ended, as the workers stamped it (reports from
    /// different workers arrive in a slightly different order).
    pub(super) fn take_results(&mut self) -> Vec<u64> {
        let mut results = std::mem::take(&mut self.results);
        // Stable, so results stamped alike keep their arrival order.
        results.sort_by_key(|&(at, _)| at);
        results.into_iter().map(|(_, r)| r).collect()
    }

    pub(super) fn all_settled(&self) -> bool {
        self.finished + self.failed + self.cancelled == self.tasks
    }

    /// Submitted tasks (`0..submitted`) that are not settled yet.
    /// The worker running `task`, if its start was announced and it has not ended.
    pub(super) fn worker_of(&self, task: TaskId) -> Option<WorkerId> {
        self.running.get(&task).copied()
    }

    pub(super) fn outstanding(&self, submitted: TaskId) -> Vec<TaskId> {
        (0..submitted).filter(|&t| !self.is_settled(t)).collect()
    }
}

/// A run time in whole nanoseconds (584 years fit).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WorkerId;

    fn done(task: TaskId, at_ms: u64) -> PoolEvent {
        PoolEvent {
            run: 0,
            at: Duration::from_millis(at_ms),
            kind: EventKind::TaskFinished {
                task,
                worker: WorkerId(0),
                result: Some(task),
                cpu: None,
            },
        }
    }

    #[test]
    fn every_task_settles_once() {
        let mut t = Tally::new(130, true);
        assert!(t.observe(&done(3, 1)));
        assert!(!t.observe(&done(3, 2)), "a second end is not passed on");
        assert!(t.observe(&done(129, 3)));
        t.cancel(3);
        t.cancel(64);
        assert_eq!(t.take_results(), vec![3, 129]);
        assert_eq!(t.cancelled, 1);
        assert_eq!(t.outstanding(5), vec![0, 1, 2, 4]);
        t.cancel_unsubmitted(0);
        assert!(t.all_settled());
        assert_eq!(t.cancelled, 128);
    }

    #[test]
    fn results_follow_the_workers_end_times_and_wall_the_last_end() {
        let mut t = Tally::new(3, true);
        t.observe(&done(0, 12));
        t.observe(&done(1, 10));
        t.observe(&done(2, 11));
        assert_eq!(t.take_results(), vec![1, 2, 0]);
        assert_eq!(t.last_end, Some(Duration::from_millis(12)));
    }
}
