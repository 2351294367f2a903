//! A program watched live: started as a child in its own process group with the event
//! channel in `POOLSCOPE_EVENTS` and the Python probe first on `PYTHONPATH`; its events are
//! decoded as they come and turned into one run's [`PoolEvent`]s.
//!
//! No process of the program outlives the watch: the whole group is killed when the run is
//! cancelled, and when the [`ProgramGuard`] is dropped (poolscope leaving on any path).

mod reader;
mod spawn;

use reader::spawn_reader;
pub use spawn::ProgramGuard;
use spawn::spawn;

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::adapt::{Adapter, external_config, run_started};
use super::channel::EventFifo;
use super::program_output::OutputChunk;
use super::{ReadStats, SourceError, SourceEvent};
use crate::event::{EventBatch, EventKind, PoolEvent, RunId, RunSource, WorkerExit};
use crate::sys::mono_ns;

/// How long the event stream may stay open after the program exited (a process it left
/// behind holding the channel) before the run is called over.
const DRAIN: Duration = Duration::from_secs(2);
/// Most messages gathered into one batch of events.
const BATCH: usize = 256;

/// How to start the program.
#[derive(Clone, Debug)]
pub struct ProgramSpec {
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// Let the probe show task arguments (`--args`).
    pub show_args: bool,
    /// Capture stdout and stderr as `ProgramOutput` events (the dashboard, a snapshot);
    /// otherwise they pass through to poolscope's own.
    pub capture_output: bool,
    /// Sample the program's threads and child processes from `/proc` this often
    /// (`source::kernel`); `None`: only its events make lanes.
    pub kernel_period: Option<Duration>,
    /// Send the program's stdout to poolscope's stderr (when not captured), so poolscope's
    /// stdout carries its own records only (`log --format jsonl|csv`).
    pub stdout_to_stderr: bool,
    /// The poolscope binary to run as the program's guard (`poolscope guard`), which ends
    /// the program's whole tree even when poolscope is killed; `None` starts the program
    /// directly (a library user without the binary).
    pub guard: Option<std::path::PathBuf>,
    /// What the run is called when the command line would not say it (a cluster's watcher).
    pub title: Option<String>,
}

