//! `poolscope log`: the experiment, headless, printed the way the seed prints it.

use std::io::{BufWriter, Write};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::LogArgs;
use crate::cmd::{runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::event::{EventKind, since};
use poolscope::pool::task::install_panic_filter;
use poolscope::reorder::{self, ReorderWindow};
use poolscope::seed_log::SeedLog;
use poolscope::sys::mono_ns;
use tokio::time::{Instant, sleep_until};

/// Runs one experiment, printing each log record as it happens.
pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    if let Some(chosen) = args.source.chosen(&args.run, false)? {
        return super::source::log(args, chosen);
    }
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
///
/// Lines go through a [`ReorderWindow`], so they come out in the order the workers stamped
/// them rather than the order their reports arrived in; a line waits at most
/// [`poolscope::reorder::WINDOW`] past its own time.
pub(super) async fn print_log(
    mut rx: mpsc::Receiver<poolscope::event::EventBatch>,
    mut trace: Option<super::TraceFile>,
) -> anyhow::Result<()> {
    let mut log = SeedLog::new();
    let mut window = ReorderWindow::default();
    let mut origin_ns = mono_ns();
    let mut out = BufWriter::new(std::io::stdout());
    let mut batches = Vec::with_capacity(64);
    let (mut lines, mut ready) = (Vec::new(), Vec::new());
    loop {
        let due = window
            .next_due()
            .map(|at| Instant::now() + at.saturating_sub(since(origin_ns, mono_ns())));
        let open = tokio::select! {
            n = rx.recv_many(&mut batches, 64) => n > 0,
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => true,
        };
        super::trace_events(&mut trace, batches.iter().flatten())?;
        let now = since(origin_ns, mono_ns());
        for batch in batches.drain(..) {
            for ev in batch {
                if let EventKind::RunStarted { origin_ns: o, .. } = ev.kind {
                    origin_ns = o;
                }
                window.observe(&ev);
                log.apply(&ev, &mut lines);
                let source = reorder::source_of(&ev);
                for line in lines.drain(..) {
                    window.hold(source, line.at, line);
                }
            }
            // Released per batch, so few lines are held however many batches came at once.
            window.release(now, &mut ready);
            for line in ready.drain(..) {
                writeln!(out, "{line}").context("cannot write to stdout")?;
            }
        }
        if open {
            window.release(since(origin_ns, mono_ns()), &mut ready);
        } else {
            window.release_all(&mut ready);
        }
        for line in ready.drain(..) {
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
        out.flush().context("cannot write to stdout")?;
        if !open {
            break;
        }
    }
    super::close_trace(trace)
}
