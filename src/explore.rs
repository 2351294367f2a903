//! Exploring a run: the task table's rows, its sort order, and the `/` filter. Pure
//! functions of the model at `now`, read by the app (to move among matches) and by the view
//! (to draw them), so neither imports the other.

use std::cmp::Ordering;
use std::time::Duration;

use crate::event::TaskId;
use crate::model::{Outcome, Run};

/// Longest filter pattern accepted (a paste into it is cut here).
pub const FILTER_MAX: usize = 200;
/// Buckets of the lane view's duration histogram.
pub const HISTOGRAM_BUCKETS: usize = 8;

/// A column of the task table, in the order they are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// The task's name, with its arguments.
    Name,
    /// The lane (worker) that ran it.
    Lane,
    /// Time from being queued to being started.
    Wait,
    /// When it started.
    Start,
    /// How long it ran (so far, if running).
    Duration,
    /// CPU time it used, where the source reports it.
    Cpu,
    /// Finished, failed or running.
    Outcome,
    /// Its error, if it failed.
    Error,
}

impl Column {
    /// Every column, in order.
    pub const ALL: [Column; 8] = [
        Column::Name,
        Column::Lane,
        Column::Wait,
        Column::Start,
        Column::Duration,
        Column::Cpu,
        Column::Outcome,
        Column::Error,
    ];

    /// The heading and the key that sorts by it.
    pub fn heading(self) -> (&'static str, char) {
        match self {
            Column::Name => ("name", 'a'),
            Column::Lane => ("lane", 'l'),
            Column::Wait => ("wait", 'w'),
            Column::Start => ("start", 's'),
            Column::Duration => ("duration", 'd'),
            Column::Cpu => ("cpu", 'c'),
            Column::Outcome => ("outcome", 'o'),
            Column::Error => ("error", 'e'),
        }
    }

    /// The column whose sort key is `c`.
    pub fn for_key(c: char) -> Option<Column> {
        Column::ALL.into_iter().find(|col| col.heading().1 == c)
    }
}

/// How a task in the table stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// It failed.
    Failed,
    /// It is running.
    Running,
    /// It finished.
    Finished,
}

impl State {
    /// The word the table shows.
    pub fn word(self) -> &'static str {
        match self {
            State::Failed => "failed",
            State::Running => "running",
            State::Finished => "ok",
        }
    }
}

/// One task of the run, as the table shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    /// The task.
    pub task: TaskId,
    /// Its name with arguments (`blocks(3)`, or the name its source gave).
    pub name: String,
    /// Index of its lane in the run.
    pub lane: usize,
    /// The lane's name.
    pub lane_name: String,
    /// Time it waited in the queue, where the queueing time is still known.
    pub wait: Option<Duration>,
    /// When it started.
    pub start: Duration,
    /// How long it ran, or has run so far.
    pub duration: Duration,
    /// CPU time it used, where its source reports CPU per task.
    pub cpu: Option<Duration>,
    /// How it stands.
    pub state: State,
    /// Its error, if it failed and the failure is still kept.
    pub error: Option<String>,
}

/// What the task table shows and in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableState {
    /// The column it is sorted by.
    pub sort: Column,
    /// Largest first.
    pub descending: bool,
    /// The highlighted row, in the sorted and filtered order.
    pub cursor: usize,
    /// Only this lane's tasks (opened with Enter on a lane), with a duration histogram.
    pub lane: Option<usize>,
}

impl Default for TableState {
    fn default() -> Self {
        TableState {
            sort: Column::Start,
            descending: false,
            cursor: 0,
            lane: None,
        }
    }
}

/// The `/` filter: a text or a regular expression matched against a task's name, its lane,
/// and its error; and whether only failed tasks are shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The pattern (empty: no filter).
    pub pattern: String,
    /// The pattern is being typed.
    pub editing: bool,
    /// Only failed tasks.
    pub failed_only: bool,
}

/// A compiled [`Filter`]: a regex when the pattern is one, else plain text, both ignoring case.
pub struct Matcher {
    regex: Option<regex_lite::Regex>,
    text: String,
    failed_only: bool,
}

impl Filter {
    /// Whether anything is filtered out.
    pub fn is_active(&self) -> bool {
        !self.pattern.is_empty() || self.failed_only
    }

    /// Adds typed or pasted text, bounded by [`FILTER_MAX`]; control characters are dropped.
    pub fn push_str(&mut self, text: &str) {
        let room = FILTER_MAX.saturating_sub(self.pattern.chars().count());
        self.pattern
            .extend(text.chars().filter(|c| !c.is_control()).take(room));
    }

