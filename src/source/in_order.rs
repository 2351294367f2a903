//! Any reader's events as whole tasks in start order, for a [`Streamer`](super::stream::Streamer),
//! in bounded memory: the readers that do not stream themselves (poolscope's protocol, Dask,
//! GNU parallel joblogs, speedscope) tell a task in pieces or in the order tasks ended, and a
//! recording gathered whole costs memory in proportion to its tasks.
//!
//! A task is held from its first word until it ends, then waits in a window of
//! [`WINDOW`] ended tasks ordered by start; the earliest leaves when the window is full.
//! Tasks end in about the order they start, give or take the tasks running at once, so the
//! order is the whole recording's whenever fewer than [`WINDOW`] tasks run alongside one.
//! A file of fewer tasks than that is handed on exactly as the whole recording replays.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::{LaneId, SourceEvent, TaskRecord};

/// Ended tasks waiting to be handed on in start order.
pub const WINDOW: usize = 16_384;
/// Ended tasks remembered, so that a word about one that comes after its end (a queueing
/// told late by another process) does not make it a new task.
const ENDED_KEPT: usize = 65_536;
/// Distinct task names shared among the tasks not ended yet (a program queues thousands of
/// tasks of a few names at once); past this, each keeps its own.
const NAMES_SHARED: usize = 4096;
/// Tasks told of and not ended, at most (about 400 bytes each): a million queued at once
/// replays; past this, a new task's words are refused and counted, so a file of queued tasks
/// that never start cannot take the memory (4 M of them took 1.6 GB).
pub const MAX_WAITING: usize = 1 << 20;

/// A task told of and not ended: what is known of it so far, in about 100 bytes.
struct Pending {
    name: Option<Arc<str>>,
    lane: Option<LaneId>,
    queued_ns: Option<u64>,
    start_ns: Option<u64>,
}

impl Pending {
    fn into_record(self, task: String) -> TaskRecord {
        TaskRecord {
            task,
            name: self.name.map(|n| n.to_string()).unwrap_or_default(),
            lane: self.lane,
            queued_ns: self.queued_ns,
            start_ns: self.start_ns,
            end_ns: None,
            error: None,
            cpu_ns: None,
            steps: 0,
        }
    }
}

/// A task in the window: the whole recording's order (started ones by start, then by
/// queueing; never-started ones last), ties in the order they came.
struct Waiting {
    key: (bool, Option<u64>, Option<u64>, u64),
    task: TaskRecord,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// A lane's exit: its time, its place among the exits, the lane, and how it ended.
type LaneExit = (u64, u64, u32, Option<String>);

/// Counts of dropped events held in order (each a few words); more are added to the last.
const DROPS_KEPT: usize = 1024;

/// Events the writer dropped (by its word), not yet told, and their place among the tasks:
/// the time the writer gave, or the latest read before them.
struct Dropped {
    count: u64,
    at: u64,
}

/// Puts a reader's events in start order on their way to `out`.
pub struct InOrder<'o> {
    producer: String,
    /// The producer's name from what the reader found (`None`: nothing yet).
    name_of: &'o dyn Fn(Option<&str>) -> String,
    out: &'o mut dyn FnMut(SourceEvent),
    /// Tasks told of and not ended, by id: at most `max_open`.
    open: HashMap<Box<str>, Pending>,
    max_open: usize,
    /// Words refused because `max_open` tasks were waiting.
    refused: u64,
    names: HashSet<Arc<str>>,
    /// The most recently ended tasks' ids, oldest first, and as a set.
    ended: VecDeque<Arc<str>>,
    ended_set: HashSet<Arc<str>>,
    window: BinaryHeap<Reverse<Waiting>>,
    /// Lanes' exits, waiting for the tasks that start before them.
    exits: BinaryHeap<Reverse<LaneExit>>,
    /// The writer's counts of dropped events, waiting for the tasks that start before them.
    dropped: VecDeque<Dropped>,
    /// The latest time read so far.
    latest_ns: u64,
    /// Per lane seen: whether it is a whole process (no thread id, a PID).
    processes: Vec<bool>,
    seq: u64,
    tasks: u64,
    began: bool,
}

