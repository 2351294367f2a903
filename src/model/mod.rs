//! Dashboard state, built only from [`PoolEvent`]s: no I/O, no clock.
//!
//! Everything kept is bounded: lanes hold a fixed number of detailed spans plus a fixed-size
//! occupancy, the log and the result list keep their tails, so a session of a million tasks
//! uses the same memory as one of a thousand.

pub mod histogram;
pub mod lane;
pub mod summary;

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{Mode, RunConfig};
use crate::event::{EventKind, PoolEvent, RunId, TaskId, WorkerId};
use crate::seed_log::{LogLine, SeedLog};

pub use histogram::Histogram;
pub use lane::{Lane, Outcome, Span};
pub use summary::RunSummary;

/// Log records kept for the log panel.
pub const LOG_KEPT: usize = 500;
/// Results kept for the results panel (the most recent).
pub const RESULTS_KEPT: usize = 512;
/// Where starts are not announced, a worker that finished a task this recently is busy.
const RECENTLY_BUSY: Duration = Duration::from_millis(100);
/// Queued chunks remembered for hand-off figures; older tasks have long started.
const QUEUED_KEPT: usize = 4096;
/// Failures kept for the results panel (the most recent).
pub const FAILURES_KEPT: usize = 64;

/// A failed task, as the results panel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The task.
    pub task: TaskId,
    /// Its error, one line.
    pub error: String,
}

/// The run on screen.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Its settings.
    pub config: RunConfig,
    /// poolscope's PID, as the process-mode log shows it.
    pub coordinator_pid: u32,
    /// Its time zero on CLOCK_MONOTONIC.
    pub origin_ns: u64,
    /// One lane per worker ever spawned, in spawn order.
    pub lanes: Vec<Lane>,
    /// Tasks handed to the queue.
    pub submitted: u64,
    /// Tasks a worker began.
    pub started: u64,
    /// Tasks that returned a result.
    pub finished: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Failed tasks that never started (their worker died first, or the run was aborted).
    pub failed_unstarted: u64,
    /// Tasks cancelled before they started.
    pub cancelled: u64,
    /// Total of all results received (all of them, not just those kept).
    pub results_total: u64,
    /// The most recent results, in completion order.
    pub results: VecDeque<u64>,
    /// The most recent failures.
    pub failures: VecDeque<Failure>,
    /// Time of the latest event.
    pub last_at: Duration,
    /// When the run finished, once it has.
    pub ended_at: Option<Duration>,
    /// Hand-off overhead: how long a worker sat idle before a task while it was waiting.
    pub overhead: Histogram,
    /// When the most recent chunks of tasks were queued: (first task, time), in id order.
    queued_at: VecDeque<(TaskId, Duration)>,
}

impl Run {
    fn new(id: RunId, config: RunConfig, coordinator_pid: u32, origin_ns: u64) -> Self {
        Run {
            id,
            config,
            coordinator_pid,
            origin_ns,
            lanes: Vec::new(),
            submitted: 0,
            started: 0,
            finished: 0,
            failed: 0,
            failed_unstarted: 0,
            cancelled: 0,
            results_total: 0,
            results: VecDeque::new(),
            failures: VecDeque::new(),
            last_at: Duration::ZERO,
            ended_at: None,
            overhead: Histogram::default(),
            queued_at: VecDeque::new(),
        }
    }

    /// When task `task` was queued, if its chunk is among the most recent ones kept.
    fn queued_when(&self, task: TaskId) -> Option<Duration> {
        let i = self.queued_at.partition_point(|(first, _)| *first <= task);
        let oldest_kept = self.queued_at.front().map(|q| q.0)?;
        (i > 0 && task >= oldest_kept).then(|| self.queued_at[i - 1].1)
    }

    /// Workers busy at `now`: running a task, or, where short tasks do not announce their
    /// start, having finished one within the last few frames.
    pub fn running(&self, now: Duration) -> u64 {
        self.lanes.iter().filter(|l| self.is_busy(l, now)).count() as u64
    }

