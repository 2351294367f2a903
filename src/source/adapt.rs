//! From a source's [`SourceEvent`]s to the [`PoolEvent`]s every consumer reads: worker ids
//! for lanes, task ids (and one `TaskNamed`) for string task ids, times relative to the
//! run's origin, failures and lane exits.
//!
//! What a source says is checked again here, as the process workers' reports are: a task
//! that ends on a lane it did not start on keeps its start's lane, a second start or end of
//! one task is dropped, times are bounded, and the tables are bounded however long the run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::{LaneId, LaneInfo, MAX_LANES, MAX_TIME_NS, Recording, SourceEvent, TaskRecord};
use crate::config::{MAX_WORKERS, Mode, RunConfig};
use crate::event::{
    EventKind, ExternalWorker, PoolEvent, RunId, RunSource, TaskId, WorkerExit, WorkerId,
    WorkerLabel,
};
use crate::workload::Workload;

/// Most tasks known at once (queued or running); beyond it new tasks are refused.
const MAX_OPEN_TASKS: usize = 1 << 20;
/// Ended task ids remembered, so a late `queued` of an ended task does not make a new one.
const ENDED_KEPT: usize = 4096;

/// A task the adapter has numbered and not yet seen end.
struct Open {
    id: TaskId,
    worker: Option<WorkerId>,
    name: String,
}

/// Turns one source's events into one run's [`PoolEvent`]s.
pub struct Adapter {
    run: RunId,
    offset: Duration,
    /// Which lanes have been announced as workers.
    spawned: Vec<bool>,
    open: HashMap<String, Open>,
    ended: HashSet<String>,
    ended_order: VecDeque<String>,
    next_task: TaskId,
    finished: u64,
    failed: u64,
    /// Whether the writer told of events it dropped.
    lost: bool,
    /// Events refused here (their source had already passed its own checks).
    pub refused: u64,
    /// Why the first of them was refused.
    pub first_refusal: Option<&'static str>,
    last: Duration,
}

impl Adapter {
    /// An adapter for run `run` whose source's time zero is `offset` after the run's.
    pub fn new(run: RunId, offset: Duration) -> Self {
        Adapter {
            run,
            offset,
            spawned: Vec::new(),
            open: HashMap::new(),
            ended: HashSet::new(),
            ended_order: VecDeque::new(),
            next_task: 0,
            finished: 0,
            failed: 0,
            lost: false,
            refused: 0,
            first_refusal: None,
            last: Duration::ZERO,
        }
    }

    /// Moves the source's time zero (a live program's header says where it is).
    pub fn set_offset(&mut self, offset: Duration) {
        self.offset = offset;
    }

    /// The latest time seen, relative to the run.
    pub fn last(&self) -> Duration {
        self.last
    }

    fn refuse(&mut self, why: &'static str) {
        self.refused += 1;
        self.first_refusal.get_or_insert(why);
    }

    fn ev(&mut self, at_ns: u64, mut kind: EventKind) -> PoolEvent {
        crate::outside_text::clean_kind(&mut kind);
        let at = self.offset + Duration::from_nanos(at_ns.min(MAX_TIME_NS));
        self.last = self.last.max(at);
        PoolEvent {
            run: self.run,
            at,
            kind,
        }
    }

    /// Appends the events `ev` makes to `out`.
    pub fn apply(&mut self, ev: SourceEvent, out: &mut Vec<PoolEvent>) {
        match ev {
            SourceEvent::Lane { lane, info, at_ns } => {
                let at_ns = at_ns.unwrap_or_else(|| self.now_ns());
                self.lane(lane, info, at_ns, out);
            }
            SourceEvent::LaneExited {
                lane,
                at_ns,
                status,
            } => {
                if !self.spawned.get(lane.0 as usize).copied().unwrap_or(false) {
                    self.refuse("a worker exited that never started");
                    return;
                }
                let why = status.as_ref().map_or_else(
                    || "its worker exited while running it".to_owned(),
                    |s| format!("its worker exited while running it: {s}"),
                );
                let exit = status.map_or(WorkerExit::Clean, WorkerExit::Reported);
                let worker = WorkerId(lane.0);
                self.fail_where(Some(worker), &why, at_ns, out);
                out.push(self.ev(at_ns, EventKind::WorkerExited { worker, exit }));
            }
            SourceEvent::Dropped { count, at_ns } => {
                self.lost = true;
                // Never later than what came before it: a count does not stretch the run.
                let now = self.now_ns();
                let at_ns = at_ns.map_or(now, |at| at.min(now));
                out.push(self.ev(at_ns, EventKind::EventsDropped { count }));
            }
            SourceEvent::TaskQueued { task, name, at_ns } => {
                if !self.ended.contains(&task) && !self.open.contains_key(&task) {
                    self.task(task, name, at_ns, out);
                }
            }
            SourceEvent::TaskStarted {
                task,
                name,
                lane,
                at_ns,
            } => self.started(task, name, lane, at_ns, out),
            SourceEvent::TaskEnded {
                task,
                lane,
                at_ns,
                error,
                cpu_ns,
            } => {
                let cpu = cpu_ns.map(Duration::from_nanos);
                self.ended(&task, lane, at_ns, (error, cpu), out);
            }
            SourceEvent::Task(record) => self.record(record, out),
            SourceEvent::Begin { .. } => {} // the run's start is its caller's
        }
    }

