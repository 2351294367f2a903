//! What the kernel says each lane was doing: running on a CPU, waiting for one (runnable on
//! a run queue), or neither (sleeping or blocked), over time, from the cumulative
//! `schedstat` figures of [`KernelSample`]s. Per lane a fixed number of buckets that widen
//! as the run grows (as the lane's occupancy does), plus exact totals: bounded whatever the
//! run's length. Also where a lane the kernel found and a lane a program declared become
//! one (same TID, or same PID for a process).

use std::time::Duration;

use crate::event::{WorkerId, WorkerLabel};
use crate::model::{Lane, Run};
use crate::sample::{KernelReading, KernelSample, is_kernel_worker};

/// Buckets per lane, whatever the run's length.
pub const STATE_BUCKETS: usize = 256;
/// Width of a bucket before the run outgrows it.
const FIRST_WIDTH_NS: u64 = 10_000_000;
/// The widest a bucket gets.
const MAX_WIDTH_NS: u64 = u64::MAX / STATE_BUCKETS as u64 + 1;

/// Running, waiting and sampled time per fixed-width slice of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTimeline {
    width_ns: u64,
    /// Per bucket: nanoseconds on a CPU, waiting for one, and covered by samples.
    buckets: Vec<[u64; 3]>,
}

impl Default for StateTimeline {
    fn default() -> Self {
        StateTimeline {
            width_ns: FIRST_WIDTH_NS,
            buckets: vec![[0; 3]; STATE_BUCKETS],
        }
    }
}

/// Shares of an interval: running, waiting for a CPU; the rest of the sampled time slept.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shares {
    /// On a CPU (above 1 for a process whose threads ran on several at once).
    pub running: f64,
    /// Runnable, waiting on a run queue.
    pub waiting: f64,
    /// Part of the interval the samples covered at all (0: nothing known).
    pub covered: f64,
}

