//! `poolscope worker`: the child side of the process pool.

use anyhow::Context;

use crate::cli::WorkerArgs;
use poolscope::pool::child::serve;
use poolscope::pool::process::PARENT_ENV;
use poolscope::sys::die_with_parent;

/// Serves tasks on stdin/stdout until stdin closes; the settings come as the first frame.
pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    // Die with the pool: set here rather than between fork and exec, so the pool can spawn
    // with the cheaper posix_spawn; the parent check closes the window before this line.
    if let Some(parent) = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse().ok()) {
        die_with_parent(parent).context("worker")?;
    }
    serve(
        args.misbehave,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    )
    .context("worker")
}
