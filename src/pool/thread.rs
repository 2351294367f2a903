//! The thread pool: `Thread-1`..`Thread-N`, real OS threads reused across tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::PoolError;
use crate::event::{EventBatch, EventKind, WorkerExit, WorkerId, WorkerLabel, since};
use crate::pool::task::{Task, run_caught};
use crate::pool::{BATCH_MAX, BATCH_MAX_AGE_NS, EventTx, PoolSpec, TaskRx};
use crate::sys::{gettid, mono_ns, thread_cpu_ns, thread_cpu_since};

/// Pool threads alive now, of every run of this process.
static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many pool threads of any run are still alive (an earlier run's threads that are
/// still finishing a task included): threads cannot be killed, so a caller that starts runs
/// again and again must bound them itself.
pub fn live_threads() -> usize {
    LIVE_THREADS.load(Ordering::Relaxed)
}

/// Counts one pool thread as alive for as long as it is held.
struct Alive;

impl Alive {
    fn new() -> Self {
        LIVE_THREADS.fetch_add(1, Ordering::Relaxed);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE_THREADS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running thread pool.
pub struct ThreadPool {
    handles: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// Spawns `spec.workers` named threads that pull tasks from `queue` until it closes.
    pub fn start(spec: PoolSpec, queue: TaskRx, events: EventTx) -> Result<Self, PoolError> {
        let mut handles = Vec::with_capacity(spec.workers as usize);
        for i in 0..spec.workers {
            let name = format!("Thread-{}", i + 1);
            let (spec, rx, events) = (spec.clone(), queue.clone(), events.clone());
            let worker = WorkerId(i);
            let thread_name = name.clone();
            // Stamped before the spawn, as process workers are, so start-up costs compare.
            let spawned_ns = mono_ns();
            // Counted from before the spawn, so a caller never sees a started pool as empty;
            // a failed spawn drops the closure, and with it the count.
            let alive = Alive::new();
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    let _alive = alive;
                    let mut out = Outbox::new(&spec, &events);
                    work(worker, thread_name, spawned_ns, &spec, &rx, &mut out);
                })
                .map_err(PoolError::SpawnThread);
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads already started exit once the queue closes.
                    queue.close();
                    return Err(e);
                }
            }
        }
        Ok(ThreadPool { handles })
    }

    /// Joins the threads that have finished; one still stuck in a task is left detached,
    /// since a thread cannot be killed safely and waiting for it could hang the caller.
    pub fn finish(self) {
        for h in self.handles {
            if h.is_finished() {
                // A worker catches task panics, so join can only fail on a bug of ours;
                // there is nothing left to clean up either way.
                let _ = h.join();
            }
        }
    }
}

/// A worker's outgoing events, sent in batches.
struct Outbox<'a> {
    spec: &'a PoolSpec,
    events: &'a EventTx,
    batch: EventBatch,
    /// When the oldest event in the batch happened.
    oldest_ns: u64,
    /// Set once the coordinator has gone: the worker then stops.
    closed: bool,
}

impl<'a> Outbox<'a> {
    fn new(spec: &'a PoolSpec, events: &'a EventTx) -> Self {
        Outbox {
            spec,
            events,
            batch: Vec::with_capacity(BATCH_MAX),
            oldest_ns: 0,
            closed: false,
        }
    }

    fn push(&mut self, at_ns: u64, kind: EventKind) {
        if self.batch.is_empty() {
            self.oldest_ns = at_ns;
        }
        self.batch.push(self.spec.event(at_ns, kind));
        if self.batch.len() >= BATCH_MAX || at_ns.saturating_sub(self.oldest_ns) >= BATCH_MAX_AGE_NS
        {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() || self.closed {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_MAX));
        // A send fails only when the coordinator is gone; then nobody wants the results.
        self.closed = self.events.blocking_send(batch).is_err();
    }
}