impl Shares {
    /// Sleeping or blocked: the sampled rest.
    pub fn sleeping(&self) -> f64 {
        (self.covered - self.running.min(1.0) - self.waiting).max(0.0)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl StateTimeline {
    /// Spreads `run` and `wait` nanoseconds evenly over `[start, end)`.
    pub fn add(&mut self, start: Duration, end: Duration, run: u64, wait: u64) {
        let (start, end) = (nanos(start), nanos(end));
        if end <= start {
            return;
        }
        while end > self.horizon() && self.width_ns <= MAX_WIDTH_NS / 2 {
            self.widen();
        }
        let span = (end - start) as f64;
        let end = end.min(self.horizon());
        let mut t = start;
        while t < end {
            let i = self.index(t);
            let upto = end.min((i as u64 + 1).saturating_mul(self.width_ns));
            if upto <= t {
                break;
            }
            let part = (upto - t) as f64 / span;
            let b = &mut self.buckets[i];
            b[0] = b[0].saturating_add((run as f64 * part) as u64);
            b[1] = b[1].saturating_add((wait as f64 * part) as u64);
            b[2] = b[2].saturating_add(upto - t);
            t = upto;
        }
    }

    /// The shares of `[from, to)`, as well as the buckets can tell.
    pub fn shares(&self, from: Duration, to: Duration) -> Shares {
        let (from, to) = (nanos(from), nanos(to));
        if to <= from {
            return Shares::default();
        }
        let mut sum = [0f64; 3];
        let first = self.index(from);
        let last = self.index(to - 1);
        for i in first..=last {
            let b0 = (i as u64).saturating_mul(self.width_ns);
            let b1 = b0.saturating_add(self.width_ns);
            let overlap = to.min(b1).saturating_sub(from.max(b0)) as f64 / self.width_ns as f64;
            for (s, v) in sum.iter_mut().zip(self.buckets[i]) {
                *s += v as f64 * overlap;
            }
        }
        let len = (to - from) as f64;
        Shares {
            running: sum[0] / len,
            waiting: (sum[1] / len).min(1.0),
            covered: (sum[2] / len).min(1.0),
        }
    }

    fn horizon(&self) -> u64 {
        self.width_ns.saturating_mul(STATE_BUCKETS as u64)
    }

    fn index(&self, t: u64) -> usize {
        (t / self.width_ns).min(STATE_BUCKETS as u64 - 1) as usize
    }

    fn widen(&mut self) {
        for i in 0..STATE_BUCKETS / 2 {
            let (a, b) = (self.buckets[2 * i], self.buckets[2 * i + 1]);
            self.buckets[i] = [
                a[0].saturating_add(b[0]),
                a[1].saturating_add(b[1]),
                a[2].saturating_add(b[2]),
            ];
        }
        self.buckets[STATE_BUCKETS / 2..].fill([0; 3]);
        self.width_ns *= 2;
    }
}

/// A lane's kernel figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaneStates {
    /// Running / waiting / sampled over the run.
    pub timeline: StateTimeline,
    /// The kernel's total on-CPU time of the lane (since its thread or process began).
    pub on_cpu_ns: u64,
    /// The kernel's total run-queue wait.
    pub wait_ns: u64,
    /// On-CPU time earned while watched.
    pub watched_cpu_ns: u64,
    /// Run-queue wait while watched.
    pub watched_wait_ns: u64,
    /// Time covered by samples while watched.
    pub watched_ns: u64,
    /// First and last sample that saw the lane.
    pub first_seen: Duration,
    /// The last sample that saw it.
    pub last_seen: Duration,
    /// The latest interval's shares.
    pub recent: Shares,
    /// The scheduler state letter last read.
    pub state: Option<u8>,
    /// The previous reading: when, on-CPU, wait.
    last: Option<(Duration, u64, u64)>,
}

impl LaneStates {
    /// Takes in one reading at `at`.
    pub fn record(&mut self, at: Duration, r: &KernelReading) {
        if r.state.is_some() {
            self.state = r.state;
        }
        let base = match (self.last, r.born_after) {
            (Some(b), _) => Some(b),
            // All of a newborn lane's figures were earned since it was found.
            (None, Some(born)) => Some((born.min(at), 0, 0)),
            (None, None) => None,
        };
        if self.last.is_none() {
            self.first_seen = base.map_or(at, |b| b.0);
        }
        self.last = Some((at, r.on_cpu_ns, r.wait_ns));
        self.last_seen = at;
        self.on_cpu_ns = r.on_cpu_ns;
        self.wait_ns = r.wait_ns;
        let Some((t0, c0, w0)) = base else { return };
        if at <= t0 {
            return;
        }
        let (run, wait) = (r.on_cpu_ns.saturating_sub(c0), r.wait_ns.saturating_sub(w0));
        self.timeline.add(t0, at, run, wait);
        let span = nanos(at.saturating_sub(t0));
        self.watched_cpu_ns = self.watched_cpu_ns.saturating_add(run);
        self.watched_wait_ns = self.watched_wait_ns.saturating_add(wait);
        self.watched_ns = self.watched_ns.saturating_add(span);
        self.recent = Shares {
            running: run as f64 / span as f64,
            waiting: (wait as f64 / span as f64).min(1.0),
            covered: 1.0,
        };
    }

    /// Running and waiting shares over the whole watch.
    pub fn watched_shares(&self) -> Option<(f64, f64)> {
        (self.watched_ns > 0).then(|| {
            let span = self.watched_ns as f64;
            (
                self.watched_cpu_ns as f64 / span,
                self.watched_wait_ns as f64 / span,
            )
        })
    }
}

/// Which kernel lanes were folded into a program's own lanes, and what the sampler could
/// not cover. Bounded by the lanes alive: an alias goes when its lane exits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelLanes {
    /// (kernel worker, the lane it became).
    aliases: Vec<(WorkerId, WorkerId)>,
    /// Threads found but not sampled, at the last sample.
    pub untracked: u32,
    /// Whether any kernel sample has come.
    pub sampled: bool,
}

impl KernelLanes {
    /// The lane a worker id stands for now.
    pub fn resolve(&self, worker: WorkerId) -> WorkerId {
        self.aliases
            .iter()
            .find(|(k, _)| *k == worker)
            .map_or(worker, |(_, to)| *to)
    }
}

