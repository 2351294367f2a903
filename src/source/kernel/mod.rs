//! Lanes from the kernel: every thread of a watched process and every process it starts,
//! sampled from `/proc` on a thread of its own, with whether each was running, waiting for
//! a CPU or sleeping (from `schedstat`'s on-CPU and run-queue figures between samples).
//!
//! The sampler numbers its lanes from [`KERNEL_WORKER_BASE`], announces each with a
//! `WorkerSpawned` (label: pid, tid for a thread, `comm` as the name) and its end with a
//! `WorkerExited`, and sends one [`KernelSample`] per pass with cumulative figures, so a
//! sample dropped on a busy channel loses resolution, never time. The model matches these
//! lanes to a program's own (by TID, by PID for processes), so one thread is one lane.
//!
//! Why 20 ms by default: the scheduler hands out slices of a few milliseconds, so a 50 Hz
//! sample tells running from waiting from sleeping for anything that lasts a few tens of
//! milliseconds (the tasks people watch), while one pass over 64 threads costs tens of
//! microseconds (`cargo bench --bench monitor`), about 0.1–0.5 % of one core.

pub mod attach;
pub mod procfs;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::event::{
    EventBatch, EventKind, ExternalWorker, PoolEvent, RunId, WorkerExit, WorkerId, WorkerLabel,
};
use crate::sample::{KERNEL_WORKER_BASE, KernelReading, KernelSample};
use crate::sys::mono_ns;
pub use procfs::{Changes, LaneKey, Tree};

/// The default time between samples.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(20);
/// The shortest period allowed: faster only costs more without telling more.
pub const MIN_PERIOD: Duration = Duration::from_millis(5);
/// How long between looks for new threads and processes.
const DISCOVER_EVERY: Duration = Duration::from_millis(100);
/// How long between re-reads of every name and state letter.
const NAMES_EVERY: Duration = Duration::from_secs(1);
/// Spawns and exits held while the consumer is too busy to take them; past this the
/// oldest go (they are only labels of lanes the samples still carry).
const PENDING_KEPT: usize = 4096;

/// Where the sampler's events go: which run, with which time zero.
#[derive(Clone, Debug)]
pub struct Target {
    /// The run the events belong to.
    pub run: RunId,
    /// Its time zero on `CLOCK_MONOTONIC`.
    pub origin_ns: u64,
    /// Time between samples.
    pub period: Duration,
}

/// The sampler thread; [`KernelSampler::stop`] takes a last sample and ends it.
pub struct KernelSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Fires when the root process has exited.
    pub root_gone: Option<oneshot::Receiver<()>>,
}

impl KernelSampler {
    /// Starts sampling `tree`, sending its events to `out`.
    pub fn spawn(
        tree: Tree,
        target: Target,
        out: mpsc::Sender<EventBatch>,
    ) -> std::io::Result<KernelSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (gone_tx, gone_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("kernel-sampler".into())
            .spawn(move || {
                let mut state = Sampling::new(tree, target);
                state.run(&flag, &out, gone_tx);
            })?;
        Ok(KernelSampler {
            stop,
            thread: Some(thread),
            root_gone: Some(gone_rx),
        })
    }

