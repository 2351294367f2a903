//! Figures recomputed from a run's own events, so a watched run and a headless one can be
//! compared by the same rule (`poolscope bench --observer`).

use std::collections::HashMap;
use std::time::Duration;

use crate::event::{EventKind, PoolEvent, TaskId, WorkerId};

/// What a run's events say about how well its pool was kept busy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Tasks that ran on a worker (start and end seen).
    pub tasks: usize,
    /// Time in tasks over worker time, from the first task's start to the last task's end,
    /// in percent.
    pub busy_pct: f64,
    /// Hand-offs measured: a worker's gap before a task that had been queued, after its
    /// previous task.
    pub handoffs: usize,
    /// Their mean.
    pub handoff_mean: Duration,
    /// Their 99th percentile.
    pub handoff_p99: Duration,
    /// From the first task's start to the last task's end.
    pub span: Duration,
}

impl Figures {
    /// The figures of the newest run in `events`.
    pub fn of(events: &[PoolEvent]) -> Figures {
        let Some(run) = events.iter().map(|e| e.run).max() else {
            return Figures::default();
        };
        let mut queued: Vec<(TaskId, Duration)> = Vec::new();
        let mut starts: HashMap<TaskId, (WorkerId, Duration)> = HashMap::new();
        let mut lanes: HashMap<WorkerId, Vec<(Duration, Duration, TaskId)>> = HashMap::new();
        for ev in events.iter().filter(|e| e.run == run) {
            if let EventKind::TasksQueued { first, .. } = ev.kind {
                queued.push((first, ev.at));
            }
            if let Some((task, worker, at)) = ev.task_start() {
                starts.insert(task, (worker, at));
            }
            if let Some((task, _, end)) = ev.task_end()
                && let Some((worker, start)) = starts.remove(&task)
            {
                lanes.entry(worker).or_default().push((start, end, task));
            }
        }
        queued.sort_unstable();
        let queued_at = |task: TaskId| {
            let i = queued.partition_point(|(first, _)| *first <= task);
            (i > 0).then(|| queued[i - 1].1)
        };
        let mut in_tasks = Duration::ZERO;
        let (mut first, mut last) = (Duration::MAX, Duration::ZERO);
        let mut gaps = Vec::new();
        let mut tasks = 0;
        for spans in lanes.values_mut() {
            spans.sort_unstable();
            tasks += spans.len();
            for (i, &(start, end, task)) in spans.iter().enumerate() {
                in_tasks += end.saturating_sub(start);
                first = first.min(start);
                last = last.max(end);
                // The same rule as the dashboard's hand-off: idle time before a task that was
                // waiting, counted from whichever came later, the previous end or its queueing.
                if i > 0
                    && let Some(q) = queued_at(task)
                {
                    gaps.push(start.saturating_sub(spans[i - 1].1.max(q)));
                }
            }
        }
        let span = last.saturating_sub(first.min(last));
        let worker_time = span.as_secs_f64() * lanes.len() as f64;
        gaps.sort_unstable();
        Figures {
            tasks,
            busy_pct: if worker_time > 0.0 {
                100.0 * in_tasks.as_secs_f64() / worker_time
            } else {
                0.0
            },
            handoffs: gaps.len(),
            handoff_mean: mean(&gaps),
            handoff_p99: percentile(&gaps, 0.99),
            span,
        }
    }
}

fn mean(sorted: &[Duration]) -> Duration {
    match u32::try_from(sorted.len()) {
        Ok(n) if n > 0 => sorted.iter().sum::<Duration>() / n,
        _ => Duration::ZERO,
    }
}

/// The smallest value at or above fraction `q` of `sorted`.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as ev;

    fn ran(task: TaskId, worker: u32, start: u64, end: u64) -> PoolEvent {
        ev(
            end,
            EventKind::TaskRan {
                task,
                worker: WorkerId(worker),
                started: Duration::from_millis(start),
                result: Some(0),
                cpu: None,
            },
        )
    }

    #[test]
    fn busy_and_hand_off_follow_the_spans() {
        let events = vec![
            ev(0, EventKind::TasksQueued { first: 0, count: 4 }),
            // Worker 0: 0-10, gap 2, 12-22. Worker 1: 0-10, gap 6, 16-22.
            ran(0, 0, 0, 10),
            ran(1, 1, 0, 10),
            ran(2, 0, 12, 22),
            ran(3, 1, 16, 22),
        ];
        let f = Figures::of(&events);
        assert_eq!(f.tasks, 4);
        assert_eq!(f.span, Duration::from_millis(22));
        // 36 ms in tasks over 2 × 22 ms.
        assert!((f.busy_pct - 100.0 * 36.0 / 44.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.handoffs, 2);
        assert_eq!(f.handoff_mean, Duration::from_millis(4));
        assert_eq!(f.handoff_p99, Duration::from_millis(6));
    }

    #[test]
    fn a_task_queued_late_counts_from_its_queueing() {
        let events = vec![
            ev(0, EventKind::TasksQueued { first: 0, count: 1 }),
            ran(0, 0, 0, 10),
            ev(15, EventKind::TasksQueued { first: 1, count: 1 }),
            ran(1, 0, 16, 20),
        ];
        assert_eq!(Figures::of(&events).handoff_mean, Duration::from_millis(1));
        assert_eq!(Figures::of(&[]), Figures::default());
    }
}
