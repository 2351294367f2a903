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

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use crate::event::{EventKind, PoolEvent, WorkerId};

/// How long a line is held at most, past its own time, waiting for slower reports.
pub const WINDOW: Duration = Duration::from_millis(50);
/// The most lines held at once; beyond it the oldest go out early, so memory stays bounded
/// however fast instant tasks report.
pub const MAX_HELD: usize = 65_536;

/// An item held with its time and arrival number (ties keep arrival order).
struct Held<T> {
    at: Duration,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Holds items (log lines) of one run until no earlier one can still arrive, or until the
/// window has passed; pure, so the caller supplies the run's clock.
pub struct ReorderWindow<T> {
    window: Duration,
    /// Workers the run starts with; until all have been heard of, nothing is known about
    /// what the missing ones may still report.
    expected: u32,
    heard_of: u32,
    /// The latest time each live worker has reported.
    reported: HashMap<WorkerId, Duration>,
    held: BinaryHeap<Reverse<Held<T>>>,
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
            held: BinaryHeap::new(),
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

    /// Holds `item`, stamped at `at`.
    pub fn hold(&mut self, at: Duration, item: T) {
        self.seq += 1;
        self.held.push(Reverse(Held {
            at,
            seq: self.seq,
            item,
        }));
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
        let settled = self.settled_until();
        while let Some(Reverse(first)) = self.held.peek() {
            let due = first.at <= settled
                || first.at.saturating_add(self.window) <= now
                || self.held.len() > MAX_HELD;
            if !due {
                break;
            }
            if let Some(Reverse(h)) = self.held.pop() {
                out.push(h.item);
            }
        }
    }

    /// Moves everything still held to `out`, in time order (the run is over).
    pub fn release_all(&mut self, out: &mut Vec<T>) {
        while let Some(Reverse(h)) = self.held.pop() {
            out.push(h.item);
        }
    }

    /// When, on the run's clock, the earliest held item is due at the latest.
    pub fn next_due(&self) -> Option<Duration> {
        self.held
            .peek()
            .map(|Reverse(h)| h.at.saturating_add(self.window))
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
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
                win.hold(e.at, task);
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
    fn memory_stays_bounded() {
        let mut win = ReorderWindow::new(ms(50));
        let mut out = Vec::new();
        win.observe(&started(1));
        for i in 0..(MAX_HELD as u64 + 10) {
            win.hold(ms(1), i);
            win.release(ms(1), &mut out);
        }
        assert_eq!(win.len(), MAX_HELD);
        assert_eq!(out.len(), 10);
    }
}