/// Who a label names, for matching: a thread by its TID, a process by its PID.
fn identity(label: &WorkerLabel) -> Option<(Option<u32>, Option<i64>)> {
    match label {
        WorkerLabel::Thread { tid, .. } => Some((None, Some(i64::from(*tid)))),
        WorkerLabel::Process { pid } => Some((Some(*pid), None)),
        WorkerLabel::External(w) if w.host.is_none() => match (w.pid, w.tid) {
            (_, Some(tid)) => Some((None, Some(tid))),
            (Some(pid), None) => Some((Some(pid), None)),
            (None, None) => None,
        },
        WorkerLabel::External(_) => None,
    }
}

/// Takes in a `WorkerSpawned` where it joins a lane already there: a kernel lane found for
/// a thread or process the program declared, or the program declaring one the kernel found
/// first (that lane takes the program's id and name, keeping its history). A kernel lane's
/// repeat is a rename. True when handled; false: a new lane, as usual.
pub fn merge_spawn(run: &mut Run, worker: WorkerId, label: &WorkerLabel) -> bool {
    let Some(who) = identity(label) else {
        return false;
    };
    let same = |l: &Lane| !l.has_exited() && identity(&l.label) == Some(who);
    if is_kernel_worker(worker) {
        let to = run.kernel.resolve(worker);
        if let Some(lane) = run.lanes.iter_mut().find(|l| l.worker == to) {
            // A rename of a lane of the kernel's own; a declared lane keeps its name.
            if to == worker {
                lane.label = label.clone();
            }
            return true;
        }
        let Some(lane) = run
            .lanes
            .iter()
            .find(|l| !is_kernel_worker(l.worker) && same(l))
        else {
            return false;
        };
        run.kernel.aliases.push((worker, lane.worker));
        return true;
    }
    if run.lanes.iter().any(|l| l.worker == worker) {
        return false;
    }
    let Some(i) = run
        .lanes
        .iter()
        .position(|l| is_kernel_worker(l.worker) && same(l))
    else {
        return false;
    };
    let mut lane = run.lanes.remove(i);
    run.kernel.aliases.push((lane.worker, worker));
    lane.worker = worker;
    lane.label = label.clone();
    let at = run.lanes.partition_point(|l| l.worker < worker);
    run.lanes.insert(at, lane);
    true
}

/// Takes in a kernel `WorkerExited`: the lane it stands for ends, unless the program told
/// its end already. True when handled.
pub fn kernel_exit(run: &mut Run, worker: WorkerId, at: Duration) -> bool {
    if !is_kernel_worker(worker) {
        return false;
    }
    let to = run.kernel.resolve(worker);
    run.kernel.aliases.retain(|(k, _)| *k != worker);
    if let Some(lane) = run.lanes.iter_mut().find(|l| l.worker == to)
        && lane.exited.is_none()
    {
        lane.exited = Some((at, crate::event::WorkerExit::Clean));
    }
    true
}

/// Takes in a kernel sample taken at `at`.
pub fn apply_sample(run: &mut Run, at: Duration, sample: &KernelSample) {
    run.kernel.sampled = true;
    run.kernel.untracked = sample.untracked;
    for reading in &sample.lanes {
        let to = run.kernel.resolve(reading.worker);
        if let Some(lane) = run.lanes.iter_mut().find(|l| l.worker == to) {
            lane.states
                .get_or_insert_with(Box::default)
                .record(at, reading);
        }
    }
}

