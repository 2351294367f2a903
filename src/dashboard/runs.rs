//! The runs the dashboard started: debounced starts, the newest one's failure, stopping all.

use std::path::PathBuf;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Mode, RunConfig};
use crate::coordinator::{RunControl, RunOptions, RunReport, run_blocking_tasks};
use crate::error::{PoolError, chain};
use crate::event::{EventBatch, RunId, WorkerId};
use crate::pool::thread::live_threads;

/// Runs start at most this often; a burst of keys collapses into its last request.
pub const MIN_RESTART: Duration = Duration::from_millis(250);
/// A thread run waits while more pool threads than this (of earlier runs, still finishing a
/// task they cannot be pulled out of) are alive, so restarts cannot pile threads up.
pub const MAX_LEFTOVER_THREADS: usize = 512;

/// A run under way.
struct RunHandle {
    id: RunId,
    control: RunControl,
    task: JoinHandle<Result<RunReport, PoolError>>,
}

/// Every run not yet over, and the one asked for next.
pub(crate) struct Runs {
    /// A live source to watch instead of the experiment (a program, `--pid`): each run
    /// watches it afresh.
    pub(crate) watched: Option<std::sync::Arc<dyn crate::source::live::Live>>,
    pool: Handle,
    exe: PathBuf,
    events: mpsc::Sender<EventBatch>,
    live: Vec<RunHandle>,
    pending: Option<(RunId, RunConfig)>,
    last_start: Option<Instant>,
    leftover_limit: usize,
}

impl Runs {
    /// Runs spawned on `pool`, sending their events to `events`.
    pub(crate) fn new(
        pool: Handle,
        exe: PathBuf,
        events: mpsc::Sender<EventBatch>,
        leftover_limit: usize,
    ) -> Self {
        Runs {
            watched: None,
            pool,
            exe,
            events,
            live: Vec::new(),
            pending: None,
            last_start: None,
            leftover_limit,
        }
    }

    /// Asks for run `id`; it replaces any request not yet started.
    pub(crate) fn request(&mut self, id: RunId, config: RunConfig) {
        self.pending = Some((id, config));
    }

    /// Whether a run was asked for and has not started yet.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Starts the requested run once `MIN_RESTART` has passed since the last start,
    /// aborting the runs under way. A thread run waits while too many threads of earlier
    /// runs are still alive; the returned notice says so.
    pub(crate) fn start_due(&mut self, now: Instant) -> Option<String> {
        if self
            .last_start
            .is_some_and(|t| now.duration_since(t) < MIN_RESTART)
        {
            return None;
        }
        let (id, config) = self.pending.take()?;
        // The old runs' process workers are ended at once rather than left to finish their
        // tasks; their threads finish on their own.
        for old in &self.live {
            old.control.abort.cancel();
        }
        if let Some(source) = self.watched.clone() {
            let control = RunControl::new();
            let (cancel, tx) = (control.abort.clone(), self.events.clone());
            let task = self.pool.spawn(async move {
                source
                    .watch(id, cancel, tx)
                    .await
                    .map_err(|e| PoolError::Watch(Box::new(e)))?;
                // The model counts the program's tasks from its events; the report is empty.
                Ok(RunReport {
                    results: Vec::new(),
                    finished: 0,
                    failed: 0,
                    cancelled: 0,
                    wall: Duration::ZERO,
                })
            });
            self.live.push(RunHandle { id, control, task });
            self.last_start = Some(now);
            return None;
        }
        let alive = live_threads();
        if config.mode == Mode::Thread && alive > self.leftover_limit {
            self.pending = Some((id, config));
            return Some(format!(
                "waiting: {alive} threads of earlier runs are still in a task (the next thread \
                 run starts below {})",
                self.leftover_limit + 1
            ));
        }
        let control = RunControl::new();
        // The model reads results from the events; the report need not keep them all.
        let opts = RunOptions {
            collect_results: false,
            ..RunOptions::new(id, self.exe.clone())
        };
        let (run_control, tx) = (control.clone(), self.events.clone());
        let task = self
            .pool
            .spawn(async move { run_blocking_tasks(&config, &opts, &run_control, tx).await });
        self.live.push(RunHandle { id, control, task });
        self.last_start = Some(now);
        None
    }