    /// Whether the writer told of events it dropped.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// The run's end: how many tasks finished, failed, or never started.
    pub fn finish(&mut self) -> PoolEvent {
        // With events lost, a task never seen to start may well have run: it is not counted
        // as never run; the header says how many events were lost.
        let cancelled = if self.lost {
            0
        } else {
            self.open.values().filter(|o| o.worker.is_none()).count() as u64
        };
        let (finished, failed) = (self.finished, self.failed);
        PoolEvent {
            run: self.run,
            at: self.last,
            kind: EventKind::RunFinished {
                finished,
                failed,
                cancelled,
            },
        }
    }

    /// Fails the tasks still running at the program's end (on any lane): a task cannot
    /// outlive the program, and its end was never told (a worker killed, a lost event).
    pub fn fail_running(&mut self, why: &str, at: Option<Duration>, out: &mut Vec<PoolEvent>) {
        // At `at` on the run's clock (the program's end), never before what came already.
        let now = self.now_ns();
        let at_ns = at.map_or(now, |at| {
            let since = at.saturating_sub(self.offset).as_nanos();
            u64::try_from(since).unwrap_or(u64::MAX).max(now)
        });
        self.fail_where(None, why, at_ns, out);
    }

    /// Fails the started tasks on `worker` (every started task when `None`), oldest first.
    fn fail_where(
        &mut self,
        worker: Option<WorkerId>,
        why: &str,
        at_ns: u64,
        out: &mut Vec<PoolEvent>,
    ) {
        let mut running: Vec<(TaskId, String)> = self
            .open
            .iter()
            .filter(|(_, o)| o.worker.is_some() && (worker.is_none() || o.worker == worker))
            .map(|(k, o)| (o.id, k.clone()))
            .collect();
        running.sort_unstable();
        for (_, key) in running {
            self.ended(&key, None, at_ns, (Some(why.to_owned()), None), out);
        }
    }

