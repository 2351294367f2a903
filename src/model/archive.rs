//! Every ended task of a run, packed in 40 bytes, for a run that is read whole and then
//! explored: a replay on the dashboard zooms into any part of it, where a live lane keeps
//! only its recent spans and a coarse occupancy for the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::event::{TaskId, WorkerId};
use crate::model::lane::{Outcome, Span};

/// Distinct task names kept; a task whose name comes after these is shown by its number.
pub const ARCHIVE_NAMES_KEPT: usize = 65_536;
/// A name this long is kept cut to it: a label never shows more.
const NAME_CHARS_KEPT: usize = 256;
/// `cpu_ns` when the source did not measure it.
const NO_CPU: u64 = u64::MAX;
/// `name` when the task had none kept.
const NO_NAME: u32 = u32::MAX;

/// One ended task, packed: times in ns since the run's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    task: TaskId,
    start_ns: u64,
    end_ns: u64,
    cpu_ns: u64,
    name: u32,
    failed: bool,
}

/// A span read back out of the archive, with its task's name when it was kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Archived<'a> {
    /// The span as the lane had it.
    pub span: Span,
    /// Its task's name.
    pub name: Option<&'a str>,
}

/// Every ended span of every lane of a run, in the order each lane ended them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Archive {
    lanes: HashMap<WorkerId, Vec<Packed>>,
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Archive::default()
    }

    /// Keeps `span`, which `worker` just ended, and its task's `name`.
    pub fn push(&mut self, worker: WorkerId, span: &Span, name: Option<&str>) {
        let name = name.map_or(NO_NAME, |n| self.name_id(n));
        self.lanes.entry(worker).or_default().push(Packed {
            task: span.task,
            start_ns: ns(span.start),
            end_ns: ns(span.end),
            cpu_ns: span.cpu.map_or(NO_CPU, |c| ns(c).min(NO_CPU - 1)),
            name,
            failed: span.outcome == Outcome::Failed,
        });
    }

    fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        if self.names.len() >= ARCHIVE_NAMES_KEPT {
            return NO_NAME;
        }
        let kept: Arc<str> = match name.char_indices().nth(NAME_CHARS_KEPT) {
            Some((cut, _)) => Arc::from(&name[..cut]),
            None => Arc::from(name),
        };
        let id = u32::try_from(self.names.len()).unwrap_or(NO_NAME);
        self.names.push(Arc::clone(&kept));
        self.ids.insert(kept, id);
        id
    }

    /// Tasks kept, over all lanes.
    pub fn len(&self) -> usize {
        self.lanes.values().map(Vec::len).sum()
    }

    /// Whether no task is kept.
    pub fn is_empty(&self) -> bool {
        self.lanes.values().all(Vec::is_empty)
    }

    /// Whether `worker` has any span kept (else its lane is drawn as a live lane is).
    pub fn has_lane(&self, worker: WorkerId) -> bool {
        self.lanes.get(&worker).is_some_and(|s| !s.is_empty())
    }

    /// Gives back memory the growth left over, once no more spans come (the run ended).
    pub fn settle(&mut self) {
        for spans in self.lanes.values_mut() {
            spans.shrink_to_fit();
        }
    }

    /// The spans of `worker` that overlap `[from, to]`, in time order. A lane runs one task
    /// at a time, so its spans are ordered by start and by end alike.
    pub fn spans_in(
        &self,
        worker: WorkerId,
        from: Duration,
        to: Duration,
    ) -> impl ExactSizeIterator<Item = Archived<'_>> + '_ {
        let spans = self.lanes.get(&worker).map_or(&[][..], Vec::as_slice);
        let (from, to) = (ns(from), ns(to));
        let first = spans.partition_point(|p| p.end_ns < from);
        let last = spans.partition_point(|p| p.start_ns <= to).max(first);
        spans[first..last].iter().map(|p| Archived {
            span: Span {
                task: p.task,
                start: Duration::from_nanos(p.start_ns),
                end: Duration::from_nanos(p.end_ns),
                outcome: if p.failed {
                    Outcome::Failed
                } else {
                    Outcome::Finished
                },
                cpu: (p.cpu_ns != NO_CPU).then(|| Duration::from_nanos(p.cpu_ns)),
            },
            name: self.names.get(p.name as usize).map(|n| &**n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(task: TaskId, start_ms: u64, end_ms: u64, failed: bool) -> Span {
        Span {
            task,
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            outcome: if failed {
                Outcome::Failed
            } else {
                Outcome::Finished
            },
            cpu: task.is_multiple_of(2).then(|| Duration::from_millis(1)),
        }
    }

    #[test]
    fn a_window_gives_back_exactly_the_spans_that_overlap_it() {
        let mut a = Archive::new();
        let w = WorkerId(3);
        for t in 0..100u64 {
            a.push(w, &span(t, t * 10, t * 10 + 5, t == 42), Some("load"));
        }
        let ms = Duration::from_millis;
        let got: Vec<Archived<'_>> = a.spans_in(w, ms(414), ms(431)).collect();
        let tasks: Vec<TaskId> = got.iter().map(|s| s.span.task).collect();
        assert_eq!(tasks, [41, 42, 43]);
        assert_eq!(got[1].span, span(42, 420, 425, true));
        assert_eq!(got[0].span.cpu, None, "an odd task had no CPU measured");
        assert_eq!(got[0].name, Some("load"));
        assert_eq!(a.spans_in(w, ms(416), ms(419)).len(), 0, "a gap holds none");
        assert_eq!(a.spans_in(WorkerId(9), ms(0), ms(999)).len(), 0);
        assert_eq!(a.len(), 100);
        assert_eq!(a.names.len(), 1, "one name shared by every task");
    }

    #[test]
    fn names_past_the_bound_are_not_kept_and_long_names_are_cut() {
        let mut a = Archive::new();
        let w = WorkerId(0);
        for t in 0..(ARCHIVE_NAMES_KEPT as u64 + 3) {
            a.push(w, &span(t, t, t, false), Some(&format!("n{t}")));
        }
        let last = a.spans_in(w, Duration::ZERO, Duration::MAX).last();
        assert_eq!(last.and_then(|s| s.name), None);
        let long = "é".repeat(10_000);
        let mut b = Archive::new();
        b.push(w, &span(0, 0, 1, false), Some(&long));
        let name = b.spans_in(w, Duration::ZERO, Duration::MAX).next();
        assert_eq!(
            name.and_then(|s| s.name).map(|n| n.chars().count()),
            Some(256)
        );
    }

    #[test]
    fn a_packed_span_is_a_few_tens_of_bytes() {
        assert!(std::mem::size_of::<Packed>() <= 40);
    }
}
