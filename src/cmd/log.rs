//! `poolscope log`: the experiment, headless, printed the way the seed prints it.

use std::io::{BufWriter, Write};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::LogArgs;
use crate::cmd::{runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::pool::task::install_panic_filter;
use poolscope::seed_log::SeedLog;

/// Runs one experiment, printing each log record as it happens.
pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    let config = args.run.config()?;
    install_panic_filter();
    let trace = super::open_trace(args.run.trace.as_deref())?;
    let opts = RunOptions::new(0, worker_exe()?);
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let mut signals = Signals::new()?;
        let (tx, rx) = mpsc::channel(16);
        let printer = tokio::spawn(print_log(rx, trace));
        let control = RunControl::new();
        let run = run_blocking_tasks(&config, &opts, &control, tx);
        tokio::pin!(run);
        let mut interrupted = None;
        let report = tokio::select! {
            report = &mut run => report,
            sig = signals.recv() => {
                // Kill and reap the workers before leaving, so none outlives us.
                interrupted = Some(sig);
                control.abort.cancel();
                run.await
            }
        };
        // A printer that failed (stdout closed) explains a run that lost its consumer.
        printer.await.context("log printer")??;
        if let Some(sig) = interrupted {
            return Err(Interrupted(sig).into());
        }
        report.context("run failed")?;
        Ok(())
    });
    // Detached worker threads stuck in a task must not keep us from exiting.
    rt.shutdown_background();
    result
}

/// Prints records as events arrive, flushing after each burst so the log is live.
async fn print_log(
    mut rx: mpsc::Receiver<poolscope::event::EventBatch>,
    mut trace: Option<super::TraceFile>,
) -> anyhow::Result<()> {
    let mut log = SeedLog::new();
    let mut out = BufWriter::new(std::io::stdout());
    let mut batches = Vec::with_capacity(64);
    let mut lines = Vec::new();
    while rx.recv_many(&mut batches, 64).await > 0 {
        super::trace_events(&mut trace, batches.iter().flatten())?;
        for ev in batches.drain(..).flatten() {
            log.apply(&ev, &mut lines);
        }
        for line in lines.drain(..) {
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
        out.flush().context("cannot write to stdout")?;
    }
    super::close_trace(trace)
}
