//! A bounded reorder window: puts lines that arrive in report order back into the order the
//! workers stamped them.
//!
//! Workers report on their own schedule, so a line stamped at 10 ms by one worker can arrive
//! after a line stamped at 12 ms by another. Each worker's own reports arrive in stamp order,
//! though, so once every live worker has reported something stamped at or after `t`, no line
//! earlier than `t` can still come: everything up to that point is released, in time order.
//! A worker that stays silent (a long task, an idle wait, a stuck thread) cannot hold the
//! output back for longer than the window: a line stamped at `t` is released at the latest
//! when the run's clock reaches `t + window`, which is enough for any report to arrive
//! unless the machine stalls for longer than that.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::event::{EventKind, PoolEvent, WorkerId};

/// How long a line is held at most, past its own time, waiting for slower reports.
pub const WINDOW: Duration = Duration::from_millis(50);
/// The most lines held at once; beyond it the oldest go out early, so memory stays bounded
/// however fast instant tasks report.
pub const MAX_HELD: usize = 16_384;

/// Who stamped a line: a worker, or the coordinator (`None`).
pub type Source = Option<WorkerId>;

/// An item held with its time and arrival number (ties keep arrival order).
struct Held<T> {
    at: Duration,
    seq: u64,
    item: T,
}

/// Holds items (log lines) of one run until no earlier one can still arrive, or until the
/// window has passed; pure, so the caller supplies the run's clock.
///
/// Items wait in one queue per source, each already in time order (a source reports in the
/// order it stamps), so holding is an append and releasing a merge of sorted runs: no
/// per-item heap work, which would cost more than printing the line.
pub struct ReorderWindow<T> {
    window: Duration,
    /// Workers the run starts with; until all have been heard of, nothing is known about
    /// what the missing ones may still report.
    expected: u32,
    heard_of: u32,
    /// The latest time each live worker has reported.
    reported: HashMap<WorkerId, Duration>,
    queues: HashMap<Source, VecDeque<Held<T>>>,
    held: usize,
    seq: u64,
}

impl<T> Default for ReorderWindow<T> {
    fn default() -> Self {
        ReorderWindow::new(WINDOW)
    }
}

impl<T> ReorderWindow<T> {
    /// An empty window that holds an item at most `window` past its time.
    pub fn new(window: Duration) -> Self {
        ReorderWindow {
            window,
            expected: 0,
            heard_of: 0,
            reported: HashMap::new(),
            queues: HashMap::new(),
            held: 0,
            seq: 0,
        }
    }

    /// Learns from `ev` how far its worker has got (call it for every event, before holding
    /// the lines it produced).
    pub fn observe(&mut self, ev: &PoolEvent) {
        match &ev.kind {
            EventKind::RunStarted { config, .. } => {
                self.expected = config.workers;
                self.heard_of = 0;
                self.reported.clear();
            }
            EventKind::WorkerSpawned { worker, .. } => {
                if self.reported.insert(*worker, ev.at).is_none() {
                    self.heard_of += 1;
                }
            }
            EventKind::WorkerExited { worker, .. } => {
                // A worker that left reports nothing more.
                self.reported.remove(worker);
            }
            EventKind::RunFinished { .. } => self.reported.clear(),
            _ => {
                if let Some(worker) = worker_of(&ev.kind)
                    && let Some(t) = self.reported.get_mut(&worker)
                {
                    *t = (*t).max(ev.at);
                }
            }
        }
    }

    /// Holds `item`, stamped at `at` by `source` (see [`source_of`]).
    pub fn hold(&mut self, source: Source, at: Duration, item: T) {
        self.seq += 1;
        self.held += 1;
        let held = Held {
            at,
            seq: self.seq,
            item,
        };
        let queue = self.queues.entry(source).or_default();
        if queue.back().is_none_or(|last| last.at <= at) {
            queue.push_back(held);
        } else {
            // A source that stamps out of order (a coordinator-stamped line about a worker).
            let i = queue.partition_point(|h| h.at <= at);
            queue.insert(i, held);
        }
    }