    /// Whether `lane` is busy at `now` (see [`Run::running`]).
    pub fn is_busy(&self, lane: &Lane, now: Duration) -> bool {
        if lane.current.is_some() {
            return true;
        }
        let recent = lane
            .last_end()
            .is_some_and(|end| now.saturating_sub(end) < RECENTLY_BUSY);
        !self.config.announces_starts() && !self.is_over() && !lane.has_exited() && recent
    }

    /// Tasks waiting for a worker (submitted or not yet).
    pub fn queued(&self) -> u64 {
        if self.ended_at.is_some() {
            return 0;
        }
        self.config
            .tasks
            .saturating_sub(self.started + self.cancelled + self.failed_unstarted)
    }

    /// Tasks that are over, one way or the other.
    pub fn done(&self) -> u64 {
        self.finished + self.failed
    }

    /// Whether the run is over.
    pub fn is_over(&self) -> bool {
        self.ended_at.is_some()
    }

    /// The lane of `worker`.
    pub fn lane(&self, worker: WorkerId) -> Option<&Lane> {
        self.lanes
            .binary_search_by_key(&worker, |l| l.worker)
            .ok()
            .map(|i| &self.lanes[i])
    }

    fn lane_mut(&mut self, worker: WorkerId) -> Option<&mut Lane> {
        self.lanes
            .binary_search_by_key(&worker, |l| l.worker)
            .ok()
            .map(|i| &mut self.lanes[i])
    }

    /// `worker` began `task` at `at`.
    fn start(&mut self, task: TaskId, worker: WorkerId, at: Duration) {
        self.started += 1;
        let queued = self.queued_when(task);
        if let Some(lane) = self.lane_mut(worker) {
            // The gap since its last task, while this one already waited, is the pool's
            // cost of handing work over. A worker's first task is start-up instead.
            let gap = match (lane.last_end(), queued) {
                (Some(end), Some(queued)) => Some(at.saturating_sub(end.max(queued))),
                _ => None,
            };
            lane.start(task, at);
            if let Some(gap) = gap {
                self.overhead.record(gap);
            }
        }
    }

    /// `worker` finished `task` at `at` with `result`.
    fn finish(&mut self, task: TaskId, worker: WorkerId, at: Duration, result: u64) {
        self.finished += 1;
        self.results_total = self.results_total.wrapping_add(result);
        push_bounded(&mut self.results, result, RESULTS_KEPT);
        if let Some(lane) = self.lane_mut(worker) {
            lane.end(task, at, Outcome::Finished);
        }
    }

    fn apply(&mut self, ev: &PoolEvent) {
        self.last_at = self.last_at.max(ev.at);
        match &ev.kind {
            EventKind::WorkerSpawned { worker, label } => {
                let lane = Lane::new(*worker, label.clone(), ev.at);
                match self.lanes.binary_search_by_key(worker, |l| l.worker) {
                    Ok(i) => self.lanes[i] = lane,
                    Err(i) => self.lanes.insert(i, lane),
                }
            }
            EventKind::WorkerReady { worker } => {
                if let Some(lane) = self.lane_mut(*worker) {
                    lane.ready_at = Some(ev.at);
                }
            }
            EventKind::WorkerExited { worker, exit } => {
                if let Some(lane) = self.lane_mut(*worker) {
                    lane.exited = Some((ev.at, exit.clone()));
                }
            }
            EventKind::TasksQueued { first, count } => {
                self.submitted += count;
                push_bounded(&mut self.queued_at, (*first, ev.at), QUEUED_KEPT);
            }
            EventKind::TaskStarted { task, worker } => self.start(*task, *worker, ev.at),
            EventKind::TaskRan {
                task,
                worker,
                started,
                result,
            } => {
                self.start(*task, *worker, *started);
                self.finish(*task, *worker, ev.at, *result);
            }
            EventKind::WorkerStats(sample) => {
                for stat in &sample.workers {
                    if let Some(lane) = self.lane_mut(stat.worker) {
                        lane.sampled(stat.cpu_pct, stat.rss);
                    }
                }
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
            } => self.finish(*task, *worker, ev.at, *result),
            EventKind::TaskOverdue { task, worker } => {
                if let Some(lane) = self.lane_mut(*worker) {
                    lane.mark_overdue(*task);
                }
            }
            EventKind::TaskFailed {
                task,
                worker,
                error,
            } => {
                self.failed += 1;
                let on_lane = worker
                    .and_then(|w| self.lane_mut(w))
                    .and_then(|lane| lane.end(*task, ev.at, Outcome::Failed));
                if on_lane.is_none() {
                    self.failed_unstarted += 1;
                }
                let failure = Failure {
                    task: *task,
                    error: error.clone(),
                };
                push_bounded(&mut self.failures, failure, FAILURES_KEPT);
            }
            EventKind::RunFinished { cancelled, .. } => {
                self.cancelled = *cancelled;
                self.ended_at = Some(ev.at);
            }
            EventKind::RunStarted { .. }
            | EventKind::Phase(_)
            | EventKind::WorkerOutput { .. }
            | EventKind::PoolNote { .. } => {}
        }
    }
}