    /// Tasks seen so far (queued, started or whole).
    pub fn tasks_seen(&self) -> u64 {
        self.next_task
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.last.saturating_sub(self.offset).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lane(&mut self, lane: LaneId, info: LaneInfo, at_ns: u64, out: &mut Vec<PoolEvent>) {
        let i = lane.0 as usize;
        if i >= MAX_LANES {
            self.refuse("too many workers");
            return;
        }
        if self.spawned.len() <= i {
            self.spawned.resize(i + 1, false);
        }
        // A repeat only makes the identity better known; the lane and its bars stay.
        if std::mem::replace(&mut self.spawned[i], true) {
            return;
        }
        let worker = WorkerId(lane.0);
        let label = label_of(info);
        out.push(self.ev(at_ns, EventKind::WorkerSpawned { worker, label }));
        out.push(self.ev(at_ns, EventKind::WorkerReady { worker }));
    }

    /// Numbers a new task, names it and queues it.
    fn task(&mut self, task: String, name: String, at_ns: u64, out: &mut Vec<PoolEvent>) -> bool {
        if self.open.len() >= MAX_OPEN_TASKS {
            self.refuse("too many tasks open at once");
            return false;
        }
        let id = self.next_task;
        self.next_task += 1;
        if !name.is_empty() {
            out.push(self.ev(
                at_ns,
                EventKind::TaskNamed {
                    task: id,
                    name: name.clone(),
                },
            ));
        }
        out.push(self.ev(
            at_ns,
            EventKind::TasksQueued {
                first: id,
                count: 1,
            },
        ));
        let open = Open {
            id,
            worker: None,
            name,
        };
        self.open.insert(task, open);
        true
    }

    fn started(
        &mut self,
        task: String,
        name: String,
        lane: LaneId,
        at_ns: u64,
        out: &mut Vec<PoolEvent>,
    ) {
        if self.ended.contains(&task) {
            self.refuse("a task started after it ended");
            return;
        }
        if !self.open.contains_key(&task) && !self.task(task.clone(), name.clone(), at_ns, out) {
            return;
        }
        if !self.spawned.get(lane.0 as usize).copied().unwrap_or(false) {
            let info = LaneInfo {
                name: format!("lane {}", lane.0 + 1),
                ..LaneInfo::default()
            };
            self.lane(lane, info, at_ns, out);
        }
        let Some(open) = self.open.get_mut(&task) else {
            return;
        };
        if open.worker.is_some() {
            self.refuse("a task started twice");
            return;
        }
        let worker = WorkerId(lane.0);
        open.worker = Some(worker);
        let (id, renamed) = (open.id, !name.is_empty() && open.name != name);
        if renamed {
            open.name.clone_from(&name);
            out.push(self.ev(at_ns, EventKind::TaskNamed { task: id, name }));
        }
        out.push(self.ev(at_ns, EventKind::TaskStarted { task: id, worker }));
    }

    fn ended(
        &mut self,
        task: &str,
        lane: Option<LaneId>,
        at_ns: u64,
        (error, cpu): (Option<String>, Option<Duration>),
        out: &mut Vec<PoolEvent>,
    ) {
        let Some(open) = self.open.remove(task) else {
            self.refuse("a task ended that never started, or ended twice");
            return;
        };
        self.remember_ended(task);
        // The lane it started on is the truth; an end's own lane only fills a gap.
        let worker = open
            .worker
            .or_else(|| lane.filter(|l| self.is_spawned(*l)).map(|l| WorkerId(l.0)));
        let kind = match (error, worker) {
            (None, Some(worker)) => {
                self.finished += 1;
                // A program or a recording gives no value: none is made up.
                EventKind::TaskFinished {
                    task: open.id,
                    worker,
                    result: None,
                    cpu,
                }
            }
            (error, worker) => {
                self.failed += 1;
                EventKind::TaskFailed {
                    task: open.id,
                    worker,
                    error: error.unwrap_or_else(|| "ended without starting".into()),
                    cpu,
                }
            }
        };
        out.push(self.ev(at_ns, kind));
    }

    fn is_spawned(&self, lane: LaneId) -> bool {
        self.spawned.get(lane.0 as usize).copied().unwrap_or(false)
    }

    fn remember_ended(&mut self, task: &str) {
        if self.ended.insert(task.to_string()) {
            self.ended_order.push_back(task.to_string());
            if self.ended_order.len() > ENDED_KEPT
                && let Some(old) = self.ended_order.pop_front()
            {
                self.ended.remove(&old);
            }
        }
    }

    /// A task known whole: its queueing, start and end, in that order.
    fn record(&mut self, t: TaskRecord, out: &mut Vec<PoolEvent>) {
        for ev in record_events(t) {
            self.apply(ev, out);
        }
    }
}

/// The start, queueing and end of a whole task record, as separate events.
fn record_events(t: TaskRecord) -> Vec<SourceEvent> {
    let mut evs = Vec::with_capacity(3);
    let first = t.queued_ns.or(t.start_ns).unwrap_or(0);
    evs.push(SourceEvent::TaskQueued {
        task: t.task.clone(),
        name: t.name.clone(),
        at_ns: first,
    });
    if let (Some(lane), Some(start)) = (t.lane, t.start_ns) {
        evs.push(SourceEvent::TaskStarted {
            task: t.task.clone(),
            name: String::new(),
            lane,
            at_ns: start,
        });
    }
    if let Some(end) = t.end_ns {
        evs.push(SourceEvent::TaskEnded {
            task: t.task,
            lane: t.lane,
            at_ns: end,
            error: t.error,
            cpu_ns: t.cpu_ns,
        });
    }
    evs
}

/// A source's lane as a worker label.
pub fn label_of(info: LaneInfo) -> WorkerLabel {
    WorkerLabel::External(Box::new(ExternalWorker {
        host: info.host,
        pid: info.pid,
        tid: info.tid,
        name: info.name,
    }))
}

/// The settings an external run is shown with: the lanes it has (`lanes`, or as many as
/// come when `None`), the tasks it holds (0 when not known yet), threads unless every lane
/// is a process.
pub fn external_config(lanes: Option<u32>, tasks: u64, processes: bool) -> RunConfig {
    RunConfig {
        mode: if processes {
            Mode::Process
        } else {
            Mode::Thread
        },
        workers: lanes.unwrap_or(MAX_WORKERS).max(1),
        tasks,
        workload: Workload::Noop,
        // Tasks of external sources take time: their starts are shown as they come.
        task_ms: 1,
        task_timeout_ms: None,
        seed: 0,
    }
}

/// The `RunStarted` of an external run.
pub fn run_started(
    run: RunId,
    config: RunConfig,
    pid: u32,
    origin_ns: u64,
    mut source: RunSource,
) -> PoolEvent {
    crate::outside_text::clean_source(&mut source);
    PoolEvent {
        run,
        at: Duration::ZERO,
        kind: EventKind::RunStarted {
            config,
            coordinator_pid: pid,
            origin_ns,
            source: Box::new(source),
        },
    }
}

/// A whole recording as one run's events, in time order: its lanes as they first work, its
/// tasks' queueing, starts and ends, then the run's end. Events are made as they are
/// consumed, so a big recording costs an index, not a second copy of itself.
pub fn replay_events(
    rec: &Recording,
    run: RunId,
    origin_ns: u64,
    source: RunSource,
    pid: u32,
) -> impl Iterator<Item = PoolEvent> + '_ {
    let processes =
        !rec.lanes.is_empty() && rec.lanes.iter().all(|l| l.tid.is_none() && l.pid.is_some());
    let lanes = u32::try_from(rec.lanes.len()).unwrap_or(u32::MAX);
    let config = external_config(Some(lanes), rec.tasks.len() as u64, processes);
    let start = run_started(run, config, pid, origin_ns, source);
    let order = replay_order(rec);
    let mut adapter = Adapter::new(run, Duration::ZERO);
    let mut buf: Vec<PoolEvent> = Vec::new();
    let mut steps = order.into_iter();
    let mut done = false;
    std::iter::once(start).chain(std::iter::from_fn(move || {
        loop {
            if let Some(ev) = buf.pop() {
                return Some(ev);
            }
            if done {
                return None;
            }
            match steps.next() {
                Some(step) => {
                    adapter.apply(step_event(rec, step), &mut buf);
                    buf.reverse();
                }
                None => {
                    done = true;
                    buf.push(adapter.finish());
                }
            }
        }
    }))
}