impl<'o> InOrder<'o> {
    /// Hands on to `out` a recording's run, its producer named by `name_of` from what the
    /// reader found.
    pub fn new(
        name_of: &'o dyn Fn(Option<&str>) -> String,
        out: &'o mut dyn FnMut(SourceEvent),
    ) -> Self {
        InOrder {
            producer: name_of(None),
            name_of,
            out,
            open: HashMap::new(),
            max_open: MAX_WAITING,
            refused: 0,
            names: HashSet::new(),
            ended: VecDeque::new(),
            ended_set: HashSet::new(),
            window: BinaryHeap::new(),
            exits: BinaryHeap::new(),
            dropped: VecDeque::new(),
            latest_ns: 0,
            processes: Vec::new(),
            seq: 0,
            tasks: 0,
            began: false,
        }
    }

    /// Takes the reader's next event.
    pub fn push(&mut self, ev: SourceEvent) {
        let at = match &ev {
            SourceEvent::LaneExited { at_ns, .. }
            | SourceEvent::TaskQueued { at_ns, .. }
            | SourceEvent::TaskStarted { at_ns, .. }
            | SourceEvent::TaskEnded { at_ns, .. } => Some(*at_ns),
            SourceEvent::Task(t) => t.end_ns.or(t.start_ns).or(t.queued_ns),
            _ => None,
        };
        self.latest_ns = self.latest_ns.max(at.unwrap_or(0));
        match ev {
            SourceEvent::Lane { lane, ref info, .. } => {
                let i = lane.0 as usize;
                if self.processes.len() <= i {
                    self.processes.resize(i + 1, false);
                }
                self.processes[i] = info.tid.is_none() && info.pid.is_some();
                (self.out)(ev);
            }
            SourceEvent::LaneExited {
                lane,
                at_ns,
                status,
            } => {
                self.seq += 1;
                self.exits.push(Reverse((at_ns, self.seq, lane.0, status)));
            }
            SourceEvent::TaskQueued { task, name, at_ns } => {
                if let Some(t) = self.open_task(task, name) {
                    t.queued_ns = Some(at_ns);
                }
            }
            SourceEvent::TaskStarted {
                task,
                name,
                lane,
                at_ns,
            } => {
                if let Some(t) = self.open_task(task, name) {
                    t.lane = Some(lane);
                    t.start_ns = Some(at_ns);
                }
            }
            SourceEvent::TaskEnded {
                task,
                lane,
                at_ns,
                error,
                cpu_ns,
            } => {
                // As a gathered recording does: the end of a task never told of is dropped.
                if let Some(p) = self.open.remove(task.as_str()) {
                    self.remember_ended(&task);
                    let mut t = p.into_record(task);
                    t.end(at_ns, lane, error, cpu_ns);
                    self.wait(t);
                }
            }
            SourceEvent::Task(t) => self.wait(t),
            // The run's size and kind are told when known here; only the producer is taken.
            SourceEvent::Begin { producer, .. } => self.producer = (self.name_of)(Some(&producer)),
            // Told in its place among the tasks, after those that start before it.
            SourceEvent::Dropped { count, at_ns } => {
                // In time order (several processes tell theirs); one without a time where it
                // was read. Past DROPS_KEPT, a count joins the one before it: bounded memory
                // whatever a file holds.
                let at = at_ns.unwrap_or(self.latest_ns);
                let i = self.dropped.partition_point(|d| d.at <= at);
                let full = self.dropped.len() >= DROPS_KEPT;
                match self.dropped.get_mut(i.saturating_sub(1)) {
                    Some(before) if full => {
                        before.count = before.count.saturating_add(count);
                    }
                    _ => self.dropped.insert(i, Dropped { count, at }),
                }
            }
        }
    }

    /// Hands on the writer's counts of dropped events that it told before `at`.
    fn dropped_before(&mut self, at: u64) {
        while self.dropped.front().is_some_and(|d| d.at < at) {
            if let Some(Dropped { count, at, .. }) = self.dropped.pop_front() {
                // Its place, for what comes after (a time read or where it was read).
                let at_ns = Some(at);
                (self.out)(SourceEvent::Dropped { count, at_ns });
            }
        }
    }

    /// At most `max` tasks waiting (see [`MAX_WAITING`]).
    #[must_use]
    pub fn with_limit(mut self, max: usize) -> Self {
        self.max_open = max;
        self
    }

