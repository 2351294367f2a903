//! One worker's lane: who it is, what it runs now, and the history of its tasks.

use std::collections::VecDeque;
use std::time::Duration;

use crate::event::{TaskId, WorkerExit, WorkerId, WorkerLabel};

/// Finished spans kept per lane in full detail; older ones live on only in the occupancy.
pub const SPANS_KEPT: usize = 256;
/// Number of coarse occupancy buckets per lane, whatever the run's length.
pub const BUCKETS: usize = 512;
/// CPU samples kept per lane for its sparkline.
pub const CPU_HISTORY: usize = 32;
/// Width of a bucket before the run outgrows it.
const FIRST_BUCKET_NS: u64 = 1_000_000;
/// The widest a bucket gets: then [`BUCKETS`] of them cover all of `u64` nanoseconds.
const MAX_WIDTH_NS: u64 = u64::MAX / BUCKETS as u64 + 1;

/// How a task on a lane ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned a result.
    Finished,
    /// It raised, panicked, or lost its worker.
    Failed,
}

/// One task's time on a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The task.
    pub task: TaskId,
    /// When the worker began it.
    pub start: Duration,
    /// When it ended.
    pub end: Duration,
    /// How.
    pub outcome: Outcome,
    /// CPU time its thread spent on it, when the source measured it; the rest of the span
    /// it was off-CPU (waiting for a lock, the GIL, a core, I/O).
    pub cpu: Option<Duration>,
}

impl Span {
    /// The share of the span spent on a CPU (0..=1), when measured. A CPU time past the
    /// wall time (clock granularity) counts as all of it.
    pub fn cpu_share(&self) -> Option<f64> {
        let wall = self.end.saturating_sub(self.start).as_secs_f64();
        let cpu = self.cpu?.as_secs_f64();
        Some(if wall <= 0.0 {
            1.0
        } else {
            (cpu / wall).min(1.0)
        })
    }
}

/// Busy time per fixed-width slice of the run, widening as the run grows, so a lane's whole
/// history fits in [`BUCKETS`] numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupancy {
    width_ns: u64,
    busy_ns: Vec<u64>,
}

impl Default for Occupancy {
    fn default() -> Self {
        Occupancy {
            width_ns: FIRST_BUCKET_NS,
            busy_ns: vec![0; BUCKETS],
        }
    }
}

impl Occupancy {
    /// Records the interval `[start, end)` as busy. Any times are accepted: the buckets widen
    /// at most until they cover all of `u64` nanoseconds, and the walk visits each bucket once.
    pub fn add(&mut self, start: Duration, end: Duration) {
        let (start, end) = (nanos(start), nanos(end));
        if end <= start {
            return;
        }
        while end > self.horizon() && self.width_ns <= MAX_WIDTH_NS / 2 {
            self.widen();
        }
        let end = end.min(self.horizon());
        let mut t = start;
        while t < end {
            let i = self.index(t);
            let upto = end.min(self.bucket_end(i));
            self.busy_ns[i] = self.busy_ns[i].saturating_add(upto - t);
            if upto <= t {
                break;
            }
            t = upto;
        }
    }

    /// The busy fraction (0..=1) of `[from, to)`, as well as buckets can tell.
    pub fn busy_fraction(&self, from: Duration, to: Duration) -> f64 {
        let (a, b) = (nanos(from), nanos(to));
        if b <= a {
            return 0.0;
        }
        (self.busy_seconds(from, to) * 1e9 / (b - a) as f64).min(1.0)
    }

