//! From a lane's spans to tasks, as the trace is read: spans are folded into tasks as soon as
//! what encloses them cannot change the answer, and tasks are handed on in start order
//! through a bounded window, so a trace of millions of events is replayed in bounded memory.
//!
//! The rule that picks tasks depends on who wrote the trace, which is only evidence gathered
//! while reading; it is decided after the first [`DECIDE_AFTER`] events (or at the end of a
//! smaller file, which is then read exactly as a whole). From then on a lane's spans are
//! folded when a span that settles them closes (a pool's dispatch frame, a span the producer
//! or `--task` marks as a task, the outermost `E` of a `B`/`E` lane under the top-level rule);
//! if more than [`MAX_PENDING`] spans wait anyway, the lane holding most is folded as it is.
//! Tasks wait in a window of [`EMIT_WINDOW`] to be handed on in start order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::super::span_tree::{self, Extra, LIBRARY, NO_KEY, POOL_FRAME, RETURNED, Rule, Span};
use super::{Id, Producer, Reader};

mod emit;
use crate::source::LaneId;

/// Events read before the rule is decided; a smaller file is folded whole at its end.
const DECIDE_AFTER: u64 = 1 << 18;
/// Spans (closed, open and failure marks) waiting on all lanes before one lane is folded
/// without waiting for what encloses it (32 MiB of spans).
const MAX_PENDING: usize = 1 << 20;
/// Tasks found and not yet handed on: they are handed on in start order through this window.
const EMIT_WINDOW: usize = 1 << 14;

/// Distinct names kept interned before those nothing waiting uses are dropped (a trace of a
/// million distinct task names would otherwise keep them all).
const NAMES_KEPT: usize = 1 << 16;

/// Spans waiting on a lane written outer first before what is complete of them is folded.
const OUTER_FIRST_BATCH: usize = 64;

/// The bounds of a streaming read (smaller in tests, to fold small files as big ones are).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Events read before the producer, and so the rule, is decided.
    pub decide_after: u64,
    /// Tasks found and not yet handed on, at most.
    pub window: usize,
    /// Spans waiting on all lanes, at most.
    pub max_pending: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            decide_after: DECIDE_AFTER,
            window: EMIT_WINDOW,
            max_pending: MAX_PENDING,
        }
    }
}

/// The most a read held at once: what its memory grows with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peaks {
    /// Spans waiting on all lanes.
    pub waiting: usize,
    /// Tasks found and not yet handed on.
    pub ready: usize,
    /// Distinct names interned.
    pub names: usize,
}

/// Spans of one lane not yet folded into tasks, and the tables their rare fields point into.
pub(super) struct LaneSpans {
    /// Its `pid` and `tid`.
    pub key: (Id, Id),
    /// Closed spans, in the order they closed.
    pub spans: Vec<Span>,
    /// `B` events still open, outermost first.
    pub open: Vec<Span>,
    /// Failure instants, as zero-length marks.
    pub marks: Vec<Span>,
    /// Errors and merge keys of its waiting spans ([`Span::extra`] is 1 + an index here).
    pub extras: Vec<Extra>,
    /// Error texts ([`Extra::error`] is 1 + an index here).
    pub errors: Vec<Box<str>>,
    /// Its index among the lanes that ran tasks, once one was found.
    pub task_lane: Option<usize>,
    /// `X` spans seen: their rank orders spans of equal times, the later written outer.
    pub x_seen: u32,
    /// The last task found, when it has a merge key: the lane's next span of that key
    /// (tokio re-entering a blocking task) is more of it.
    held: Option<Ready>,
    /// The end of the latest span that settles those inside it: they are folded when a
    /// span of the lane starts after it.
    pub settle_at: Option<i64>,
    /// The latest start seen on the lane.
    pub frontier: i64,
    /// No span started before one seen earlier: the lane is written outer first.
    pub outer_first: bool,
    /// Spans to wait for before folding an outer-first lane again.
    pub batch: usize,
}

