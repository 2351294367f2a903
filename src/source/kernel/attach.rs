//! `--pid PID`: a process started elsewhere, watched from `/proc` with its threads and the
//! processes it starts. Nothing is asked of the target: no signal, no ptrace, no stop; only
//! the files `top -H -p` reads. The watch ends when the target exits (its exit status is its
//! parent's to collect, not an observer's), when `--for` elapses, or when it is cancelled.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{KernelSampler, Target, Tree};
use crate::event::{EventBatch, EventKind, PoolEvent, RunId, RunSource, WorkerExit};
use crate::source::adapt::{external_config, run_started};
use crate::sys::mono_ns;

/// Longest command line kept for the title.
const MAX_COMMAND: usize = 200;

/// What to attach to.
#[derive(Clone, Debug)]
pub struct AttachSpec {
    /// The process.
    pub pid: u32,
    /// Time between samples.
    pub period: Duration,
    /// How long to watch at most (`--for`).
    pub duration: Option<Duration>,
}

/// How an attached watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// The process exited (how, an observer cannot know).
    Exited,
    /// `--for` elapsed.
    TimeUp,
    /// The user or a signal ended the watch.
    Cancelled,
}

/// Why a process cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// It does not exist or cannot be read.
    #[error("cannot watch PID {pid}: {cause}")]
    Unreadable {
        /// The PID.
        pid: u32,
        /// The OS's words.
        cause: std::io::Error,
    },
    /// The sampler thread could not start.
    #[error("cannot start the sampler: {0}")]
    Thread(std::io::Error),
    /// The consumer of the events went away.
    #[error("the event consumer went away")]
    Closed,
}

/// Checks that `pid` can be watched, before anything else starts.
pub fn open(pid: u32) -> Result<Tree, AttachError> {
    Tree::attach(pid).map_err(|cause| AttachError::Unreadable { pid, cause })
}

/// What `/proc` says the process is: its command line and whether it is Python.
pub fn describe(pid: u32) -> RunSource {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .take(64)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let program = args.first().map_or(comm.trim(), String::as_str);
    let base = program.rsplit('/').next().unwrap_or(program);
    let python = base.starts_with("python") || comm.trim().starts_with("python");
    let command = if args.is_empty() {
        comm.trim().to_string()
    } else {
        args.join(" ")
    };
    RunSource::Attached {
        pid,
        command: crate::source::clip(&command, MAX_COMMAND),
        python,
    }
}

/// Watches `tree` as run `run` until it ends, sending the run's events to `out`.
pub async fn watch(
    tree: Tree,
    spec: &AttachSpec,
    run: RunId,
    cancel: CancellationToken,
    out: mpsc::Sender<EventBatch>,
) -> Result<AttachEnd, AttachError> {
    let origin_ns = mono_ns();
    let pid = tree.root();
    let source = describe(pid);
    let mut start = run_started(run, external_config(None, 0, false), pid, origin_ns, source);
    crate::outside_text::clean_event(&mut start);
    out.send(vec![start])
        .await
        .map_err(|_| AttachError::Closed)?;
    let target = Target {
        run,
        origin_ns,
        period: spec.period,
    };
    let mut sampler =
        KernelSampler::spawn(tree, target, out.clone()).map_err(AttachError::Thread)?;
    let gone = sampler.root_gone.take();
    let exited = async {
        match gone {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    };
    let time_up = tokio::time::sleep(spec.duration.unwrap_or(Duration::MAX / 4));
    let end = tokio::select! {
        () = exited => AttachEnd::Exited,
        () = time_up => AttachEnd::TimeUp,
        () = cancel.cancelled() => AttachEnd::Cancelled,
    };
    sampler.stop().await;
    let at = Duration::from_nanos(mono_ns().saturating_sub(origin_ns));
    let mut last = Vec::with_capacity(2);
    if end == AttachEnd::Exited {
        let exit = WorkerExit::Reported(EXITED_UNKNOWN.into());
        last.push(PoolEvent {
            run,
            at,
            kind: EventKind::ProgramExited { exit },
        });
    }
    last.push(PoolEvent {
        run,
        at,
        kind: EventKind::RunFinished {
            finished: 0,
            failed: 0,
            cancelled: 0,
        },
    });
    out.send(last).await.map_err(|_| AttachError::Closed)?;
    Ok(end)
}

/// How an attached process's end is told: an observer sees it go, not its status.
pub const EXITED_UNKNOWN: &str = "exited (its exit status is known only to its parent)";