/// One step of a replay: what, and of which lane or task.
#[derive(Clone, Copy)]
struct Step {
    at_ns: u64,
    /// 0 lane starts, 1 queued, 2 started, 3 ended, 4 lane exits: the order at equal times.
    what: u8,
    index: u32,
}

/// Every step of `rec`, sorted by time.
fn replay_order(rec: &Recording) -> Vec<Step> {
    let mut first_start: Vec<Option<u64>> = vec![None; rec.lanes.len()];
    let mut steps = Vec::with_capacity(rec.tasks.len() * 3 + rec.lanes.len());
    for (i, t) in rec.tasks.iter().enumerate() {
        let Ok(index) = u32::try_from(i) else { break };
        let queued = t.queued_ns.or(t.start_ns).unwrap_or(0);
        steps.push(Step {
            at_ns: queued,
            what: 1,
            index,
        });
        if let (Some(start), Some(lane)) = (t.start_ns, t.lane) {
            steps.push(Step {
                at_ns: start,
                what: 2,
                index,
            });
            if let Some(f) = first_start.get_mut(lane.0 as usize) {
                *f = Some(f.map_or(start, |s: u64| s.min(start)));
            }
        }
        if let Some(end) = t.end_ns {
            steps.push(Step {
                at_ns: end,
                what: 3,
                index,
            });
        }
    }
    for (i, start) in first_start.iter().enumerate() {
        let Ok(index) = u32::try_from(i) else { break };
        steps.push(Step {
            at_ns: start.unwrap_or(0),
            what: 0,
            index,
        });
        if let Some(Some((at_ns, _))) = rec.lane_exits.get(i) {
            steps.push(Step {
                at_ns: *at_ns,
                what: 4,
                index,
            });
        }
    }
    steps.sort_by_key(|s| (s.at_ns, s.what));
    steps
}

