//! The binary's commands; each turns options into a run and the run into output.

pub mod attach;
pub mod bench;
pub mod cluster;
pub mod dashboard;
pub mod fold;
pub mod log;
pub mod man;
pub mod progress;
pub mod snapshot;
pub mod source;
pub mod worker;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context;
use poolscope::dashboard::TraceSink;
use poolscope::event::PoolEvent;
use poolscope::trace::TraceWriter;

pub use poolscope::error::{panic_expected, without_panicking};
pub use poolscope::outside_text::{clip, printable};

/// Round trips timed for the machine's raw pipe figure: a few milliseconds, once per session.
pub const PIPE_SAMPLES: u32 = 300;

/// The binary to re-execute as `poolscope worker`: this very one.
pub fn worker_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot locate the poolscope binary to start process workers")
}

/// A trace file being written.
pub type TraceFile = TraceSink;

/// Opens `--trace FILE`, if it was given.
pub fn open_trace(path: Option<&Path>) -> anyhow::Result<Option<TraceFile>> {
    let Some(path) = path else { return Ok(None) };
    let file = poolscope::output::OutputFile::create(path).context("--trace")?;
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
    without_panicking(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    })
    .context("cannot start the async runtime")
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    // When the OS refuses some of its threads (a tiny `ulimit -u`), tokio panics inside
    // `build` and then hangs dropping the half-built runtime: ask the OS first.
    threads_available(workers + 1).context("cannot start the async runtime")?;
    without_panicking(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    })
    .context("cannot start the async runtime")
}

/// Whether the OS lets this process start `n` more threads at once: starts them, holds them
/// until all are up, then lets them go.
fn threads_available(n: usize) -> std::io::Result<()> {
    let gate = Arc::new(RwLock::new(()));
    let held = gate.write().unwrap_or_else(PoisonError::into_inner);
    let mut threads = Vec::with_capacity(n);
    let mut refused = None;
    for _ in 0..n {
        let gate = Arc::clone(&gate);
        let spawned = std::thread::Builder::new().spawn(move || {
            drop(gate.read().unwrap_or_else(PoisonError::into_inner));
        });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    drop(held);
    for t in threads {
        let _ = t.join();
    }
    match refused {
        None => Ok(()),
        Some(e) => Err(std::io::Error::new(
            e.kind(),
            format!("the OS refuses new threads ({e}; is `ulimit -u` too low?)"),
        )),
    }
}

/// A request that cannot be served as asked (exit code 2, like a bad option).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);
