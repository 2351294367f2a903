//! The seed's log, rebuilt from events: `{thread:>10} {logger:>18}: {message}` in thread mode,
//! `PID {pid:>5} {logger:>18}: {message}` in process mode.
//!
//! Records are cheap to make and formatted only when shown: the dashboard keeps just the
//! last few hundred of a run that may log millions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::config::Mode;
use crate::event::{EventKind, Phase, PoolEvent, TaskId, WorkerExit, WorkerId};
use crate::workload::Workload;

/// Which logger wrote a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logger {
    /// The coordinator: `run_blocking_tasks`.
    Coordinator,
    /// One call of the workload: `blocks(3)`.
    Call(Workload, TaskId),
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
            Logger::Stderr => "stderr".into(),
            Logger::Pool => "pool".into(),
        };
        f.pad(&text)
    }
}

/// One record of the seed-style log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
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

/// Turns a run's events into seed-style log records.
#[derive(Clone, Debug, Default)]
pub struct SeedLog {
    mode: Option<Mode>,
    workload: Option<Workload>,
    coordinator: Arc<str>,
    workers: HashMap<WorkerId, Arc<str>>,
    results: Vec<u64>,
    /// Results finished but not kept for the results line.
    results_left_out: u64,
    /// The most results the results line lists; `None` lists them all, as the seed does.
    results_limit: Option<usize>,
}

impl SeedLog {
    /// An empty log, waiting for a `RunStarted`; its results line lists every result.
    pub fn new() -> Self {
        SeedLog::default()
    }

    /// A log whose results line lists at most `limit` results and counts the rest, so its
    /// memory stays bounded however long the run.
    pub fn with_results_limit(limit: usize) -> Self {
        SeedLog {
            results_limit: Some(limit),
            ..SeedLog::default()
        }
    }

    /// Appends the records `ev` produces (none, one, or two) to `out`.
    pub fn apply(&mut self, ev: &PoolEvent, out: &mut Vec<LogLine>) {
        match &ev.kind {
            EventKind::RunStarted {
                config,
                coordinator_pid,
                ..
            } => {
                *self = SeedLog {
                    mode: Some(config.mode),
                    workload: Some(config.workload),
                    coordinator: match config.mode {
                        Mode::Thread => "MainThread".into(),
                        Mode::Process => coordinator_pid.to_string().into(),
                    },
                    results_limit: self.results_limit,
                    ..SeedLog::default()
                };
            }
            EventKind::Phase(phase) => {
                if *phase == Phase::Exiting {
                    let results = match self.results_left_out {
                        0 => format!("results: {:?}", self.results),
                        more => format!("results: {:?} and {more} more", self.results),
                    };
                    self.push(out, None, Logger::Coordinator, results.into());
                }
                let message = match phase {
                    Phase::Starting => "starting",
                    Phase::CreatingTasks => "creating executor tasks",
                    Phase::Waiting => "waiting for executor tasks",
                    Phase::Exiting => "exiting",
                };
                self.push(out, None, Logger::Coordinator, message.into());
            }
            EventKind::WorkerSpawned { worker, label } => {
                self.workers.insert(*worker, label.log_name().into());
            }
            EventKind::WorkerReady { .. } => {}
            EventKind::TaskStarted { task, worker } => {
                self.push(out, Some(*worker), self.call(*task), "running".into());
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
            } => self.done(out, *task, *worker, *result),
            EventKind::TaskRan {
                task,
                worker,
                result,
                ..
            } => {
                self.push(out, Some(*worker), self.call(*task), "running".into());
                self.done(out, *task, *worker, *result);
            }
            EventKind::TaskOverdue { task, worker } => {
                self.push(out, Some(*worker), self.call(*task), "overdue".into());
            }
            EventKind::TaskFailed {
                task,
                worker,
                error,
            } => {
                let message = format!("failed: {error}");
                self.push(out, *worker, self.call(*task), message.into());
            }
            EventKind::WorkerOutput { worker, line } => {
                self.push(out, Some(*worker), Logger::Stderr, line.clone().into());
            }
            EventKind::PoolNote { worker, line } => {
                self.push(out, Some(*worker), Logger::Pool, line.clone().into());
            }
            EventKind::WorkerExited { worker, exit } if *exit != WorkerExit::Clean => {
                self.push(
                    out,
                    Some(*worker),
                    Logger::Pool,
                    format!("worker {exit}").into(),
                );
            }
            EventKind::WorkerExited { .. }
            | EventKind::WorkerStats(_)
            | EventKind::TasksQueued { .. }
            | EventKind::RunFinished { .. } => {}
        }
    }

    /// Records task `task`'s result and logs it done.
    fn done(&mut self, out: &mut Vec<LogLine>, task: TaskId, worker: WorkerId, result: u64) {
        if self
            .results_limit
            .is_none_or(|limit| self.results.len() < limit)
        {
            self.results.push(result);
        } else {
            self.results_left_out += 1;
        }
        self.push(out, Some(worker), self.call(task), "done".into());
    }

    /// The logger of task `n`'s call of this run's workload.
    fn call(&self, task: TaskId) -> Logger {
        Logger::Call(self.workload.unwrap_or(Workload::Blocks), task)
    }

    fn push(
        &self,
        out: &mut Vec<LogLine>,
        worker: Option<WorkerId>,
        logger: Logger,
        message: Cow<'static, str>,
    ) {
        let who = match worker {
            None => Arc::clone(&self.coordinator),
            Some(w) => self
                .workers
                .get(&w)
                .cloned()
                .unwrap_or_else(|| format!("worker {}", w.0).into()),
        };
        out.push(LogLine {
            mode: self.mode.unwrap_or(Mode::Thread),
            who,
            logger,
            message,
        });
    }
}
