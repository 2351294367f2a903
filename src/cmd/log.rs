//! `poolscope log`: the experiment, headless, printed the way the example prints it.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cli::{LogArgs, LogFormat};
use crate::cmd::progress::Progress;
use crate::cmd::{printable, runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::event::{EventBatch, EventKind, since};
use poolscope::example_log::{ExampleLog, LogLine};
use poolscope::pool::task::install_panic_filter;
use poolscope::reorder::{self, ReorderWindow};
use poolscope::sys::mono_ns;
use poolscope::task_log::{RecordFormat, TaskRecords};
use tokio::time::{Instant, sleep_until};

/// How long an interrupted run gets to kill and reap its workers before we leave anyway.
const ABORT_LIMIT: Duration = Duration::from_secs(5);
/// How long an interrupted run's printer gets to finish the trace.
const TRACE_LIMIT: Duration = Duration::from_secs(1);
/// Chunks of log text waiting for stdout at most.
const OUTPUT_CAPACITY: usize = 64;

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
        let mut signals = Signals::new().context("cannot install signal handlers")?;
        let (tx, rx) = mpsc::channel(16);
        let output = Output::spawn().context("cannot start the stdout writer")?;
        let discard = CancellationToken::new();
        let printer = Printer::new(args.format);
        let mut printer = tokio::spawn(print_log(rx, trace, output, printer, discard.clone()));
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
                // The printer only drains now; it puts the run's last events in the trace.
                let _ = tokio::time::timeout(TRACE_LIMIT, &mut printer).await;
                return Err(Interrupted(sig).into());
            }
        };
        // The last lines may still be on their way to a slow reader; a signal still ends us.
        tokio::select! {
            printed = &mut printer => printed.context("log printer")??,
            sig = signals.recv() => return Err(Interrupted(sig).into()),
        }
        let report = report.context("run failed")?;
        if args.fail_on_error && report.failed > 0 {
            return Err(anyhow::anyhow!(
                "{} of {} tasks failed (--fail-on-error)",
                report.failed,
                config.tasks
            ));
        }
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
pub(super) struct Output {
    chunks: mpsc::Sender<String>,
    done: oneshot::Receiver<io::Result<()>>,
}

impl Output {
    pub(super) fn spawn() -> io::Result<Output> {
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
    pub(super) async fn finish(self) -> io::Result<()> {
        drop(self.chunks);
        self.done.await.unwrap_or(Ok(()))
    }
}

/// Prints records as events arrive, a burst at a time, so the log is live. Lines go through
/// a [`ReorderWindow`], so they come out in the order the workers stamped them rather than
/// the order their reports arrived in; a line waits at most [`reorder::WINDOW`] past its own
/// time. Once `discard` fires it only drains the events, so the run never waits on stdout.
pub(super) async fn print_log(
    mut rx: mpsc::Receiver<EventBatch>,
    mut trace: Option<super::TraceFile>,
    output: Output,
    mut order: Printer,
    discard: CancellationToken,
) -> anyhow::Result<()> {
    let mut batches = Vec::with_capacity(64);
    let mut progress = Progress::new();
    let mut header = String::new();
    order.start(&mut header);
    if !header.is_empty() && output.chunks.send(header).await.is_err() {
        return super::close_trace(trace);
    }
    loop {
        let due = order.due();
        let open = tokio::select! {
            n = rx.recv_many(&mut batches, 64) => n > 0,
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => true,
        };
        super::trace_events(&mut trace, batches.iter().flatten())?;
        progress.observe(batches.iter().flatten());
        let mut chunk = String::new();
        order.take(batches.drain(..), open, &mut chunk);
        if !chunk.is_empty() && !discard.is_cancelled() {
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
        if !open {
            break;
        }
    }
    // Leaving early drops the receiver: the run sees its consumer gone and ends.
    drop(rx);
    progress.clear();
    if discard.is_cancelled() {
        return super::close_trace(trace);
    }
    output.finish().await.context("cannot write to stdout")?;
    super::close_trace(trace)
}

/// What `log` prints: the example's log, or a record per task.
pub(super) enum Printer {
    Text(Box<Ordered>),
    Records(Box<TaskRecords>),
}

impl Printer {
    pub(super) fn new(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => Printer::Text(Box::new(Ordered::new())),
            LogFormat::Jsonl => Printer::Records(Box::new(TaskRecords::new(RecordFormat::Jsonl))),
            LogFormat::Csv => Printer::Records(Box::new(TaskRecords::new(RecordFormat::Csv))),
        }
    }

    /// What comes before any record: the CSV header.
    fn start(&mut self, out: &mut String) {
        if let Printer::Records(r) = self {
            r.header(out);
        }
    }

    fn due(&self) -> Option<Instant> {
        match self {
            Printer::Text(o) => o.due(),
            Printer::Records(_) => None,
        }
    }

    /// Records come in the order the tasks' ends arrive; each carries its own times.
    fn take(&mut self, batches: impl Iterator<Item = EventBatch>, open: bool, out: &mut String) {
        match self {
            Printer::Text(o) => o.take(batches, open, out),
            Printer::Records(r) => {
                for ev in batches.flatten() {
                    r.apply(&ev, out);
                }
            }
        }
    }
}

/// The example's log behind its reorder window: events in, printable text out in stamped order.
pub(super) struct Ordered {
    log: ExampleLog,
    window: ReorderWindow<LogLine>,
    origin_ns: u64,
    lines: Vec<LogLine>,
    ready: Vec<LogLine>,
}

impl Ordered {
    fn new() -> Self {
        Ordered {
            log: ExampleLog::new(),
            window: ReorderWindow::default(),
            origin_ns: mono_ns(),
            lines: Vec::new(),
            ready: Vec::new(),
        }
    }

    /// When the oldest held line is due, if one is held.
    fn due(&self) -> Option<Instant> {
        let now = since(self.origin_ns, mono_ns());
        self.window
            .next_due()
            .map(|at| Instant::now() + at.saturating_sub(now))
    }

    /// Applies `batches` and appends to `out` every line now due; all of them once the
    /// events have ended (`open` false).
    fn take(&mut self, batches: impl Iterator<Item = EventBatch>, open: bool, out: &mut String) {
        let now = since(self.origin_ns, mono_ns());
        for batch in batches {
            for ev in batch {
                if let EventKind::RunStarted { origin_ns, .. } = ev.kind {
                    self.origin_ns = origin_ns;
                }
                self.window.observe(&ev);
                self.log.apply(&ev, &mut self.lines);
                let source = reorder::source_of(&ev);
                for line in self.lines.drain(..) {
                    self.window.hold(source, line.at, line);
                }
            }
            // Released per batch, so few lines are held however many batches came at once.
            self.window.release(now, &mut self.ready);
            write_lines(self.ready.drain(..), out);
        }
        if open {
            self.window
                .release(since(self.origin_ns, mono_ns()), &mut self.ready);
        } else {
            self.window.release_all(&mut self.ready);
        }
        write_lines(self.ready.drain(..), out);
    }
}

/// Appends one line per record, with anything a worker wrote made harmless.
fn write_lines(lines: impl Iterator<Item = LogLine>, chunk: &mut String) {
    for line in lines {
        push_line(chunk, &line);
    }
}