    /// Takes a last sample, sends it, and waits for the thread to end: after this, no
    /// event of the sampler's is on its way.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for KernelSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The sampler's state on its thread.
struct Sampling {
    tree: Tree,
    target: Target,
    ids: HashMap<LaneKey, WorkerId>,
    next_id: u32,
    /// Lanes announced after the first pass, with the pass before they were found.
    born: HashMap<LaneKey, Duration>,
    first_done: bool,
    last_discovery: Duration,
    /// Spawns and exits not yet taken by the consumer.
    pending: Vec<PoolEvent>,
}

impl Sampling {
    fn new(tree: Tree, target: Target) -> Self {
        Sampling {
            tree,
            target,
            ids: HashMap::new(),
            next_id: KERNEL_WORKER_BASE,
            born: HashMap::new(),
            first_done: false,
            last_discovery: Duration::ZERO,
            pending: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(mono_ns().saturating_sub(self.target.origin_ns))
    }

    /// Samples until `stop`, then once more; tells `gone` when the root exits.
    fn run(
        &mut self,
        stop: &AtomicBool,
        out: &mpsc::Sender<EventBatch>,
        gone: oneshot::Sender<()>,
    ) {
        let mut gone = Some(gone);
        let mut last_names = Duration::ZERO;
        let period = self.target.period.max(MIN_PERIOD);
        let mut next = std::time::Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let now = self.now();
            let mut changes = Changes::default();
            let discovering =
                !self.first_done || now.saturating_sub(self.last_discovery) >= DISCOVER_EVERY;
            if discovering {
                let names = now.saturating_sub(last_names) >= NAMES_EVERY || !self.first_done;
                if names {
                    last_names = now;
                }
                self.tree.discover(names, &mut changes);
            }
            self.tree.read(&mut changes);
            let batch = self.events(&changes, now);
            if discovering {
                self.last_discovery = now;
            }
            if self.tree.root_gone()
                && let Some(tx) = gone.take()
            {
                let _ = tx.send(());
            }
            if stopping {
                last_send(out, batch);
                return;
            }
            match out.try_send(batch) {
                Ok(()) => self.pending.clear(),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                // A busy consumer loses this sample, not the lanes' births and ends.
                Err(mpsc::error::TrySendError::Full(batch)) => {
                    self.pending = batch
                        .into_iter()
                        .filter(|e| !matches!(e.kind, EventKind::KernelSample(_)))
                        .collect();
                    let excess = self.pending.len().saturating_sub(PENDING_KEPT);
                    self.pending.drain(..excess);
                }
            }
            next += period;
            let wait = next.saturating_duration_since(std::time::Instant::now());
            if wait.is_zero() {
                // Fell behind (a stalled machine): start afresh rather than catch up.
                next = std::time::Instant::now();
            }
            std::thread::sleep(wait);
        }
    }

    /// The events of one pass: spawns, a sample, exits (after the pending ones).
    fn events(&mut self, changes: &Changes, now: Duration) -> EventBatch {
        let run = self.target.run;
        let ev = |kind| PoolEvent { run, at: now, kind };
        let mut batch = std::mem::take(&mut self.pending);
        for key in &changes.appeared {
            let Some(fig) = self.tree.lane(*key) else {
                continue;
            };
            let worker = match self.ids.get(key) {
                Some(w) => *w,
                None => {
                    let w = WorkerId(self.next_id);
                    self.next_id = self.next_id.saturating_add(1);
                    self.ids.insert(*key, w);
                    if self.first_done {
                        self.born.insert(*key, self.last_discovery);
                    }
                    w
                }
            };
            let label = label_of(*key, &fig.name);
            let mut spawned = ev(EventKind::WorkerSpawned { worker, label });
            // A thread names itself: its name is outside text, shown only once cleaned.
            crate::outside_text::clean_event(&mut spawned);
            batch.push(spawned);
        }
        let lanes = self
            .tree
            .lanes()
            .filter_map(|(key, fig)| {
                Some(KernelReading {
                    worker: *self.ids.get(&key)?,
                    on_cpu_ns: fig.on_cpu_ns,
                    wait_ns: fig.wait_ns,
                    born_after: self.born.get(&key).copied(),
                    state: fig.state,
                })
            })
            .collect();
        batch.push(ev(EventKind::KernelSample(KernelSample {
            lanes,
            untracked: self.tree.untracked,
        })));
        for key in &changes.gone {
            self.born.remove(key);
            if let Some(worker) = self.ids.remove(key) {
                let exit = WorkerExit::Clean;
                batch.push(ev(EventKind::WorkerExited { worker, exit }));
            }
        }
        self.first_done = true;
        batch
    }
}

/// Sends the last batch: the consumer is draining then, but give up after a second rather
/// than wait on one that stopped.
fn last_send(out: &mpsc::Sender<EventBatch>, mut batch: EventBatch) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match out.try_send(batch) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(b)) => batch = b,
        }
        if std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The label of a kernel lane: its process, its thread for a thread lane, its `comm`.
pub fn label_of(key: LaneKey, name: &str) -> WorkerLabel {
    let (pid, tid) = match key {
        LaneKey::Thread { pid, tid } => (pid, Some(i64::from(tid))),
        LaneKey::Process { pid } => (pid, None),
    };
    let name = if name.is_empty() {
        format!("PID {pid}")
    } else {
        crate::source::clip(name, crate::source::MAX_NAME)
    };
    WorkerLabel::External(Box::new(ExternalWorker {
        host: None,
        pid: Some(pid),
        tid,
        name,
    }))
}
