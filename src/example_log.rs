//! The example's log, rebuilt from events: `{thread:>10} {logger:>18}: {message}` in thread mode,
//! `PID {pid:>5} {logger:>18}: {message}` in process mode.
//!
//! Records are cheap to make and formatted only when shown: the dashboard keeps just the
//! last few hundred of a run that may log millions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Mode;
use crate::event::{EventKind, Phase, PoolEvent, TaskId, WorkerId};
use crate::task_names::TaskNames;
use crate::workload::Workload;

/// Which logger wrote a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logger {
    /// The coordinator: `run_blocking_tasks`.
    Coordinator,
    /// One call of the workload: `blocks(3)`.
    Call(Workload, TaskId),
    /// An external source's task, by the name its source gave (`blocks`, a command line).
    Named(Arc<str>),
    /// The watched program's own output (stderr when true): shown as it was written.
    Output(bool),
    /// A worker's stderr.
    Stderr,
    /// The pool itself (a worker's death).
    Pool,
}

impl fmt::Display for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Padding is applied by the caller, so render to a string first.
        let text: Cow<'_, str> = match self {
            Logger::Coordinator => "run_blocking_tasks".into(),
            Logger::Call(w, n) => w.call_label(*n).into(),
            Logger::Named(name) => Cow::Borrowed(&**name),
            Logger::Output(false) => "stdout".into(),
            Logger::Output(true) => "stderr".into(),
            Logger::Stderr => "stderr".into(),
            Logger::Pool => "pool".into(),
        };
        f.pad(&text)
    }
}

/// One record of the example-style log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When it happened, since the run's start: stamped by the worker for a task's lines,
    /// by the coordinator for its own. Lines are shown in this order.
    pub at: Duration,
    /// Thread or process mode decides the prefix.
    pub mode: Mode,
    /// The `MainThread` name or PID shown in front.
    pub who: Arc<str>,
    /// The logger.
    pub logger: Logger,
    /// The message.
    pub message: Cow<'static, str>,
}

impl LogLine {
    /// Whether the record reports something that went wrong.
    pub fn is_failure(&self) -> bool {
        self.logger == Logger::Pool || self.message.starts_with("failed")
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The program's own words, marked apart from the records rebuilt from its events.
        if let Logger::Output(_) = self.logger {
            return write!(f, "› {}", self.message);
        }
        match self.mode {
            Mode::Thread => write!(f, "{:>10} {:>18}: {}", self.who, self.logger, self.message),
            Mode::Process => write!(
                f,
                "PID {:>5} {:>18}: {}",
                self.who, self.logger, self.message
            ),
        }
    }
}

/// Turns a run's events into example-style log records.
#[derive(Clone, Debug, Default)]
pub struct ExampleLog {
    mode: Option<Mode>,
    workload: Option<Workload>,
    coordinator: Arc<str>,
    /// Each worker's name in the log, and whether it logs as a thread or a process.
    workers: HashMap<WorkerId, (Arc<str>, Mode)>,
    /// External tasks' names.
    names: TaskNames,
    /// Results with their task's end in nanoseconds, listed by end time (they arrive in
    /// about that order).
    results: Vec<(u64, u64)>,
    /// Results finished but not kept for the results line.
    results_left_out: u64,
    /// The most results the results line lists; `None` lists them all, as the example does.
    results_limit: Option<usize>,
}

impl ExampleLog {
    /// An empty log, waiting for a `RunStarted`; its results line lists every result.
    pub fn new() -> Self {
        ExampleLog::default()
    }

    /// A log whose results line lists at most `limit` results and counts the rest, so its
    /// memory stays bounded however long the run.
    pub fn with_results_limit(limit: usize) -> Self {
        ExampleLog {
            results_limit: Some(limit),
            ..ExampleLog::default()
        }
    }