    /// Busy time within `[from, to)` in seconds, as well as buckets can tell; it may exceed
    /// the interval where several workers' time is summed in one occupancy.
    pub fn busy_seconds(&self, from: Duration, to: Duration) -> f64 {
        let (from, to) = (nanos(from), nanos(to));
        if to <= from {
            return 0.0;
        }
        let first = (from / self.width_ns).min(BUCKETS as u64 - 1) as usize;
        let last = self.index(to - 1);
        // Spread a bucket's busy time evenly over it, the best guess it allows: only the
        // two edge buckets are partly inside, the ones between count whole.
        let part = |i: usize| {
            let b0 = (i as u64).saturating_mul(self.width_ns);
            let overlap = to.min(self.bucket_end(i)).saturating_sub(from.max(b0));
            self.busy_ns[i] as f64 * (overlap as f64 / self.width_ns as f64)
        };
        if first == last {
            return part(first) / 1e9;
        }
        let inner: u64 = self.busy_ns[first + 1..last]
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(*b));
        (part(first) + inner as f64 + part(last)) / 1e9
    }

    /// The end of the time the buckets cover.
    fn horizon(&self) -> u64 {
        self.width_ns.saturating_mul(BUCKETS as u64)
    }

    /// The bucket holding time `t` (the last one for anything beyond the horizon).
    fn index(&self, t: u64) -> usize {
        (t / self.width_ns).min(BUCKETS as u64 - 1) as usize
    }

    /// The end of bucket `i`.
    fn bucket_end(&self, i: usize) -> u64 {
        (i as u64 + 1).saturating_mul(self.width_ns)
    }

    /// Halves the resolution: pairs of buckets merge, doubling the span covered.
    fn widen(&mut self) {
        for i in 0..BUCKETS / 2 {
            self.busy_ns[i] = self.busy_ns[2 * i].saturating_add(self.busy_ns[2 * i + 1]);
        }
        self.busy_ns[BUCKETS / 2..].fill(0);
        self.width_ns *= 2;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A worker's row on the dashboard.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// The worker's slot.
    pub worker: WorkerId,
    /// Its OS identity.
    pub label: WorkerLabel,
    /// When it was spawned.
    pub spawned_at: Duration,
    /// When it said it was ready to take work (its start-up cost ends here).
    pub ready_at: Option<Duration>,
    /// When it began its first task.
    pub first_start: Option<Duration>,
    /// The task it is running, and since when.
    pub current: Option<(TaskId, Duration)>,
    /// The current task has run past the run's timeout.
    pub overdue: bool,
    /// The most recent finished spans, oldest first.
    pub spans: VecDeque<Span>,
    /// All busy time, coarse but complete.
    pub occupancy: Occupancy,
    /// Up to here the detailed spans have been dropped, and only the occupancy tells.
    pub coarse_until: Duration,
    /// Tasks it finished.
    pub finished: u64,
    /// Tasks that failed on it.
    pub failed: u64,
    /// Total time spent in tasks.
    pub busy: Duration,
    /// When and how it exited, once it has.
    pub exited: Option<(Duration, WorkerExit)>,
    /// CPU use at the last sample, in % of one core.
    pub cpu_pct: Option<f32>,
    /// Resident memory at the last sample (processes only; threads share theirs).
    pub rss: Option<u64>,
    /// Recent CPU samples, oldest first, for the lane's sparkline.
    pub cpu_history: VecDeque<f32>,
    /// What the kernel says it was doing (running, waiting, sleeping), when it is sampled.
    pub states: Option<Box<crate::model::states::LaneStates>>,
}

impl Lane {
    /// A lane for a worker that just came up.
    pub fn new(worker: WorkerId, label: WorkerLabel, spawned_at: Duration) -> Self {
        Lane {
            worker,
            label,
            spawned_at,
            ready_at: None,
            first_start: None,
            current: None,
            overdue: false,
            spans: VecDeque::new(),
            occupancy: Occupancy::default(),
            coarse_until: Duration::ZERO,
            finished: 0,
            failed: 0,
            busy: Duration::ZERO,
            exited: None,
            cpu_pct: None,
            rss: None,
            cpu_history: VecDeque::new(),
            states: None,
        }
    }

    /// The worker began `task` at `at`.
    pub fn start(&mut self, task: TaskId, at: Duration) {
        self.first_start.get_or_insert(at);
        self.current = Some((task, at));
        self.overdue = false;
    }

    /// The worker's task `task` is overdue.
    pub fn mark_overdue(&mut self, task: TaskId) {
        if self.current.is_some_and(|(t, _)| t == task) {
            self.overdue = true;
        }
    }

