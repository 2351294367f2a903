//! The command line: subcommands and the options every run shares.
//!
//! The doc comments here are the `--help` text, read in a terminal where Markdown
//! backticks would show as they are typed.
#![allow(clippy::doc_markdown)]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

use poolscope::config::{MAX_TASK_MS, MAX_TASKS, MAX_WORKERS, Mode, RunConfig};
use poolscope::pool::child::Misbehave;
use poolscope::scenario;
use poolscope::term::{ColorChoice, locale_is_utf8};
use poolscope::view::Theme;
use poolscope::workload::Workload;

/// Watch a worker pool work: blocking tasks on a thread pool or a process pool, one live lane
/// per worker thread or PID.
#[derive(Debug, Parser)]
#[command(name = "poolscope", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Headless commands; without one, the interactive dashboard starts.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the dashboard's first run.
    #[command(flatten)]
    pub run: RunArgs,
    /// A program or a recording to watch instead of the experiment.
    #[command(flatten)]
    pub source: crate::cmd::source::SourceArgs,
    /// How often the dashboard samples the workers' CPU and memory, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(250..=60_000))]
    pub sample_ms: u64,
    /// How the dashboard looks.
    #[command(flatten)]
    pub display: DisplayArgs,
    /// Read settings from FILE instead of $XDG_CONFIG_HOME/poolscope/config.toml (else
    /// ~/.config/poolscope/config.toml); its keys are the long option names.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read no settings file.
    #[arg(long, global = true, conflicts_with = "config")]
    pub no_config: bool,
}

/// How a screen is drawn: colours and characters.
#[derive(Debug, Clone, Args)]
pub struct DisplayArgs {
    /// Colours for a dark or a light terminal background, or none (mono).
    #[arg(long, value_enum, default_value_t = ThemeName::Dark)]
    pub theme: ThemeName,
    /// Draw with ASCII characters only [default: when the locale (LC_ALL, LC_CTYPE, LANG)
    /// is not UTF-8].
    #[arg(long)]
    pub ascii: bool,
    /// When to use colour; `auto` honours NO_COLOR (and for text, whether it goes to a
    /// terminal).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// The themes `--theme` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ThemeName {
    /// For a dark terminal background.
    Dark,
    /// For a light terminal background.
    Light,
    /// No colour; meaning by weight and reversal.
    Mono,
}

impl DisplayArgs {
    /// Whether output that is (`terminal`) or is not a terminal gets colour.
    pub fn colours(&self, terminal: bool) -> bool {
        let no_color = std::env::var("NO_COLOR").ok();
        self.color.colour(no_color.as_deref(), terminal)
    }

    /// The theme and whether to draw in ASCII, for output that is (`terminal`) or is not a
    /// terminal, given the environment.
    pub fn look(&self, terminal: bool) -> (Theme, bool) {
        let env = |name: &str| std::env::var(name).ok();
        let no_color = env("NO_COLOR");
        let theme = if self.color.colour(no_color.as_deref(), terminal) {
            match self.theme {
                ThemeName::Dark => Theme::dark(),
                ThemeName::Light => Theme::light(),
                ThemeName::Mono => Theme::mono(),
            }
        } else {
            Theme::mono()
        };
        (theme, self.ascii || !locale_is_utf8(env))
    }
}

/// poolscope's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the example-style log of the experiment, a program (`-- PROGRAM`) or a recording.
    Log(LogArgs),
    /// Print the dashboard's final frame, as text, of the experiment, a program or a recording.
    Snapshot(SnapshotArgs),
    /// Measure the pools' throughput on instant tasks; one JSON line per run, a summary on stderr.
    Bench(BenchArgs),
    /// Print a shell completion script, e.g. `poolscope completions bash > ~/.local/share/bash-completion/completions/poolscope`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `poolscope man > poolscope.1; man ./poolscope.1`.
    Man,
    /// Print where the settings file is and the settings in effect, as the file would hold them
    /// (dashboard options after it are applied too: `poolscope config -w 2`).
    Config {
        /// Options of the dashboard, as they would be given to it.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        options: Vec<OsString>,
    },
    /// The process-pool worker: speaks the wire protocol on stdin/stdout (internal).
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// The raw floor's child for `bench --compare` (internal).
    #[command(hide = true)]
    FloorWorker,
    /// A watched program's guard: starts it and ends its whole tree when poolscope goes
    /// (internal).
    #[command(hide = true)]
    Guard(GuardArgs),
}

/// Options of the hidden `poolscope guard`.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// poolscope's pid: the guard ends the tree once its parent is no longer this.
    #[arg(long)]
    pub parent: u32,
    /// The event channel's private directory, removed when the guard ends.
    #[arg(long)]
    pub fifo_dir: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub program: Vec<std::ffi::OsString>,
}

/// Options of `poolscope log`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when the run completed, even if some tasks failed \
(failures are in the log); 1 on a runtime error, or with --fail-on-error when a task \
failed; 2 on a usage error; 128+n after signal n."
)]
pub struct LogArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunArgs,
    /// A program or a recording to watch instead of the experiment.
    #[command(flatten)]
    pub source: crate::cmd::source::SourceArgs,
    /// `text`: the example-style log; `jsonl`: one JSON object per task (task, worker, pid, tid,
    /// start_s, end_s, outcome, result or error); `csv`: the same columns, with a header.
    /// With `jsonl` or `csv`, stdout carries the records only: a watched program's own stdout
    /// goes to stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
    /// Exit with status 1 if any task failed (by default failed tasks are only logged).
    #[arg(long)]
    pub fail_on_error: bool,
}

