//! `poolscope snapshot`: runs the experiment headless and prints the dashboard's last frame.

use anyhow::Context;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::{mpsc, watch};

use crate::cli::SnapshotArgs;
use crate::cmd::{TraceFile, runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::config::RunConfig;
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::event::EventBatch;
use poolscope::model::Model;
use poolscope::monitor::{MIN_SAMPLE, Monitor, Targets};
use poolscope::pool::task::install_panic_filter;
use poolscope::view::{self, ViewState, svg::buffer_to_svg, text::buffer_to_text};

/// Runs the experiment to its end (in both modes with `--both`, the asked-for mode last),
/// then prints the frame the dashboard would show.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<()> {
    if let Some(chosen) = args.source.chosen(&args.run, true)? {
        let model = super::source::snapshot_model(args, chosen)?;
        return print_frame(args, &model);
    }
    let config = args.run.config()?;
    install_panic_filter();
    let mut trace = super::open_trace(args.run.trace.as_deref())?;
    let mut runs = Vec::new();
    if args.both {
        runs.push(RunConfig {
            mode: config.mode.toggled(),
            ..config.clone()
        });
    }
    runs.push(config);
    let exe = worker_exe()?;
    let rt = runtime()?;
    let model = rt.block_on(async {
        let mut signals = Signals::new()?;
        let mut model = Model::new();
        // Sampled as in the dashboard, so the frame shows what the workers cost.
        let (targets, targets_rx) = watch::channel(Targets::default());
        let (stats_tx, mut stats) = mpsc::channel(64);
        let _monitor = Monitor::spawn(MIN_SAMPLE, targets_rx, stats_tx);
        for (i, config) in runs.iter().enumerate() {
            let opts = RunOptions {
                collect_results: false,
                ..RunOptions::new(i as u32 + 1, exe.clone())
            };
            tokio::select! {
                done = run_into(config, &opts, &mut model, &mut trace, &targets, &mut stats) => done?,
                sig = signals.recv() => return Err(anyhow::Error::new(Interrupted(sig))),
            }
        }
        Ok(model)
    });
    rt.shutdown_background();
    let model = model?;
    super::close_trace(trace)?;
    print_frame(args, &model)
}

/// Prints the frame the dashboard would show of `model`'s run at its end (and its SVG).
pub(super) fn print_frame(args: &SnapshotArgs, model: &Model) -> anyhow::Result<()> {
    let now = model
        .run
        .as_ref()
        .and_then(|r| r.ended_at)
        .unwrap_or_default();
    let mut terminal = Terminal::new(TestBackend::new(args.width, args.height))
        .context("cannot make an off-screen terminal")?;
    terminal
        .draw(|frame| view::draw(frame, model, &ViewState::default(), now))
        .context("cannot draw")?;
    let buffer = terminal.backend().buffer();
    if let Some(path) = &args.svg {
        std::fs::write(path, buffer_to_svg(buffer))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print!("{}", buffer_to_text(buffer));
    Ok(())
}

/// Runs one experiment, applying its events to `model` (and the trace) as they come.
async fn run_into(
    config: &RunConfig,
    opts: &RunOptions,
    model: &mut Model,
    trace: &mut Option<TraceFile>,
    targets: &watch::Sender<Targets>,
    stats: &mut mpsc::Receiver<EventBatch>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(16);
    let control = RunControl::new();
    let run = run_blocking_tasks(config, opts, &control, tx);
    let consume = async {
        let mut batches = Vec::with_capacity(64);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batches, 64) => {
                    if n == 0 {
                        break;
                    }
                    super::trace_events(trace, batches.iter().flatten())?;
                    let mut workers_changed = false;
                    for ev in batches.drain(..).flatten() {
                        workers_changed |= poolscope::monitor::changes_targets(&ev);
                        model.apply(&ev);
                    }
                    if workers_changed {
                        poolscope::monitor::follow(targets, model);
                    }
                }
                Some(samples) = stats.recv() => samples.iter().for_each(|s| model.apply(s)),
            }
        }
        anyhow::Ok(())
    };
    let (report, consumed) = tokio::join!(run, consume);
    consumed?;
    report.context("run failed")?;
    Ok(())
}
