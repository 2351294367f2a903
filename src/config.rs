//! What one run of the experiment is: mode, pool size, task count, workload.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::workload::Workload;

/// The most workers a pool may have: beyond this a 2-core laptop only thrashes.
pub const MAX_WORKERS: u32 = 256;
/// The most tasks one run may submit.
pub const MAX_TASKS: u64 = 10_000_000;
/// The longest a single task may be asked to take (one hour).
pub const MAX_TASK_MS: u64 = 3_600_000;

/// Which kind of executor runs the blocking tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Real OS threads in this process (`ThreadPoolExecutor`).
    Thread,
    /// Real child processes (`ProcessPoolExecutor`).
    Process,
}

impl Mode {
    /// The other mode: what `m`/`Tab` switches to.
    #[must_use]
    pub fn toggled(self) -> Mode {
        match self {
            Mode::Thread => Mode::Process,
            Mode::Process => Mode::Thread,
        }
    }

    /// Lower-case name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Thread => "thread",
            Mode::Process => "process",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One experiment: the example's `run_blocking_tasks` with its knobs.
///
/// The one settings type: the command line fills it (each field is an option; what is not
/// given keeps the scenario file's value or the default), a scenario file fills it (TOML,
/// kebab-case keys, any key may be left out), and a process worker receives it as the first
/// frame of its protocol. A new setting is one field here, with its doc line and its default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunConfig {
    /// Thread pool or process pool [default: thread].
    #[arg(short, long, value_enum, required = false)]
    pub mode: Mode,
    /// Number of pool workers [default: 3].
    #[arg(short, long, required = false, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WORKERS)))]
    pub workers: u32,
    /// Number of tasks to submit, `blocks(0)`..`blocks(tasks-1)` [default: 6].
    #[arg(short = 'n', long, required = false, value_parser = clap::value_parser!(u64).range(1..=MAX_TASKS))]
    pub tasks: u64,
    /// What each task does [default: blocks].
    #[arg(long, value_enum, required = false)]
    pub workload: Workload,
    /// How long each task works, in milliseconds [default: 1000].
    #[arg(long, required = false, value_parser = clap::value_parser!(u64).range(0..=MAX_TASK_MS))]
    pub task_ms: u64,
    /// Flag tasks running longer than this many milliseconds; in process mode their worker
    /// is killed and replaced (a thread cannot be killed safely, so it is only flagged).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TASK_MS))]
    pub task_timeout_ms: Option<u64>,
    /// Seed of the `mixed` workload's random durations and kinds [default: 1].
    #[arg(long, required = false)]
    pub seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            mode: Mode::Thread,
            workers: 3,
            tasks: 6,
            workload: Workload::Blocks,
            task_ms: 1000,
            task_timeout_ms: None,
            seed: 1,
        }
    }
}

impl RunConfig {
    /// Whether workers report each start as it happens. Every task that takes time does, so
    /// the log and the lanes show tasks of different workers interleaved in their true order
    /// (one start in the same message as its finish would print as if workers took turns);
    /// only instant tasks (`task_ms` 0) send start and finish in one message, which keeps
    /// `bench` fast. A timeout needs starts too: its deadline is armed by the start.
    pub fn announces_starts(&self) -> bool {
        self.task_ms > 0 || self.task_timeout_ms.is_some()
    }

    /// Checks every field against its limits, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(ConfigError::OutOfRange {
                field: "workers",
                value: self.workers.to_string(),
                range: format!("1..={MAX_WORKERS}"),
            });
        }
        if !(1..=MAX_TASKS).contains(&self.tasks) {
            return Err(ConfigError::OutOfRange {
                field: "tasks",
                value: self.tasks.to_string(),
                range: format!("1..={MAX_TASKS}"),
            });
        }
        if self.task_ms > MAX_TASK_MS {
            return Err(ConfigError::OutOfRange {
                field: "task-ms",
                value: self.task_ms.to_string(),
                range: format!("0..={MAX_TASK_MS}"),
            });
        }
        if let Some(t) = self.task_timeout_ms
            && !(1..=MAX_TASK_MS).contains(&t)
        {
            return Err(ConfigError::OutOfRange {
                field: "task-timeout-ms",
                value: t.to_string(),
                range: format!("1..={MAX_TASK_MS}"),
            });
        }
        Ok(())
    }
}
