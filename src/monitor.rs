//! Samples the CPU and memory of the current workers, and of poolscope itself, with sysinfo.
//!
//! One [`System`] lives for the whole session on the monitor's own thread, since `/proc`
//! reads block. Each sample refreshes only the worker PIDs (process mode) or the worker TIDs
//! of our own process (thread mode, Linux) plus our own PID: never the whole process table.
//!
//! Threads are read from `/proc/self/task/TID/stat` (through procfs): sysinfo, asked for a
//! TID alone, reads `/proc/TID`, whose figures are the whole process's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::{mpsc, watch};

use crate::event::{EventBatch, EventKind, PoolEvent, RunId, WorkerId, since};
pub use crate::sample::{Sample, WorkerStat};
use crate::sys::mono_ns;

/// The shortest period between samples: CPU % needs two reads far enough apart.
pub const MIN_SAMPLE: Duration = Duration::from_millis(250);

/// What the monitor measures: a worker, by the id the OS knows it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A worker process.
    Process(u32),
    /// A worker thread of poolscope's own process.
    Thread(i32),
}

/// The workers of the run on screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// The run.
    pub run: RunId,
    /// Its time zero on `CLOCK_MONOTONIC`.
    pub origin_ns: u64,
    /// Its live workers.
    pub workers: Vec<(WorkerId, Target)>,
}

impl Targets {
    /// The live workers of the run on screen in `model`.
    pub fn of(model: &crate::model::Model) -> Targets {
        let Some(run) = &model.run else {
            return Targets::default();
        };
        let workers = run
            .lanes
            .iter()
            .filter(|l| !l.has_exited())
            .filter_map(|l| {
                let target = match l.label {
                    crate::event::WorkerLabel::Process { pid } => Target::Process(pid),
                    crate::event::WorkerLabel::Thread { tid, .. } => Target::Thread(tid),
                    // A live program's worker processes are on this machine; its threads are
                    // not ours to read, and a recording's PIDs are another machine's.
                    crate::event::WorkerLabel::External(ref w)
                        if w.is_process() && w.host.is_none() && run.source.is_program() =>
                    {
                        Target::Process(w.pid?)
                    }
                    crate::event::WorkerLabel::External(_) => return None,
                };
                Some((l.worker, target))
            })
            .collect();
        Targets {
            run: run.id,
            origin_ns: run.origin_ns,
            workers,
        }
    }
}

/// Whether `ev` can change which workers the monitor should watch.
pub fn changes_targets(ev: &PoolEvent) -> bool {
    matches!(
        ev.kind,
        EventKind::RunStarted { .. }
            | EventKind::WorkerSpawned { .. }
            | EventKind::WorkerExited { .. }
    )
}

/// Points the monitor at the live workers of `model`'s run, if they changed.
pub fn follow(targets: &watch::Sender<Targets>, model: &crate::model::Model) {
    let now = Targets::of(model);
    targets.send_if_modified(|t| {
        let changed = *t != now;
        *t = now;
        changed
    });
}

/// Reads CPU and memory of chosen processes and threads.
pub struct Sampler {
    sys: System,
    own: Pid,
    pids: Vec<Pid>,
    myself: Option<procfs::process::Process>,
    ticks_per_s: f64,
    /// Each thread's CPU ticks at the previous sample, and when it was taken.
    thread_ticks: HashMap<i32, (u64, Instant)>,
    /// The whole process's CPU ticks at the previous sample (exited threads included).
    own_ticks: Option<(u64, Instant)>,
    /// Worker processes read at the previous sample.
    known: Vec<u32>,
}

/// One thread of poolscope's own process, as read this sample.
struct ThreadReading {
    tid: i32,
    pool: bool,
    cpu_pct: Option<f32>,
    /// For a thread first seen now: all its ticks, all spent since the previous sample.
    new_ticks: Option<u64>,
}

/// Pool worker threads are named `Thread-N`, whichever run spawned them.
fn is_pool_thread(name: &str) -> bool {
    name.starts_with("Thread-")
}

impl Sampler {
    /// A sampler with one `System` for its whole life; `None` where sysinfo cannot work.
    pub fn new() -> Option<Self> {
        Some(Sampler {
            sys: System::new().ok()?,
            own: Pid::from_u32(std::process::id()),
            pids: Vec::new(),
            myself: procfs::process::Process::myself().ok(),
            ticks_per_s: procfs::ticks_per_second() as f64,
            thread_ticks: HashMap::new(),
            own_ticks: None,
            known: Vec::new(),
        })
    }

