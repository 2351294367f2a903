//! The command line: subcommands and the options every run shares.

use clap::{Args, Parser, Subcommand};

use poolscope::config::{MAX_TASK_MS, MAX_TASKS, MAX_WORKERS, Mode, RunConfig};
use poolscope::pool::worker::Misbehave;
use poolscope::workload::Workload;

/// Watch a worker pool work: blocking tasks on a thread pool or a process pool, one live lane
/// per worker thread or PID.
#[derive(Debug, Parser)]
#[command(name = "poolscope", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Headless commands; without one, the interactive dashboard starts.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the dashboard's first run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// poolscope's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the experiment headless and print the seed-style log.
    Log(LogArgs),
    /// Run the experiment headless and print the dashboard's final frame as text.
    Snapshot(SnapshotArgs),
    /// The process-pool worker: speaks the wire protocol on stdin/stdout (internal).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Options of `poolscope log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of `poolscope snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Width of the frame, in columns.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(20..=1000))]
    pub width: u16,
    /// Height of the frame, in rows.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u16).range(5..=500))]
    pub height: u16,
}

/// Options of the hidden `poolscope worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// What each task does.
    #[arg(long, value_enum, default_value_t = Workload::Blocks)]
    pub workload: Workload,
    /// How long each task works, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=MAX_TASK_MS))]
    pub task_ms: u64,
    /// Fault drill: break this way once the first task has started.
    #[arg(long, value_enum, hide = true)]
    pub misbehave: Option<Misbehave>,
}

/// The options shared by every command that runs the experiment.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Thread pool or process pool.
    #[arg(long, value_enum, default_value_t = Mode::Thread)]
    pub mode: Mode,
    /// Number of pool workers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS as i64))]
    pub workers: u32,
    /// Number of tasks to submit.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=MAX_TASKS))]
    pub tasks: u64,
    /// What each task does.
    #[arg(long, value_enum, default_value_t = Workload::Blocks)]
    pub workload: Workload,
    /// How long each task works, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=MAX_TASK_MS))]
    pub task_ms: u64,
    /// Flag tasks running longer than this; in process mode their worker is killed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TASK_MS))]
    pub task_timeout_ms: Option<u64>,
}

impl RunArgs {
    /// The run these options describe.
    pub fn config(&self) -> RunConfig {
        RunConfig {
            mode: self.mode,
            workers: self.workers,
            tasks: self.tasks,
            workload: self.workload,
            task_ms: self.task_ms,
            task_timeout_ms: self.task_timeout_ms,
        }
    }
}