/// One lane's totals, as `log --format jsonl` writes them for a kernel-watched run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LaneTotals {
    /// `lane`: tells these records from task records.
    pub record: &'static str,
    /// The lane's name.
    pub lane: String,
    /// Its process.
    pub pid: Option<u32>,
    /// Its thread; absent for a whole process.
    pub tid: Option<i64>,
    /// The kernel's on-CPU total, seconds (since the thread or process began).
    pub cpu_s: f64,
    /// The kernel's run-queue wait total, seconds.
    pub wait_s: f64,
    /// Share of the watched time it ran (above 1: several CPUs at once).
    pub running: Option<f64>,
    /// Share of the watched time it waited for a CPU.
    pub waiting: Option<f64>,
    /// First sample that saw it, seconds since the watch began.
    pub first_seen_s: f64,
    /// Last sample that saw it.
    pub last_seen_s: f64,
    /// Whether it ended while watched.
    pub exited: bool,
}

/// The totals of every lane the kernel sampled, in lane order.
pub fn lane_totals(run: &Run) -> Vec<LaneTotals> {
    let round = |x: f64| (x * 1e6).round() / 1e6;
    run.lanes
        .iter()
        .filter_map(|lane| {
            let s = lane.states.as_deref()?;
            let (pid, tid, name) = match &lane.label {
                WorkerLabel::External(w) => (w.pid, w.tid, w.name.clone()),
                WorkerLabel::Thread { name, tid } => (None, Some(i64::from(*tid)), name.clone()),
                WorkerLabel::Process { pid } => (Some(*pid), None, format!("PID {pid}")),
            };
            let shares = s.watched_shares();
            Some(LaneTotals {
                record: "lane",
                lane: name,
                pid,
                tid,
                cpu_s: round(s.on_cpu_ns as f64 / 1e9),
                wait_s: round(s.wait_ns as f64 / 1e9),
                running: shares.map(|x| round(x.0)),
                waiting: shares.map(|x| round(x.1)),
                first_seen_s: round(s.first_seen.as_secs_f64()),
                last_seen_s: round(s.last_seen.as_secs_f64()),
                exited: lane.has_exited(),
            })
        })
        .collect()
}

/// Running and waiting shares per lane over windows of at least [`COUNTER_WINDOW`], from
/// kernel samples: what `--trace` writes as counter tracks, coarse enough that an hour of
/// 64 lanes stays a few tens of megabytes. Bounded by the lanes alive.
#[derive(Clone, Debug, Default)]
pub struct StateWindows {
    open: std::collections::HashMap<WorkerId, (Duration, u64, u64)>,
}

/// The shortest window a state counter covers.
pub const COUNTER_WINDOW: Duration = Duration::from_millis(250);

