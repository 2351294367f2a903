//! `poolscope snapshot`: runs the experiment headless and prints the dashboard's last frame.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::{mpsc, watch};

use crate::cli::SnapshotArgs;
use crate::cmd::progress::Progress;
use crate::cmd::{runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::config::RunConfig;
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::dashboard::Ingest;
use poolscope::event::EventBatch;
use poolscope::model::Model;
use poolscope::monitor::{MIN_SAMPLE, Monitor, Targets};
use poolscope::pool::process::pipe_round_trip;
use poolscope::pool::task::install_panic_filter;
use poolscope::view::{
    self, ViewState, svg::buffer_to_svg_with, text::buffer_to_ansi, text::buffer_to_text,
};

/// Runs the experiment to its end (in both modes with `--both`, the asked-for mode last),
/// then prints the frame the dashboard would show.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<()> {
    let chosen = args.source.chosen(&args.run, true)?;
    if let Some(svg) = &args.svg {
        // Refused before the run, not after it.
        if svg.as_os_str() != "-" {
            poolscope::output::check(svg).context("--svg")?;
        }
    }
    if let Some(chosen) = chosen {
        // The frame is wanted most when the program failed: printed first, whatever its end.
        let (model, outcome) = super::source::snapshot_model(args, chosen)?;
        print_frame(args, &model)?;
        return outcome;
    }
    let config = args.run.config()?;
    install_panic_filter();
    let trace = super::open_trace(args.run.trace.as_deref())?;
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
        let mut signals = Signals::new().context("cannot install signal handlers")?;
        let mut model = Model::new();
        if let Ok(rtt) = pipe_round_trip(super::PIPE_SAMPLES) {
            model.set_pipe_round_trip(rtt);
        }
        // Sampled as in the dashboard, so the frame shows what the workers cost.
        let (targets, targets_rx) = watch::channel(Targets::default());
        let (stats_tx, mut stats) = mpsc::channel(64);
        let _monitor = Monitor::spawn(MIN_SAMPLE, targets_rx, stats_tx);
        let mut ingest = Ingest::new(trace, Some(targets));
        let mut progress = Progress::new();
        for (i, config) in runs.iter().enumerate() {
            let opts = RunOptions {
                collect_results: false,
                ..RunOptions::new(i as u32 + 1, exe.clone())
            };
            tokio::select! {
                done = run_into(config, &opts, &mut model, &mut ingest, &mut stats, &mut progress) => done?,
                sig = signals.recv() => return Err(anyhow::Error::new(Interrupted(sig))),
            }
        }
        ingest.finish().context("cannot write the trace")?;
        Ok(model)
    });
    rt.shutdown_background();
    let model = model?;
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
    // A picture is colour unless NO_COLOR or --color never say otherwise; the text frame
    // is drawn in ASCII only when asked, as it may go to a file read elsewhere.
    // Like the dashboard, the frame follows the locale: ASCII when it is not UTF-8.
    let (theme, ascii) = args.display.look(true);
    let state = ViewState {
        theme,
        ascii,
        ..ViewState::default()
    };
    terminal
        .draw(|frame| view::draw(frame, model, &state, now))
        .context("cannot draw")?;
    let framed = args
        .title
        .as_deref()
        .map(|t| view::picture::framed(terminal.backend().buffer(), t, &theme, ascii));
    let buffer = framed.as_ref().unwrap_or(terminal.backend().buffer());
    // With --svg the picture is the output: `-` writes it to stdout and nothing else, a
    // file gets it without the text frame printed too.
    if let Some(path) = &args.svg {
        let svg = buffer_to_svg_with(buffer, &theme);
        if path.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            return out
                .write_all(svg.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write to stdout");
        }
        return poolscope::output::write_file(path, svg.as_bytes()).context("--svg");
    }
    // The text is coloured where --color and NO_COLOR allow it: by default, on a terminal.
    let text = if args.display.colours(std::io::stdout().is_terminal()) {
        buffer_to_ansi(buffer)
    } else {
        buffer_to_text(buffer)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// Runs one experiment, taking its events in (model, trace, monitor) as they come.
async fn run_into(
    config: &RunConfig,
    opts: &RunOptions,
    model: &mut Model,
    ingest: &mut Ingest,
    stats: &mut mpsc::Receiver<EventBatch>,
    progress: &mut Progress,
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
                    progress.observe(batches.iter().flatten());
                    ingest.apply(&mut batches, model).context("cannot write the trace")?;
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
