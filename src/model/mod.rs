//! Dashboard state, built only from [`PoolEvent`]s: no I/O, no clock.
//!
//! Everything kept is bounded: lanes hold a fixed number of detailed spans plus a fixed-size
//! occupancy, a run keeps a bounded number of exited lanes, the log and the result list keep
//! their tails, so a session of a million tasks uses the same memory as one of a thousand.
//! The one exception is asked for: a recording explored whole keeps every span, packed
//! ([`archive`]).

pub mod archive;
pub mod histogram;
pub mod lane;
pub mod run;
pub mod states;
pub mod summary;

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::Mode;
use crate::event::{EventKind, PoolEvent, RunId, TaskId, WorkerId, WorkerLabel};
use crate::example_log::{ExampleLog, LogLine, Logger};

pub use histogram::Histogram;
pub use lane::{Lane, Outcome, Span};
pub use run::{
    BUSY_WINDOW, DEAD_KEPT, FAILURES_KEPT, Failure, Folded, NAMES_TALLIED, NameTally, RESULTS_KEPT,
    Run, TaskResult,
};
pub use summary::RunSummary;

use run::push_bounded;

/// Log records kept for the log panel.
pub const LOG_KEPT: usize = 500;
/// Workers of earlier runs tracked while they finish their last task.
pub const LEFTOVERS_KEPT: usize = 1024;
/// Results listed in the log's results line; the rest are counted.
const LOG_RESULTS_LISTED: usize = 64;

/// A worker of an earlier run that has not exited yet (a thread still finishing a task).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// Its run.
    pub run: RunId,
    /// Its slot in that run.
    pub worker: WorkerId,
    /// Who it is.
    pub label: WorkerLabel,
    /// The task it is running, if known.
    pub task: Option<TaskId>,
}

/// Everything the dashboard shows, as of the last event applied.
#[derive(Clone, Debug)]
pub struct Model {
    /// The run on screen (the newest one started).
    pub run: Option<Run>,
    /// The tail of the example-style log of that run as the records arrived, each with the
    /// time its worker stamped (see [`Model::log_in_order`]).
    pub log: VecDeque<(Duration, LogLine)>,
    /// The last complete thread-mode run.
    pub last_thread: Option<RunSummary>,
    /// The last complete process-mode run.
    pub last_process: Option<RunSummary>,
    /// poolscope's own CPU % (the pool's threads excluded) and memory, at the last sample.
    pub own: Option<(f32, u64)>,
    /// Workers of earlier runs still alive.
    pub leftovers: Vec<Leftover>,
    /// Pool threads alive outside the run on screen, and their CPU %, at the last sample.
    pub leftover_cpu: Option<(u32, f32)>,
    /// This machine's raw pipe round trip (measured once per session), to set the
    /// process pool's hand-off beside.
    pub pipe_round_trip: Option<Duration>,
    example_log: ExampleLog,
    scratch: Vec<LogLine>,
    /// Runs started from now on keep every span (see [`Model::keep_every_span`]).
    keep_every_span: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            run: None,
            log: VecDeque::new(),
            last_thread: None,
            last_process: None,
            own: None,
            leftovers: Vec::new(),
            leftover_cpu: None,
            pipe_round_trip: None,
            example_log: ExampleLog::with_results_limit(LOG_RESULTS_LISTED),
            scratch: Vec::new(),
            keep_every_span: false,
        }
    }
}

impl Model {
    /// An empty model: no run yet.
    pub fn new() -> Self {
        Model::default()
    }

    /// Runs started from now on keep every ended span, packed, so that any part of them can
    /// be drawn in detail: for a recording explored whole, never for a live run (which would
    /// grow without bound).
    pub fn keep_every_span(&mut self) {
        self.keep_every_span = true;
    }

    /// Records this machine's raw pipe round trip, shown beside the process hand-off.
    pub fn set_pipe_round_trip(&mut self, rtt: Duration) {
        self.pipe_round_trip = Some(rtt);
    }

    /// The kept log records in the order their workers stamped them (arrival order among
    /// equal times), sorted when drawn rather than on every event.
    pub fn log_in_order(&self) -> Vec<&(Duration, LogLine)> {
        let mut sorted: Vec<&(Duration, LogLine)> = self.log.iter().collect();
        sorted.sort_by_key(|l| l.0);
        sorted
    }

