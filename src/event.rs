//! The one vocabulary that flows from pools and coordinator to the model, the log and the trace.
//!
//! Every event carries the run it belongs to and a timestamp relative to that run's start.
//! Task start and finish times are stamped by the worker itself (thread or child process, on
//! the shared monotonic clock), so queueing and pipe delays never stretch a lane's bars.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
pub use crate::ids::{TaskId, WorkerId};

/// Identifies a run within one poolscope session (mode switches start new runs).
pub type RunId = u32;

/// Who a worker is to the operating system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkerLabel {
    /// A thread of poolscope's own process: its name and kernel TID.
    Thread {
        /// `Thread-1`...
        name: String,
        /// Kernel thread id (gettid).
        tid: i32,
    },
    /// A child process.
    Process {
        /// Its PID.
        pid: u32,
    },
    /// A worker of another program, a recording or a cluster: as much of its identity as
    /// the source gives (boxed, so the built-in pools' events stay small).
    External(Box<ExternalWorker>),
}

/// Who a worker of another program, a recording or a cluster is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExternalWorker {
    /// The host or cluster node, for sources that span machines.
    pub host: Option<String>,
    /// Its process id, when known.
    pub pid: Option<u32>,
    /// Its kernel thread id; `None` when the worker is a whole process.
    pub tid: Option<i64>,
    /// Its display name (`ThreadPoolExecutor-0_1`, `PID 29895`, `slot 2`).
    pub name: String,
}

impl ExternalWorker {
    /// A whole process (no thread id) whose PID is known.
    pub fn is_process(&self) -> bool {
        self.pid.is_some() && self.tid.is_none()
    }
}

impl WorkerLabel {
    /// The short name used in the example's log: `Thread-2` or the PID.
    pub fn log_name(&self) -> String {
        match self {
            WorkerLabel::Thread { name, .. } => name.clone(),
            WorkerLabel::Process { pid } => pid.to_string(),
            WorkerLabel::External(w) => match (w.pid, w.tid) {
                (Some(pid), None) => pid.to_string(),
                _ => w.name.clone(),
            },
        }
    }

    /// Whether the example would log this worker as a process (`PID 1234`) rather than a thread.
    pub fn is_process(&self) -> bool {
        match self {
            WorkerLabel::Process { .. } => true,
            WorkerLabel::External(w) => w.is_process(),
            WorkerLabel::Thread { .. } => false,
        }
    }
}

impl fmt::Display for WorkerLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerLabel::Thread { name, tid } => write!(f, "{name} · tid {tid}"),
            WorkerLabel::Process { pid } => write!(f, "PID {pid}"),
            WorkerLabel::External(w) => {
                let ExternalWorker {
                    host,
                    pid,
                    tid,
                    name,
                } = &**w;
                if let Some(host) = host.as_ref().filter(|h| !name.contains(h.as_str())) {
                    write!(f, "node {host} · ")?;
                }
                match (tid, pid) {
                    (Some(tid), _) => write!(f, "{name} · tid {tid}"),
                    (None, Some(pid)) if *name == format!("PID {pid}") => f.write_str(name),
                    (None, Some(pid)) => write!(f, "{name} · PID {pid}"),
                    (None, None) => f.write_str(name),
                }
            }
        }
    }
}

/// How a worker ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerExit {
    /// It left because the queue closed: the normal end.
    Clean,
    /// A process exited with a non-zero code.
    Code(i32),
    /// A process was killed by a signal.
    Signal(i32),
    /// It broke the protocol or could not be driven and was killed for it.
    Broken(String),
    /// An external source's own words for how the worker ended (`exit 3`, `killed by SIGKILL`).
    Reported(String),
}

impl WorkerExit {
    /// True for the normal end of a worker.
    pub fn is_clean(&self) -> bool {
        matches!(self, WorkerExit::Clean)
    }
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerExit::Clean => f.write_str("exited"),
            WorkerExit::Code(code) => write!(f, "exit {code}"),
            WorkerExit::Signal(sig) => write!(f, "killed by {}", crate::sys::signal_name(*sig)),
            WorkerExit::Broken(why) => write!(f, "broken: {why}"),
            WorkerExit::Reported(how) => f.write_str(how),
        }
    }
}

/// The coordinator's own steps, which the example logs from `run_blocking_tasks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// `starting`
    Starting,
    /// `creating executor tasks`
    CreatingTasks,
    /// `waiting for executor tasks`
    Waiting,
    /// `exiting` (after the results line)
    Exiting,
}

