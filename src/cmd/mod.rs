//! The binary's commands; each turns options into a run and the run into output.

pub mod bench;
pub mod dashboard;
pub mod log;
pub mod snapshot;
pub mod source;
pub mod worker;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use poolscope::event::PoolEvent;
use poolscope::trace::TraceWriter;

/// The binary to re-execute as `poolscope worker`: this very one.
pub fn worker_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot locate the poolscope binary to start process workers")
}

/// A trace file being written.
pub type TraceFile = TraceWriter<BufWriter<File>>;

/// Opens `--trace FILE`, if it was given.
pub fn open_trace(path: Option<&Path>) -> anyhow::Result<Option<TraceFile>> {
    let Some(path) = path else { return Ok(None) };
    let file = File::create(path)
        .with_context(|| format!("cannot create trace file {}", path.display()))?;
    Ok(Some(TraceWriter::new(BufWriter::new(file))?))
}

/// Feeds `events` to the trace, if there is one, and flushes, so a killed run keeps them.
pub fn trace_events<'a>(
    trace: &mut Option<TraceFile>,
    events: impl IntoIterator<Item = &'a PoolEvent>,
) -> anyhow::Result<()> {
    if let Some(t) = trace {
        for ev in events {
            t.apply(ev).context("cannot write the trace")?;
        }
        t.flush().context("cannot write the trace")?;
    }
    Ok(())
}

/// Closes the trace, if there is one.
pub fn close_trace(trace: Option<TraceFile>) -> anyhow::Result<()> {
    if let Some(t) = trace {
        t.finish().context("cannot write the trace")?;
    }
    Ok(())
}

/// A single-threaded tokio runtime: the dashboard's UI, coordinator and process drivers wake
/// each other without crossing threads, which at a thousand tasks a second is most of the
/// observer's cost. Pool threads and the monitor have threads of their own.
pub fn local_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
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
