//! Flags thread-mode tasks that run past `--task-timeout-ms`: threads cannot be killed, so
//! the coordinator only says so, once per task.

use std::collections::HashMap;
use std::time::Duration;

use crate::event::{PoolEvent, TaskId, WorkerId};

/// Flags thread tasks that run past the timeout, once each.
pub(super) struct Watchdog {
    limit: Duration,
    running: HashMap<TaskId, (WorkerId, Duration)>,
}

impl Watchdog {
    pub(super) fn new(limit: Duration) -> Self {
        Watchdog {
            limit,
            running: HashMap::new(),
        }
    }

    /// How often to look: often enough to flag a task soon after its time is up.
    pub(super) fn period(&self) -> Duration {
        (self.limit / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    pub(super) fn observe(&mut self, ev: &PoolEvent) {
        // A `TaskRan` is a start and an end in one: it never stays running.
        if let (Some((task, worker, at)), None) = (ev.task_start(), ev.task_end()) {
            self.running.insert(task, (worker, at));
        }
        if let Some((task, _, _)) = ev.task_end() {
            self.running.remove(&task);
        }
    }

    /// The tasks that became overdue by `now`; each is reported once.
    pub(super) fn overdue(&mut self, now: Duration) -> Vec<(TaskId, WorkerId)> {
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