    /// Refreshes the targets and poolscope itself, and reads them.
    pub fn sample(&mut self, targets: &[(WorkerId, Target)]) -> Sample {
        self.pids.clear();
        self.pids.push(self.own);
        self.pids
            .extend(targets.iter().filter_map(|(_, t)| match *t {
                Target::Process(pid) => Some(Pid::from_u32(pid)),
                Target::Thread(_) => None,
            }));
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::Some(&self.pids), true, kind);
        let own_total = self.process_cpu();
        let threads = self.read_threads(targets);
        let mut sample = Sample::default();
        let mut seen_processes = Vec::new();
        for (worker, target) in targets {
            let stat = match *target {
                Target::Process(pid) => self.sys.process(Pid::from_u32(pid)).map(|p| {
                    seen_processes.push(pid);
                    // sysinfo's first reading of a process is 0 %, not a measurement.
                    let measured = self.known.contains(&pid);
                    WorkerStat {
                        worker: *worker,
                        cpu_pct: measured.then(|| p.cpu_usage()),
                        rss: Some(p.memory()),
                    }
                }),
                Target::Thread(tid) => threads.iter().find(|t| t.tid == tid).map(|t| WorkerStat {
                    worker: *worker,
                    cpu_pct: t.cpu_pct,
                    rss: None,
                }),
            };
            sample.workers.extend(stat);
        }
        if let Some((total, secs)) = own_total {
            // A pool thread born since the last sample spent all its ticks in this interval.
            let pool_cpu: f32 = threads
                .iter()
                .filter(|t| t.pool)
                .map(|t| match (t.cpu_pct, t.new_ticks) {
                    (Some(pct), _) => pct,
                    (None, Some(ticks)) => (ticks as f64 / self.ticks_per_s / secs * 100.0) as f32,
                    (None, None) => 0.0,
                })
                .sum();
            sample.own_cpu_pct = (total - pool_cpu).max(0.0);
        }
        let is_target = |tid: i32| targets.iter().any(|(_, t)| *t == Target::Thread(tid));
        for t in threads.iter().filter(|t| t.pool && !is_target(t.tid)) {
            sample.leftover_threads += 1;
            sample.leftover_cpu_pct += t.cpu_pct.unwrap_or(0.0);
        }
        self.known = seen_processes;
        if let Some(me) = self.sys.process(self.own) {
            sample.own_rss = me.memory();
        }
        sample
    }
}

impl Sampler {
    /// CPU ticks used so far by thread `tid` of this process, and its name.
    fn task_ticks(&self, tid: i32) -> Option<(u64, String)> {
        let stat = self.myself.as_ref()?.task_from_tid(tid).ok()?.stat().ok()?;
        Some((stat.utime + stat.stime, stat.comm))
    }

    /// CPU % of the whole process since the previous sample, threads that have exited
    /// since included (the kernel folds their time into the process's).
    /// Returns it with the interval's length in seconds.
    fn process_cpu(&mut self) -> Option<(f32, f64)> {
        let stat = self.myself.as_ref()?.stat().ok()?;
        let (ticks, now) = (stat.utime + stat.stime, Instant::now());
        let (before, then) = self.own_ticks.replace((ticks, now))?;
        let secs = now.duration_since(then).as_secs_f64();
        (secs > 0.0).then(|| {
            let pct = ticks.saturating_sub(before) as f64 / self.ticks_per_s / secs * 100.0;
            (pct as f32, secs)
        })
    }

    /// Every thread of ours with its CPU % since the previous sample: pool threads (named
    /// `Thread-N`, or watched as a worker) are marked so they can be told from the observer.
    fn read_threads(&mut self, targets: &[(WorkerId, Target)]) -> Vec<ThreadReading> {
        let Some(tasks) = self.myself.as_ref().and_then(|me| me.tasks().ok()) else {
            return Vec::new();
        };
        let tids: Vec<i32> = tasks.flatten().map(|t| t.tid).collect();
        let mut out = Vec::with_capacity(tids.len());
        for tid in tids {
            let Some((ticks, name)) = self.task_ticks(tid) else {
                continue;
            };
            let watched = targets.iter().any(|(_, t)| *t == Target::Thread(tid));
            let cpu_pct = self.cpu_since_last(tid, ticks);
            out.push(ThreadReading {
                tid,
                pool: watched || is_pool_thread(&name),
                cpu_pct,
                new_ticks: cpu_pct.is_none().then_some(ticks),
            });
        }
        self.thread_ticks
            .retain(|tid, _| out.iter().any(|t| t.tid == *tid));
        out
    }

    /// CPU % of thread `tid` since its previous reading (none the first time).
    fn cpu_since_last(&mut self, tid: i32, ticks: u64) -> Option<f32> {
        let now = Instant::now();
        let previous = self.thread_ticks.insert(tid, (ticks, now))?;
        let secs = now.duration_since(previous.1).as_secs_f64();
        (secs > 0.0).then(|| {
            (ticks.saturating_sub(previous.0) as f64 / self.ticks_per_s / secs * 100.0) as f32
        })
    }
}

/// The monitor thread, stopped when dropped.
pub struct Monitor {
    stop: Arc<AtomicBool>,
}

impl Monitor {
    /// Starts sampling every `period` (at least [`MIN_SAMPLE`]) whatever `targets` holds,
    /// sending a `WorkerStats` event per sample; `None` if sysinfo is unavailable.
    pub fn spawn(
        period: Duration,
        targets: watch::Receiver<Targets>,
        events: mpsc::Sender<EventBatch>,
    ) -> Option<Monitor> {
        let mut sampler = Sampler::new()?;
        let period = period.max(MIN_SAMPLE);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    std::thread::sleep(period);
                    let t = targets.borrow().clone();
                    if t.workers.is_empty() {
                        continue;
                    }
                    let sample = sampler.sample(&t.workers);
                    let ev = PoolEvent {
                        run: t.run,
                        at: since(t.origin_ns, mono_ns()),
                        kind: EventKind::WorkerStats(sample),
                    };
                    // Never block the sampler on a busy consumer: a late sample is worthless,
                    // and the next one measures from this one, so skipping loses nothing.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = events.try_send(vec![ev]) {
                        return;
                    }
                }
            });
        spawned.ok().map(|_| Monitor { stop })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