    /// Forgets the runs that ended. The failure of run `newest` (the latest asked for)
    /// becomes the returned notice; an older run's failure is stale news. Returns whether
    /// any run ended, and the notice.
    pub(crate) fn reap(&mut self, newest: RunId) -> (bool, Option<String>) {
        let before = self.live.len();
        let mut notice = None;
        self.live.retain_mut(|run| {
            if !run.task.is_finished() {
                return true;
            }
            let outcome = futures_util::FutureExt::now_or_never(&mut run.task);
            if run.id == newest {
                notice = match outcome {
                    Some(Ok(Err(e))) => Some(format!("run {} failed: {}", run.id, chain(&e))),
                    Some(Err(e)) => Some(format!("run {} crashed: {e}", run.id)),
                    _ => None,
                };
            }
            false
        });
        (self.live.len() != before, notice)
    }

    /// Kills `worker` of run `run` (its own driver ends the child it owns).
    pub(crate) fn kill(&self, run: RunId, worker: WorkerId) -> bool {
        match self.live.iter().find(|r| r.id == run) {
            Some(r) => {
                r.control.faults.kill(worker);
                true
            }
            None => false,
        }
    }

    /// Makes the next task of the newest run panic.
    pub(crate) fn inject_panic(&self) {
        if let Some(run) = self.live.iter().max_by_key(|r| r.id) {
            run.control.faults.panic_next();
        }
    }

    /// Aborts every run and forgets the request not yet started.
    pub(crate) fn abort_all(&mut self) {
        self.pending = None;
        for run in &self.live {
            run.control.abort.cancel();
        }
    }

    /// Whether every run has ended.
    pub(crate) fn all_ended(&self) -> bool {
        self.live.iter().all(|r| r.task.is_finished())
    }

    /// Aborts every run and waits for them to end, at most `limit`.
    pub(crate) async fn stop(&mut self, limit: Duration) {
        self.abort_all();
        let tasks = self.live.drain(..).map(|r| r.task);
        let _ = tokio::time::timeout(limit, futures_util::future::join_all(tasks)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(rt: &tokio::runtime::Runtime) -> Runs {
        let (tx, _rx) = mpsc::channel(16);
        Runs::new(rt.handle().clone(), "/nonexistent/poolscope".into(), tx, 8)
    }

    #[test]
    fn only_the_newest_runs_failure_is_news() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut runs = runs(&rt);
        let failed = |id| RunHandle {
            id,
            control: RunControl::new(),
            task: rt.spawn(async { Err(PoolError::ConsumerGone) }),
        };
        runs.live.push(failed(1));
        runs.live.push(failed(2));
        rt.block_on(async {
            while !runs.all_ended() {
                tokio::task::yield_now().await;
            }
        });
        // Run 3 was asked for: neither failure is the newest run's.
        assert_eq!(runs.reap(3), (true, None));
        runs.live.push(failed(3));
        rt.block_on(async {
            while !runs.all_ended() {
                tokio::task::yield_now().await;
            }
        });
        let (ended, notice) = runs.reap(3);
        assert!(ended);
        assert_eq!(
            notice.as_deref(),
            Some("run 3 failed: event consumer closed")
        );
    }

    #[test]
    fn a_burst_of_requests_starts_only_its_last_and_not_too_soon() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut runs = runs(&rt);
        let t0 = Instant::now();
        let config = RunConfig {
            mode: Mode::Process,
            ..RunConfig::default()
        };
        runs.request(1, config.clone());
        assert_eq!(runs.start_due(t0), None);
        assert_eq!(runs.live.len(), 1);
        for id in 2..=5 {
            runs.request(id, config.clone());
            assert_eq!(
                runs.start_due(t0 + Duration::from_millis(10 * u64::from(id))),
                None
            );
        }
        assert_eq!(runs.live.len(), 1, "too soon after the last start");
        assert!(runs.has_pending());
        runs.start_due(t0 + MIN_RESTART);
        assert_eq!(runs.live.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 5]);
        assert!(
            runs.live[0].control.abort.is_cancelled(),
            "the old run is aborted"
        );
        assert!(!runs.has_pending());
    }
}
