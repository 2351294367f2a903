//! The interactive dashboard on the real terminal; the loop itself is
//! [`poolscope::dashboard::run_main_loop`].

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::{DisplayArgs, RunArgs};
use crate::cmd::source::SourceArgs;
use crate::cmd::{PIPE_SAMPLES, Usage, local_runtime, worker_exe};
use crate::signals::{Interrupted, forward};
use poolscope::dashboard::{Exit, PoolRuntime, Session, SessionSource, run_main_loop};
use poolscope::pool::process::pipe_round_trip;
use poolscope::term::{TerminalGuard, input_stream, spawn_reader};

/// Inputs (keys, signals) waiting for the loop at most; a flood waits in the terminal.
const INPUT_CAPACITY: usize = 256;

/// Runs the dashboard until the user quits or a signal ends it.
pub fn run(
    args: &RunArgs,
    source: &SourceArgs,
    display: &DisplayArgs,
    sample: Duration,
) -> anyhow::Result<()> {
    if std::env::var("TERM").is_ok_and(|t| t == "dumb") {
        return Err(Usage(
            "TERM=dumb cannot show the dashboard; for plain output use `poolscope log` or `poolscope snapshot`"
                .into(),
        )
        .into());
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Usage(
            "the dashboard needs a terminal; for plain output use `poolscope log` or `poolscope snapshot`"
                .into(),
        )
        .into());
    }
    let (theme, ascii) = display.look(true);
    // The trace opens before the recording is read (it is written as it is read): what the
    // source reads must be known to it first.
    source.note_inputs();
    let mut trace = super::open_trace(args.trace.as_deref())?;
    let watched = super::source::session_source(args, source, &mut trace)?;
    let config = match watched {
        SessionSource::Experiment => args.config()?,
        _ => poolscope::config::RunConfig::default(),
    };
    let exe = worker_exe()?;
    // The pool and its coordinator run on a thread of their own: the UI cannot delay them.
    let pool = PoolRuntime::start().context("cannot start the pool's runtime")?;
    let rt = local_runtime()?;
    let (summary_tx, summary_rx) = tokio::sync::oneshot::channel();
    let exit = rt.block_on(async {
        let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
        forward(tx.clone()).context("cannot install signal handlers")?;
        let mut guard = TerminalGuard::enter().context("cannot set up the terminal")?;
        spawn_reader(tx).context("cannot read the terminal")?;
        let mut session = Session::new(config, exe, pool.handle().clone());
        session.pipe_round_trip = pipe_round_trip(PIPE_SAMPLES).ok();
        session.sample = Some(sample);
        session.trace = trace;
        session.theme = theme;
        session.ascii = ascii;
        session.summary = Some(summary_tx);
        session.source = watched;
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        session.config_file = crate::cli_config::path(&argv);
        if let Ok(dir) = std::env::current_dir() {
            session.export_dir = dir;
        }
        let exit = run_main_loop(&mut guard, input_stream(rx), session).await;
        drop(guard);
        anyhow::Ok(exit?)
    });
    // Threads stuck in a long task must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    drop(pool);
    // On the normal screen, so the figures outlive the alternate one.
    if let Ok(mut summary) = summary_rx.blocking_recv() {
        if ascii {
            summary = summary
                .chars()
                .map(poolscope::view::ascii::to_ascii)
                .collect();
        }
        let _ = std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes());
    }
    match exit? {
        Exit::Quit => Ok(()),
        Exit::Signal(sig) => Err(Interrupted(sig).into()),
    }
}
