//! Running one task on a worker: the unit of work and the panic capture around it.

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::event::{TaskId, WorkerId};
use crate::workload::Workload;

/// One call of the workload: task `id` computes `workload(n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id within its run.
    pub id: TaskId,
    /// The argument.
    pub n: u64,
    /// Panic instead of working: a fault the user injected (the `x` key).
    pub panic: bool,
}

impl Task {
    /// Task `id`, computing `workload(id)`, as the coordinator submits it.
    pub fn new(id: TaskId) -> Self {
        Task {
            id,
            n: id,
            panic: false,
        }
    }
}

/// Consecutive tasks handed out together: one queue operation for many instant tasks, one
/// for each long one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The first task.
    pub first: TaskId,
    /// How many tasks, in id order.
    pub count: u64,
}

impl Chunk {
    /// The chunk of just this task (a retry).
    pub fn of(task: Task) -> Chunk {
        Chunk {
            first: task.id,
            count: 1,
        }
    }

    /// Its tasks, in order.
    pub fn tasks(self) -> impl Iterator<Item = Task> {
        (self.first..self.first + self.count).map(Task::new)
    }
}

/// Faults asked for from the dashboard, picked up by the next task dispatched to a worker,
/// and kill requests, served by the process driver that owns the worker's child.
#[derive(Debug)]
pub struct Faults {
    panic_next: AtomicBool,
    /// Workers asked to be killed and not yet served.
    kills: Mutex<HashSet<WorkerId>>,
    /// Bumped on every kill request, so drivers wake and look.
    kill_asked: tokio::sync::watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            panic_next: AtomicBool::new(false),
            kills: Mutex::new(HashSet::new()),
            kill_asked: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Faults {
    /// Makes the next dispatched task panic.
    pub fn panic_next(&self) {
        self.panic_next.store(true, Ordering::Relaxed);
    }

    /// Asks for `worker` to be killed with SIGKILL. The process driver that owns its child
    /// serves the request through its own handle on the child, which it has not reaped, so
    /// the signal can never reach a process that reused the PID. A worker that is gone, or a
    /// thread (which cannot be killed safely), ignores it.
    pub fn kill(&self, worker: WorkerId) {
        self.kills
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(worker);
        self.kill_asked.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Takes the kill request for `worker`, if there is one.
    pub fn take_kill(&self, worker: WorkerId) -> bool {
        self.kills
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&worker)
    }

    /// A receiver that sees every later kill request.
    pub fn kill_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.kill_asked.subscribe()
    }

    /// Marks `task` to panic if a panic was asked for, and clears the request.
    pub fn arm(&self, mut task: Task) -> Task {
        // Load before swapping: every worker calls this per task, and a swap would make the
        // flag's cache line bounce between cores even when nothing was asked for.
        if self.panic_next.load(Ordering::Relaxed) && self.panic_next.swap(false, Ordering::Relaxed)
        {
            task.panic = true;
        }
        task
    }
}

thread_local! {
    /// Set while this thread runs a task, so the panic hook knows the panic is caught.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the current panic hook so that panics inside tasks stay silent.
///
/// A task panic is caught and reported as a failed task; letting the previous hook run would
/// print over the dashboard and, with `ratatui::init`'s hook, tear the UI down. Install it
/// after any hook that restores the terminal, so that hook still runs for real panics.
pub fn install_panic_filter() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_TASK.with(Cell::get) {
            previous(info);
        }
    }));
}

/// Runs `task` on the calling thread, turning an error or a panic into a one-line message.
pub fn run_caught(workload: Workload, task: Task, task_ms: u64, seed: u64) -> Result<u64, String> {
    IN_TASK.with(|f| f.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        assert!(!task.panic, "panic injected from the dashboard");
        workload.run(task.n, task_ms, seed)
    }));
    IN_TASK.with(|f| f.set(false));
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".to_string());
            Err(format!("panicked: {}", first_line(&msg)))
        }
    }
}

/// The first line of a message, so a failure always fits one log line.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_filter_silences_task_panics_only() {
        // Stands in for ratatui's hook, which restores the terminal on a real panic. The hook
        // is process-wide and other tests panic in parallel, so it counts only this test's
        // own two panics, told apart by their messages.
        let (task_calls, real_calls) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (task_seen, real_seen) = (Arc::clone(&task_calls), Arc::clone(&real_calls));
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if text.contains("fail(6)") {
                task_seen.fetch_add(1, Ordering::SeqCst);
            } else if text.contains("a real bug in the filter test") {
                real_seen.fetch_add(1, Ordering::SeqCst);
            }
        }));
        install_panic_filter();
        let failed = run_caught(Workload::Fail, Task::new(6), 0, 1);
        assert!(failed.unwrap_err().starts_with("panicked: "));
        assert_eq!(
            task_calls.load(Ordering::SeqCst),
            0,
            "a task panic reaches no hook"
        );
        let real = std::thread::spawn(|| panic!("a real bug in the filter test")).join();
        assert!(real.is_err());
        assert_eq!(
            real_calls.load(Ordering::SeqCst),
            1,
            "a real panic still does"
        );
        let _ = std::panic::take_hook();
    }
}
