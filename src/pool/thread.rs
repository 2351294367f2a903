//! The thread pool: `Thread-1`..`Thread-N`, real OS threads reused across tasks.

use std::thread::JoinHandle;

use crate::error::PoolError;
use crate::event::{EventKind, WorkerExit, WorkerId, WorkerLabel};
use crate::pool::task::run_caught;
use crate::pool::{EventTx, PoolSpec, TaskRx};
use crate::sys::{gettid, mono_ns};

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
                .spawn(move || work(worker, thread_name, spawned_ns, &spec, &rx, &events))
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

/// The body of one worker thread.
fn work(
    worker: WorkerId,
    name: String,
    spawned_ns: u64,
    spec: &PoolSpec,
    queue: &TaskRx,
    events: &EventTx,
) {
    // A send fails only when the coordinator is gone; then nobody wants the results.
    let send = |at_ns, kind| events.blocking_send(spec.event(at_ns, kind)).is_ok();
    let label = WorkerLabel::Thread {
        name,
        tid: gettid(),
    };
    if !send(spawned_ns, EventKind::WorkerSpawned { worker, label }) {
        return;
    }
    while let Ok(task) = queue.recv_blocking() {
        if !send(
            mono_ns(),
            EventKind::TaskStarted {
                task: task.id,
                worker,
            },
        ) {
            return;
        }
        let task = spec.faults.arm(task);
        let outcome = run_caught(spec.workload, task, spec.task_ms, spec.seed);
        let kind = match outcome {
            Ok(result) => EventKind::TaskFinished {
                task: task.id,
                worker,
                result,
            },
            Err(error) => EventKind::TaskFailed {
                task: task.id,
                worker: Some(worker),
                error,
            },
        };
        if !send(mono_ns(), kind) {
            return;
        }
    }
    send(
        mono_ns(),
        EventKind::WorkerExited {
            worker,
            exit: WorkerExit::Clean,
        },
    );
}
