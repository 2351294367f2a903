//! The figures of a finished run, kept so a thread run and a process run can be compared.

use std::time::Duration;

use crate::config::RunConfig;
use crate::model::Run;

/// What one complete run cost.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run's settings.
    pub config: RunConfig,
    /// Wall time from start to the last task's end.
    pub wall: Duration,
    /// Mean time from a worker's spawn to its first task's start.
    pub startup: Duration,
    /// Tasks that finished.
    pub finished: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Finished and failed tasks per second of wall time.
    pub tasks_per_s: f64,
    /// Share of the workers' time (from spawn to the end) spent in tasks.
    pub busy_pct: f64,
}

impl RunSummary {
    /// Summarises `run`, which ended at `wall`.
    pub fn of(run: &Run, wall: Duration) -> RunSummary {
        let starts: Vec<Duration> = run
            .lanes
            .iter()
            .filter_map(|l| l.first_start.map(|s| s.saturating_sub(l.spawned_at)))
            .collect();
        let startup = if starts.is_empty() {
            Duration::ZERO
        } else {
            starts.iter().sum::<Duration>() / starts.len() as u32
        };
        let done = run.finished + run.failed;
        let secs = wall.as_secs_f64();
        let available: f64 = run
            .lanes
            .iter()
            .map(|l| {
                let end = l.exited.as_ref().map_or(wall, |(at, _)| (*at).min(wall));
                end.saturating_sub(l.spawned_at).as_secs_f64()
            })
            .sum();
        let busy: f64 = run.lanes.iter().map(|l| l.busy.as_secs_f64()).sum();
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
        }
    }
}
