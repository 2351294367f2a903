//! The `poolscope` binary: parses the command line and hands over to a command.

mod cli;
mod cmd;
mod signals;

use std::io::ErrorKind;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind as ClapErrorKind;

use cli::{Cli, Command};
use poolscope::error::ConfigError;
use poolscope::scenario::ScenarioError;
use signals::Interrupted;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let outcome = match &cli.command {
        Some(Command::Log(args)) => cmd::log::run(args),
        Some(Command::Snapshot(args)) => cmd::snapshot::run(args),
        Some(Command::Bench(args)) => cmd::bench::run(args),
        Some(Command::Worker(args)) => cmd::worker::run(args),
        Some(Command::FloorWorker) => {
            poolscope::floor::serve_floor(std::io::stdin().lock(), std::io::stdout().lock())
                .map_err(anyhow::Error::from)
        }
        None => cmd::dashboard::run(&cli.run, Duration::from_millis(cli.sample_ms)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Prints clap's help or version as usual, and any real usage error as one line, exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ClapErrorKind::DisplayHelp
        | ClapErrorKind::DisplayVersion
        | ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Nothing sensible is left to do if even printing the help fails.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            // clap puts the valid choices on a line of their own; keep them on ours.
            let choices = rendered
                .lines()
                .find(|l| l.trim_start().starts_with("[possible values:"))
                .map(|l| format!(" {}", l.trim()))
                .unwrap_or_default();
            eprintln!(
                "poolscope: {}{choices}",
                first.trim_start_matches("error: ")
            );
            ExitCode::from(2)
        }
    }
}

/// One line on stderr and the exit code that fits the error.
fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(Interrupted(sig)) = e.downcast_ref::<Interrupted>() {
        eprintln!("poolscope: {e}");
        return ExitCode::from(128u8.saturating_add(*sig as u8));
    }
    if let Some(failed) = e.downcast_ref::<cmd::source::ProgramFailed>() {
        eprintln!("poolscope: {failed}");
        return ExitCode::from(failed.code());
    }
    // A reader that went away (`poolscope log | head`) is not an error worth a message.
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("poolscope: {}", format!("{e:#}").replace('\n', " "));
    if e.chain()
        .any(|c| c.is::<ConfigError>() || c.is::<cmd::Usage>() || c.is::<ScenarioError>())
    {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
