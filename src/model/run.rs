//! One run as the dashboard shows it: its lanes, counters, results and failures.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::RunConfig;
use crate::event::{
    EventKind, PoolEvent, RunId, RunSource, TaskId, WorkerExit, WorkerId, WorkerLabel,
};
use crate::model::histogram::Histogram;
use crate::model::lane::{Lane, Occupancy, Outcome};
use crate::task_names::TaskNames;

/// Results kept for the results panel (the most recent).
pub const RESULTS_KEPT: usize = 512;
/// Failures kept for the results panel (the most recent).
pub const FAILURES_KEPT: usize = 64;
/// Exited lanes kept beyond the pool's size; older ones are folded into [`Folded`].
pub const DEAD_KEPT: usize = 16;
/// The window over which a lane's recent busy share is measured.
pub const BUSY_WINDOW: Duration = Duration::from_secs(1);
/// Queued chunks remembered for hand-off figures; older tasks have long started.
const QUEUED_KEPT: usize = 4096;

/// A task that returned, as the results panel lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskResult {
    /// When it finished (stamped by its worker).
    pub at: Duration,
    /// The task.
    pub task: TaskId,
    /// What it returned.
    pub value: u64,
}

/// A failed task, as the results panel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// When it failed.
    pub at: Duration,
    /// The task.
    pub task: TaskId,
    /// Its error, one line.
    pub error: String,
}

/// Exited workers no longer kept as lanes, summed, so a run that replaces workers for hours
/// keeps a bounded number of lanes and still exact totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// How many workers were folded.
    pub workers: u64,
    /// How many of them ended other than cleanly.
    pub died: u64,
    /// Tasks they finished.
    pub finished: u64,
    /// Tasks that failed on them.
    pub failed: u64,
    /// Their time in tasks.
    pub busy: Duration,
    /// Their time alive, spawn to exit.
    pub lifetime: Duration,
    /// Their start-up costs, summed, and how many there were.
    pub startup: (Duration, u32),
    /// Their recent task time, all of them summed, for the run's recent busy figure.
    pub occupancy: Occupancy,
}

impl Folded {
    fn add(&mut self, lane: &Lane) {
        self.workers += 1;
        if lane.exited.as_ref().is_some_and(|(_, e)| !e.is_clean()) {
            self.died += 1;
        }
        self.finished += lane.finished;
        self.failed += lane.failed;
        self.busy = self.busy.saturating_add(lane.busy);
        let exit = lane.exited.as_ref().map_or(lane.spawned_at, |(at, _)| *at);
        let life = exit.saturating_sub(lane.spawned_at);
        self.lifetime = self.lifetime.saturating_add(life);
        if let Some(s) = lane.startup() {
            self.startup = (self.startup.0.saturating_add(s), self.startup.1 + 1);
        }
        for span in &lane.spans {
            self.occupancy.add(span.start, span.end);
        }
    }
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
    /// Its time zero on `CLOCK_MONOTONIC`.
    pub origin_ns: u64,
    /// One lane per worker, in spawn order: the live ones and the most recent exited ones.
    pub lanes: Vec<Lane>,
    /// Older exited workers, summed.
    pub folded: Folded,
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
    /// Events the watched program dropped (its channel was full): the picture misses them.
    pub dropped: u64,
    /// Total of all results received (all of them, not just those kept).
    pub results_total: u64,
    /// The most recent results, as they arrived (see [`Run::results_in_order`]).
    pub results: VecDeque<TaskResult>,
    /// The most recent failures, in the order they happened.
    pub failures: VecDeque<Failure>,
    /// Time of the latest event.
    pub last_at: Duration,
    /// When the last task to end ended: the run's wall time once it is over.
    pub last_task_end: Option<Duration>,
    /// When the run finished, once it has.
    pub ended_at: Option<Duration>,
    /// Hand-off overhead: how long a worker sat idle before a task while it was waiting.
    pub overhead: Histogram,
    /// When the most recent chunks of tasks were queued: (first task, time), in id order.
    queued_at: VecDeque<(TaskId, Duration)>,
    /// Where the events come from.
    pub source: RunSource,
    /// External tasks' names (empty for the built-in experiment).
    pub names: TaskNames,
    /// How the watched program ended, once it has.
    pub program_exit: Option<WorkerExit>,
    /// External tasks that ended, by name: count, failures and total time (the first
    /// [`NAMES_TALLIED`] names; later ones are counted under the last entry, `other`).
    pub by_name: Vec<NameTally>,
    /// Kernel lanes folded into declared ones, and what the kernel sampler could not cover.
    pub kernel: crate::model::states::KernelLanes,
    /// Every ended span, when the run is to be explored whole (a replay on the dashboard).
    pub archive: Option<Box<crate::model::archive::Archive>>,
}