/// The body of one worker thread.
///
/// Events wait in the outbox until the worker is about to wait itself (for work, or on a
/// task that takes time), so the dashboard sees every start at once while a stream of
/// instant tasks costs one channel operation per batch.
fn work(
    worker: WorkerId,
    name: String,
    spawned_ns: u64,
    spec: &PoolSpec,
    queue: &TaskRx,
    out: &mut Outbox,
) {
    let label = WorkerLabel::Thread {
        name,
        tid: gettid(),
    };
    out.push(spawned_ns, EventKind::WorkerSpawned { worker, label });
    out.push(mono_ns(), EventKind::WorkerReady { worker });
    while !out.closed {
        let chunk = match queue.try_recv() {
            Ok(chunk) => chunk,
            Err(async_channel::TryRecvError::Empty) => {
                out.flush();
                match queue.recv_blocking() {
                    Ok(chunk) => chunk,
                    Err(_) => break,
                }
            }
            Err(async_channel::TryRecvError::Closed) => break,
        };
        for task in chunk.tasks() {
            run_one(worker, spec.faults.arm(task), spec, out);
        }
    }
    out.push(
        mono_ns(),
        EventKind::WorkerExited {
            worker,
            exit: WorkerExit::Clean,
        },
    );
    out.flush();
}

/// Runs one task and reports it: its start at once if it takes time (before the worker
/// blocks in it), else start and finish in one event.
fn run_one(worker: WorkerId, task: Task, spec: &PoolSpec, out: &mut Outbox) {
    let announce = spec.announce_starts;
    let started_ns = mono_ns();
    let started = EventKind::TaskStarted {
        task: task.id,
        worker,
    };
    if announce {
        out.push(started_ns, started.clone());
        out.flush();
    }
    // A task long enough to be seen has its CPU measured; an instant one (0 ms) not: two
    // reads of the thread's CPU clock (system calls, ~0.2 µs each) would cost more than it.
    let cpu_before = if announce { thread_cpu_ns() } else { None };
    let outcome = run_caught(spec.workload, task, spec.task_ms, spec.seed);
    let cpu = thread_cpu_since(cpu_before).map(Duration::from_nanos);
    let at_ns = mono_ns();
    let kind = match outcome {
        // Too short to be seen running: its start travels with its finish.
        Ok(result) if !announce => EventKind::TaskRan {
            task: task.id,
            worker,
            started: since(spec.run_start_ns, started_ns),
            result: Some(result),
            cpu,
        },
        Ok(result) => EventKind::TaskFinished {
            task: task.id,
            worker,
            result: Some(result),
            cpu,
        },
        Err(error) => {
            if !announce {
                out.push(started_ns, started);
            }
            EventKind::TaskFailed {
                task: task.id,
                worker: Some(worker),
                error,
                cpu,
            }
        }
    };
    out.push(at_ns, kind);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;
    use std::sync::Arc;
    use std::time::Instant;

    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// The only unit test that starts pool threads, so the global count is exact here.
    #[test]
    fn live_threads_counts_pool_threads_until_they_leave() {
        let spec = PoolSpec {
            run: 0,
            run_start_ns: mono_ns(),
            workers: 4,
            workload: Workload::Noop,
            task_ms: 0,
            seed: 1,
            pipeline: 1,
            announce_starts: false,
            worker_exe: std::path::PathBuf::new(),
            faults: Arc::default(),
            task_timeout: None,
        };
        let (queue_tx, queue_rx) = async_channel::unbounded();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(64);
        assert_eq!(live_threads(), 0);
        let pool = ThreadPool::start(spec, queue_rx, events_tx).expect("threads start");
        assert_eq!(live_threads(), 4, "counted from the start");
        queue_tx.close();
        assert!(wait_for(|| live_threads() == 0), "{} left", live_threads());
        pool.finish();
        // Each thread said it was ready after it was spawned.
        let mut ready = 0;
        while let Ok(batch) = events_rx.try_recv() {
            ready += batch
                .iter()
                .filter(|e| matches!(e.kind, EventKind::WorkerReady { .. }))
                .count();
        }
        assert_eq!(ready, 4);
    }
}