impl StateWindows {
    /// The windows `sample` (taken at `at`) closes: (lane, running %, waiting %).
    pub fn close(&mut self, at: Duration, sample: &KernelSample) -> Vec<(WorkerId, f64, f64)> {
        let mut out = Vec::new();
        let alive: std::collections::HashSet<WorkerId> =
            sample.lanes.iter().map(|r| r.worker).collect();
        self.open.retain(|w, _| alive.contains(w));
        for r in &sample.lanes {
            let start = match (self.open.get(&r.worker), r.born_after) {
                (Some(s), _) => *s,
                (None, Some(born)) => (born.min(at), 0, 0),
                (None, None) => {
                    self.open.insert(r.worker, (at, r.on_cpu_ns, r.wait_ns));
                    continue;
                }
            };
            let span = at.saturating_sub(start.0);
            if span < COUNTER_WINDOW {
                self.open.entry(r.worker).or_insert(start);
                continue;
            }
            let ns = span.as_nanos() as f64;
            let pct = |now: u64, then: u64| {
                (now.saturating_sub(then) as f64 / ns * 1000.0).round() / 10.0
            };
            out.push((r.worker, pct(r.on_cpu_ns, start.1), pct(r.wait_ns, start.2)));
            self.open.insert(r.worker, (at, r.on_cpu_ns, r.wait_ns));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, ExternalWorker, PoolEvent};
    use crate::sample::KERNEL_WORKER_BASE;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn thread(tid: i64, name: &str) -> WorkerLabel {
        WorkerLabel::External(Box::new(ExternalWorker {
            host: None,
            pid: Some(10),
            tid: Some(tid),
            name: name.into(),
        }))
    }

    fn ev(at: u64, kind: EventKind) -> PoolEvent {
        PoolEvent {
            run: 1,
            at: ms(at),
            kind,
        }
    }

    fn sample(worker: WorkerId, cpu_ms: u64, wait_ms: u64) -> EventKind {
        EventKind::KernelSample(KernelSample {
            lanes: vec![KernelReading {
                worker,
                on_cpu_ns: cpu_ms * 1_000_000,
                wait_ns: wait_ms * 1_000_000,
                born_after: None,
                state: None,
            }],
            untracked: 0,
        })
    }

    fn run() -> Run {
        Run::new(
            1,
            crate::source::adapt::external_config(None, 0, false),
            10,
            0,
        )
    }

    #[test]
    fn a_thread_the_kernel_found_first_becomes_the_programs_lane_with_its_history() {
        let mut run = run();
        let kernel = WorkerId(KERNEL_WORKER_BASE);
        run.apply(&ev(
            0,
            EventKind::WorkerSpawned {
                worker: kernel,
                label: thread(77, "python3"),
            },
        ));
        run.apply(&ev(0, sample(kernel, 0, 0)));
        run.apply(&ev(100, sample(kernel, 50, 25)));
        // The probe declares the same thread: one lane, the probe's id and name, same history.
        let probe = WorkerId(0);
        run.apply(&ev(
            120,
            EventKind::WorkerSpawned {
                worker: probe,
                label: thread(77, "TPE-0_0"),
            },
        ));
        run.apply(&ev(200, sample(kernel, 150, 25)));
        assert_eq!(run.lanes.len(), 1);
        let lane = &run.lanes[0];
        assert_eq!(
            (lane.worker, lane.label.clone()),
            (probe, thread(77, "TPE-0_0"))
        );
        let s = lane.states.as_deref().unwrap();
        assert_eq!((s.on_cpu_ns, s.watched_cpu_ns), (150_000_000, 150_000_000));
        let early = s.timeline.shares(ms(0), ms(100));
        assert!((early.running - 0.5).abs() < 0.02 && (early.waiting - 0.25).abs() < 0.02);
        let late = s.timeline.shares(ms(100), ms(200));
        assert!((late.running - 1.0).abs() < 0.02 && late.waiting < 0.01);
        // The kernel's exit of that thread ends the one lane.
        run.apply(&ev(
            250,
            EventKind::WorkerExited {
                worker: kernel,
                exit: crate::event::WorkerExit::Clean,
            },
        ));
        assert!(run.lanes[0].has_exited());
    }

    #[test]
    fn a_thread_the_program_declared_first_takes_the_kernels_samples() {
        let mut run = run();
        run.apply(&ev(
            0,
            EventKind::WorkerSpawned {
                worker: WorkerId(3),
                label: thread(5, "w"),
            },
        ));
        let kernel = WorkerId(KERNEL_WORKER_BASE + 9);
        run.apply(&ev(
            1,
            EventKind::WorkerSpawned {
                worker: kernel,
                label: thread(5, "comm"),
            },
        ));
        run.apply(&ev(1, sample(kernel, 0, 0)));
        run.apply(&ev(101, sample(kernel, 10, 0)));
        assert_eq!(run.lanes.len(), 1);
        assert_eq!(run.lanes[0].label, thread(5, "w"));
        let s = run.lanes[0].states.as_deref().unwrap();
        assert_eq!(
            s.watched_shares().map(|x| (x.0 * 100.0).round()),
            Some(10.0)
        );
    }

    #[test]
    fn an_hour_of_samples_keeps_the_same_memory() {
        let mut states = LaneStates::default();
        let r = |cpu| KernelReading {
            worker: WorkerId(0),
            on_cpu_ns: cpu,
            wait_ns: 0,
            born_after: None,
            state: None,
        };
        for i in 0..180_000u64 {
            states.record(ms(20 * i), &r(i * 10_000_000));
        }
        assert_eq!(states.timeline.buckets.len(), STATE_BUCKETS);
        let all = states.timeline.shares(ms(0), ms(3_600_000));
        assert!((all.running - 0.5).abs() < 0.01, "{all:?}");
    }
}