impl ProgramSpec {
    /// The command line as the user typed it, for titles; an argument of many lines (a
    /// script given with `-c`) is shown as `…`.
    pub fn command(&self) -> String {
        if let Some(title) = &self.title {
            return title.clone();
        }
        self.argv
            .iter()
            .map(|a| a.to_string_lossy())
            .map(|a| if a.contains('\n') { "…".into() } else { a })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a watched program's run ended.
#[derive(Debug)]
pub struct ProgramEnd {
    /// The program's exit, once it has exited (`None`: it was cancelled and killed).
    pub exit: Option<ExitStatus>,
    /// What the event reader refused or did not understand.
    pub stats: ReadStats,
    /// Events refused after decoding (a task ending twice…).
    pub refused: u64,
    /// Tasks the program reported (0: it uses no pool poolscope watches).
    pub tasks: u64,
    /// Why the first event was refused, reader's or adapter's.
    pub refusal: Option<String>,
    /// The program killed its guard: the exit is the guard's, not the program's.
    pub guard_killed: bool,
}

impl ProgramEnd {
    /// Every event refused, and why the first was.
    pub fn refusals(&self) -> (u64, String) {
        refusals(&self.stats, self.refused, self.refusal.as_deref())
    }
}

/// How many events were refused and why the first was, never an empty reason.
fn refusals(stats: &ReadStats, refused_here: u64, why_here: Option<&str>) -> (u64, String) {
    let count = stats.rejected + stats.bad_times + refused_here;
    let why = stats
        .first_problem
        .as_deref()
        .or(why_here)
        .unwrap_or("no reason recorded");
    (count, why.to_string())
}

/// What poolscope says of a program that reported no task.
pub const NO_TASKS: &str = "no tasks seen: poolscope watches concurrent.futures, \
    multiprocessing, joblib and Dask in Python programs; see --help";

/// Why a program could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The event channel could not be made.
    #[error("cannot make the event channel: {0}")]
    Channel(std::io::Error),
    /// The program could not be started.
    #[error("cannot start {program}: {cause}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("cannot wait for the program: {0}")]
    Wait(std::io::Error),
    /// The program's event stream is not the protocol.
    #[error(transparent)]
    Stream(#[from] SourceError),
    /// The consumer of the events went away.
    #[error("the event consumer went away")]
    Closed,
}

/// How long a guard asked to end the tree may take before its group is killed outright.
const END_LIMIT: Duration = Duration::from_secs(5);

/// What the reader threads send.
enum Msg {
    Header(Option<u64>),
    Events(Vec<SourceEvent>),
    Output(OutputChunk),
    StreamEnded(Result<ReadStats, SourceError>),
}

/// Runs the program to its end (or until `cancel`), sending run `run`'s events to `out`.
pub async fn watch(
    spec: &ProgramSpec,
    run: RunId,
    cancel: CancellationToken,
    out: mpsc::Sender<EventBatch>,
) -> Result<ProgramEnd, ProgramError> {
    let mut fifo = EventFifo::create(None).map_err(ProgramError::Channel)?;
    let (tx, mut rx) = mpsc::channel::<Msg>(4096);
    let reader = fifo
        .take_reader()
        .ok_or_else(|| ProgramError::Channel(std::io::Error::other("no reader")))?;
    spawn_reader(reader, tx.clone());
    let origin_ns = mono_ns();
    let (mut child, mut guard) = spawn(spec, &fifo, &tx)?;
    drop(tx);
    let spawned = child.id().unwrap_or(0);
    let pid = program_pid(spec, spawned).await;
    let config = external_config(None, 0, false);
    let source = RunSource::Program {
        command: spec.command(),
    };
    send(&out, vec![run_started(run, config, pid, origin_ns, source)]).await?;
    // The program may be gone already (a `true`): then its events alone tell its story.
    let sampler = spec.kernel_period.and_then(|period| {
        let tree = super::kernel::Tree::attach(pid).ok()?;
        let target = super::kernel::Target {
            run,
            origin_ns,
            period,
        };
        super::kernel::KernelSampler::spawn(tree, target, out.clone()).ok()
    });
    let mut state = Watch {
        run,
        adapter: Adapter::new(run, Duration::ZERO),
        origin_ns,
        out,
        stats: None,
        guarded: spec.guard.is_some(),
        guard_killed: false,
        exited_at: None,
    };
    let exit = state
        .pump(&mut rx, &mut child, &mut guard, &mut fifo, &cancel)
        .await?;
    let sampled = sampler.is_some();
    if let Some(sampler) = sampler {
        // Its last events are in before the run's end.
        sampler.stop().await;
    }
    let mut last = Vec::new();
    let why = match exit.map(exit_of) {
        Some(WorkerExit::Clean) => "the program exited while it ran".to_owned(),
        Some(how) => format!("the program ended while it ran ({how})"),
        None => "the program was stopped while it ran".to_owned(),
    };
    // With events lost, a task not seen to end after a clean exit most likely did end: it
    // is not called failed (nor one never seen to start never run: Adapter::finish); the
    // header says how many events were lost.
    let clean = exit.is_some_and(|s| s.success());
    if !(state.adapter.lost() && clean) {
        state.adapter.fail_running(&why, state.exited_at, &mut last);
    }
    let mut end = state.adapter.finish();
    if sampled {
        // The kernel's lanes lasted to the end, whatever the program's events said.
        end.at = end.at.max(state.since_origin());
    }
    last.push(end);
    let tasks = state.adapter.tasks_seen();
    let why_here = state.adapter.first_refusal;
    let notes = stream_note(state.stats.as_ref(), state.adapter.refused, why_here)
        .into_iter()
        .chain((tasks == 0).then(|| format!("poolscope: {NO_TASKS}")))
        .chain(state.guard_killed.then(|| GUARD_KILLED.to_string()));
    for line in notes {
        let at = state.adapter.last();
        let kind = EventKind::ProgramOutput { line, stderr: true };
        last.insert(0, PoolEvent { run, at, kind });
    }
    if let Some(status) = exit {
        let ev = PoolEvent {
            run,
            at: Duration::from_nanos(mono_ns().saturating_sub(origin_ns)),
            kind: EventKind::ProgramExited {
                exit: exit_of(status),
            },
        };
        last.insert(0, ev);
    }
    send(&state.out, last).await?;
    Ok(ProgramEnd {
        exit,
        stats: state.stats.unwrap_or_default(),
        refused: state.adapter.refused,
        tasks,
        refusal: why_here.map(str::to_string),
        guard_killed: state.guard_killed,
    })
}

/// The program's PID: under a guard the child is the guard, and the program, whose threads
/// are the lanes, is its child.
async fn program_pid(spec: &ProgramSpec, spawned: u32) -> u32 {
    match spec.guard {
        // Looked for off the runtime's threads: it may poll /proc for up to half a second.
        Some(_) => tokio::task::spawn_blocking(move || {
            super::guard::program_of(spawned, Duration::from_millis(500))
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(spawned),
        None => spawned,
    }
}

/// A watch under way: the adapter and where its events go.
struct Watch {
    run: RunId,
    adapter: Adapter,
    origin_ns: u64,
    out: mpsc::Sender<EventBatch>,
    stats: Option<ReadStats>,
    /// A guard stands between the program and poolscope.
    guarded: bool,
    /// The guard ended while the program lived on.
    guard_killed: bool,
    /// When the program ended, on the run's clock.
    exited_at: Option<Duration>,
}

/// What poolscope says when a program killed its guard: the exit it reports is the guard's.
pub const GUARD_KILLED: &str = "poolscope: the program's guard was killed (by the program?), so \
    the exit shown is the guard's; the program and what it started were ended";

impl Watch {
    /// Moves messages to the consumer until the stream ends after the program exited.
    async fn pump(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        child: &mut Child,
        guard: &mut ProgramGuard,
        fifo: &mut EventFifo,
        cancel: &CancellationToken,
    ) -> Result<Option<ExitStatus>, ProgramError> {
        let mut exit: Option<ExitStatus> = None;
        let mut msgs = Vec::with_capacity(BATCH);
        let drain = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(drain);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut msgs, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    let ended = self.batch(&mut msgs).await?;
                    if ended && exit.is_some() {
                        break;
                    }
                }
                status = child.wait(), if exit.is_none() => {
                    let status = status.map_err(ProgramError::Wait)?;
                    self.exited_at = Some(self.since_origin());
                    guard.reaped();
                    // The guard ended before the program: killed (`kill -9 $PPID`). A guard
                    // that ended normally removed the channel's directory; what it could not
                    // reap in time (a zombie, a straggler) may still come to us, and is no sign.
                    self.guard_killed =
                        self.guarded && fifo.dir_left() && super::guard::any_adopted();
                    exit = Some(status);
                    // The stream ends when the program's last process closes the channel.
                    fifo.program_exited();
                    drain.as_mut().reset(tokio::time::Instant::now() + DRAIN);
                }
                () = &mut drain => break,
                () = cancel.cancelled() => {
                    guard.end();
                    if tokio::time::timeout(END_LIMIT, child.wait()).await.is_err() {
                        guard.kill(libc::SIGKILL);
                        let _ = child.wait().await;
                    }
                    guard.reaped();
                    return Ok(None);
                }
            }
        }
        // Whatever the program left behind goes with it.
        guard.kill(libc::SIGKILL);
        Ok(exit)
    }

    /// Turns gathered messages into one batch of events; true once the stream has ended.
    async fn batch(&mut self, msgs: &mut Vec<Msg>) -> Result<bool, ProgramError> {
        let mut evs = Vec::with_capacity(msgs.len() * 2);
        let mut ended = false;
        for msg in msgs.drain(..) {
            match msg {
                Msg::Header(origin) => self.adapter.set_offset(self.offset(origin)),
                Msg::Events(batch) => {
                    for ev in batch {
                        self.adapter.apply(ev, &mut evs);
                    }
                }
                Msg::Output(OutputChunk {
                    lines,
                    skipped,
                    stderr,
                }) => {
                    let at = self.since_origin().max(self.adapter.last());
                    let note = (skipped > 0).then(|| format!("… {skipped} lines not shown"));
                    for line in note.into_iter().chain(lines) {
                        let kind = EventKind::ProgramOutput { line, stderr };
                        evs.push(PoolEvent {
                            run: self.run,
                            at,
                            kind,
                        });
                    }
                }
                Msg::StreamEnded(result) => {
                    ended = true;
                    self.stats = Some(result?);
                }
            }
        }
        if !evs.is_empty() {
            send(&self.out, evs).await?;
        }
        Ok(ended)
    }

    fn since_origin(&self) -> Duration {
        Duration::from_nanos(mono_ns().saturating_sub(self.origin_ns))
    }

    /// Where the program's time zero is on the run's clock: its header's origin when that is
    /// a plausible `CLOCK_MONOTONIC` time after the start, else the moment the header came.
    fn offset(&self, origin: Option<u64>) -> Duration {
        let now = mono_ns();
        match origin {
            Some(o) if o >= self.origin_ns && o <= now => Duration::from_nanos(o - self.origin_ns),
            _ => Duration::from_nanos(now.saturating_sub(self.origin_ns)),
        }
    }
}

/// What the reader dropped or refused, in a line for the log panel, if anything.
fn stream_note(
    stats: Option<&ReadStats>,
    refused_here: u64,
    why_here: Option<&str>,
) -> Option<String> {
    let stats = stats?;
    let (refused, first) = refusals(stats, refused_here, why_here);
    let mut parts = Vec::new();
    if stats.dropped_by_writer > 0 {
        parts.push(format!(
            "{} events dropped by the program (the channel was full)",
            stats.dropped_by_writer
        ));
    }
    if refused > 0 {
        parts.push(format!("{refused} events refused ({first})"));
    }
    (!parts.is_empty()).then(|| format!("poolscope: {}", parts.join("; ")))
}

async fn send(out: &mpsc::Sender<EventBatch>, mut batch: EventBatch) -> Result<(), ProgramError> {
    batch.iter_mut().for_each(crate::outside_text::clean_event);
    out.send(batch).await.map_err(|_| ProgramError::Closed)
}

/// The program's exit in the words used for workers.
pub fn exit_of(status: ExitStatus) -> WorkerExit {
    match (status.code(), status.signal()) {
        (Some(0), _) => WorkerExit::Clean,
        (Some(code), _) => WorkerExit::Code(code),
        (None, Some(sig)) => WorkerExit::Signal(sig),
        (None, None) => WorkerExit::Reported(format!("{status}")),
    }
}