    /// Hands on every task left, in order, then the lanes' exits; the words it refused (see
    /// [`MAX_WAITING`]).
    pub fn finish(mut self) -> u64 {
        for (task, p) in std::mem::take(&mut self.open) {
            self.wait_unbounded(p.into_record(task.into()));
        }
        if !self.began && !self.window.is_empty() {
            let lanes = u32::try_from(self.processes.len()).unwrap_or(u32::MAX);
            self.begin(Some(lanes), Some(self.tasks));
        }
        while let Some(Reverse(w)) = self.window.pop() {
            self.hand_on(w.task);
        }
        if !self.began {
            return self.refused; // no task: no run, whatever the lanes did
        }
        while let Some(Reverse((at_ns, _, lane, status))) = self.exits.pop() {
            self.dropped_before(at_ns);
            (self.out)(SourceEvent::LaneExited {
                lane: LaneId(lane),
                at_ns,
                status,
            });
        }
        self.dropped_before(u64::MAX);
        self.refused
    }

    /// The task `task` not ended yet, named `name` if given; `None` if it has ended (the
    /// word came late: its queueing time is lost, not turned into a second task).
    fn open_task(&mut self, task: String, name: String) -> Option<&mut Pending> {
        if self.ended_set.contains(task.as_str()) {
            return None;
        }
        if self.open.len() >= self.max_open && !self.open.contains_key(task.as_str()) {
            self.refused += 1;
            return None;
        }
        let name = (!name.is_empty()).then(|| self.share(name));
        let t = self.open.entry(task.into()).or_insert(Pending {
            name: None,
            lane: None,
            queued_ns: None,
            start_ns: None,
        });
        if name.is_some() {
            t.name = name;
        }
        Some(t)
    }