/// Distinct task names tallied one by one; the rest are summed as `other`.
pub const NAMES_TALLIED: usize = 32;

/// How the tasks of one name went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTally {
    /// The name (`other` for the names past [`NAMES_TALLIED`]).
    pub name: std::sync::Arc<str>,
    /// Tasks of this name that ended.
    pub ended: u64,
    /// Of which failed.
    pub failed: u64,
    /// Their total time running (tasks seen start to end).
    pub busy: Duration,
}

impl Run {
    /// A run that just started.
    pub fn new(id: RunId, config: RunConfig, coordinator_pid: u32, origin_ns: u64) -> Self {
        Run {
            id,
            config,
            coordinator_pid,
            origin_ns,
            lanes: Vec::new(),
            folded: Folded::default(),
            submitted: 0,
            started: 0,
            finished: 0,
            failed: 0,
            failed_unstarted: 0,
            cancelled: 0,
            dropped: 0,
            results_total: 0,
            results: VecDeque::new(),
            failures: VecDeque::new(),
            last_at: Duration::ZERO,
            last_task_end: None,
            ended_at: None,
            overhead: Histogram::default(),
            queued_at: VecDeque::new(),
            source: RunSource::Experiment,
            names: TaskNames::new(),
            program_exit: None,
            by_name: Vec::new(),
            kernel: crate::model::states::KernelLanes::default(),
            archive: None,
        }
    }

    /// Counts an external task's end under its name.
    fn tally(&mut self, task: TaskId, span: Option<&crate::model::Span>, failed: bool) {
        let Some(name) = self.names.get(task) else {
            return;
        };
        let i = match self.by_name.iter().position(|t| t.name == *name) {
            Some(i) => i,
            None if self.by_name.len() < NAMES_TALLIED => {
                self.by_name.push(NameTally {
                    name: std::sync::Arc::clone(name),
                    ended: 0,
                    failed: 0,
                    busy: Duration::ZERO,
                });
                self.by_name.len() - 1
            }
            None => {
                let last = self.by_name.len() - 1;
                self.by_name[last].name = "other".into();
                last
            }
        };
        let t = &mut self.by_name[i];
        t.ended += 1;
        t.failed += u64::from(failed);
        if let Some(span) = span {
            t.busy += span.end.saturating_sub(span.start);
        }
    }

    /// Whether the run is one of poolscope's own pools (not a program or a recording).
    pub fn is_experiment(&self) -> bool {
        self.source.is_experiment()
    }

    /// What task `task` is called on screen: `blocks(3)` for the built-in workload, the
    /// name its source gave otherwise.
    pub fn task_label(&self, task: TaskId) -> String {
        match self.names.get(task) {
            Some(name) => name.to_string(),
            None if self.is_experiment() => self.config.workload.call_label(task),
            None => format!("task {}", task + 1),
        }
    }

    /// The longest task label, in characters, for column widths.
    pub fn longest_task_label(&self) -> usize {
        if self.is_experiment() {
            return self
                .config
                .workload
                .call_label(self.config.tasks.saturating_sub(1))
                .chars()
                .count();
        }
        self.names.longest(24).max(6)
    }

    /// When task `task` was queued, if its chunk is among the most recent ones kept.
    pub fn queued_when(&self, task: TaskId) -> Option<Duration> {
        let i = self.queued_at.partition_point(|(first, _)| *first <= task);
        let oldest_kept = self.queued_at.front().map(|q| q.0)?;
        (i > 0 && task >= oldest_kept).then(|| self.queued_at[i - 1].1)
    }

    /// Workers running a task at `now`, as far as the events tell: short tasks report their
    /// start with their finish, so for those see [`Run::busy_workers`].
    pub fn running(&self) -> u64 {
        self.lanes.iter().filter(|l| l.current.is_some()).count() as u64
    }

    /// How many workers' worth of time went into tasks over the last [`BUSY_WINDOW`] (or the
    /// run so far, if shorter): the truthful "running" for tasks too short to be seen running.
    pub fn busy_workers(&self, now: Duration) -> f64 {
        let now = self.ended_at.map_or(now, |e| e.min(now));
        let from = now.saturating_sub(BUSY_WINDOW);
        if now <= from {
            return 0.0;
        }
        let busy: f64 = self
            .lanes
            .iter()
            .map(|l| l.busy_in(from, now).as_secs_f64())
            .sum::<f64>()
            + self.folded.occupancy.busy_seconds(from, now);
        busy / now.saturating_sub(from).as_secs_f64()
    }

