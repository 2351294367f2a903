//! Sources other than the experiment, for every command: `-- PROGRAM [ARGS…]` (a program
//! watched live) and `--replay FILE` (a recording). Kept apart from the experiment's options
//! so the two grow without treading on each other.

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::cmd::fold::{STOP_LIMIT, fold_watch};
use crate::cmd::{TraceFile, Usage, trace_events};
use poolscope::event::{EventBatch, PoolEvent, RunSource, WorkerExit};
use poolscope::example_log::ExampleLog;
use poolscope::source::cluster::{ClusterKind, ClusterSpec};
use poolscope::source::kernel::attach::AttachSpec;
use poolscope::source::program::{self, ProgramEnd, ProgramSpec};
use poolscope::source::stream::Streamer;
use poolscope::source::{Format, ReadOptions, Recording, stream_file};
use poolscope::sys::mono_ns;

/// Where a run's events come from, other than the experiment.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Replay a recording instead of running the experiment: a poolscope trace or event
    /// recording, Chrome trace JSON (viztracer, py-spy, tracing-chrome, `ray timeline`), a
    /// Dask task stream (JSON of `get_task_stream().data`), or a GNU parallel `--joblog`
    /// (its job slots are reconstructed as parallel hands `{%}` out).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// The recording's format (`log --format` is the output's).
    #[arg(
        id = "replay_format",
        value_name = "FORMAT",
        long = "replay-format",
        value_enum,
        default_value_t = FormatArg::Auto,
        requires = "replay"
    )]
    pub format: FormatArg,
    /// Which spans of a Chrome trace are tasks: the outermost ones whose name matches REGEX
    /// (default: what the trace's producer runs as tasks).
    #[arg(long, value_name = "REGEX", requires = "replay")]
    pub task: Option<String>,
    /// Show the watched program's task arguments (`blocks(3)`); left out by default because
    /// they can hold secrets.
    #[arg(long)]
    pub args: bool,
    /// Watch a process started elsewhere, its threads and the processes it starts, from
    /// /proc (as `top -H -p` does: no signal, no stop, no slowdown): one lane per thread or
    /// child process, showing whether it ran, waited for a CPU or slept.
    #[arg(long, value_name = "PID", conflicts_with_all = ["replay", "program"],
        value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
    /// Watch for at most this many seconds (a live source: `--pid`, `--dask`, `--ray`; a
    /// cluster runs on, so `log` and `snapshot` of one need it).
    #[arg(long = "for", value_name = "SECONDS", value_parser = parse_seconds)]
    pub for_secs: Option<std::time::Duration>,
    /// How often a watched program's or `--pid`'s threads and processes are sampled from
    /// /proc, in milliseconds (0: not at all, for a program).
    #[arg(long, value_name = "MS", default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub state_ms: u64,
    /// Watch this program instead of running the experiment: `poolscope -- python3 app.py`.
    /// Python's executors are watched with no change to the program.
    #[arg(last = true, value_name = "PROGRAM", conflicts_with_all = ["replay", "dask", "ray"])]
    pub program: Vec<OsString>,
    /// Watch a running Dask cluster: its scheduler's address (`tcp://HOST:8786`). Every task
    /// that runs from now on, a lane per worker thread, grouped by host and worker.
    #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["replay", "ray", "pid"])]
    pub dask: Option<String>,
    /// Watch a running Ray cluster: its head's address (`HOST:6379`), or `auto` for the one
    /// on this machine. A lane per worker process, grouped by node.
    #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["replay", "pid"])]
    pub ray: Option<String>,
    /// The Python that runs the cluster watcher; it needs the `distributed` (Dask) or `ray`
    /// package, of a version that can talk to the cluster.
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub python: OsString,
}

