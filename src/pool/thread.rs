//! The thread pool: `Thread-1`..`Thread-N`, real OS threads reused across tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crate::error::PoolError;
use crate::event::{EventBatch, EventKind, WorkerExit, WorkerId, WorkerLabel, since};
use crate::pool::task::run_caught;
use crate::pool::{BATCH_MAX, BATCH_MAX_AGE_NS, EventTx, PoolSpec, TaskRx};
use crate::sys::{gettid, mono_ns};

/// Pool threads alive, of every run of this process.
static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Pool threads of any run still alive (a thread stuck in a long task outlives its run).
pub fn live_threads() -> usize {
    LIVE_THREADS.load(Ordering::Relaxed)
}

/// Counts its thread in [`live_threads`] from creation until the thread ends, however.
struct Alive;

impl Alive {
    fn count() -> Self {
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
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    let _alive = Alive::count();
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
    let announce = spec.announce_starts;
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
            let task = spec.faults.arm(task);
            let started_ns = mono_ns();
            let started = EventKind::TaskStarted {
                task: task.id,
                worker,
            };
            if announce {
                out.push(started_ns, started.clone());
                out.flush();
            }
            let outcome = run_caught(spec.workload, task, spec.task_ms, spec.seed);
            let at_ns = mono_ns();
            match outcome {
                // Too short to be seen running: its start travels with its finish.
                Ok(result) if !announce => out.push(
                    at_ns,
                    EventKind::TaskRan {
                        task: task.id,
                        worker,
                        started: since(spec.run_start_ns, started_ns),
                        result,
                    },
                ),
                Ok(result) => out.push(
                    at_ns,
                    EventKind::TaskFinished {
                        task: task.id,
                        worker,
                        result,
                    },
                ),
                Err(error) => {
                    if !announce {
                        out.push(started_ns, started);
                    }
                    let failed = EventKind::TaskFailed {
                        task: task.id,
                        worker: Some(worker),
                        error,
                    };
                    out.push(at_ns, failed);
                }
            }
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