    /// Appends the records `ev` produces (none, one, or two) to `out`.
    pub fn apply(&mut self, ev: &PoolEvent, out: &mut Vec<LogLine>) {
        let at = ev.at;
        match &ev.kind {
            EventKind::RunStarted {
                config,
                coordinator_pid,
                ..
            } => {
                *self = ExampleLog {
                    mode: Some(config.mode),
                    workload: Some(config.workload),
                    coordinator: match config.mode {
                        Mode::Thread => "MainThread".into(),
                        Mode::Process => coordinator_pid.to_string().into(),
                    },
                    results_limit: self.results_limit,
                    ..ExampleLog::default()
                };
            }
            EventKind::Phase(phase) => self.phase(out, at, *phase),
            EventKind::WorkerSpawned { worker, label } => {
                let mode = if label.is_process() {
                    Mode::Process
                } else {
                    Mode::Thread
                };
                self.workers
                    .insert(*worker, (label.log_name().into(), mode));
            }
            EventKind::TaskNamed { task, name } => self.names.insert(*task, name),
            EventKind::WorkerReady { .. } => {}
            EventKind::TaskStarted { task, worker } => {
                self.push(out, at, Some(*worker), self.call(*task), "running".into());
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
                ..
            } => self.done(out, (at, *task), *worker, *result),
            EventKind::TaskRan {
                task,
                worker,
                started,
                result,
                ..
            } => {
                self.push(
                    out,
                    *started,
                    Some(*worker),
                    self.call(*task),
                    "running".into(),
                );
                self.done(out, (at, *task), *worker, *result);
            }
            EventKind::TaskOverdue { task, worker } => {
                self.push(out, at, Some(*worker), self.call(*task), "overdue".into());
            }
            EventKind::TaskFailed {
                task,
                worker,
                error,
                ..
            } => {
                let message = format!("failed: {error}");
                self.push(out, at, *worker, self.call(*task), message.into());
            }
            EventKind::WorkerOutput { worker, line } => {
                self.push(out, at, Some(*worker), Logger::Stderr, line.clone().into());
            }
            EventKind::PoolNote { worker, line } => {
                self.push(out, at, Some(*worker), Logger::Pool, line.clone().into());
            }
            // A worker's abnormal end is told by the pool's own note (`PoolNote`), with its why.
            // The program's own output and end are the model's and the command's to show.
            EventKind::WorkerExited { .. }
            | EventKind::ProgramOutput { .. }
            | EventKind::ProgramExited { .. }
            | EventKind::EventsDropped { .. }
            | EventKind::WorkerStats(_)
            | EventKind::KernelSample(_)
            | EventKind::TasksQueued { .. }
            | EventKind::RunFinished { .. } => {}
        }
    }

    /// The coordinator's line for `phase`, after the results line when it exits.
    fn phase(&mut self, out: &mut Vec<LogLine>, at: Duration, phase: Phase) {
        if phase == Phase::Exiting {
            let results = self.results_line();
            self.push(out, at, None, Logger::Coordinator, results.into());
        }
        let message = match phase {
            Phase::Starting => "starting",
            Phase::CreatingTasks => "creating executor tasks",
            Phase::Waiting => "waiting for executor tasks",
            Phase::Exiting => "exiting",
        };
        self.push(out, at, None, Logger::Coordinator, message.into());
    }

    /// Records the result of task `task`, which ended at `at`, and logs it done.
    fn done(
        &mut self,
        out: &mut Vec<LogLine>,
        (at, task): (Duration, TaskId),
        worker: WorkerId,
        result: Option<u64>,
    ) {
        // A task whose source gave no value (a program, a recording) adds none to the list.
        if let Some(result) = result {
            if self
                .results_limit
                .is_none_or(|limit| self.results.len() < limit)
            {
                let at_ns = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
                self.results.push((at_ns, result));
            } else {
                self.results_left_out += 1;
            }
        }
        self.push(out, at, Some(worker), self.call(task), "done".into());
    }

    /// `results: [...]`, in the order the tasks ended (worker-stamped), not the order their
    /// reports happened to arrive in.
    fn results_line(&mut self) -> String {
        // Stable: results stamped alike keep their arrival order.
        self.results.sort_by_key(|&(at, _)| at);
        // Written straight into the line: a run may list millions.
        let mut line = String::from("results: [");
        for (i, (_, result)) in self.results.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            let _ = write!(line, "{result}");
        }
        line.push(']');
        if self.results_left_out > 0 {
            let _ = write!(line, " and {} more", self.results_left_out);
        }
        line
    }

    /// The logger of task `n`'s call of this run's workload.
    fn call(&self, task: TaskId) -> Logger {
        match self.names.get(task) {
            Some(name) => Logger::Named(Arc::clone(name)),
            None => Logger::Call(self.workload.unwrap_or(Workload::Blocks), task),
        }
    }

    fn push(
        &self,
        out: &mut Vec<LogLine>,
        at: Duration,
        worker: Option<WorkerId>,
        logger: Logger,
        message: Cow<'static, str>,
    ) {
        let run_mode = self.mode.unwrap_or(Mode::Thread);
        let (who, mode) = match worker {
            None => (Arc::clone(&self.coordinator), run_mode),
            Some(w) => self
                .workers
                .get(&w)
                .cloned()
                .unwrap_or_else(|| (format!("worker {}", w.0).into(), run_mode)),
        };
        out.push(LogLine {
            at,
            mode,
            who,
            logger,
            message,
        });
    }
}
