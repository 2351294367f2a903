//! The figures of a finished run, kept so a thread run and a process run can be compared.

use std::time::Duration;

use crate::config::RunConfig;
use crate::model::{Lane, Run};

/// What one complete run cost.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run's settings.
    pub config: RunConfig,
    /// Wall time from start to the last task's end.
    pub wall: Duration,
    /// Mean time from a worker's spawn to the moment it was ready to take work.
    pub startup: Duration,
    /// Tasks that finished.
    pub finished: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Finished and failed tasks per second of wall time.
    pub tasks_per_s: f64,
    /// Share of the workers' time (from spawn to the end) spent in tasks.
    pub busy_pct: f64,
    /// The least and the most busy worker, in %.
    pub busy_range: (f64, f64),
    /// Mean hand-off overhead per task (idle gap before a task that was waiting).
    pub overhead_mean: Option<Duration>,
    /// 99th percentile of the same.
    pub overhead_p99: Option<Duration>,
}

impl RunSummary {
    /// Summarises `run`, whose last task ended at `wall`.
    pub fn of(run: &Run, wall: Duration) -> RunSummary {
        let starts: Vec<Duration> = run.lanes.iter().filter_map(Lane::startup).collect();
        let (folded_sum, folded_n) = run.folded.startup;
        let startup = mean(&starts, (folded_sum, folded_n)).unwrap_or(Duration::ZERO);
        let done = run.finished + run.failed;
        let secs = wall.as_secs_f64();
        let lifetime = |l: &Lane| {
            let end = l.exited.as_ref().map_or(wall, |(at, _)| (*at).min(wall));
            end.saturating_sub(l.spawned_at).as_secs_f64()
        };
        let available: f64 =
            run.lanes.iter().map(lifetime).sum::<f64>() + run.folded.lifetime.as_secs_f64();
        let busy: f64 = run.lanes.iter().map(|l| l.busy.as_secs_f64()).sum::<f64>()
            + run.folded.busy.as_secs_f64();
        let per_lane: Vec<f64> = run
            .lanes
            .iter()
            .filter(|l| lifetime(l) > 0.0)
            .map(|l| (100.0 * l.busy.as_secs_f64() / lifetime(l)).min(100.0))
            .collect();
        let busy_range = per_lane.iter().fold(None, |acc: Option<(f64, f64)>, &b| {
            Some(acc.map_or((b, b), |(lo, hi)| (lo.min(b), hi.max(b))))
        });
        RunSummary {
            config: run.config.clone(),
            wall,
            startup,
            finished: run.finished,
            failed: run.failed,
            tasks_per_s: if secs > 0.0 { done as f64 / secs } else { 0.0 },
            busy_pct: if available > 0.0 {
                (100.0 * busy / available).min(100.0)
            } else {
                0.0
            },
            busy_range: busy_range.unwrap_or((0.0, 0.0)),
            overhead_mean: run.overhead.mean(),
            overhead_p99: run.overhead.quantile(0.99),
        }
    }
}

/// The mean of `durations` and of `more` (a sum and a count), without overflow.
fn mean(durations: &[Duration], more: (Duration, u32)) -> Option<Duration> {
    let n = durations.len() as u128 + u128::from(more.1);
    if n == 0 {
        return None;
    }
    let total: u128 = durations.iter().map(Duration::as_nanos).sum::<u128>() + more.0.as_nanos();
    Some(Duration::from_nanos(
        u64::try_from(total / n).unwrap_or(u64::MAX),
    ))
}