impl LaneSpans {
    pub(super) fn new(key: (Id, Id)) -> Self {
        LaneSpans {
            key,
            spans: Vec::new(),
            open: Vec::new(),
            marks: Vec::new(),
            extras: Vec::new(),
            errors: Vec::new(),
            task_lane: None,
            x_seen: 0,
            held: None,
            settle_at: None,
            frontier: i64::MIN,
            outer_first: true,
            batch: OUTER_FIRST_BATCH,
        }
    }

    /// The [`Span::extra`] of a span with this error and merge key: most have neither.
    pub(super) fn extra(&mut self, error: Option<Box<str>>, key: u64) -> u32 {
        if error.is_none() && key == NO_KEY {
            return 0;
        }
        let error = match error {
            Some(text) => {
                self.errors.push(text);
                u32::try_from(self.errors.len()).unwrap_or(0)
            }
            None => 0,
        };
        self.extras.push(Extra { error, key });
        u32::try_from(self.extras.len()).unwrap_or(0)
    }

    fn error_text(&self, error: u32) -> Option<String> {
        let i = (error as usize).checked_sub(1)?;
        self.errors.get(i).map(ToString::to_string)
    }

    fn waiting(&self) -> usize {
        self.spans.len() + self.open.len() + self.marks.len()
    }

    /// Drops the errors and keys no waiting span points to any more.
    fn compact(&mut self) {
        if self.extras.is_empty() {
            return;
        }
        let (old_extras, old_errors) = (
            std::mem::take(&mut self.extras),
            std::mem::take(&mut self.errors),
        );
        let mut kept: Vec<&mut Span> = self.spans.iter_mut().collect();
        kept.extend(self.open.iter_mut());
        kept.extend(self.marks.iter_mut());
        for s in kept {
            let Some(e) = (s.extra as usize)
                .checked_sub(1)
                .and_then(|i| old_extras.get(i))
            else {
                continue;
            };
            let text = (e.error as usize)
                .checked_sub(1)
                .and_then(|i| old_errors.get(i))
                .cloned();
            let key = e.key;
            s.extra = 0; // set again below, in the new tables
            let (errors, extras) = (&mut self.errors, &mut self.extras);
            let error = match text {
                Some(t) => {
                    errors.push(t);
                    u32::try_from(errors.len()).unwrap_or(0)
                }
                None => 0,
            };
            extras.push(Extra { error, key });
            s.extra = u32::try_from(extras.len()).unwrap_or(0);
        }
    }
}

/// What the spans enclosing others (`B` spans still open, spans waiting around them) say
/// about the spans inside them.
#[derive(Clone, Copy)]
struct Context {
    /// Which of them (outermost first) is a task: what is inside is its steps, not
    /// settled until it closes.
    task_at: Option<usize>,
    /// One of them is a pool's dispatch frame.
    under_pool: bool,
}

fn context(outer: &[Span], rule: Rule) -> Context {
    let mut ctx = Context {
        task_at: None,
        under_pool: false,
    };
    for (depth, s) in outer.iter().enumerate() {
        let is_task = match rule {
            Rule::TopLevel => depth == 0,
            Rule::Outermost(mask) => s.flags & mask != 0,
            Rule::UnderPool => ctx.under_pool && s.flags & LIBRARY == 0,
        };
        if is_task && ctx.task_at.is_none() {
            ctx.task_at = Some(depth);
        }
        ctx.under_pool |= s.flags & POOL_FRAME != 0;
    }
    ctx
}

/// Whether a closed span settles the spans inside it: what encloses it can no longer
/// change which of them are tasks (`outermost_end`: the `E` of a lane's outermost `B`).
fn settles(s: &Span, rule: Rule, outermost_end: bool) -> bool {
    match rule {
        Rule::TopLevel => outermost_end,
        Rule::Outermost(mask) => s.flags & mask != 0,
        Rule::UnderPool => s.flags & POOL_FRAME != 0,
    }
}

