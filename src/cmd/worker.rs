//! `poolscope worker`: the child side of the process pool.

use anyhow::Context;

use crate::cli::WorkerArgs;
use poolscope::pool::worker::serve;

/// Serves tasks on stdin/stdout until stdin closes; the settings come as the first frame.
pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    serve(
        args.misbehave,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    )
    .context("worker")
}
