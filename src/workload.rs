//! What a task does once a worker has it: the seed's `blocks(n)` and its siblings.

use std::hint::black_box;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::mono_ns;

/// A kind of blocking work; every kind returns `n*n` on success, as the seed's `blocks` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// The seed: sleeps `task_ms` (I/O-like, uses no CPU).
    Blocks,
    /// CPU-bound: busy-loops for `task_ms`.
    Spin,
    /// No work at all: measures the pool's own cost per task.
    Noop,
    /// Like `blocks`, but every 5th task returns an error and every 7th panics.
    Fail,
}

impl Workload {
    /// The function's name, as it appears in log lines and lane bars.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Blocks => "blocks",
            Workload::Spin => "spin",
            Workload::Noop => "noop",
            Workload::Fail => "fail",
        }
    }

    /// The logger name of one call, as in the seed: `blocks(3)`.
    pub fn call_label(self, n: u64) -> String {
        format!("{}({n})", self.name())
    }

    /// Runs one task on the calling thread and returns its result.
    ///
    /// `Fail` panics for real on every 7th task: callers run tasks under
    /// [`crate::pool::task::run_caught`], which is what the workload exists to exercise.
    pub fn run(self, n: u64, task_ms: u64) -> Result<u64, String> {
        match self {
            Workload::Blocks => std::thread::sleep(Duration::from_millis(task_ms)),
            Workload::Spin => spin_for(task_ms),
            Workload::Noop => {}
            Workload::Fail => {
                std::thread::sleep(Duration::from_millis(task_ms));
                if n % 7 == 6 {
                    panic!("fail({n}) panicked on purpose");
                }
                if n % 5 == 4 {
                    return Err(format!("fail({n}) raised an error on purpose"));
                }
            }
        }
        Ok(n.wrapping_mul(n))
    }

    /// Whether task `n` of this workload is meant to fail (for tests and expectations).
    pub fn fails(self, n: u64) -> bool {
        self == Workload::Fail && (n % 7 == 6 || n % 5 == 4)
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Keeps one core busy for `ms` milliseconds of wall time.
fn spin_for(ms: u64) {
    let end = mono_ns() + ms * 1_000_000;
    let mut x: u64 = 1;
    while mono_ns() < end {
        // A short burst of arithmetic between clock reads, kept alive by black_box.
        for _ in 0..1_000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_returns_the_square() {
        for w in [Workload::Blocks, Workload::Spin, Workload::Noop] {
            assert_eq!(w.run(7, 0), Ok(49), "{w}");
        }
    }

    #[test]
    fn fail_errors_every_fifth_and_panics_every_seventh() {
        assert_eq!(Workload::Fail.run(3, 0), Ok(9));
        assert!(Workload::Fail.run(4, 0).unwrap_err().contains("on purpose"));
        let caught = crate::pool::task::run_caught(Workload::Fail, crate::pool::Task::new(6), 0);
        assert_eq!(
            caught,
            Err("panicked: fail(6) panicked on purpose".to_string())
        );
        let failing: Vec<u64> = (0..15).filter(|&n| Workload::Fail.fails(n)).collect();
        assert_eq!(failing, vec![4, 6, 9, 13, 14]);
    }

    #[test]
    fn call_label_matches_the_seed() {
        assert_eq!(Workload::Blocks.call_label(3), "blocks(3)");
    }
}