/// Something that happened in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// A run began with this configuration; `coordinator_pid` is poolscope's own PID.
    RunStarted {
        /// The run's settings.
        config: RunConfig,
        /// PID of the process that runs the coordinator.
        coordinator_pid: u32,
        /// The run's time zero on `CLOCK_MONOTONIC`, so a display can tell how far along it is.
        origin_ns: u64,
        /// Where the run's events come from (boxed, so the pools' events stay small).
        #[serde(default)]
        source: Box<RunSource>,
    },
    /// The coordinator reached a step of the example's script.
    Phase(Phase),
    /// A worker thread or process came up.
    WorkerSpawned {
        /// Its slot.
        worker: WorkerId,
        /// Its OS identity.
        label: WorkerLabel,
    },
    /// A worker is ready to take work (a thread entered its loop; a process answered its
    /// settings). Spawn → ready is the worker's start-up cost.
    WorkerReady {
        /// Its slot.
        worker: WorkerId,
    },
    /// A worker went away.
    WorkerExited {
        /// Its slot.
        worker: WorkerId,
        /// How.
        exit: WorkerExit,
    },
    /// The coordinator handed tasks `first..first + count` to the pool's queue.
    TasksQueued {
        /// The first task.
        first: TaskId,
        /// How many, in id order.
        count: u64,
    },
    /// A worker began a task (stamped by the worker).
    TaskStarted {
        /// The task.
        task: TaskId,
        /// The worker running it.
        worker: WorkerId,
    },
    /// A task returned its result (stamped by the worker).
    TaskFinished {
        /// The task.
        task: TaskId,
        /// The worker that ran it.
        worker: WorkerId,
        /// Its return value; `None` when the source does not give one (programs, replays).
        result: Option<u64>,
        /// CPU time the worker's thread spent on it, when the source measured it.
        #[serde(default)]
        cpu: Option<Duration>,
    },
    /// A task too short to be seen running (see `RunConfig::announces_starts`) ran from
    /// `started` to the event's time and returned `result`: a start and a finish in one.
    TaskRan {
        /// The task.
        task: TaskId,
        /// The worker that ran it.
        worker: WorkerId,
        /// When it started (since the run's start).
        started: Duration,
        /// Its return value; `None` when the source does not give one.
        result: Option<u64>,
        /// CPU time the worker's thread spent on it, when the source measured it.
        #[serde(default)]
        cpu: Option<Duration>,
    },
    /// A task has run past the run's `--task-timeout-ms`.
    TaskOverdue {
        /// The task.
        task: TaskId,
        /// The worker running it.
        worker: WorkerId,
    },
    /// A task raised, panicked, or lost its worker.
    TaskFailed {
        /// The task.
        task: TaskId,
        /// The worker it was on, if it had started.
        worker: Option<WorkerId>,
        /// What went wrong, one line.
        error: String,
        /// CPU time its thread spent on it before it failed, when the source measured it.
        #[serde(default)]
        cpu: Option<Duration>,
    },
    /// A line a worker wrote outside the protocol (stderr), or a protocol complaint about it.
    WorkerOutput {
        /// The worker.
        worker: WorkerId,
        /// The text, one line.
        line: String,
    },
    /// A line the pool itself writes about a worker: a protocol error, how it died, that it
    /// was not replaced. Never text the worker wrote.
    PoolNote {
        /// The worker.
        worker: WorkerId,
        /// The text, one line.
        line: String,
    },
    /// A monitor sample: CPU and memory of the workers and of poolscope itself.
    WorkerStats(crate::sample::Sample),
    /// A kernel sample of a watched program's or process's threads and child processes:
    /// on-CPU and run-queue wait per kernel lane (see `source::kernel`).
    KernelSample(crate::sample::KernelSample),
    /// Names task `task` (external sources; the built-in experiment's tasks are named by its
    /// workload). Sent before the task's first event; consumers keep a bounded table.
    TaskNamed {
        /// The task.
        task: TaskId,
        /// Its display name (`blocks`, `blocks(3)`, a command line).
        name: String,
    },
    /// A line the watched program wrote to its stdout or stderr.
    ProgramOutput {
        /// The text, one line.
        line: String,
        /// Whether it came from stderr.
        stderr: bool,
    },
    /// The watched program ended.
    ProgramExited {
        /// How: `Clean` for exit 0.
        exit: WorkerExit,
    },
    /// The watched program dropped `count` events because its channel to poolscope was full
    /// (it says so as soon as it can write again): what is shown misses that many events.
    EventsDropped {
        /// Events lost, in this report.
        count: u64,
    },
    /// The run is over: every task finished, failed, or was cancelled before starting.
    RunFinished {
        /// Tasks that returned a result.
        finished: u64,
        /// Tasks that failed.
        failed: u64,
        /// Tasks dropped from the queue by a cancel.
        cancelled: u64,
    },
}

