//! Names of external sources' tasks, told once by `TaskNamed` and kept in a bounded table.
//!
//! The built-in experiment never sends names (its tasks are `blocks(n)` by number), so it
//! pays nothing; an external source's millions of tasks cost a bounded table whose repeated
//! names (`blocks`, `blocks`, …) share one allocation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::event::TaskId;

/// Task names kept: the most recently named tasks (older ones fall back to `task N`).
pub const NAMES_KEPT: usize = 65_536;
/// Distinct names shared; beyond this each name is its own allocation (still bounded by
/// [`NAMES_KEPT`]).
const INTERNED_KEPT: usize = 4096;

/// A bounded table from task to its name.
#[derive(Clone, Debug, Default)]
pub struct TaskNames {
    by_task: HashMap<TaskId, Arc<str>>,
    order: VecDeque<TaskId>,
    interned: HashSet<Arc<str>>,
}

impl TaskNames {
    /// An empty table.
    pub fn new() -> Self {
        TaskNames::default()
    }

    /// Names `task`, forgetting the oldest named task when full.
    pub fn insert(&mut self, task: TaskId, name: &str) {
        let name = self.intern(name);
        if self.by_task.insert(task, name).is_none() {
            self.order.push_back(task);
            while self.order.len() > NAMES_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.by_task.remove(&old);
                }
            }
        }
    }

    /// The name of `task`, if it is still kept.
    pub fn get(&self, task: TaskId) -> Option<&Arc<str>> {
        self.by_task.get(&task)
    }

    /// Whether no task has been named (the built-in experiment).
    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }

    /// The longest name kept, in characters (for column widths), at most `cap`.
    pub fn longest(&self, cap: usize) -> usize {
        self.interned
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .min(cap)
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.interned.get(name) {
            return Arc::clone(shared);
        }
        let name: Arc<str> = name.into();
        if self.interned.len() < INTERNED_KEPT {
            self.interned.insert(Arc::clone(&name));
        }
        name
    }
}

impl PartialEq for TaskNames {
    fn eq(&self, other: &Self) -> bool {
        self.by_task == other.by_task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_share_one_allocation_and_the_table_stays_bounded() {
        let mut names = TaskNames::new();
        for t in 0..(NAMES_KEPT as u64 + 10) {
            names.insert(t, "blocks");
        }
        assert!(names.get(0).is_none(), "the oldest are forgotten");
        let (a, b) = (
            names.get(10).unwrap(),
            names.get(NAMES_KEPT as u64).unwrap(),
        );
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(names.by_task.len(), NAMES_KEPT);
        assert_eq!(names.longest(100), 6);
    }
}
