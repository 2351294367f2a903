//! The coordinator's bookkeeping: which tasks are settled (finished, failed or cancelled).
//!
//! A bitset over task ids: one bit per task, O(1) per event, and the outstanding tasks are
//! simply the submitted ids whose bit is clear.

use crate::event::{EventKind, TaskId};

/// Settled tasks and what became of them.
pub(super) struct Tally {
    tasks: u64,
    settled: Vec<u64>,
    /// Results of finished tasks, in completion order, if they are collected.
    pub(super) results: Vec<u64>,
    collect: bool,
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

    /// Counts a task's end; a second report for the same task is ignored.
    pub(super) fn observe(&mut self, kind: &EventKind) {
        match kind {
            EventKind::TaskFinished { task, result, .. }
            | EventKind::TaskRan { task, result, .. }
                if self.settle(*task) =>
            {
                self.finished += 1;
                if self.collect {
                    self.results.push(*result);
                }
            }
            EventKind::TaskFailed { task, .. } if self.settle(*task) => {
                self.failed += 1;
            }
            _ => {}
        }
    }

    pub(super) fn all_settled(&self) -> bool {
        self.finished + self.failed + self.cancelled == self.tasks
    }

    /// Submitted tasks (`0..submitted`) that are not settled yet.
    pub(super) fn outstanding(&self, submitted: TaskId) -> Vec<TaskId> {
        (0..submitted).filter(|&t| !self.is_settled(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WorkerId;

    #[test]
    fn every_task_settles_once() {
        let mut t = Tally::new(130, true);
        let done = |task| EventKind::TaskFinished {
            task,
            worker: WorkerId(0),
            result: task,
        };
        t.observe(&done(3));
        t.observe(&done(3));
        t.observe(&done(129));
        t.cancel(3);
        t.cancel(64);
        assert_eq!(t.results, vec![3, 129]);
        assert_eq!(t.cancelled, 1);
        assert_eq!(t.outstanding(5), vec![0, 1, 2, 4]);
        t.cancel_unsubmitted(0);
        assert!(t.all_settled());
        assert_eq!(t.cancelled, 128);
    }
}