/// A task found, waiting in the window to be handed on in start order.
pub(super) struct Ready {
    start: i64,
    /// The order it was found in: ties of start keep it.
    seq: u64,
    lane: usize,
    end: Option<i64>,
    name: u32,
    error: Option<String>,
    steps: u32,
    key: Option<u64>,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        (self.start, self.seq) == (other.start, other.seq)
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.start, self.seq).cmp(&(other.start, other.seq))
    }
}

/// The folding and handing-on state of a reader.
#[derive(Default)]
pub(super) struct Fold {
    /// The producer and rule, once decided.
    pub decided: Option<(Producer, Rule)>,
    pub tuning: Tuning,
    pub peaks: Peaks,
    /// Spans waiting on all lanes.
    pub waiting: usize,
    /// The earliest start of any span seen: the trace's time zero.
    pub origin: Option<i64>,
    /// Times the name table was emptied of names nothing waiting used.
    pub names_compacted: u64,
    /// Lanes folded before what enclosed them was read (over `tuning.max_pending`).
    pub forced: u64,
    ready: BinaryHeap<Reverse<Ready>>,
    /// Tasks found so far (a `Cell`: numbered while the lane's tables are borrowed).
    found: std::cell::Cell<u64>,
    /// The lanes that ran tasks (indices of the reader's lanes), in the order found.
    task_lanes: Vec<usize>,
    /// Task lanes per `pid`: a process with one task lane among several is a process lane.
    per_pid: HashMap<Id, usize>,
    ids: Vec<Option<LaneId>>,
    next_lane: u32,
    emitted: u64,
    /// More tasks the window holds while those of the spans read before the decision are
    /// found (every lane folds its backlog when its next span comes): start order kept.
    pub backlog: usize,
    /// Names interned before those no span or task waiting uses are dropped.
    pub names_limit: usize,
    /// The time zero the tasks handed on are relative to, fixed by the first.
    zero: Option<i64>,
    counts: span_tree::Counts,
}

impl Fold {
    pub(super) fn new(tuning: Tuning) -> Self {
        Fold {
            tuning,
            names_limit: NAMES_KEPT,
            ..Fold::default()
        }
    }

    /// Notes a span's start: the trace's time zero is the earliest.
    pub(super) fn saw_start(&mut self, start: i64) {
        self.origin = Some(self.origin.map_or(start, |o| o.min(start)));
    }

    /// Tasks found and not handed on yet.
    pub(crate) fn ready(&self) -> usize {
        self.ready.len()
    }
}