fn step_event(rec: &Recording, step: Step) -> SourceEvent {
    let i = step.index as usize;
    match step.what {
        0 => SourceEvent::Lane {
            lane: LaneId(step.index),
            info: rec.lanes[i].clone(),
            at_ns: Some(step.at_ns),
        },
        4 => SourceEvent::LaneExited {
            lane: LaneId(step.index),
            at_ns: step.at_ns,
            status: rec.lane_exits[i].as_ref().and_then(|e| e.1.clone()),
        },
        what => {
            let t = &rec.tasks[i];
            match (what, t.lane) {
                (1, _) => SourceEvent::TaskQueued {
                    task: t.task.clone(),
                    name: t.name.clone(),
                    at_ns: step.at_ns,
                },
                (2, Some(lane)) => SourceEvent::TaskStarted {
                    task: t.task.clone(),
                    name: String::new(),
                    lane,
                    at_ns: step.at_ns,
                },
                _ => SourceEvent::TaskEnded {
                    task: t.task.clone(),
                    lane: t.lane,
                    at_ns: step.at_ns,
                    error: t.error.clone(),
                    cpu_ns: t.cpu_ns,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(n: u32, name: &str) -> SourceEvent {
        SourceEvent::Lane {
            lane: LaneId(n),
            info: LaneInfo {
                pid: Some(100 + n),
                tid: None,
                name: name.into(),
                host: None,
            },
            at_ns: Some(0),
        }
    }

    fn start(task: &str, name: &str, l: u32, at_ns: u64) -> SourceEvent {
        SourceEvent::TaskStarted {
            task: task.into(),
            name: name.into(),
            lane: LaneId(l),
            at_ns,
        }
    }

    fn end(task: &str, l: Option<u32>, at_ns: u64, error: Option<&str>) -> SourceEvent {
        SourceEvent::TaskEnded {
            task: task.into(),
            lane: l.map(LaneId),
            at_ns,
            error: error.map(str::to_string),
            cpu_ns: None,
        }
    }

    fn adapt(evs: Vec<SourceEvent>) -> (Vec<EventKind>, Adapter) {
        let mut a = Adapter::new(7, Duration::from_millis(5));
        let mut out = Vec::new();
        for ev in evs {
            a.apply(ev, &mut out);
        }
        assert!(
            out.iter()
                .all(|e| e.run == 7 && e.at >= Duration::from_millis(5))
        );
        (out.into_iter().map(|e| e.kind).collect(), a)
    }

    #[test]
    fn a_lane_that_exits_fails_the_task_it_was_running_with_its_status() {
        let (kinds, mut a) = adapt(vec![
            lane(0, "PID 100"),
            lane(1, "PID 101"),
            start("p-1", "die", 0, 2),
            start("p-2", "fine", 1, 2),
            SourceEvent::LaneExited {
                lane: LaneId(0),
                at_ns: 9,
                status: Some("killed by SIGKILL".into()),
            },
        ]);
        let failed: Vec<_> = kinds
            .iter()
            .filter_map(|k| match k {
                EventKind::TaskFailed { task, error, .. } => Some((*task, error.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            failed,
            [(0, "its worker exited while running it: killed by SIGKILL")]
        );
        // The other lane's task is still running; at the program's end it fails too.
        let mut out = Vec::new();
        a.fail_running("the program ended while it ran (exit 3)", None, &mut out);
        assert!(matches!(
            &out[..],
            [PoolEvent {
                kind: EventKind::TaskFailed { task: 1, .. },
                ..
            }]
        ));
        assert_eq!(a.tasks_seen(), 2);
    }

    #[test]
    fn a_writers_drop_count_becomes_an_event() {
        let (kinds, _) = adapt(vec![SourceEvent::Dropped {
            count: 42,
            at_ns: None,
        }]);
        assert_eq!(kinds, [EventKind::EventsDropped { count: 42 }]);
    }

    #[test]
    fn string_tasks_become_numbered_named_tasks_on_their_lanes() {
        let (kinds, mut a) = adapt(vec![
            lane(0, "PID 100"),
            SourceEvent::TaskQueued {
                task: "p-1".into(),
                name: "blocks".into(),
                at_ns: 1,
            },
            start("p-1", "", 0, 2),
            end("p-1", None, 3, None),
            start("p-2", "fails", 0, 4),
            end("p-2", Some(0), 5, Some("ValueError: no")),
        ]);
        let w = WorkerId(0);
        assert!(
            matches!(&kinds[0], EventKind::WorkerSpawned { worker, label }
            if *worker == w && label.to_string() == "PID 100")
        );
        assert_eq!(
            kinds[2],
            EventKind::TaskNamed {
                task: 0,
                name: "blocks".into()
            }
        );
        assert_eq!(kinds[3], EventKind::TasksQueued { first: 0, count: 1 });
        assert_eq!(kinds[4], EventKind::TaskStarted { task: 0, worker: w });
        assert_eq!(
            kinds[5],
            EventKind::TaskFinished {
                task: 0,
                worker: w,
                result: None,
                cpu: None,
            }
        );
        assert_eq!(
            kinds[6],
            EventKind::TaskNamed {
                task: 1,
                name: "fails".into()
            }
        );
        assert!(
            matches!(&kinds[9], EventKind::TaskFailed { task: 1, worker: Some(_), error, .. }
            if error == "ValueError: no")
        );
        assert_eq!(
            a.finish().kind,
            EventKind::RunFinished {
                finished: 1,
                failed: 1,
                cancelled: 0
            }
        );
    }

    #[test]
    fn lies_are_refused_not_believed() {
        let (kinds, a) = adapt(vec![
            lane(0, "a"),
            lane(1, "b"),
            start("t", "x", 0, 10),
            start("t", "x", 1, 11),          // started twice
            end("t", Some(1), 12, None),     // ends on another lane: its start's lane wins
            end("t", Some(0), 13, None),     // ended twice
            end("never", Some(0), 14, None), // never seen
            SourceEvent::TaskQueued {
                task: "t".into(),
                name: "x".into(),
                at_ns: 15,
            }, // late: another process's, dropped quietly
            SourceEvent::LaneExited {
                lane: LaneId(9),
                at_ns: 16,
                status: None,
            }, // unknown lane
            start("u", "y", 0, u64::MAX),    // a time past any run
        ]);
        assert_eq!(
            a.refused, 4,
            "twice started, twice ended, never seen, unknown lane"
        );
        let finished: Vec<_> = kinds
            .iter()
            .filter(|k| matches!(k, EventKind::TaskFinished { .. }))
            .collect();
        assert_eq!(
            finished,
            [&EventKind::TaskFinished {
                task: 0,
                worker: WorkerId(0),
                result: None,
                cpu: None,
            }]
        );
        assert!(a.last() <= Duration::from_millis(5) + Duration::from_nanos(MAX_TIME_NS));
    }

    #[test]
    fn a_replay_comes_out_in_time_order_and_ends_the_run() {
        let mut rec = Recording {
            lanes: vec![LaneInfo {
                name: "slot 1".into(),
                ..LaneInfo::default()
            }],
            lane_exits: vec![None],
            ..Recording::default()
        };
        for (i, (s, e)) in [(50u64, 90u64), (0, 40)].into_iter().enumerate() {
            rec.tasks.push(TaskRecord {
                task: i.to_string(),
                name: format!("job {i}"),
                lane: Some(LaneId(0)),
                queued_ns: None,
                start_ns: Some(s),
                end_ns: Some(e),
                error: None,
                cpu_ns: None,
                steps: 0,
            });
        }
        let evs: Vec<PoolEvent> = replay_events(&rec, 3, 0, RunSource::default(), 1).collect();
        assert!(matches!(evs[0].kind, EventKind::RunStarted { .. }));
        assert!(evs.windows(2).all(|w| w[0].at <= w[1].at), "in time order");
        assert!(matches!(
            evs.last().unwrap().kind,
            EventKind::RunFinished {
                finished: 2,
                failed: 0,
                cancelled: 0
            }
        ));
        let mut model = crate::model::Model::new();
        for e in &evs {
            model.apply(e);
        }
        let run = model.run.unwrap();
        assert_eq!(run.lanes[0].spans.len(), 2);
        assert_eq!(run.task_label(run.lanes[0].spans[0].task), "job 1");
    }
}