    /// The filter, ready to match.
    pub fn matcher(&self) -> Matcher {
        // A pattern that is not a valid regex is taken as plain text.
        let regex = regex_lite::RegexBuilder::new(&self.pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .ok();
        Matcher {
            regex,
            text: self.pattern.to_lowercase(),
            failed_only: self.failed_only,
        }
    }
}

impl Matcher {
    /// Whether `text` matches the pattern: as a regex, or as plain text (so `f(3)`, which
    /// as a regex means `f3`, still finds `f(3)`).
    pub fn text_matches(&self, text: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(text))
            || text.to_lowercase().contains(&self.text)
    }

    /// Whether `row` passes the filter.
    pub fn matches(&self, row: &TaskRow) -> bool {
        if self.failed_only && row.state != State::Failed {
            return false;
        }
        self.text.is_empty()
            || self.text_matches(&row.name)
            || self.text_matches(&row.lane_name)
            || row.error.as_deref().is_some_and(|e| self.text_matches(e))
    }
}

/// The lanes the timeline shows under `filter`, in lane order: every lane when nothing is
/// filtered; else each lane that holds a matching task, or whose name matches (unless only
/// failed tasks are asked for). Drawn on every frame, so it builds no rows.
pub fn lanes_shown(run: &Run, filter: &Filter) -> Vec<usize> {
    if !filter.is_active() {
        return (0..run.lanes.len()).collect();
    }
    let matcher = filter.matcher();
    (0..run.lanes.len())
        .filter(|&i| lane_matches(run, i, &matcher))
        .collect()
}

/// Whether lane `i` holds a task that `m` matches, as [`Matcher::matches`] would say of its
/// row; or, with no failed-only filter, whether its name matches.
fn lane_matches(run: &Run, i: usize, m: &Matcher) -> bool {
    let lane = &run.lanes[i];
    let name_hit = !m.text.is_empty() && m.text_matches(&lane.label.to_string());
    if name_hit && !m.failed_only {
        return true;
    }
    let ended = lane
        .spans
        .iter()
        .map(|s| (s.task, s.outcome == Outcome::Failed));
    let mut tasks = ended.chain(lane.current.map(|(task, _)| (task, false)));
    tasks.any(|(task, failed)| {
        if m.failed_only && !failed {
            return false;
        }
        m.text.is_empty()
            || name_hit
            || m.text_matches(&run.task_label(task))
            || (failed
                && run
                    .failures
                    .iter()
                    .find(|f| f.task == task)
                    .is_some_and(|f| m.text_matches(&f.error)))
    })
}

/// Every task of `run` still kept (finished, failed, running), unsorted, unfiltered; and how
/// many ended tasks are no longer kept.
pub fn all_rows(run: &Run, now: Duration) -> (Vec<TaskRow>, u64) {
    let now = run.ended_at.map_or(now, |e| e.min(now));
    let mut rows = Vec::new();
    for (i, lane) in run.lanes.iter().enumerate() {
        let lane_name = lane.label.to_string();
        for span in &lane.spans {
            let state = match span.outcome {
                Outcome::Finished => State::Finished,
                Outcome::Failed => State::Failed,
            };
            rows.push(row(
                run, i, &lane_name, span.task, span.start, span.end, state,
            ));
        }
        if let Some((task, start)) = lane.current {
            rows.push(row(run, i, &lane_name, task, start, now, State::Running));
        }
    }
    let ended_kept = rows.iter().filter(|r| r.state != State::Running).count() as u64;
    let dropped = (run.finished + run.failed).saturating_sub(ended_kept);
    (rows, dropped)
}

fn row(
    run: &Run,
    lane: usize,
    lane_name: &str,
    task: TaskId,
    start: Duration,
    end: Duration,
    state: State,
) -> TaskRow {
    let error = (state == State::Failed)
        .then(|| run.failures.iter().find(|f| f.task == task))
        .flatten()
        .map(|f| f.error.clone());
    TaskRow {
        task,
        name: run.task_label(task),
        lane,
        lane_name: lane_name.to_string(),
        wait: run.queued_when(task).map(|q| start.saturating_sub(q)),
        start,
        duration: end.saturating_sub(start),
        cpu: None,
        state,
        error,
    }
}

