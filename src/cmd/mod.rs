//! The binary's commands; each turns options into a run and the run into output.

pub mod dashboard;
pub mod log;
pub mod snapshot;
pub mod worker;

use std::path::PathBuf;

use anyhow::Context;

/// The binary to re-execute as `poolscope worker`: this very one.
pub fn worker_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot locate the poolscope binary to start process workers")
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A request that cannot be served as asked (exit code 2, like a bad option).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);