impl Reader<'_> {
    /// The rule that picks tasks: `--task`'s, else the producer's.
    fn rule_of(&self, producer: Producer) -> Rule {
        if self.filter.is_some() {
            Rule::Outermost(span_tree::PRED)
        } else {
            producer.rule()
        }
    }

    /// Decides the producer and rule from the evidence so far; each lane's spans that
    /// settle others are noted, to be folded when the lane's next span comes after them.
    pub(super) fn decide(&mut self) {
        let producer = self.evidence.producer();
        let rule = self.rule_of(producer);
        self.fold.decided = Some((producer, rule));
        self.fold.backlog = self.fold.waiting;
        for lane in &mut self.lanes {
            lane.settle_at = lane
                .spans
                .iter()
                .filter(|s| settles(s, rule, false))
                .map(|s| s.end)
                .max();
        }
    }

    /// Lane `i` has a span starting at `start` (closed, opened, or a mark): what ended
    /// before it under a span that settles them is folded.
    /// On a lane written outer first (no span yet started before one seen earlier), what
    /// ended before a span's start is complete: once [`OUTER_FIRST_BATCH`] spans wait, they
    /// are folded without waiting for what settles them.
    pub(super) fn arrived(&mut self, i: usize, start: i64) {
        let lane = &mut self.lanes[i];
        lane.outer_first &= start >= lane.frontier;
        lane.frontier = lane.frontier.max(start);
        if self.fold.decided.is_none() {
            return;
        }
        if let Some(t) = lane.settle_at.filter(|&t| start >= t) {
            lane.settle_at = None;
            self.fold_until(i, t, false);
        } else if lane.outer_first && lane.spans.len() >= lane.batch {
            let before = lane.spans.len();
            self.fold_until(i, start, true);
            let lane = &mut self.lanes[i];
            // nothing complete yet (one long task): look again when twice as many wait
            lane.batch = if lane.spans.len() == before {
                before * 2
            } else {
                OUTER_FIRST_BATCH
            };
        }
    }

    /// A span of lane `i` closed (pushed last onto its spans): if it settles the spans
    /// inside it, they are folded once the lane has moved past its end.
    pub(super) fn closed(&mut self, i: usize, by_end_event: bool) {
        self.fold.waiting += 1;
        let lane = &mut self.lanes[i];
        if let (Some((_, rule)), Some(s)) = (self.fold.decided, lane.spans.last())
            && settles(s, rule, by_end_event && lane.open.is_empty())
        {
            lane.settle_at = Some(s.end);
        }
        self.fold.peaks.waiting = self.fold.peaks.waiting.max(self.fold.waiting);
        if self.fold.waiting > self.fold.tuning.max_pending {
            self.force();
        }
    }

    /// Folds what the lane holding most spans has complete, whatever encloses it: bounded
    /// memory first.
    fn force(&mut self) {
        if self.fold.decided.is_none() {
            self.decide();
        }
        let Some(i) = (0..self.lanes.len()).max_by_key(|&i| self.lanes[i].waiting()) else {
            return;
        };
        self.fold.forced += 1;
        let lane = &mut self.lanes[i];
        if lane.spans.is_empty() {
            // only open spans: a `B` flood without `E`s; the deepest are given up
            let drop = lane.open.len() / 2;
            lane.open.truncate(drop);
            self.fold.waiting -= drop;
            return;
        }
        let earliest_end = lane.spans.iter().map(|s| s.end).min().unwrap_or(0);
        let until = lane.frontier.max(earliest_end);
        self.fold_until(i, until, true);
    }

    /// Folds the spans of lane `i` that ended by `until` (and its marks until then) into
    /// tasks, which wait in the window. Spans still waiting that enclose them, and `B`
    /// spans still open, are their context. Inside a task not yet closed nothing is folded,
    /// unless `lower`: then what ended before that task began is.
    fn fold_until(&mut self, i: usize, until: i64, lower: bool) {
        let Some((_, rule)) = self.fold.decided else {
            return;
        };
        let mut until = until;
        let (outer, ctx) = loop {
            let lane = &self.lanes[i];
            let mut outer: Vec<Span> = lane.open.clone();
            let mut enclosing: Vec<Span> = lane
                .spans
                .iter()
                .filter(|s| s.start < until && s.end > until)
                .cloned()
                .collect();
            enclosing.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
            outer.extend(enclosing);
            let ctx = context(&outer, rule);
            match ctx.task_at {
                None => break (outer, ctx),
                // forced inside a task still open: fold what ended before it began
                Some(k) if lower && outer[k].start < until => until = outer[k].start,
                Some(_) => return,
            }
        };
        let lane = &mut self.lanes[i];
        let (mut done, rest): (Vec<Span>, Vec<Span>) = std::mem::take(&mut lane.spans)
            .into_iter()
            .partition(|s| s.end <= until);
        lane.spans = rest;
        let marks = std::mem::take(&mut lane.marks);
        let (inside, later): (Vec<Span>, Vec<Span>) =
            marks.into_iter().partition(|m| m.start <= until);
        lane.marks = later;
        done.extend(inside);
        let under_pool = (!outer.is_empty()).then_some(ctx.under_pool);
        self.fold.waiting = self.fold.waiting.saturating_sub(done.len());
        self.fold_spans(i, &mut done, rule, under_pool);
        self.lanes[i].compact();
    }

    /// Folds everything a lane holds at the end of the file: a `B` never closed is a span
    /// still running.
    pub(super) fn fold_rest(&mut self, i: usize, rule: Rule) {
        let lane = &mut self.lanes[i];
        let mut spans = std::mem::take(&mut lane.spans);
        spans.append(&mut lane.open);
        spans.append(&mut lane.marks);
        self.fold.waiting = self.fold.waiting.saturating_sub(spans.len());
        self.fold_spans(i, &mut spans, rule, None);
        if let Some(held) = self.lanes[i].held.take() {
            self.fold.ready.push(Reverse(held));
        }
    }

    fn fold_spans(&mut self, i: usize, spans: &mut [Span], rule: Rule, under_pool: Option<bool>) {
        if spans.is_empty() {
            return;
        }
        let lane = &self.lanes[i];
        let found =
            span_tree::find_tasks(spans, &lane.extras, rule, &mut self.fold.counts, under_pool);
        if found.is_empty() {
            return;
        }
        let task_lane = match lane.task_lane {
            Some(t) => t,
            None => {
                let t = self.fold.task_lanes.len();
                self.fold.task_lanes.push(i);
                *self.fold.per_pid.entry(lane.key.0.clone()).or_default() += 1;
                self.lanes[i].task_lane = Some(t);
                t
            }
        };
        let producer = self.fold.decided.map_or(Producer::Generic, |d| d.0);
        let held = self.lanes[i].held.take();
        let mut merged = self.merge_by_key(i, task_lane, spans, &found, producer, held);
        if merged.last().is_some_and(|r| r.key.is_some()) {
            self.lanes[i].held = merged.pop();
        }
        for r in merged {
            self.fold.ready.push(Reverse(r));
        }
        self.fold.peaks.ready = self.fold.peaks.ready.max(self.fold.ready.len());
    }

    /// One task per found span; tokio's blocking spans with one `task.id` become one task.
    fn merge_by_key(
        &self,
        i: usize,
        task_lane: usize,
        spans: &[Span],
        found: &[span_tree::Found],
        producer: Producer,
        held: Option<Ready>,
    ) -> Vec<Ready> {
        let lane = &self.lanes[i];
        let mut out: Vec<Ready> = Vec::new();
        let mut by_key: HashMap<u64, usize> = HashMap::new();
        if let Some(h) = held {
            if let Some(k) = h.key {
                by_key.insert(k, 0);
            }
            out.push(h);
        }
        for f in found {
            let s = &spans[f.span];
            let name = match (producer, f.first_step) {
                (Producer::TracingChrome, Some(step)) if self.filter.is_none() => step,
                _ => s.name,
            };
            if let Some(&k) = s.key(&lane.extras).and_then(|k| by_key.get(&k)) {
                let p: &mut Ready = &mut out[k];
                p.end = p
                    .end
                    .max(s.end())
                    .filter(|_| s.end().is_some() && p.end.is_some());
                p.steps = p.steps.saturating_add(f.steps);
                if self.name(p.name) == self.name(s.name) && f.first_step.is_some() {
                    p.name = name;
                }
                continue;
            }
            if let Some(k) = s.key(&lane.extras) {
                by_key.insert(k, out.len());
            }
            self.fold.found.set(self.fold.found.get() + 1);
            out.push(Ready {
                start: s.start,
                seq: self.fold.found.get(),
                lane: task_lane,
                end: s.end(),
                name,
                error: lane.error_text(task_error(s, f, &lane.extras)),
                steps: f.steps,
                key: s.key(&lane.extras),
            });
        }
        out
    }
}

/// A task's error: what a step or mark inside it says, unless the task returned a value;
/// else its own (`--log_func_retval`'s `<NULL>`, poolscope's `error`).
fn task_error(s: &Span, f: &span_tree::Found, extras: &[Extra]) -> u32 {
    if f.inner_error > 0 && s.flags & RETURNED == 0 {
        f.inner_error
    } else {
        s.error(extras)
    }
}