    /// The worker's task `task` ended at `at`, having used `cpu` if measured; returns the
    /// span if the lane knew its start.
    pub fn end(
        &mut self,
        task: TaskId,
        at: Duration,
        outcome: Outcome,
        cpu: Option<Duration>,
    ) -> Option<Span> {
        let start = match self.current {
            Some((t, start)) if t == task => {
                self.current = None;
                self.overdue = false;
                start
            }
            _ => return None,
        };
        let span = Span {
            task,
            start,
            end: at.max(start),
            outcome,
            cpu,
        };
        match outcome {
            Outcome::Finished => self.finished += 1,
            Outcome::Failed => self.failed += 1,
        }
        self.busy = self
            .busy
            .saturating_add(span.end.saturating_sub(span.start));
        self.occupancy.add(span.start, span.end);
        if self.spans.len() == SPANS_KEPT
            && let Some(old) = self.spans.pop_front()
        {
            self.coarse_until = self.coarse_until.max(old.end);
        }
        self.spans.push_back(span);
        Some(span)
    }

    /// Records a monitor reading.
    pub fn sampled(&mut self, cpu_pct: Option<f32>, rss: Option<u64>) {
        self.rss = rss;
        let Some(cpu) = cpu_pct else { return };
        self.cpu_pct = Some(cpu);
        if self.cpu_history.len() == CPU_HISTORY {
            self.cpu_history.pop_front();
        }
        self.cpu_history.push_back(cpu);
    }

