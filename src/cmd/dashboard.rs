//! The interactive dashboard: a `tokio::select!` loop over keys, pool events and a frame tick.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event, EventStream};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::cli::RunArgs;
use crate::cmd::{Usage, local_runtime, worker_exe};
use crate::signals::Signals;
use poolscope::app::{Action, App};
use poolscope::config::RunConfig;
use poolscope::coordinator::{RunControl, RunOptions, RunReport, run_blocking_tasks};
use poolscope::error::PoolError;
use poolscope::event::{EventBatch, RunId};
use poolscope::monitor::{Monitor, Targets};
use poolscope::pool::task::install_panic_filter;
use poolscope::sys::mono_ns;
use poolscope::view;

/// Frames are drawn at most this often (about 30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// How long quitting waits for the runs' workers to be killed and reaped.
const QUIT_GRACE: Duration = Duration::from_secs(3);
/// Runs start at most this often; a burst of keys collapses into its last request.
const MIN_RESTART: Duration = Duration::from_millis(250);

/// Runs the dashboard until the user quits.
pub fn run(args: &RunArgs, sample: Duration) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Usage(
            "the dashboard needs a terminal; for plain output use `poolscope log` or `poolscope snapshot`"
                .into(),
        )
        .into());
    }
    let config = args.config()?;
    let trace = super::open_trace(args.trace.as_deref())?;
    let exe = worker_exe()?;
    let rt = local_runtime()?;
    let result = rt.block_on(async move {
        // Restores the terminal on any panic, then ours keeps task panics from reaching it.
        let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
        // Pasted text arrives as one event instead of keys, so a paste cannot press `q`.
        let _ = crossterm::execute!(std::io::stdout(), EnableBracketedPaste);
        let restore_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = crossterm::execute!(std::io::stdout(), DisableBracketedPaste);
            restore_hook(info);
        }));
        install_panic_filter();
        let outcome = event_loop(&mut terminal, config, exe, trace, sample).await;
        let _ = crossterm::execute!(std::io::stdout(), DisableBracketedPaste);
        ratatui::restore();
        outcome
    });
    // Threads stuck in a long task must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// A run under way, as the loop tracks it.
struct RunHandle {
    id: RunId,
    control: RunControl,
    task: JoinHandle<Result<RunReport, PoolError>>,
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    config: RunConfig,
    exe: std::path::PathBuf,
    mut trace: Option<super::TraceFile>,
    sample: Duration,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<EventBatch>(16);
    let mut app = App::new(config);
    let (targets_tx, targets_rx) = watch::channel(Targets::default());
    let _monitor = Monitor::spawn(sample, targets_rx, tx.clone());
    if _monitor.is_none() {
        app.notify("CPU and memory sampling is not available here".into());
    }
    let mut keys = EventStream::new();
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut runs: Vec<RunHandle> = Vec::new();
    let mut batches = Vec::with_capacity(64);
    let mut dirty = true;
    let mut pending: Option<Action> = Some(app.start());
    let mut last_start: Option<tokio::time::Instant> = None;

