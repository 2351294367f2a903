//! `poolscope snapshot`: runs the experiment headless and prints the dashboard's last frame.

use anyhow::Context;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;

use crate::cli::SnapshotArgs;
use crate::cmd::{runtime, worker_exe};
use crate::signals::{Interrupted, Signals};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::model::Model;
use poolscope::pool::task::install_panic_filter;
use poolscope::view::{self, ViewState, text::buffer_to_text};

/// Runs one experiment to its end, then prints the frame the dashboard would show.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<()> {
    let config = args.run.config();
    config.validate()?;
    install_panic_filter();
    let opts = RunOptions {
        run: 1,
        worker_exe: worker_exe()?,
    };
    let rt = runtime()?;
    let model = rt.block_on(async move {
        let mut signals = Signals::new()?;
        let (tx, mut rx) = mpsc::channel(4096);
        let control = RunControl::new();
        let mut model = Model::new();
        let run = run_blocking_tasks(&config, &opts, &control, tx);
        let consume = async {
            while let Some(ev) = rx.recv().await {
                model.apply(&ev);
            }
        };
        let both = async { tokio::join!(run, consume).0 };
        tokio::select! {
            report = both => { report.context("run failed")?; }
            sig = signals.recv() => {
                return Err(anyhow::Error::new(Interrupted(sig)));
            }
        }
        Ok(model)
    });
    rt.shutdown_background();
    let model = model?;
    let now = model
        .run
        .as_ref()
        .and_then(|r| r.ended_at)
        .unwrap_or_default();
    let mut terminal = Terminal::new(TestBackend::new(args.width, args.height))
        .context("cannot make an off-screen terminal")?;
    terminal
        .draw(|frame| view::draw(frame, &model, &ViewState::default(), now))
        .context("cannot draw")?;
    print!("{}", buffer_to_text(terminal.backend().buffer()));
    Ok(())
}
