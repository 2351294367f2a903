//! What the monitor measures, as it travels in events: CPU and memory of the workers and of
//! poolscope itself. Kept apart from the sampler so the event vocabulary depends on data
//! only, not on the code that reads `/proc`.

use serde::{Deserialize, Serialize};

use crate::ids::WorkerId;

/// One worker's reading.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerStat {
    /// The worker.
    pub worker: WorkerId,
    /// CPU use since the last sample, in % of one core; `None` at a worker's first sample,
    /// which has nothing to measure from.
    pub cpu_pct: Option<f32>,
    /// Resident memory in bytes; `None` for a thread, which shares its process's memory.
    pub rss: Option<u64>,
}

/// One sample of everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// CPU % of the whole poolscope process minus the pool's own threads (of any run): the
    /// UI, the runtime, the monitor and, in process mode, the coordinator's dispatch work.
    pub own_cpu_pct: f32,
    /// poolscope's resident memory in bytes.
    pub own_rss: u64,
    /// The workers that could be read.
    pub workers: Vec<WorkerStat>,
    /// Pool threads alive that are not workers of the run watched: leftovers of an earlier
    /// thread-mode run still finishing a task.
    #[serde(default)]
    pub leftover_threads: u32,
    /// Their CPU %, summed.
    #[serde(default)]
    pub leftover_cpu_pct: f32,
}

/// Kernel lanes' workers are numbered from here, above any id a pool or a source's adapter
/// gives, so a lane the kernel found never takes the slot of one a program declares.
pub const KERNEL_WORKER_BASE: u32 = 1 << 24;

/// Whether `worker` is a lane the kernel sampler found (rather than one a pool or a program
/// declared).
pub fn is_kernel_worker(worker: WorkerId) -> bool {
    worker.0 >= KERNEL_WORKER_BASE
}

/// One kernel lane's scheduler figures, as `/proc/PID/task/TID/schedstat` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelReading {
    /// The lane (announced before by a `WorkerSpawned` with the same id).
    pub worker: WorkerId,
    /// Nanoseconds on a CPU since the thread (or, for a process lane, each of its threads)
    /// began: cumulative, so a sample lost on the way costs resolution, never time.
    pub on_cpu_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU (on a run queue), cumulative likewise.
    pub wait_ns: u64,
    /// For a lane first seen after the first sample: the time (since the run's start) from
    /// which all of its figures were earned; `None` for a lane already there when sampling
    /// began, whose earlier history is not the watch's.
    pub born_after: Option<std::time::Duration>,
    /// The scheduler state letter from `stat` (`R`, `S`, `D`, `Z`…) when it was read this
    /// sample (it is read less often than the figures).
    pub state: Option<u8>,
}

/// One pass of the kernel sampler over a watched process tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelSample {
    /// Every lane alive at this sample.
    pub lanes: Vec<KernelReading>,
    /// Threads or processes found but not sampled, beyond the sampler's bound.
    pub untracked: u32,
}