    /// Applies one event. Events of older runs only update their leftover workers, so a
    /// cancelled run winding down cannot disturb the fresh one.
    pub fn apply(&mut self, ev: &PoolEvent) {
        if let EventKind::RunStarted {
            config,
            coordinator_pid,
            origin_ns,
            source,
        } = &ev.kind
        {
            if self.run.as_ref().is_some_and(|r| r.id > ev.run) {
                return;
            }
            let mut fresh = Run::new(ev.run, config.clone(), *coordinator_pid, *origin_ns);
            fresh.source = (**source).clone();
            if self.keep_every_span {
                fresh.archive = Some(Box::default());
            }
            if let Some(old) = self.run.replace(fresh) {
                self.keep_leftovers(&old);
            }
            self.log.clear();
        }
        match self.run.as_ref().map(|r| r.id) {
            Some(id) if id == ev.run => self.apply_current(ev),
            Some(id) if ev.run < id => self.apply_earlier(ev),
            _ => {}
        }
    }

    fn apply_current(&mut self, ev: &PoolEvent) {
        let Some(run) = self.run.as_mut() else { return };
        if let EventKind::WorkerStats(sample) = &ev.kind {
            self.own = Some((sample.own_cpu_pct, sample.own_rss));
            self.leftover_cpu = Some((sample.leftover_threads, sample.leftover_cpu_pct));
            // /proc is the truth for threads: none left means none, even if their exits
            // never reached us.
            if sample.leftover_threads == 0 {
                self.leftovers
                    .retain(|l| !matches!(l.label, WorkerLabel::Thread { .. }));
            }
        }
        run.apply(ev);
        self.example_log.apply(ev, &mut self.scratch);
        if let Some(line) = program_line(ev) {
            self.scratch.push(line);
        }
        let started = ev.task_start().map(|(_, _, at)| at);
        for (i, line) in self.scratch.drain(..).enumerate() {
            // A `TaskRan` logs its start and its finish: the first record is the start.
            let at = match (i, &ev.kind) {
                (0, EventKind::TaskRan { .. }) => started.unwrap_or(ev.at),
                _ => ev.at,
            };
            push_bounded(&mut self.log, (at, line), LOG_KEPT);
        }
        if let EventKind::RunFinished { cancelled: 0, .. } = ev.kind
            && run.is_experiment()
        {
            let wall = run.last_task_end.unwrap_or(ev.at);
            let summary = RunSummary::of(run, wall);
            match run.config.mode {
                Mode::Thread => self.last_thread = Some(summary),
                Mode::Process => self.last_process = Some(summary),
            }
        }
    }

    /// Remembers the workers of `old` that have not exited: they may still be working.
    fn keep_leftovers(&mut self, old: &Run) {
        // A program's workers went with it (its process group is killed at its end), and a
        // recording's never ran here.
        if !old.is_experiment() {
            return;
        }
        let alive = old.lanes.iter().filter(|l| !l.has_exited());
        for lane in alive.take(LEFTOVERS_KEPT.saturating_sub(self.leftovers.len())) {
            self.leftovers.push(Leftover {
                run: old.id,
                worker: lane.worker,
                label: lane.label.clone(),
                task: lane.current.map(|(t, _)| t),
            });
        }
    }

    /// An event of an earlier run: only its leftover workers' progress and exits matter.
    fn apply_earlier(&mut self, ev: &PoolEvent) {
        let find = |l: &Leftover, w: WorkerId| l.run == ev.run && l.worker == w;
        if let EventKind::WorkerExited { worker, .. } = &ev.kind {
            self.leftovers.retain(|l| !find(l, *worker));
            return;
        }
        if let Some((_, Some(worker), _)) = ev.task_end()
            && let Some(l) = self.leftovers.iter_mut().find(|l| find(l, worker))
        {
            l.task = None;
        }
        if let Some((task, worker, _)) = ev.task_start()
            && ev.task_end().is_none()
            && let Some(l) = self.leftovers.iter_mut().find(|l| find(l, worker))
        {
            l.task = Some(task);
        }
    }
}

/// The log panel's record of the watched program's output or end.
fn program_line(ev: &PoolEvent) -> Option<LogLine> {
    let (logger, message) = match &ev.kind {
        EventKind::ProgramOutput { line, stderr } => (Logger::Output(*stderr), line.clone()),
        EventKind::ProgramExited { exit } if exit.is_clean() => {
            (Logger::Output(false), "(the program exited)".to_string())
        }
        EventKind::ProgramExited { exit } => (Logger::Pool, format!("program {exit}")),
        _ => return None,
    };
    Some(LogLine {
        at: ev.at,
        mode: Mode::Thread,
        who: "program".into(),
        logger,
        message: message.into(),
    })
}
