//! `poolscope worker`: the child side of the process pool.

use anyhow::Context;

use crate::cli::WorkerArgs;
use poolscope::pool::worker::{WorkerJob, serve};

/// Serves tasks on stdin/stdout until stdin closes.
pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    let job = WorkerJob {
        workload: args.workload,
        task_ms: args.task_ms,
        seed: args.seed,
        announce_starts: args.announce_starts,
        misbehave: args.misbehave,
    };
    serve(&job, std::io::stdin().lock(), std::io::stdout().lock()).context("worker")
}