/// The rows the table shows: filtered, restricted to a lane if one is open, and sorted.
pub fn rows(run: &Run, now: Duration, table: &TableState, filter: &Filter) -> (Vec<TaskRow>, u64) {
    let (mut rows, dropped) = all_rows(run, now);
    let matcher = filter.matcher();
    rows.retain(|r| table.lane.is_none_or(|l| r.lane == l) && matcher.matches(r));
    rows.sort_by(|a, b| {
        let o = compare(a, b, table.sort).then(a.start.cmp(&b.start));
        if table.descending { o.reverse() } else { o }
    });
    (rows, dropped)
}

fn compare(a: &TaskRow, b: &TaskRow, by: Column) -> Ordering {
    match by {
        Column::Name => a.name.cmp(&b.name).then(a.task.cmp(&b.task)),
        Column::Lane => a.lane.cmp(&b.lane),
        Column::Wait => a.wait.cmp(&b.wait),
        Column::Start => a.start.cmp(&b.start),
        Column::Duration => a.duration.cmp(&b.duration),
        Column::Cpu => a.cpu.cmp(&b.cpu),
        Column::Outcome => a.state.cmp(&b.state),
        Column::Error => a.error.cmp(&b.error),
    }
}

/// Matching tasks in time order, for `n`/`N` on the timeline.
pub fn matches_in_time(run: &Run, now: Duration, filter: &Filter) -> Vec<TaskRow> {
    let table = TableState::default();
    rows(run, now, &table, filter).0
}

/// Durations of `rows` counted in [`HISTOGRAM_BUCKETS`] equal buckets from the shortest to
/// the longest: (lower edge, width, counts).
pub fn histogram(rows: &[TaskRow]) -> Option<(Duration, Duration, [u64; HISTOGRAM_BUCKETS])> {
    let lo = rows.iter().map(|r| r.duration).min()?;
    let hi = rows.iter().map(|r| r.duration).max()?;
    let width = (hi.saturating_sub(lo) / HISTOGRAM_BUCKETS as u32).max(Duration::from_nanos(1));
    let mut counts = [0u64; HISTOGRAM_BUCKETS];
    for r in rows {
        let i = (r.duration.saturating_sub(lo).as_nanos() / width.as_nanos()) as usize;
        counts[i.min(HISTOGRAM_BUCKETS - 1)] += 1;
    }
    Some((lo, width, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, lane: &str, error: Option<&str>, state: State) -> TaskRow {
        TaskRow {
            task: 0,
            name: name.into(),
            lane: 0,
            lane_name: lane.into(),
            wait: None,
            start: Duration::ZERO,
            duration: Duration::from_millis(5),
            cpu: None,
            state,
            error: error.map(Into::into),
        }
    }

    #[test]
    fn the_filter_matches_text_or_regex_in_name_lane_or_error_ignoring_case() {
        let ok = row("blocks(3)", "PID 42", None, State::Finished);
        let bad = row("load", "Thread-1", Some("KeyError: 'x'"), State::Failed);
        let f = |p: &str, failed_only| Filter {
            pattern: p.into(),
            editing: false,
            failed_only,
        };
        let m = f("BLOCKS", false).matcher();
        assert!(m.matches(&ok) && !m.matches(&bad));
        let m = f("keyerror|pid", false).matcher();
        assert!(m.matches(&ok) && m.matches(&bad));
        let m = f("blocks(", false).matcher();
        assert!(m.matches(&ok), "an invalid regex is plain text");
        let m = f("", true).matcher();
        assert!(!m.matches(&ok) && m.matches(&bad));
    }

    #[test]
    fn a_pasted_pattern_is_bounded_and_loses_control_characters() {
        let mut f = Filter::default();
        f.push_str(&"a\x1b[2J".repeat(1_000_000));
        assert_eq!(f.pattern.chars().count(), FILTER_MAX);
        assert!(!f.pattern.contains('\x1b'));
    }

    #[test]
    fn the_histogram_counts_every_row_once() {
        let mut rows: Vec<TaskRow> = (0..10)
            .map(|i| {
                let mut r = row("t", "l", None, State::Finished);
                r.duration = Duration::from_millis(i * 10);
                r
            })
            .collect();
        rows.push(row("t", "l", None, State::Finished));
        let (lo, _, counts) = histogram(&rows).unwrap();
        assert_eq!(lo, Duration::ZERO);
        assert_eq!(counts.iter().sum::<u64>(), 11);
        assert!(counts[HISTOGRAM_BUCKETS - 1] >= 1);
    }
}
