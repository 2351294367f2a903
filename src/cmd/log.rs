//! `poolscope log`: the experiment, headless, printed the way the seed prints it.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cli::LogArgs;
use crate::cmd::{printable, runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::event::EventBatch;
use poolscope::pool::task::install_panic_filter;
use poolscope::seed_log::SeedLog;

/// How long an interrupted run gets to kill and reap its workers before we leave anyway.
const ABORT_LIMIT: Duration = Duration::from_secs(5);
/// Chunks of log text waiting for stdout at most.
const OUTPUT_CAPACITY: usize = 64;

/// Runs one experiment, printing each log record as it happens.
pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    let config = args.run.config()?;
    install_panic_filter();
    let trace = super::open_trace(args.run.trace.as_deref())?;
    let opts = RunOptions::new(0, worker_exe()?);
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let mut signals = Signals::new().context("cannot install signal handlers")?;
        let (tx, rx) = mpsc::channel(16);
        let output = Output::spawn().context("cannot start the stdout writer")?;
        let discard = CancellationToken::new();
        let printer = tokio::spawn(print_log(rx, trace, output, discard.clone()));
        let control = RunControl::new();
        let run = run_blocking_tasks(&config, &opts, &control, tx);
        tokio::pin!(run);
        let report = tokio::select! {
            report = &mut run => report,
            sig = signals.recv() => {
                // Shutdown must not wait on a reader that does not read: the printer stops
                // writing and only drains, so the run can kill and reap its workers.
                discard.cancel();
                control.abort.cancel();
                let _ = tokio::time::timeout(ABORT_LIMIT, &mut run).await;
                return Err(Interrupted(sig).into());
            }
        };
        // The last lines may still be on their way to a slow reader; a signal still ends us.
        tokio::select! {
            printed = printer => printed.context("log printer")??,
            sig = signals.recv() => return Err(Interrupted(sig).into()),
        }
        report.context("run failed")?;
        Ok(())
    });
    // Detached worker threads stuck in a task (or in a write to stdout) must not keep us.
    rt.shutdown_background();
    result
}

/// Appends `line` and a newline to `chunk`, control characters escaped: a worker's own
/// words may carry escape sequences, which must never act on the user's terminal.
fn push_line(chunk: &mut String, line: &impl std::fmt::Display) {
    let start = chunk.len();
    let _ = write!(chunk, "{line}");
    if chunk[start..].chars().any(char::is_control) {
        let clean = printable(&chunk[start..]).into_owned();
        chunk.truncate(start);
        chunk.push_str(&clean);
    }
    chunk.push('\n');
}

/// Stdout on a thread of its own, so a reader that stops reading blocks that thread only.
struct Output {
    chunks: mpsc::Sender<String>,
    done: oneshot::Receiver<io::Result<()>>,
}

impl Output {
    fn spawn() -> io::Result<Output> {
        let (chunks, mut rx) = mpsc::channel::<String>(OUTPUT_CAPACITY);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                let mut out = io::stdout().lock();
                let mut result = Ok(());
                while let Some(chunk) = rx.blocking_recv() {
                    result = out.write_all(chunk.as_bytes()).and_then(|()| out.flush());
                    if result.is_err() {
                        break;
                    }
                }
                let _ = done_tx.send(result);
            })?;
        Ok(Output { chunks, done })
    }

    /// Waits until everything sent is written; the write error, if any.
    async fn finish(self) -> io::Result<()> {
        drop(self.chunks);
        self.done.await.unwrap_or(Ok(()))
    }
}

/// Prints records as events arrive, a burst at a time, so the log is live. Once `discard`
/// fires it only drains the events, so the run never waits on stdout.
async fn print_log(
    mut rx: mpsc::Receiver<EventBatch>,
    mut trace: Option<super::TraceFile>,
    output: Output,
    discard: CancellationToken,
) -> anyhow::Result<()> {
    let mut log = SeedLog::new();
    let mut batches = Vec::with_capacity(64);
    let mut lines = Vec::new();
    while rx.recv_many(&mut batches, 64).await > 0 {
        super::trace_events(&mut trace, batches.iter().flatten())?;
        for ev in batches.drain(..).flatten() {
            log.apply(&ev, &mut lines);
        }
        let mut chunk = String::new();
        for line in lines.drain(..) {
            push_line(&mut chunk, &line);
        }
        if chunk.is_empty() || discard.is_cancelled() {
            continue;
        }
        tokio::select! {
            sent = output.chunks.send(chunk) => {
                if sent.is_err() {
                    // The writer stopped on an error; it says which below.
                    break;
                }
            }
            () = discard.cancelled() => {}
        }
    }
    // Leaving early drops the receiver: the run sees its consumer gone and ends.
    drop(rx);
    if discard.is_cancelled() {
        return super::close_trace(trace);
    }
    output.finish().await.context("cannot write to stdout")?;
    super::close_trace(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_escape_sequences_never_reach_the_terminal() {
        let mut chunk = String::new();
        push_line(
            &mut chunk,
            &"  Thread-1 stderr: \x1b]0;owned\x07\x1b[2J\rgone",
        );
        push_line(&mut chunk, &"plain");
        assert_eq!(
            chunk,
            "  Thread-1 stderr: \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rgone\nplain\n"
        );
    }
}