/// `--for SECONDS`: a positive number of seconds, at most 30 days.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 30.0 * 86_400.0) {
        return Err(format!("{s} is not between 0 and 30 days"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `--replay-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Tell from the file's first bytes.
    #[default]
    Auto,
    /// poolscope's own `--trace` or an event-protocol recording.
    Poolscope,
    /// Chrome Trace Event Format JSON.
    Chrome,
    /// A Dask task stream.
    Dask,
    /// A GNU parallel joblog.
    Joblog,
    /// speedscope JSON (py-spy, pyinstrument).
    Speedscope,
    /// A Perfetto protobuf trace.
    Perfetto,
}

impl FormatArg {
    fn format(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Poolscope => Some(Format::Poolscope),
            FormatArg::Chrome => Some(Format::Chrome),
            FormatArg::Dask => Some(Format::Dask),
            FormatArg::Joblog => Some(Format::Joblog),
            FormatArg::Speedscope => Some(Format::Speedscope),
            FormatArg::Perfetto => Some(Format::Perfetto),
        }
    }
}

/// The source a command was asked to use.
pub enum Chosen {
    /// A recording.
    Replay(PathBuf),
    /// A program.
    Program(ProgramSpec),
    /// A running Dask or Ray cluster.
    Cluster(ClusterSpec),
    /// A running process (`--pid`).
    Attach(AttachSpec),
}

impl SourceArgs {
    /// Notes what this source reads, so that nothing poolscope writes lands on it: the
    /// recording, or the program and the files it is given. Called before any output opens.
    pub fn note_inputs(&self) {
        let program_files = self.program.iter().map(Path::new);
        for input in self
            .replay
            .iter()
            .map(PathBuf::as_path)
            .chain(program_files)
        {
            poolscope::output::note_input(input);
        }
        if let Some(program) = self.program.first() {
            poolscope::output::note_program(program);
        }
    }

    /// The source chosen, if not the experiment; experiment options given with one are a
    /// usage error, so nobody believes `--workers 8` changed a recording.
    pub fn chosen(&self, run: &RunArgs, capture_output: bool) -> anyhow::Result<Option<Chosen>> {
        self.note_inputs();
        let chosen = if let Some(spec) = self.cluster()? {
            Chosen::Cluster(spec)
        } else if let Some(c) = self.replay_or_program(capture_output)? {
            c
        } else {
            return Ok(None);
        };
        if let Some(option) = experiment_option(run) {
            let what = match chosen {
                Chosen::Replay(_) => "a replay",
                Chosen::Program(_) => "an external program",
                Chosen::Cluster(_) => "a cluster",
                Chosen::Attach(_) => "a running process",
            };
            return Err(Usage(format!("{option} does not apply to {what}")).into());
        }
        Ok(Some(chosen))
    }

    /// `--dask`/`--ray`, checked.
    fn cluster(&self) -> anyhow::Result<Option<ClusterSpec>> {
        let (kind, address) = match (&self.dask, &self.ray) {
            (Some(a), None) => (ClusterKind::Dask, a),
            (None, Some(a)) => (ClusterKind::Ray, a),
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(Usage("--dask and --ray cannot be watched at once".into()).into());
            }
        };
        let spec = ClusterSpec {
            kind,
            address: address.clone(),
            python: self.python.clone(),
            duration: self.for_secs,
            guard: Some(super::worker_exe()?),
        };
        spec.check().map_err(|e| Usage(e.to_string()))?;
        Ok(Some(spec))
    }

    fn replay_or_program(&self, capture_output: bool) -> anyhow::Result<Option<Chosen>> {
        let period = std::time::Duration::from_millis(self.state_ms);
        if self.for_secs.is_some() && self.pid.is_none() {
            return Err(
                Usage("--for applies to a live source: --pid, --dask or --ray".into()).into(),
            );
        }
        let chosen = match (&self.replay, self.program.is_empty()) {
            _ if self.pid.is_some() => Chosen::Attach(AttachSpec {
                pid: self.pid.unwrap_or_default(),
                period: period.max(poolscope::source::kernel::MIN_PERIOD),
                duration: self.for_secs,
            }),
            (Some(path), true) => Chosen::Replay(path.clone()),
            (None, false) => Chosen::Program(ProgramSpec {
                argv: self.program.clone(),
                show_args: self.args,
                capture_output,
                kernel_period: (!period.is_zero())
                    .then(|| period.max(poolscope::source::kernel::MIN_PERIOD)),
                stdout_to_stderr: false,
                title: None,
                guard: Some(super::worker_exe()?),
            }),
            (None, true) => return Ok(None),
            (Some(_), false) => {
                return Err(
                    Usage("--replay and a program cannot be watched at once".into()).into(),
                );
            }
        };
        Ok(Some(chosen))
    }
}

/// The first experiment-only option given, if any (`--trace` serves every source).
fn experiment_option(run: &RunArgs) -> Option<String> {
    run.given_options().into_iter().find(|o| o != "--trace")
}

/// `--task REGEX`, compiled.
fn task_regex(args: &SourceArgs) -> anyhow::Result<Option<regex_lite::Regex>> {
    args.task
        .as_ref()
        .map(|re| {
            regex_lite::Regex::new(re)
                .map_err(|e| Usage(format!("--task {re:?} is not a valid pattern: {e}")).into())
        })
        .transpose()
}

/// One line on stderr of what the reader refused, and whether the file was cut off.
fn report(file: &str, rec: &Recording) {
    let stats = &rec.stats;
    let refused = stats.rejected + stats.bad_times;
    if refused > 0 {
        eprintln!(
            "poolscope: {file}: {refused} records refused{}",
            reason(stats.first_problem.as_deref())
        );
    }
    if stats.cut_off {
        eprintln!("poolscope: {file}: the file is cut off; replaying what it holds");
    }
    if stats.dropped_by_writer > 0 {
        eprintln!(
            "poolscope: {file}: its writer dropped {} events (its channel was full): the \
             recording is incomplete",
            stats.dropped_by_writer
        );
    }
}

/// A data error, not a usage error: the command line was right, the file holds no task.
fn no_tasks(file: &str, args: &SourceArgs, rec: &Recording) -> anyhow::Error {
    let hint = match (args.task.is_some(), rec.format) {
        (true, _) => " matching --task",
        (false, Some(Format::Chrome)) => " (choose them with --task REGEX)",
        (false, _) => "",
    };
    anyhow::anyhow!("{file}: no tasks found{hint}")
}

/// ` (the first problem)`, or nothing when no reason is known: never an empty `()`.
fn reason(first: Option<&str>) -> String {
    match first.map(str::trim) {
        Some(r) if !r.is_empty() => format!(" ({r})"),
        _ => String::new(),
    }
}

/// What a replay read, for the caller's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Replayed {
    /// Records (trace events, lines) the file held.
    pub records: u64,
    /// Events handed on.
    pub events: u64,
}

/// Replays `--replay FILE` as run 1, handing each event to `each` in time order; after
/// the first error `each` returns, the rest is read but not handed on. Every format is
/// replayed as it is read, in bounded memory.
pub fn replay_each(
    path: &Path,
    args: &SourceArgs,
    each: &mut dyn FnMut(&PoolEvent) -> anyhow::Result<()>,
) -> anyhow::Result<Replayed> {
    let filter = task_regex(args)?;
    let accept = |name: &str| filter.as_ref().is_some_and(|re| re.is_match(name));
    // The run is named with its format as soon as the reader knows it.
    let known = std::cell::Cell::new(None);
    let tell = |f: Format| known.set(Some(f));
    let opts = ReadOptions {
        format: args.format.format(),
        task_filter: filter.as_ref().map(|_| &accept as &dyn Fn(&str) -> bool),
        on_format: Some(&tell),
    };
    let file = path.display().to_string();
    let mut failed: Option<anyhow::Error> = None;
    let mut events = 0u64;
    let mut hand_on = |ev: PoolEvent| {
        if failed.is_none() {
            match each(&ev) {
                Ok(()) => events += 1,
                Err(e) => failed = Some(e),
            }
        }
    };
    let source = RunSource::Replay {
        file: file.clone(),
        format: "auto".to_string(),
        producer: String::new(),
    };
    let mut streamer = Streamer::new(1, mono_ns(), source, std::process::id(), &mut hand_on);
    let rec = stream_file(path, &opts, &mut |ev| {
        if let Some(f) = known.take() {
            streamer.name_format(f.name());
        }
        streamer.push(ev);
    })?;
    report(&file, &rec);
    if !streamer.began() {
        return Err(no_tasks(&file, args, &rec));
    }
    streamer.finish();
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Replayed {
        records: rec.stats.records,
        events,
    })
}

/// `log --replay`: the example-style log of a recording, in time order.
pub fn log_replay(
    path: &Path,
    args: &SourceArgs,
    mut trace: Option<TraceFile>,
    format: crate::cli::LogFormat,
) -> anyhow::Result<()> {
    use crate::cli::LogFormat;
    use poolscope::task_log::{RecordFormat, TaskRecords};
    let mut log = ExampleLog::new();
    let mut records = match format {
        LogFormat::Text => None,
        LogFormat::Jsonl => Some(TaskRecords::new(RecordFormat::Jsonl)),
        LogFormat::Csv => Some(TaskRecords::new(RecordFormat::Csv)),
    };
    let mut lines = Vec::new();
    let mut text = String::new();
    let mut out = BufWriter::new(std::io::stdout());
    if let Some(r) = records.as_mut() {
        r.header(&mut text);
    }
    replay_each(path, args, &mut |ev| {
        trace_events(&mut trace, std::iter::once(ev))?;
        if let Some(r) = records.as_mut() {
            r.apply(ev, &mut text);
            out.write_all(text.as_bytes())
                .context("cannot write to stdout")?;
            text.clear();
            return Ok(());
        }
        log.apply(ev, &mut lines);
        for line in lines.drain(..) {
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
        Ok(())
    })?;
    out.flush().context("cannot write to stdout")?;
    super::close_trace(trace)
}

/// A watched program ended badly: poolscope exits as the program did.
#[derive(Debug, thiserror::Error)]
#[error("the program ({command}) ended with {exit}")]
pub struct ProgramFailed {
    /// The program.
    pub command: String,
    /// How it ended.
    pub exit: WorkerExit,
}

impl ProgramFailed {
    /// The exit code that passes the program's on: its own, or 128 + the signal.
    pub fn code(&self) -> u8 {
        match self.exit {
            WorkerExit::Code(c) => u8::try_from(c & 0xff).unwrap_or(1).max(1),
            WorkerExit::Signal(s) => 128u8.saturating_add(u8::try_from(s).unwrap_or(0)),
            _ => 1,
        }
    }
}

/// Runs `spec` to its end, sending its events to `tx`; stops it when `cancel` fires.
pub async fn watch(
    spec: ProgramSpec,
    cancel: CancellationToken,
    tx: mpsc::Sender<EventBatch>,
) -> anyhow::Result<ProgramEnd> {
    program::watch(&spec, 1, cancel, tx)
        .await
        .context("cannot watch the program")
}

/// The outcome of a watched program as poolscope's: `Ok` if it exited 0; a one-line note on
/// stderr of what the reader refused.
pub fn program_outcome(spec: &ProgramSpec, end: &ProgramEnd) -> anyhow::Result<()> {
    let (refused, first) = end.refusals();
    if refused > 0 {
        eprintln!("poolscope: the program's events: {refused} refused ({first})");
    }
    if end.stats.dropped_by_writer > 0 {
        eprintln!(
            "poolscope: the program dropped {} events because poolscope fell behind",
            end.stats.dropped_by_writer
        );
    }
    // A program that failed is told by its failure; one that ran well and showed nothing
    // is told why.
    if end.tasks == 0 && end.exit.is_none_or(|s| s.success()) {
        eprintln!("poolscope: {}", program::NO_TASKS);
    }
    if end.guard_killed {
        eprintln!("{}", program::GUARD_KILLED);
    }
    let Some(status) = end.exit else {
        return Ok(());
    };
    let exit = program::exit_of(status);
    if exit.is_clean() {
        return Ok(());
    }
    Err(ProgramFailed {
        command: spec.command(),
        exit,
    }
    .into())
}

/// `poolscope log` of a recording or a program.
pub fn log(args: &crate::cli::LogArgs, chosen: Chosen) -> anyhow::Result<()> {
    let trace = super::open_trace(args.run.trace.as_deref())?;
    match chosen {
        Chosen::Replay(path) => log_replay(&path, &args.source, trace, args.format),
        Chosen::Program(mut spec) => {
            // Records are for machines: the program's own stdout must not mix into them.
            spec.stdout_to_stderr = args.format != crate::cli::LogFormat::Text;
            log_program(spec, trace, super::log::Printer::new(args.format))
        }
        Chosen::Cluster(spec) => {
            super::cluster::log(&spec, trace, super::log::Printer::new(args.format))
        }
        Chosen::Attach(spec) => super::attach::log(&spec, trace, args.format),
    }
}

/// `log -- PROGRAM`: the program's output passes through; the log rebuilt from its events
/// is printed as they come.
fn log_program(
    spec: ProgramSpec,
    trace: Option<TraceFile>,
    format: super::log::Printer,
) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let mut signals =
            crate::signals::Signals::new().context("cannot install signal handlers")?;
        let (tx, rx) = mpsc::channel(64);
        let output = super::log::Output::spawn().context("cannot start the stdout writer")?;
        let discard = CancellationToken::new();
        let printer = tokio::spawn(super::log::print_log(
            rx,
            trace,
            output,
            format,
            discard.clone(),
        ));
        let cancel = CancellationToken::new();
        let watch = watch(spec.clone(), cancel.clone(), tx);
        tokio::pin!(watch);
        let end = tokio::select! {
            end = &mut watch => end,
            sig = signals.recv() => {
                // The program's whole group is killed; the printer only drains from now on.
                discard.cancel();
                cancel.cancel();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut watch).await;
                return Err(crate::signals::Interrupted(sig).into());
            }
        };
        tokio::select! {
            printed = printer => printed.context("log printer")??,
            sig = signals.recv() => return Err(crate::signals::Interrupted(sig).into()),
        }
        program_outcome(&spec, &end?)
    });
    rt.shutdown_background();
    result
}

/// `snapshot` of a recording, a program or a process: the model at the run's end, and the
/// program's outcome (its failure is passed on after the frame is printed).
pub fn snapshot_model(
    args: &crate::cli::SnapshotArgs,
    chosen: Chosen,
) -> anyhow::Result<(poolscope::model::Model, anyhow::Result<()>)> {
    let mut trace = super::open_trace(args.run.trace.as_deref())?;
    let mut model = poolscope::model::Model::new();
    match chosen {
        Chosen::Replay(path) => replay_into(&path, &args.source, &mut model, &mut trace)?,
        Chosen::Cluster(spec) => {
            let model = super::cluster::snapshot(&spec, &mut trace)?;
            super::close_trace(trace)?;
            return Ok((model, Ok(())));
        }
        Chosen::Attach(spec) => {
            let model = super::attach::watch_model(&spec, &mut trace)?;
            super::close_trace(trace)?;
            return Ok((model, Ok(())));
        }
        Chosen::Program(spec) => {
            let end = watch_into(spec.clone(), &mut model, &mut trace)?;
            super::close_trace(trace)?;
            let outcome = program_outcome(&spec, &end);
            return Ok((model, outcome));
        }
    }
    super::close_trace(trace)?;
    Ok((model, Ok(())))
}

/// Replays `path` into `model` (and the trace) as it is read.
fn replay_into(
    path: &Path,
    args: &SourceArgs,
    model: &mut poolscope::model::Model,
    trace: &mut Option<TraceFile>,
) -> anyhow::Result<()> {
    replay_each(path, args, &mut |ev| {
        trace_events(trace, std::iter::once(ev))?;
        model.apply(ev);
        Ok(())
    })?;
    Ok(())
}

/// Runs a program to its end, applying its events to `model` (and the trace).
fn watch_into(
    spec: ProgramSpec,
    model: &mut poolscope::model::Model,
    trace: &mut Option<TraceFile>,
) -> anyhow::Result<ProgramEnd> {
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let mut signals = crate::signals::Signals::new()?;
        let (tx, mut rx) = mpsc::channel::<EventBatch>(64);
        let cancel = CancellationToken::new();
        let watch = tokio::spawn(watch(spec, cancel.clone(), tx));
        let folded = fold_watch(&mut rx, &mut signals, &cancel, model, trace).await?;
        if let Some(sig) = folded {
            let _ = tokio::time::timeout(STOP_LIMIT, watch).await;
            return Err(crate::signals::Interrupted(sig).into());
        }
        watch.await.context("program watch")?
    });
    rt.shutdown_background();
    result
}

/// What the dashboard is to watch: the experiment, a program, or a recording, read here
/// (into the trace, which it then closes) so that its faults are told before the screen
/// changes.
pub fn session_source(
    run: &RunArgs,
    args: &SourceArgs,
    trace: &mut Option<TraceFile>,
) -> anyhow::Result<poolscope::dashboard::SessionSource> {
    use poolscope::dashboard::SessionSource;
    Ok(match args.chosen(run, true)? {
        None => SessionSource::Experiment,
        Some(Chosen::Program(spec)) => SessionSource::Program(spec),
        Some(Chosen::Cluster(spec)) => SessionSource::Program(spec.program()),
        Some(Chosen::Attach(spec)) => {
            // A PID that cannot be watched is one line, before the screen changes.
            poolscope::source::kernel::attach::open(spec.pid)?;
            SessionSource::Attach(spec)
        }
        Some(Chosen::Replay(path)) => {
            // Streamed, keeping each task in a few tens of bytes to zoom into any part.
            let mut model = poolscope::model::Model::new();
            model.keep_every_span();
            replay_into(&path, args, &mut model, trace)?;
            super::close_trace(trace.take())?;
            SessionSource::Replay(Box::new(model))
        }
    })
}