/// The formats `log --format` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// The example-style log, one line per record.
    Text,
    /// One JSON object per task.
    Jsonl,
    /// One CSV row per task, with a header.
    Csv,
}

/// Options of `poolscope snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunArgs,
    /// A program or a recording to watch instead of the experiment.
    #[command(flatten)]
    pub source: crate::cmd::source::SourceArgs,
    /// Width of the frame, in columns.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u16).range(20..=1000))]
    pub width: u16,
    /// Height of the frame, in rows.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u16).range(5..=500))]
    pub height: u16,
    /// Write the frame as a coloured SVG picture to FILE, not as text (`-`: to stdout).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Run the experiment in the other mode as well, so the comparison panel is filled.
    #[arg(long)]
    pub both: bool,
    /// A picture to share: the frame under this title, with a colour legend instead of the
    /// key hints (text and SVG alike).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// How the frame is drawn.
    #[command(flatten)]
    pub display: DisplayArgs,
}

/// Options of `poolscope bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "With --observer: runs the same work once watched, by the real \
dashboard loop drawing into an off-screen 120x40 terminal at about 30 fps, and once \
headless, and recomputes each run's busy % and mean and p99 hand-off from its own events \
(busy: time in tasks over worker time from the first task's start to the last one's end; \
hand-off: a worker's idle gap before a task that was already queued). One JSON line per \
run, then a summary line with the medians and the watched/headless ratios. Defaults \
then: --mode process --workers 3 --tasks 120 --workload mixed --task-ms 50."
)]
pub struct BenchArgs {
    /// Thread pool or process pool [default: thread; with --observer: process].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Number of pool workers [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS as i64))]
    pub workers: Option<u32>,
    /// Number of tasks per run [default: 20000; with --observer: 120].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TASKS))]
    pub tasks: Option<u64>,
    /// What each task does [default: noop; with --observer: mixed].
    #[arg(long, value_enum)]
    pub workload: Option<Workload>,
    /// How long each task works, in milliseconds [default: 0; with --observer: 50].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_TASK_MS))]
    pub task_ms: Option<u64>,
    /// How many runs (with --observer: pairs of runs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Also run the same work through a raw floor (plain channels or pipes) and give the ratio.
    #[arg(long, conflicts_with = "observer")]
    pub compare: bool,
    /// Apply every event to the dashboard's model, as the dashboard does, instead of
    /// only counting them.
    #[arg(long, conflicts_with = "observer")]
    pub model: bool,
    /// Measure the observer effect: the same run watched by the dashboard and headless.
    #[arg(long)]
    pub observer: bool,
    /// Time replaying this recording (as `log --replay FILE --format jsonl`, or into the
    /// model with --model) against merely reading it; one run per process, as peak RSS is
    /// the process's.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["observer", "compare", "repeat"])]
    pub replay: Option<PathBuf>,
    /// With --replay: into the model keeping every span, as the dashboard takes a replay
    /// (to zoom into any part of it).
    #[arg(long, requires = "replay", conflicts_with = "model")]
    pub dashboard: bool,
    /// Also write every run and the summary as one JSON document to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "observer")]
    pub export_json: Option<PathBuf>,
    /// Also write the summary as a Markdown table to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "observer")]
    pub export_markdown: Option<PathBuf>,
}

/// Options of the hidden `poolscope worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Fault drill: break this way once the first task has arrived.
    #[arg(long, value_enum, hide = true)]
    pub misbehave: Option<Misbehave>,
}

/// The options shared by every command that runs the experiment. Each setting left out
/// comes from `--scenario FILE` if given, else from the default shown. The settings
/// themselves are [`RunConfig`]'s fields: clap reads them from there, so they are written
/// once.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// Read the run's settings from a TOML scenario file; options given here win over it.
    pub scenario: Option<PathBuf>,
    /// Write the run as a Chrome trace (JSON; opens in Perfetto and chrome://tracing).
    pub trace: Option<PathBuf>,
    /// The command line as parsed, for the settings given on it.
    given: ArgMatches,
}

/// `--scenario` and `--trace`, the options of a run that are not settings of it.
#[derive(Debug, Clone, Args)]
struct RunFiles {
    /// Read the run's settings from a TOML scenario file; options given here win over it.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Write the run as a Chrome trace (JSON; opens in Perfetto and chrome://tracing).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

impl Args for RunArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunConfig::augment_args(RunFiles::augment_args(cmd))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for RunArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let files = RunFiles::from_arg_matches(matches)?;
        Ok(RunArgs {
            scenario: files.scenario,
            trace: files.trace,
            given: matches.clone(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl RunArgs {
    /// The run these options describe: defaults, then the scenario file, then the options.
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        let mut config = match &self.scenario {
            Some(path) => {
                poolscope::output::note_input(path);
                scenario::load(path)?
            }
            None => RunConfig::default(),
        };
        // Only the settings given on the command line are in the matches (none has a clap
        // default), so only they are laid over the file's.
        config.update_from_arg_matches(&self.given)?;
        config.validate()?;
        Ok(config)
    }

    /// The settings and files given on the command line, as their options (`--workers`).
    pub fn given_options(&self) -> Vec<String> {
        let settings = RunFiles::augment_args(RunConfig::augment_args(clap::Command::new("run")));
        settings
            .get_arguments()
            .filter(|a| {
                self.given.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine)
            })
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect()
    }
}