    fn remember_ended(&mut self, task: &str) {
        let id: Arc<str> = task.into();
        if self.ended_set.insert(Arc::clone(&id)) {
            self.ended.push_back(id);
        }
        while self.ended.len() > ENDED_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.ended_set.remove(&old);
            }
        }
    }

    /// One allocation for a name many tasks share.
    fn share(&mut self, name: String) -> Arc<str> {
        if let Some(n) = self.names.get(name.as_str()) {
            return Arc::clone(n);
        }
        let n: Arc<str> = name.into();
        if self.names.len() < NAMES_SHARED {
            self.names.insert(Arc::clone(&n));
        }
        n
    }

    fn wait(&mut self, t: TaskRecord) {
        self.wait_unbounded(t);
        while self.window.len() > WINDOW {
            if !self.began {
                // Past the first window the run's size is not known yet: it grows as it comes.
                self.begin(None, None);
            }
            if let Some(Reverse(w)) = self.window.pop() {
                self.hand_on(w.task);
            }
        }
    }

    fn wait_unbounded(&mut self, t: TaskRecord) {
        self.seq += 1;
        self.tasks += 1;
        let key = (t.start_ns.is_none(), t.start_ns, t.queued_ns, self.seq);
        self.window.push(Reverse(Waiting { key, task: t }));
    }

    fn begin(&mut self, lanes: Option<u32>, tasks: Option<u64>) {
        self.began = true;
        let processes = !self.processes.is_empty() && self.processes.iter().all(|&p| p);
        (self.out)(SourceEvent::Begin {
            producer: self.producer.clone(),
            lanes,
            tasks,
            processes,
        });
    }

    /// Hands on `t`, after the lanes' exits that come before it.
    fn hand_on(&mut self, t: TaskRecord) {
        if let Some(start) = t.start_ns.or(t.queued_ns) {
            self.dropped_before(start);
            while self
                .exits
                .peek()
                .is_some_and(|Reverse((at, ..))| *at < start)
            {
                let Some(Reverse((at_ns, _, lane, status))) = self.exits.pop() else {
                    break;
                };
                (self.out)(SourceEvent::LaneExited {
                    lane: LaneId(lane),
                    at_ns,
                    status,
                });
            }
        }
        (self.out)(SourceEvent::Task(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(task: &str, at_ns: u64) -> SourceEvent {
        SourceEvent::TaskQueued {
            task: task.into(),
            name: "work".into(),
            at_ns,
        }
    }

    fn started(task: &str, at_ns: u64) -> SourceEvent {
        SourceEvent::TaskStarted {
            task: task.into(),
            name: String::new(),
            lane: LaneId(0),
            at_ns,
        }
    }

    fn ended(task: &str, at_ns: u64) -> SourceEvent {
        SourceEvent::TaskEnded {
            task: task.into(),
            lane: None,
            at_ns,
            error: None,
            cpu_ns: None,
        }
    }

    /// What `events` come out as; `check` looks at the state after each.
    fn through(events: Vec<SourceEvent>, check: impl Fn(&InOrder)) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        let mut sink = |ev: SourceEvent| out.push(ev);
        let name_of = |_: Option<&str>| "test".to_string();
        let mut order = InOrder::new(&name_of, &mut sink);
        for ev in events {
            order.push(ev);
            check(&order);
        }
        order.finish();
        out
    }

    fn tasks_out(events: Vec<SourceEvent>) -> Vec<(String, Option<u64>, Option<u64>)> {
        through(events, |_| {})
            .into_iter()
            .filter_map(|ev| match ev {
                SourceEvent::Task(t) => Some((t.task, t.start_ns, t.end_ns)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tasks_told_in_pieces_come_out_whole_in_start_order() {
        // b starts after a but ends first; c is still running when the file ends
        let got = tasks_out(vec![
            queued("a", 0),
            queued("b", 1),
            started("a", 2),
            started("b", 3),
            queued("c", 4),
            ended("b", 5),
            started("c", 6),
            ended("a", 9),
        ]);
        let want = [
            ("a".to_string(), Some(2), Some(9)),
            ("b".to_string(), Some(3), Some(5)),
            ("c".to_string(), Some(6), None),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_word_about_a_task_after_its_end_is_not_a_second_task() {
        let got = tasks_out(vec![
            started("a", 2),
            ended("a", 9),
            queued("a", 1), // told late by another process
        ]);
        assert_eq!(got, [("a".to_string(), Some(2), Some(9))]);
    }

    #[test]
    fn tasks_waiting_past_the_limit_are_refused_and_counted() {
        let mut out = Vec::new();
        let mut sink = |ev: SourceEvent| out.push(ev);
        let name_of = |_: Option<&str>| "test".to_string();
        let mut order = InOrder::new(&name_of, &mut sink).with_limit(3);
        for (i, task) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            order.push(queued(task, i as u64));
        }
        order.push(started("a", 5));
        order.push(ended("a", 6)); // a leaves: room for one more
        order.push(queued("f", 7));
        order.push(started("d", 8)); // still no room
        assert!(order.open.len() <= 3);
        assert_eq!(order.finish(), 3, "d and e queued, d started");
        let mut tasks: Vec<String> = out
            .into_iter()
            .filter_map(|ev| match ev {
                SourceEvent::Task(t) => Some(t.task),
                _ => None,
            })
            .collect();
        tasks.sort();
        assert_eq!(tasks, ["a", "b", "c", "f"]);
    }

    #[test]
    fn the_writers_drops_come_out_in_their_place_all_counted_in_bounded_memory() {
        let drop = |count, at_ns| SourceEvent::Dropped { count, at_ns };
        let mut events = vec![started("a", 2), ended("a", 3), drop(5, Some(4))];
        events.extend((0..3 * DROPS_KEPT).map(|_| drop(1, Some(5))));
        events.extend([started("b", 6), ended("b", 7)]);
        let out = through(events, |order| assert!(order.dropped.len() <= DROPS_KEPT));
        let mut total = 0;
        let seen: Vec<&str> = out
            .iter()
            .filter_map(|ev| match ev {
                SourceEvent::Task(t) => Some(t.task.as_str()),
                SourceEvent::Dropped { count, .. } => {
                    total += count;
                    Some("dropped")
                }
                _ => None,
            })
            .collect();
        assert_eq!(total, 5 + 3 * DROPS_KEPT as u64);
        assert_eq!(seen.first(), Some(&"a"));
        assert_eq!(seen.last(), Some(&"b"));
        assert!(seen[1..seen.len() - 1].iter().all(|&s| s == "dropped"));
    }
}