    /// The time up to which every live worker has reported: nothing earlier can still come.
    fn settled_until(&self) -> Duration {
        if self.heard_of < self.expected {
            return Duration::ZERO;
        }
        self.reported
            .values()
            .copied()
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// Moves to `out`, in time order, every item that can no longer be overtaken, or whose
    /// window has passed by `now` (the run's clock).
    pub fn release(&mut self, now: Duration, out: &mut Vec<T>) {
        let mut until = self.settled_until().max(now.saturating_sub(self.window));
        if self.held > MAX_HELD {
            // Too much held: let at least half of the longest queue go.
            let longest = self.queues.values().max_by_key(|q| q.len());
            if let Some(mid) = longest.and_then(|q| q.get(q.len() / 2)) {
                until = until.max(mid.at);
            }
        }
        self.release_until(until, out);
    }

    /// Moves everything still held to `out`, in time order (the run is over).
    pub fn release_all(&mut self, out: &mut Vec<T>) {
        self.release_until(Duration::MAX, out);
    }

    fn release_until(&mut self, until: Duration, out: &mut Vec<T>) {
        let mut due: Vec<Held<T>> = Vec::new();
        for queue in self.queues.values_mut() {
            let n = queue.partition_point(|h| h.at <= until);
            due.extend(queue.drain(..n));
        }
        if due.is_empty() {
            return;
        }
        self.held -= due.len();
        // Runs already sorted per source: the stable sort merges them cheaply.
        due.sort_by_key(|h| (h.at, h.seq));
        out.extend(due.into_iter().map(|h| h.item));
    }

    /// When, on the run's clock, the earliest held item is due at the latest.
    pub fn next_due(&self) -> Option<Duration> {
        self.queues
            .values()
            .filter_map(|q| q.front())
            .map(|h| h.at.saturating_add(self.window))
            .min()
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

/// Who stamped the lines `ev` produces: its worker for what a worker reports, else the
/// coordinator.
pub fn source_of(ev: &PoolEvent) -> Source {
    match &ev.kind {
        EventKind::WorkerExited { worker, .. } | EventKind::TaskOverdue { worker, .. } => {
            Some(*worker)
        }
        kind => worker_of(kind),
    }
}

/// The worker an event reports about, for events that workers themselves stamp.
fn worker_of(kind: &EventKind) -> Option<WorkerId> {
    match kind {
        EventKind::WorkerReady { worker }
        | EventKind::TaskStarted { worker, .. }
        | EventKind::TaskFinished { worker, .. }
        | EventKind::TaskRan { worker, .. }
        | EventKind::WorkerOutput { worker, .. } => Some(*worker),
        EventKind::TaskFailed { worker, .. } => *worker,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::event::WorkerLabel;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ev(at: u64, kind: EventKind) -> PoolEvent {
        PoolEvent {
            run: 0,
            at: ms(at),
            kind,
        }
    }

    fn started(workers: u32) -> PoolEvent {
        ev(
            0,
            EventKind::RunStarted {
                config: RunConfig {
                    workers,
                    ..RunConfig::default()
                },
                coordinator_pid: 1,
                origin_ns: 0,
                source: Box::default(),
            },
        )
    }

    fn spawned(at: u64, w: u32) -> PoolEvent {
        ev(
            at,
            EventKind::WorkerSpawned {
                worker: WorkerId(w),
                label: WorkerLabel::Process { pid: 100 + w },
            },
        )
    }

    fn start(at: u64, w: u32, task: u64) -> PoolEvent {
        ev(
            at,
            EventKind::TaskStarted {
                task,
                worker: WorkerId(w),
            },
        )
    }

    /// Feeds events in arrival order, holding one item (the task id) per task event.
    fn feed(win: &mut ReorderWindow<u64>, events: &[PoolEvent], now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for e in events {
            win.observe(e);
            if let EventKind::TaskStarted { task, .. } = e.kind {
                win.hold(source_of(e), e.at, task);
            }
            win.release(ms(now), &mut out);
        }
        out
    }

    #[test]
    fn a_late_report_is_put_back_in_time_order() {
        let mut win = ReorderWindow::new(ms(50));
        let events = [
            started(2),
            spawned(0, 0),
            spawned(0, 1),
            start(12, 1, 1),
            start(10, 0, 0),
            start(20, 0, 2),
            start(25, 1, 3),
        ];
        // Task 2 (20 ms) waits until worker 1 reports past it (25 ms); task 3 waits too.
        assert_eq!(feed(&mut win, &events, 26), vec![0, 1, 2]);
        let mut rest = Vec::new();
        win.release_all(&mut rest);
        assert_eq!(rest, vec![3]);
    }

    #[test]
    fn nothing_goes_out_before_every_worker_is_known_or_the_window_passes() {
        let mut win = ReorderWindow::new(ms(50));
        let events = [started(2), spawned(0, 0), start(5, 0, 0), start(7, 0, 1)];
        assert!(feed(&mut win, &events, 8).is_empty());
        assert_eq!(win.next_due(), Some(ms(55)));
        let mut out = Vec::new();
        win.release(ms(56), &mut out);
        assert_eq!(out, vec![0], "task 1 (7 ms) is due at 57 ms");
    }

    #[test]
    fn a_silent_worker_holds_lines_back_for_the_window_only() {
        let mut win = ReorderWindow::new(ms(50));
        let events = [
            started(2),
            spawned(0, 0),
            spawned(0, 1),
            start(1, 1, 9),
            start(5, 0, 0),
        ];
        assert!(feed(&mut win, &events, 10).len() == 1, "task 9 is settled");
        let mut out = Vec::new();
        win.release(ms(54), &mut out);
        assert!(out.is_empty());
        win.release(ms(55), &mut out);
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn a_worker_that_left_holds_nothing_back() {
        let mut win = ReorderWindow::new(ms(50));
        let exited = ev(
            3,
            EventKind::WorkerExited {
                worker: WorkerId(1),
                exit: crate::event::WorkerExit::Signal(9),
            },
        );
        let events = [started(2), spawned(0, 0), spawned(0, 1), exited];
        feed(&mut win, &events, 3);
        let out = feed(&mut win, &[start(8, 0, 4)], 9);
        assert_eq!(out, vec![4]);
    }

    #[test]
    fn lines_of_one_source_stamped_out_of_order_are_sorted_too() {
        let mut win = ReorderWindow::new(ms(50));
        let mut out = Vec::new();
        win.observe(&started(1));
        for (at, item) in [(5, 'a'), (9, 'c'), (7, 'b')] {
            win.hold(Some(WorkerId(0)), ms(at), item);
        }
        win.hold(None, ms(8), 'x');
        assert_eq!(win.next_due(), Some(ms(55)));
        win.release(ms(58), &mut out);
        assert_eq!(out, vec!['a', 'b', 'x']);
        win.release_all(&mut out);
        assert_eq!(out, vec!['a', 'b', 'x', 'c']);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut win = ReorderWindow::new(ms(50));
        let mut out = Vec::new();
        win.observe(&started(1));
        for i in 0..(MAX_HELD as u64 + 10) {
            win.hold(None, ms(i), i);
            win.release(ms(1), &mut out);
        }
        assert!(win.len() <= MAX_HELD, "{}", win.len());
        assert!(out.windows(2).all(|w| w[0] < w[1]), "still in order");
        assert_eq!(out.len() + win.len(), MAX_HELD + 10);
    }
}
