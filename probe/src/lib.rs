//! Show a Rust program's worker pool on poolscope, the terminal dashboard: each task on the
//! thread that ran it, when, how it ended, and how much CPU it used.
//!
//! ```no_run
//! // In any pool's worker (rayon, a thread, tokio's spawn_blocking...):
//! let sum = poolscope_probe::task("checksum", || (0..1_000_000u64).sum::<u64>());
//! ```
//!
//! Run the program under poolscope (`poolscope -- ./target/release/app`); poolscope sets
//! `POOLSCOPE_EVENTS` to a FIFO and the probe writes the event protocol (`docs/protocol.md`)
//! there. Without that variable every call here does nothing but run the work. The probe never
//! blocks the program: lines gather in a bounded buffer and are written without waiting; what
//! does not fit is dropped and counted, and poolscope shows the count.
//!
//! With the `tracing` feature, [`layer::PoolscopeLayer`] reports chosen `tracing` spans as
//! tasks, and tokio's `spawn_blocking` tasks when tokio is built with `--cfg tokio_unstable`.

mod channel;
#[cfg(feature = "tracing")]
pub mod layer;
mod line;
mod sys;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

pub use channel::{dropped, enabled, flush};
use line::{Line, MAX_ERROR, MAX_NAME};
use sys::{gettid, mono_ns, thread_cpu_ns};

/// Runs `work` on the calling thread as one task called `name`, and reports it: its start,
/// its end, the CPU time the thread spent in it, and its failure if `work` returns an error
/// (see [`TaskOutcome`]) or panics. A panic is reported, then resumed, so the program sees it
/// as if the probe were not there. Returns what `work` returns.
pub fn task<R: TaskOutcome>(name: &str, work: impl FnOnce() -> R) -> R {
    if !enabled() {
        return work();
    }
    let running = Running::start(name);
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(outcome) => {
            running.end(outcome.failure().as_deref());
            outcome
        }
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic payload".into());
            running.end(Some(&format!("panicked: {text}")));
            resume_unwind(payload)
        }
    }
}

/// Whether a task's return value means it failed, and why. Implemented for `Result` (an
/// `Err` is a failure, its `Display` the message), for `()` and the common value types
/// (never a failure); for a type of your own, `impl poolscope_probe::TaskOutcome for T {}`.
pub trait TaskOutcome {
    /// The failure's one-line message, or `None` if the task succeeded.
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: std::fmt::Display> TaskOutcome for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

impl TaskOutcome for std::process::ExitStatus {
    fn failure(&self) -> Option<String> {
        (!self.success()).then(|| self.to_string())
    }
}

macro_rules! never_fails {
    ($($t:ty),*) => { $(impl TaskOutcome for $t {})* };
}
never_fails!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &str
);
impl<T> TaskOutcome for Option<T> {}
impl<T> TaskOutcome for Vec<T> {}
impl<T: ?Sized> TaskOutcome for Box<T> {}
impl<A, B> TaskOutcome for (A, B) {}
impl<A, B, C> TaskOutcome for (A, B, C) {}

/// Task ids, unique in the program: `<pid>-<n>`.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A task that has started on this thread and not yet ended.
pub(crate) struct Running {
    id: String,
    cpu0: Option<u64>,
}

impl Running {
    /// Reports the start of task `name` on the calling thread (the lane is its TID).
    pub(crate) fn start(name: &str) -> Running {
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let mut line = Line::event("task_started", mono_ns())
            .text("id", &id, 128)
            .text("name", name, MAX_NAME)
            .num("pid", std::process::id())
            .num("tid", gettid());
        if let Some(thread) = std::thread::current().name() {
            line = line.text("thread", thread, MAX_NAME);
        }
        channel::push(&line.end());
        Running {
            id,
            cpu0: thread_cpu_ns(),
        }
    }

    /// Reports the end, on the thread that started it, with its CPU time.
    pub(crate) fn end(self, failure: Option<&str>) {
        let cpu = thread_cpu_ns()
            .zip(self.cpu0)
            .map(|(c1, c0)| c1.saturating_sub(c0));
        end_line(&self.id, mono_ns(), cpu, failure);
    }
}

/// Reports the end of task `id` at `at_ns`, having used `cpu_ns` if measured.
pub(crate) fn end_line(id: &str, at_ns: u64, cpu_ns: Option<u64>, failure: Option<&str>) {
    let kind = if failure.is_some() {
        "task_failed"
    } else {
        "task_finished"
    };
    let mut line = Line::event(kind, at_ns)
        .text("id", id, 128)
        .opt_num("cpu_ns", cpu_ns);
    if let Some(error) = failure {
        line = line.text("error", error, MAX_ERROR);
    }
    channel::push(&line.end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_fail_only_on_err_and_a_failed_exit() {
        assert_eq!(Ok::<u8, String>(1).failure(), None);
        assert_eq!(
            Err::<u8, _>("no such key").failure().as_deref(),
            Some("no such key")
        );
        assert_eq!(().failure(), None);
        assert_eq!(vec![1].failure(), None);
        let failed = std::process::Command::new("false").status().unwrap();
        assert!(failed.failure().is_some());
    }

    #[test]
    fn without_poolscope_a_task_is_just_its_work_and_a_panic_passes_through() {
        // The test runner does not set POOLSCOPE_EVENTS.
        assert!(!enabled());
        assert_eq!(task("sum", || (1..=4u32).sum::<u32>()), 10);
        let caught = std::panic::catch_unwind(|| task("boom", || -> u8 { panic!("boom") }));
        assert!(caught.is_err());
        assert_eq!(dropped(), 0);
    }
}