    loop {
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) => {
                    let now = app.now(mono_ns());
                    match app.on_key(key, now) {
                        Some(Action::Quit) => break,
                        Some(Action::Kill(pid)) => {
                            if let Err(e) = poolscope::sys::signal_process(pid, libc::SIGKILL) {
                                app.notify(format!("cannot kill PID {pid}: {e}"));
                            }
                        }
                        Some(Action::InjectPanic) => {
                            if let Some(run) = runs.last() {
                                run.control.faults.panic_next();
                            }
                        }
                        Some(Action::ExportTrace) => export_trace(&mut app),
                        Some(start @ Action::Start(..)) => pending = Some(start),
                        None => {}
                    }
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                // Mouse, paste and focus events carry nothing for us.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                None => break,
            },
            n = rx.recv_many(&mut batches, 64) => {
                if n > 0 {
                    super::trace_events(&mut trace, batches.iter().flatten())?;
                    let mut workers_changed = false;
                    for ev in batches.drain(..).flatten() {
                        workers_changed |= poolscope::monitor::changes_targets(&ev);
                        app.on_event(&ev);
                    }
                    // Only a run start or a worker's spawn or exit changes what to sample.
                    if workers_changed {
                        poolscope::monitor::follow(&targets_tx, &app.model);
                    }
                    dirty = true;
                }
            }
            _ = tick.tick() => {
                let due = last_start.is_none_or(|t| t.elapsed() >= MIN_RESTART);
                if due && let Some(start) = pending.take() {
                    start_run(start, &mut runs, &exe, &tx);
                    last_start = Some(tokio::time::Instant::now());
                }
                if reap_finished(&mut runs, &mut app) {
                    dirty = true;
                }
                if dirty || app.animating() {
                    let now = app.now(mono_ns());
                    terminal
                        .draw(|frame| view::draw(frame, app.shown(), &app.view, now))
                        .context("cannot draw")?;
                    dirty = false;
                }
            }
            _ = signals.recv() => break,
        }
    }
    stop_all(runs).await;
    // The last runs' final events (their workers' exits) belong in the trace too.
    rx.close();
    while let Ok(ev) = rx.try_recv() {
        super::trace_events(&mut trace, &ev)?;
    }
    super::close_trace(trace)
}

/// Writes the run on screen to `poolscope-run-N.json` and says where.
fn export_trace(app: &mut App) {
    let Some(run) = &app.model.run else { return };
    let path = format!("poolscope-run-{}.json", run.id);
    let written = std::fs::File::create(&path)
        .map(std::io::BufWriter::new)
        .and_then(|f| poolscope::trace::run_to_trace(run, f))
        .and_then(|mut f| std::io::Write::flush(&mut f));
    let notice = match written {
        Ok(()) => format!("trace written to {path} (the last tasks of each lane)"),
        Err(e) => format!("cannot write {path}: {e}"),
    };
    app.notify(notice);
}

/// Cancels the runs under way and starts the one `action` asks for.
fn start_run(
    action: Action,
    runs: &mut Vec<RunHandle>,
    exe: &std::path::Path,
    tx: &mpsc::Sender<EventBatch>,
) {
    let Action::Start(id, config) = action else {
        return;
    };
    // The old run's process workers are ended at once rather than left to finish their
    // tasks; its threads finish on their own. Its late events are ignored by the model.
    for old in runs.iter() {
        old.control.abort.cancel();
    }
    let control = RunControl::new();
    // The model reads results from the events; the report need not keep them all.
    let opts = RunOptions {
        collect_results: false,
        ..RunOptions::new(id, exe.to_path_buf())
    };
    let (run_control, tx) = (control.clone(), tx.clone());
    let task =
        tokio::spawn(async move { run_blocking_tasks(&config, &opts, &run_control, tx).await });
    runs.push(RunHandle { id, control, task });
}

/// Forgets runs that ended; a failed current run becomes a notice. Returns whether any ended.
fn reap_finished(runs: &mut Vec<RunHandle>, app: &mut App) -> bool {
    let newest = runs.iter().map(|r| r.id).max();
    let before = runs.len();
    runs.retain_mut(|run| {
        if !run.task.is_finished() {
            return true;
        }
        if Some(run.id) == newest {
            let outcome = futures_util::FutureExt::now_or_never(&mut run.task);
            match outcome {
                Some(Ok(Err(e))) => app.notify(format!("run failed: {e}")),
                Some(Err(e)) => app.notify(format!("run crashed: {e}")),
                _ => {}
            }
        }
        false
    });
    runs.len() != before
}

/// Kills every run's workers and waits, within reason, until they are reaped.
async fn stop_all(runs: Vec<RunHandle>) {
    for run in &runs {
        run.control.abort.cancel();
    }
    let all = futures_util::future::join_all(runs.into_iter().map(|r| r.task));
    let _ = tokio::time::timeout(QUIT_GRACE, all).await;
}