    /// The share (0..=1) of the last [`BUSY_WINDOW`] that `lane` spent in tasks.
    pub fn busy_share(&self, lane: &Lane, now: Duration) -> f64 {
        let now = self.ended_at.map_or(now, |e| e.min(now));
        let from = now.saturating_sub(BUSY_WINDOW).max(lane.spawned_at);
        let to = lane.exited.as_ref().map_or(now, |(at, _)| (*at).min(now));
        if to <= from {
            return 0.0;
        }
        (lane.busy_in(from, to).as_secs_f64() / to.saturating_sub(from).as_secs_f64()).min(1.0)
    }

    /// The kept results in the order their workers finished them. Events of short tasks
    /// arrive grouped per worker, so the order is restored here, when drawn, rather than
    /// paid for on every event.
    pub fn results_in_order(&self) -> Vec<&TaskResult> {
        let mut sorted: Vec<&TaskResult> = self.results.iter().collect();
        sorted.sort_by_key(|r| r.at);
        sorted
    }

    /// Tasks waiting for a worker (submitted or not yet).
    pub fn queued(&self) -> u64 {
        if self.ended_at.is_some() {
            return 0;
        }
        // External sources announce tasks as they come: what was submitted is the total so far.
        self.config
            .tasks
            .max(self.submitted)
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

    /// The lane of `worker`, if it is still kept.
    pub fn lane(&self, worker: WorkerId) -> Option<&Lane> {
        self.lanes
            .binary_search_by_key(&worker, |l| l.worker)
            .ok()
            .map(|i| &self.lanes[i])
    }

    /// The program has exited, and its threads with it: an idle thread lane whose own end
    /// was not seen (a thread that lived between two passes of the kernel sampler) ends here,
    /// at the latest it can have. A lane running a task is left to the source, which ends
    /// the task; a process lane keeps waiting for its exit status.
    fn threads_end_with_the_program(&mut self, at: Duration) {
        for lane in &mut self.lanes {
            let thread = match &lane.label {
                WorkerLabel::Thread { .. } => true,
                WorkerLabel::External(w) => w.tid.is_some(),
                WorkerLabel::Process { .. } => false,
            };
            if thread && lane.exited.is_none() && lane.current.is_none() {
                lane.exited = Some((at, WorkerExit::Clean));
            }
        }
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

    /// `task` ended at `at` (on `worker`, if it had started) as `kind` says.
    fn end(&mut self, task: TaskId, worker: Option<WorkerId>, at: Duration, kind: &EventKind) {
        self.last_task_end = Some(self.last_task_end.map_or(at, |t| t.max(at)));
        let outcome = match kind {
            EventKind::TaskFailed { error, .. } => {
                self.failed += 1;
                let failure = Failure {
                    at,
                    task,
                    error: error.clone(),
                };
                insert_ordered(&mut self.failures, failure, FAILURES_KEPT, |f| f.at);
                Outcome::Failed
            }
            EventKind::TaskFinished { result, .. } | EventKind::TaskRan { result, .. } => {
                self.finished += 1;
                // A source that gives no value (a program, a recording) has no result.
                if let Some(value) = *result {
                    self.results_total = self.results_total.wrapping_add(value);
                    let result = TaskResult { at, task, value };
                    push_bounded(&mut self.results, result, RESULTS_KEPT);
                }
                Outcome::Finished
            }
            _ => return,
        };
        let cpu = kind.task_cpu();
        let on_lane = worker
            .and_then(|w| self.lane_mut(w))
            .and_then(|lane| lane.end(task, at, outcome, cpu));
        if let (Some(archive), Some(span), Some(worker)) = (&mut self.archive, &on_lane, worker) {
            archive.push(worker, span, self.names.get(task).map(|n| &**n));
        }
        if !self.names.is_empty() {
            self.tally(task, on_lane.as_ref(), outcome == Outcome::Failed);
        }
        if on_lane.is_none() && outcome == Outcome::Failed {
            self.failed_unstarted += 1;
        }
    }

    /// Moves the run's time zero so that all of it lies before `mono_ns`: a recording taken
    /// in whole shows as past, however long reading it took.
    pub fn place_before(&mut self, mono_ns: u64) {
        let end = self.ended_at.unwrap_or(self.last_at).max(self.last_at);
        let end_ns = u64::try_from(end.as_nanos()).unwrap_or(u64::MAX);
        self.origin_ns = mono_ns.saturating_sub(end_ns.saturating_add(1));
    }

    /// Applies one event of this run.
    pub fn apply(&mut self, ev: &PoolEvent) {
        self.last_at = self.last_at.max(ev.at);
        if let Some((task, worker, at)) = ev.task_start() {
            self.start(task, worker, at);
        }
        if let Some((task, worker, at)) = ev.task_end() {
            self.end(task, worker, at, &ev.kind);
        }
        match &ev.kind {
            EventKind::WorkerSpawned { worker, label }
                if !crate::model::states::merge_spawn(self, *worker, label) =>
            {
                let lane = Lane::new(*worker, label.clone(), ev.at);
                match self.lanes.binary_search_by_key(worker, |l| l.worker) {
                    Ok(i) => self.lanes[i] = lane,
                    Err(i) => self.lanes.insert(i, lane),
                }
                self.fold_old_lanes();
            }
            EventKind::WorkerReady { worker } => {
                if let Some(lane) = self.lane_mut(*worker) {
                    lane.ready_at = Some(ev.at);
                }
            }
            EventKind::WorkerExited { worker, exit }
                if !crate::model::states::kernel_exit(self, *worker, ev.at) =>
            {
                if let Some(lane) = self.lane_mut(*worker) {
                    lane.exited = Some((ev.at, exit.clone()));
                }
            }
            EventKind::TasksQueued { first, count } => {
                self.submitted = self.submitted.saturating_add(*count);
                push_bounded(&mut self.queued_at, (*first, ev.at), QUEUED_KEPT);
            }
            EventKind::WorkerStats(sample) => {
                for stat in &sample.workers {
                    if let Some(lane) = self.lane_mut(stat.worker) {
                        lane.sampled(stat.cpu_pct, stat.rss);
                    }
                }
            }
            EventKind::KernelSample(sample) => {
                crate::model::states::apply_sample(self, ev.at, sample);
            }
            EventKind::TaskOverdue { task, worker } => {
                if let Some(lane) = self.lane_mut(*worker) {
                    lane.mark_overdue(*task);
                }
            }
            EventKind::TaskNamed { task, name } => self.names.insert(*task, name),
            EventKind::ProgramExited { exit } => {
                self.program_exit = Some(exit.clone());
                self.threads_end_with_the_program(ev.at);
            }
            EventKind::EventsDropped { count } => {
                self.dropped = self.dropped.saturating_add(*count);
            }
            EventKind::RunFinished { cancelled, .. } => {
                self.cancelled = *cancelled;
                self.ended_at = Some(ev.at);
                if let Some(archive) = &mut self.archive {
                    archive.settle();
                }
            }
            _ => {}
        }
    }

    /// Keeps at most the pool's size plus [`DEAD_KEPT`] lanes: the oldest exited lanes go
    /// into [`Run::folded`]. A finished run's lanes all stay, since nothing replaced them.
    fn fold_old_lanes(&mut self) {
        let cap = (self.config.workers as usize).saturating_add(DEAD_KEPT);
        while self.lanes.len() > cap {
            let Some(i) = self.lanes.iter().position(Lane::has_exited) else {
                return;
            };
            let lane = self.lanes.remove(i);
            self.folded.add(&lane);
        }
    }
}

/// Appends `item` to a bounded deque, dropping the oldest when full.
pub(crate) fn push_bounded<T>(deque: &mut VecDeque<T>, item: T, cap: usize) {
    if deque.len() == cap {
        deque.pop_front();
    }
    deque.push_back(item);
}

/// Inserts `item` into a deque kept in order of `key`, after any equal keys, keeping the
/// newest `cap`: an item older than all of a full deque is dropped.
pub(crate) fn insert_ordered<T, K: Ord>(
    deque: &mut VecDeque<T>,
    item: T,
    cap: usize,
    key: impl Fn(&T) -> K,
) {
    let k = key(&item);
    // Items nearly always arrive in order: look from the back.
    let mut i = deque.len();
    while i > 0 && key(&deque[i - 1]) > k {
        i -= 1;
    }
    if deque.len() == cap {
        if i == 0 {
            return;
        }
        deque.pop_front();
        i -= 1;
    }
    deque.insert(i, item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_insertion_keeps_the_newest_in_key_order() {
        let mut d = VecDeque::new();
        for k in [5, 1, 3, 9, 7, 8, 0] {
            insert_ordered(&mut d, k, 4, |x| *x);
        }
        assert_eq!(d, [5, 7, 8, 9]);
    }
}
