//! The binary's commands; each turns options into a run and the run into output.

pub mod bench;
pub mod dashboard;
pub mod log;
pub mod snapshot;
pub mod worker;

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::Context;
use poolscope::dashboard::TraceSink;
use poolscope::event::PoolEvent;
use poolscope::trace::TraceWriter;

pub use poolscope::term::{clip, printable};

/// The binary to re-execute as `poolscope worker`: this very one.
pub fn worker_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot locate the poolscope binary to start process workers")
}

/// A trace file being written.
pub type TraceFile = TraceSink;

/// Opens `--trace FILE`, if it was given.
pub fn open_trace(path: Option<&Path>) -> anyhow::Result<Option<TraceFile>> {
    let Some(path) = path else { return Ok(None) };
    let file = File::create(path)
        .with_context(|| format!("cannot create trace file {}", path.display()))?;
    let out: Box<dyn Write + Send> = Box::new(BufWriter::new(file));
    Ok(Some(TraceWriter::new(out)?))
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

/// A single-threaded tokio runtime, for the dashboard's UI.
pub fn local_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A multi-threaded tokio runtime for one command. tokio panics when the OS refuses its
/// worker threads (a tiny `ulimit -u`); that becomes an error here.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    without_panicking(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    })
    .context("cannot start the async runtime")
}

thread_local! {
    /// Set while a library call that reports some OS failures by panicking is made.
    static PANIC_EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the panic under way on this thread is one [`without_panicking`] turns into an
/// error (the panic hook then stays silent).
pub fn panic_expected() -> bool {
    PANIC_EXPECTED.with(Cell::get)
}

/// Runs `f`, turning a panic inside it into an error with the panic's message.
pub fn without_panicking<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    PANIC_EXPECTED.with(|p| p.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    PANIC_EXPECTED.with(|p| p.set(false));
    outcome.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        Err(io::Error::other(msg))
    })
}

/// A request that cannot be served as asked (exit code 2, like a bad option).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_an_error() {
        let e = without_panicking::<()>(|| panic!("OS can't spawn worker thread")).unwrap_err();
        assert_eq!(e.to_string(), "OS can't spawn worker thread");
        assert!(!panic_expected());
    }
}