impl EventKind {
    /// The CPU time a task-end event says its task used; `None` for other events and when
    /// the source did not measure it.
    pub fn task_cpu(&self) -> Option<Duration> {
        match self {
            EventKind::TaskFinished { cpu, .. }
            | EventKind::TaskRan { cpu, .. }
            | EventKind::TaskFailed { cpu, .. } => *cpu,
            _ => None,
        }
    }
}

/// Where a run's events come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunSource {
    /// poolscope's own thread or process pool running the example's experiment.
    #[default]
    Experiment,
    /// A program poolscope started, speaking the event protocol.
    Program {
        /// Its command line, as typed.
        command: String,
    },
    /// A process started elsewhere, watched from `/proc` (`--pid`).
    Attached {
        /// Its PID.
        pid: u32,
        /// Its command line, as `/proc` gives it.
        command: String,
        /// Whether it is a Python interpreter (whose task spans need it started under
        /// poolscope, where the probe is loaded).
        python: bool,
    },
    /// A recording read from a file.
    Replay {
        /// The file.
        file: String,
        /// Its format (`chrome`, `dask`, `joblog`, `poolscope`).
        format: String,
        /// Who wrote it (`viztracer`, `ray timeline`, …).
        producer: String,
    },
}

impl RunSource {
    /// Whether the run is one of poolscope's own pools.
    pub fn is_experiment(&self) -> bool {
        matches!(self, RunSource::Experiment)
    }

    /// Whether the run is a program watched live.
    pub fn is_program(&self) -> bool {
        matches!(self, RunSource::Program { .. })
    }
}

impl fmt::Display for RunSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunSource::Experiment => f.write_str("experiment"),
            RunSource::Program { command } => write!(f, "program {command}"),
            RunSource::Attached { pid, command, .. } => write!(f, "PID {pid} {command}"),
            RunSource::Replay { file, producer, .. } => write!(f, "replay {file} ({producer})"),
        }
    }
}

/// An event with its run and its time since that run started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolEvent {
    /// The run it belongs to.
    pub run: RunId,
    /// Time since the run started.
    pub at: Duration,
    /// What happened.
    pub kind: EventKind,
}

impl PoolEvent {
    /// The task this event starts, with its worker and start time: a `TaskStarted`, or the
    /// start half of a `TaskRan`. Every consumer reads starts through this, so none forgets
    /// that one `TaskRan` is a start and a finish.
    pub fn task_start(&self) -> Option<(TaskId, WorkerId, Duration)> {
        match &self.kind {
            EventKind::TaskStarted { task, worker } => Some((*task, *worker, self.at)),
            EventKind::TaskRan {
                task,
                worker,
                started,
                ..
            } => Some((*task, *worker, *started)),
            _ => None,
        }
    }

    /// The task this event ends, with its worker (if it had one) and end time: a finish, a
    /// `TaskRan` or a failure.
    pub fn task_end(&self) -> Option<(TaskId, Option<WorkerId>, Duration)> {
        match &self.kind {
            EventKind::TaskFinished { task, worker, .. }
            | EventKind::TaskRan { task, worker, .. } => Some((*task, Some(*worker), self.at)),
            EventKind::TaskFailed { task, worker, .. } => Some((*task, *worker, self.at)),
            _ => None,
        }
    }
}

/// Events travel in batches, so a stream of instant tasks costs one channel operation per
/// batch rather than per event.
pub type EventBatch = Vec<PoolEvent>;

/// Converts a monotonic timestamp to an offset from the run's start (clamped at zero).
pub fn since(run_start_ns: u64, at_ns: u64) -> Duration {
    Duration::from_nanos(at_ns.saturating_sub(run_start_ns))
}

/// An event of run 1 at `at_ms` milliseconds, for the unit tests of its consumers.
#[cfg(test)]
pub(crate) fn test_event(at_ms: u64, kind: EventKind) -> PoolEvent {
    PoolEvent {
        run: 1,
        at: Duration::from_millis(at_ms),
        kind,
    }
}
