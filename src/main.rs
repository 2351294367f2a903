//! The `poolscope` binary: parses the command line and hands over to a command.
//!
//! Exit codes: 0 ok (also when stdout's reader left early, as `| head` does), 1 a runtime
//! error, 2 a usage error, 128 + n after signal n.

mod cli;
mod cli_config;
mod cmd;
mod signals;

use std::io::ErrorKind;
use std::process::ExitCode;
use std::time::Duration;

use std::io::Write as _;

use clap::error::ErrorKind as ClapErrorKind;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use poolscope::error::ConfigError;
use poolscope::scenario::ScenarioError;
use signals::Interrupted;

/// Longest error message printed; anything longer is cut (it quotes outside input).
const MESSAGE_MAX: usize = 1000;

fn main() -> ExitCode {
    install_panic_hook();
    // Each process worker costs four descriptors; a failure leaves the old limit.
    let _ = poolscope::sys::raise_fd_limit();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let with_settings = match cli_config::with_settings(argv.clone()) {
        Ok(a) => a,
        Err(e) => {
            let line = poolscope::outside_text::printable(&e.to_string()).into_owned();
            eprintln!(
                "poolscope: {}",
                poolscope::outside_text::clip(&line, MESSAGE_MAX)
            );
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(with_settings) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let watches = !matches!(
        cli.command,
        Some(Command::Worker(_) | Command::Guard(_) | Command::FloorWorker)
    );
    if watches {
        // Orphans of a program that killed its guard come back to poolscope, not to init.
        let _ = poolscope::source::guard::adopt_orphans();
    }
    let outcome = match &cli.command {
        Some(Command::Log(args)) => cmd::log::run(args),
        Some(Command::Snapshot(args)) => cmd::snapshot::run(args),
        Some(Command::Bench(args)) => cmd::bench::run(args),
        Some(Command::Worker(args)) => cmd::worker::run(args),
        Some(Command::Guard(a)) => {
            poolscope::source::guard::run(a.parent, a.fifo_dir.as_deref(), &a.program)
        }
        Some(Command::Completions { shell }) => completions(*shell),
        Some(Command::Man) => cmd::man::run(),
        Some(Command::Config { .. }) => cli_config::show(&argv),
        Some(Command::FloorWorker) => {
            poolscope::baseline::serve_floor(std::io::stdin().lock(), std::io::stdout().lock())
                .map_err(anyhow::Error::from)
        }
        None => cmd::dashboard::run(
            &cli.run,
            &cli.source,
            &cli.display,
            Duration::from_millis(cli.sample_ms),
        ),
    };
    // Whatever came back to poolscope goes with it, on every way out of a command.
    poolscope::source::guard::end_adopted();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Writes the completion script for `shell` to stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "poolscope", &mut out);
    std::io::stdout()
        .write_all(&out)
        .map_err(anyhow::Error::from)
}

/// A panic that is a bug of ours prints one line, not a backtrace over the user's screen;
/// the terminal guard and the task filter wrap this hook later.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if cmd::panic_expected() {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = cmd::clip(&msg, MESSAGE_MAX);
        eprintln!(
            "poolscope: internal error: {}{at}",
            cmd::printable(&line).replace('\n', " ")
        );
    }));
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
            // And its suggestion: `--worker` → "did you mean `--workers`?".
            let tip = rendered
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("tip: "))
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            let line = format!("{}{choices}{tip}", first.trim_start_matches("error: "));
            eprintln!("poolscope: {}", one_line(&line));
            ExitCode::from(2)
        }
    }
}

/// A message fit for one line of stderr: cut, control characters escaped.
fn one_line(message: &str) -> String {
    cmd::printable(&cmd::clip(message, MESSAGE_MAX)).into_owned()
}

/// One line on stderr and the exit code that fits the error.
fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(Interrupted(sig)) = e.downcast_ref::<Interrupted>() {
        eprintln!("poolscope: {e}");
        return ExitCode::from(128u8.saturating_add(u8::try_from(*sig).unwrap_or(0)));
    }
    if let Some(failed) = e.downcast_ref::<cmd::source::ProgramFailed>() {
        eprintln!("poolscope: {failed}");
        return ExitCode::from(failed.code());
    }
    let io_errors = || e.chain().filter_map(|c| c.downcast_ref::<std::io::Error>());
    // A reader that went away (`poolscope log | head`) is not an error worth a message.
    if io_errors().any(|io| io.kind() == ErrorKind::BrokenPipe) {
        return ExitCode::SUCCESS;
    }
    let mut message = format!("{e:#}");
    if io_errors().any(|io| io.raw_os_error() == Some(libc::EMFILE)) {
        message.push_str(" (raise the open-file limit with `ulimit -n`, or use fewer workers)");
    }
    eprintln!("poolscope: {}", one_line(&message));
    if e.chain()
        .any(|c| c.is::<ConfigError>() || c.is::<cmd::Usage>() || c.is::<ScenarioError>())
    {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
