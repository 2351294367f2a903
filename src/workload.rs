//! What a task does once a worker has it: the example's `blocks(n)` and its siblings.

use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::mono_ns;

/// A kind of blocking work; every kind returns `n*n` on success, as the example's `blocks` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// The example's task: sleeps `task_ms` (I/O-like, uses no CPU).
    Blocks,
    /// CPU-bound: busy-loops for `task_ms`.
    Spin,
    /// No work at all: measures the pool's own cost per task.
    Noop,
    /// Like `blocks`, but every 5th task returns an error and every 7th panics.
    Fail,
    /// Random durations (0.2–1.8 × `task_ms`), half sleeping and half spinning, from `--seed`.
    Mixed,
    /// File I/O: reads poolscope's own binary in 64 KiB chunks for `task_ms`.
    Io,
}

/// What a task spends its time on, as far as its workload tells: the lanes colour by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkKind {
    /// Waits without using a core (sleep, like blocking I/O).
    Sleep,
    /// Keeps a core busy.
    Cpu,
    /// Nothing to tell (instant tasks).
    Unknown,
}

impl Workload {
    /// The function's name, as it appears in log lines and lane bars.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Blocks => "blocks",
            Workload::Spin => "spin",
            Workload::Noop => "noop",
            Workload::Fail => "fail",
            Workload::Mixed => "mixed",
            Workload::Io => "io",
        }
    }

    /// What task `n` spends its time on (`mixed` draws it from `seed`).
    pub fn kind(self, n: u64, task_ms: u64, seed: u64) -> WorkKind {
        match self {
            Workload::Blocks | Workload::Fail => WorkKind::Sleep,
            // Reading a file the page cache holds is copying memory: a core stays busy.
            Workload::Spin | Workload::Io => WorkKind::Cpu,
            Workload::Mixed if mixed_draw(seed, n, task_ms).1 => WorkKind::Cpu,
            Workload::Mixed => WorkKind::Sleep,
            Workload::Noop => WorkKind::Unknown,
        }
    }

    /// The logger name of one call, as in the example: `blocks(3)`.
    pub fn call_label(self, n: u64) -> String {
        format!("{}({n})", self.name())
    }

    /// Runs one task on the calling thread and returns its result.
    ///
    /// `Fail` panics for real on every 7th task: callers run tasks under
    /// [`crate::pool::task::run_caught`], which is what the workload exists to exercise.
    /// `seed` only matters to `Mixed`; a task's draw depends on `seed` and `n` alone, so a
    /// thread run and a process run of the same seed do the same work.
    pub fn run(self, n: u64, task_ms: u64, seed: u64) -> Result<u64, String> {
        match self {
            Workload::Mixed => {
                let (ms, spin) = mixed_draw(seed, n, task_ms);
                if spin {
                    spin_for(ms);
                } else {
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }
            Workload::Blocks => std::thread::sleep(Duration::from_millis(task_ms)),
            Workload::Spin => spin_for(task_ms),
            Workload::Noop => {}
            Workload::Io => read_for(task_ms).map_err(|e| format!("io({n}) cannot read: {e}"))?,
            Workload::Fail => {
                std::thread::sleep(Duration::from_millis(task_ms));
                assert!(n % 7 != 6, "fail({n}) panicked on purpose");
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

/// The `mixed` workload's duration and kind (spin or sleep) for task `n`.
pub fn mixed_draw(seed: u64, n: u64, task_ms: u64) -> (u64, bool) {
    // Mix n into the seed so neighbouring tasks draw unrelated values.
    let mut rng = fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let ms = task_ms * rng.u64(20..=180) / 100;
    (ms, rng.bool())
}

/// Reads poolscope's own binary in 64 KiB chunks (from the start again at its end) for `ms`
/// milliseconds of wall time, at least one chunk.
fn read_for(ms: u64) -> io::Result<()> {
    let end = mono_ns().saturating_add(ms.saturating_mul(1_000_000));
    let mut file = File::open("/proc/self/exe")?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if file.read(&mut chunk)? == 0 {
            file.seek(SeekFrom::Start(0))?;
        }
        black_box(&chunk);
        if mono_ns() >= end {
            return Ok(());
        }
    }
}

/// Keeps one core busy for `ms` milliseconds of wall time.
fn spin_for(ms: u64) {
    let end = mono_ns() + ms * 1_000_000;
    let mut x: u64 = 1;
    while mono_ns() < end {
        // A short burst of arithmetic between clock reads, kept alive by black_box.
        for _ in 0..1_000 {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_returns_the_square() {
        for w in [
            Workload::Blocks,
            Workload::Spin,
            Workload::Noop,
            Workload::Mixed,
            Workload::Io,
        ] {
            assert_eq!(w.run(7, 0, 1), Ok(49), "{w}");
        }
    }

    #[test]
    fn mixed_draws_depend_on_seed_and_task_only() {
        let draws: Vec<_> = (0..50).map(|n| mixed_draw(42, n, 100)).collect();
        assert_eq!(
            draws,
            (0..50).map(|n| mixed_draw(42, n, 100)).collect::<Vec<_>>()
        );
        assert_ne!(
            draws,
            (0..50).map(|n| mixed_draw(43, n, 100)).collect::<Vec<_>>()
        );
        assert!(draws.iter().all(|&(ms, _)| (20..=180).contains(&ms)));
        let spins = draws.iter().filter(|d| d.1).count();
        assert!(
            (10..=40).contains(&spins),
            "both kinds occur: {spins} of 50 spin"
        );
    }

    #[test]
    fn io_reads_for_its_time_and_is_cpu_work() {
        let t0 = mono_ns();
        assert_eq!(Workload::Io.run(3, 30, 1), Ok(9));
        assert!(
            mono_ns() - t0 >= 30_000_000,
            "it reads for the whole task_ms"
        );
        assert_eq!(Workload::Io.kind(3, 30, 1), WorkKind::Cpu);
        assert_eq!(Workload::Blocks.kind(3, 30, 1), WorkKind::Sleep);
        assert_eq!(Workload::Noop.kind(3, 0, 1), WorkKind::Unknown);
    }

    #[test]
    fn fail_errors_every_fifth_and_panics_every_seventh() {
        assert_eq!(Workload::Fail.run(3, 0, 1), Ok(9));
        assert!(
            Workload::Fail
                .run(4, 0, 1)
                .unwrap_err()
                .contains("on purpose")
        );
        let caught = crate::pool::task::run_caught(Workload::Fail, crate::pool::Task::new(6), 0, 1);
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