fn push_bounded<T>(deque: &mut VecDeque<T>, item: T, cap: usize) {
    if deque.len() == cap {
        deque.pop_front();
    }
    deque.push_back(item);
}

/// Everything the dashboard shows, as of the last event applied.
#[derive(Clone, Debug)]
pub struct Model {
    /// The run on screen (the newest one started).
    pub run: Option<Run>,
    /// The seed-style log of that run, most recent last.
    pub log: VecDeque<LogLine>,
    /// The last complete thread-mode run.
    pub last_thread: Option<RunSummary>,
    /// The last complete process-mode run.
    pub last_process: Option<RunSummary>,
    /// poolscope's own CPU % (worker threads excluded) and memory, at the last sample.
    pub own: Option<(f32, u64)>,
    seed_log: SeedLog,
    scratch: Vec<LogLine>,
}

/// Results listed in the log's results line; the rest are counted.
const LOG_RESULTS_LISTED: usize = 64;

impl Default for Model {
    fn default() -> Self {
        Model {
            run: None,
            log: VecDeque::new(),
            last_thread: None,
            last_process: None,
            own: None,
            seed_log: SeedLog::with_results_limit(LOG_RESULTS_LISTED),
            scratch: Vec::new(),
        }
    }
}

impl Model {
    /// An empty model: no run yet.
    pub fn new() -> Self {
        Model::default()
    }

    /// Applies one event. Events of runs older than the one on screen are ignored, so a
    /// cancelled run winding down cannot disturb the fresh one.
    pub fn apply(&mut self, ev: &PoolEvent) {
        if let EventKind::RunStarted {
            config,
            coordinator_pid,
            origin_ns,
        } = &ev.kind
        {
            if self.run.as_ref().is_some_and(|r| r.id > ev.run) {
                return;
            }
            self.run = Some(Run::new(
                ev.run,
                config.clone(),
                *coordinator_pid,
                *origin_ns,
            ));
            self.log.clear();
        }
        let Some(run) = self.run.as_mut().filter(|r| r.id == ev.run) else {
            return;
        };
        if let EventKind::WorkerStats(sample) = &ev.kind {
            self.own = Some((sample.own_cpu_pct, sample.own_rss));
        }
        run.apply(ev);
        self.seed_log.apply(ev, &mut self.scratch);
        for line in self.scratch.drain(..) {
            push_bounded(&mut self.log, line, LOG_KEPT);
        }
        if let EventKind::RunFinished { cancelled: 0, .. } = ev.kind {
            let summary = RunSummary::of(run, ev.at);
            match run.config.mode {
                Mode::Thread => self.last_thread = Some(summary),
                Mode::Process => self.last_process = Some(summary),
            }
        }
    }
}