    /// Time spent in tasks within `[from, to)`: from the detailed spans and the running task,
    /// and from the coarse occupancy where the spans have been dropped.
    pub fn busy_in(&self, from: Duration, to: Duration) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        let overlap = |start: Duration, end: Duration| end.min(to).saturating_sub(start.max(from));
        let mut busy = Duration::ZERO;
        // Spans are kept in the order they ended, one task at a time per worker.
        for span in self.spans.iter().rev() {
            if span.end <= from {
                break;
            }
            busy = busy.saturating_add(overlap(span.start.max(self.coarse_until), span.end));
        }
        if let Some((_, start)) = self.current {
            busy = busy.saturating_add(overlap(start, to));
        }
        if from < self.coarse_until {
            let coarse_to = to.min(self.coarse_until);
            let f = self.occupancy.busy_fraction(from, coarse_to);
            let part = coarse_to.saturating_sub(from).as_secs_f64() * f;
            busy = busy.saturating_add(Duration::try_from_secs_f64(part).unwrap_or(Duration::MAX));
        }
        busy.min(to.saturating_sub(from))
    }

    /// When the lane's last finished task ended.
    pub fn last_end(&self) -> Option<Duration> {
        self.spans.back().map(|s| s.end)
    }

    /// The worker's start-up cost: spawn → ready to take work, or, from a source that never
    /// says it is ready, spawn → first task.
    pub fn startup(&self) -> Option<Duration> {
        let ready = self.ready_at.or(self.first_start)?;
        Some(ready.saturating_sub(self.spawned_at))
    }

    /// Whether the worker has exited, cleanly or not.
    pub fn has_exited(&self) -> bool {
        self.exited.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn occupancy_keeps_its_size_and_its_total_as_the_run_grows() {
        let mut occ = Occupancy::default();
        occ.add(ms(0), ms(100));
        occ.add(ms(200), ms(300));
        assert!((occ.busy_fraction(ms(0), ms(100)) - 1.0).abs() < 1e-9);
        assert!(occ.busy_fraction(ms(100), ms(200)) < 1e-9);
        // Far beyond the first horizon: the buckets widen, the length stays fixed.
        occ.add(ms(3_600_000), ms(3_600_500));
        assert_eq!(occ.busy_ns.len(), BUCKETS);
        let total: u64 = occ.busy_ns.iter().sum();
        assert_eq!(total, 700_000_000);
        assert!((occ.busy_fraction(ms(0), ms(3_601_000)) - 700.0 / 3_601_000.0).abs() < 1e-3);
    }

    #[test]
    fn a_lane_keeps_a_bounded_detail_and_exact_totals() {
        let label = WorkerLabel::Process { pid: 9 };
        let mut lane = Lane::new(WorkerId(0), label, ms(0));
        for t in 0..(SPANS_KEPT as u64 + 10) {
            lane.start(t, ms(t * 10));
            lane.end(t, ms(t * 10 + 5), Outcome::Finished, None);
        }
        assert_eq!(lane.spans.len(), SPANS_KEPT);
        assert_eq!(lane.finished, SPANS_KEPT as u64 + 10);
        assert_eq!(lane.busy, ms(5 * (SPANS_KEPT as u64 + 10)));
        // The ten dropped spans ended at 5, 15, ... 95 ms: only the occupancy covers them.
        assert_eq!(lane.coarse_until, ms(95));
        // A report for a task the lane is not running is ignored, not invented.
        assert_eq!(lane.end(999, ms(1), Outcome::Failed, None), None);
    }

    #[test]
    fn a_span_keeps_its_cpu_and_its_share_of_the_wall() {
        let mut lane = Lane::new(WorkerId(0), WorkerLabel::Process { pid: 9 }, ms(0));
        lane.start(1, ms(0));
        let span = lane
            .end(1, ms(300), Outcome::Finished, Some(ms(100)))
            .unwrap();
        assert_eq!(span.cpu, Some(ms(100)));
        assert!((span.cpu_share().unwrap() - 1.0 / 3.0).abs() < 1e-9);
        // No wall time to share (clock granularity): all of it ran.
        lane.start(2, ms(300));
        let span = lane
            .end(2, ms(300), Outcome::Finished, Some(ms(1)))
            .unwrap();
        assert_eq!(span.cpu_share(), Some(1.0));
        // Not measured: no share, rather than a made-up one.
        lane.start(3, ms(400));
        let span = lane.end(3, ms(500), Outcome::Failed, None).unwrap();
        assert_eq!(span.cpu_share(), None);
    }

    /// Runs `f` on a thread and fails (rather than hangs) if it does not return in time.
    fn finishes_in_time(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "did not finish: an absurd time made it spin"
        );
    }

    #[test]
    fn absurd_times_neither_hang_nor_panic() {
        finishes_in_time(|| {
            let mut occ = Occupancy::default();
            occ.add(ms(0), Duration::from_nanos(u64::MAX));
            occ.add(Duration::MAX.saturating_sub(ms(1)), Duration::MAX);
            occ.add(ms(5), ms(6));
            let f = occ.busy_fraction(ms(0), Duration::MAX);
            assert!((0.0..=1.0).contains(&f), "{f}");
            let mut lane = Lane::new(WorkerId(0), WorkerLabel::Process { pid: 9 }, ms(0));
            lane.start(1, Duration::MAX);
            lane.end(1, Duration::MAX, Outcome::Finished, None);
            lane.start(2, ms(1));
            lane.end(2, Duration::from_nanos(u64::MAX), Outcome::Finished, None);
            assert_eq!(lane.finished, 2);
        });
    }

    #[test]
    fn busy_time_in_a_window_counts_spans_the_running_task_and_coarse_history() {
        let mut lane = Lane::new(WorkerId(0), WorkerLabel::Process { pid: 9 }, ms(0));
        // 300 tasks of 2 ms every 4 ms: the oldest 44 survive only in the occupancy.
        for t in 0..300u64 {
            lane.start(t, ms(4 * t));
            lane.end(t, ms(4 * t + 2), Outcome::Finished, None);
        }
        lane.start(300, ms(1200));
        assert_eq!(lane.coarse_until, ms(4 * 43 + 2));
        // Half of every 4 ms, also where only buckets remember, and all of the running task.
        let busy = lane.busy_in(ms(0), ms(1200));
        assert!(busy.abs_diff(ms(600)) <= ms(2), "{busy:?}");
        assert_eq!(lane.busy_in(ms(1200), ms(1250)), ms(50));
        assert_eq!(lane.busy_in(ms(1000), ms(1002)), ms(2));
        assert_eq!(lane.busy_in(ms(1002), ms(1004)), Duration::ZERO);
    }
}
