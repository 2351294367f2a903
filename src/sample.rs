//! What the monitor measures, as it travels in events: CPU and memory of the workers and of
//! poolscope itself. Kept apart from the sampler so the event vocabulary depends on data
//! only, not on the code that reads `/proc`.

use serde::{Deserialize, Serialize};

use crate::event::WorkerId;

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
