//! The seed's log, rebuilt from events: `{thread:>10} {logger:>18}: {message}` in thread mode,
//! `PID {pid:>5} {logger:>18}: {message}` in process mode.

use std::collections::HashMap;
use std::fmt;

use crate::config::Mode;
use crate::event::{EventKind, Phase, PoolEvent, WorkerExit, WorkerId};
use crate::workload::Workload;

/// Who wrote a log record: the coordinator, or a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `run_blocking_tasks` itself (`MainThread`, or poolscope's PID).
    Coordinator,
    /// A worker, by its log name (`Thread-2`, or its PID).
    Worker(String),
}

/// One record of the seed-style log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Thread or process mode decides the prefix.
    pub mode: Mode,
    /// The `MainThread` name or PID shown in front.
    pub who: String,
    /// The logger: `run_blocking_tasks`, `blocks(3)`, `stderr`, `pool`.
    pub logger: String,
    /// The message.
    pub message: String,
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
    coordinator: String,
    workers: HashMap<WorkerId, String>,
    results: Vec<u64>,
}

const COORDINATOR_LOGGER: &str = "run_blocking_tasks";

impl SeedLog {
    /// An empty log, waiting for a `RunStarted`.
    pub fn new() -> Self {
        SeedLog::default()
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
                        Mode::Thread => "MainThread".to_string(),
                        Mode::Process => coordinator_pid.to_string(),
                    },
                    ..SeedLog::default()
                };
            }
            EventKind::Phase(phase) => {
                if *phase == Phase::Exiting {
                    let results = format!("results: {:?}", self.results);
                    self.push(out, None, COORDINATOR_LOGGER, results);
                }
                let message = match phase {
                    Phase::Starting => "starting",
                    Phase::CreatingTasks => "creating executor tasks",
                    Phase::Waiting => "waiting for executor tasks",
                    Phase::Exiting => "exiting",
                };
                self.push(out, None, COORDINATOR_LOGGER, message.to_string());
            }
            EventKind::WorkerSpawned { worker, label } => {
                self.workers.insert(*worker, label.log_name());
            }
            EventKind::TaskStarted { task, worker } => {
                let logger = self.call(*task);
                self.push(out, Some(*worker), &logger, "running".to_string());
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
            } => {
                self.results.push(*result);
                let logger = self.call(*task);
                self.push(out, Some(*worker), &logger, "done".to_string());
            }
            EventKind::TaskOverdue { task, worker } => {
                let logger = self.call(*task);
                self.push(out, Some(*worker), &logger, "overdue".to_string());
            }
            EventKind::TaskFailed {
                task,
                worker,
                error,
            } => {
                let logger = self.call(*task);
                self.push(out, *worker, &logger, format!("failed: {error}"));
            }
            EventKind::WorkerOutput { worker, line } => {
                self.push(out, Some(*worker), "stderr", line.clone());
            }
            EventKind::WorkerExited { worker, exit } if *exit != WorkerExit::Clean => {
                self.push(out, Some(*worker), "pool", format!("worker {exit}"));
            }
            EventKind::WorkerExited { .. }
            | EventKind::WorkerStats(_)
            | EventKind::TasksQueued { .. }
            | EventKind::RunFinished { .. } => {}
        }
    }

    /// `blocks(n)` for task `n` of this run's workload.
    fn call(&self, task: u64) -> String {
        self.workload.unwrap_or(Workload::Blocks).call_label(task)
    }

    fn push(
        &self,
        out: &mut Vec<LogLine>,
        worker: Option<WorkerId>,
        logger: &str,
        message: String,
    ) {
        let who = match worker {
            None => self.coordinator.clone(),
            Some(w) => self
                .workers
                .get(&w)
                .cloned()
                .unwrap_or_else(|| format!("worker {}", w.0)),
        };
        out.push(LogLine {
            mode: self.mode.unwrap_or(Mode::Thread),
            who,
            logger: logger.to_string(),
            message,
        });
    }
}
