//! Which spans of a lane are tasks: spans are nested by time, and a rule picks the tasks
//! among them; spans inside a task are its inner steps.

/// A span of a trace, compact (32 bytes: a long trace keeps millions until its lanes are
/// done): times in the trace's own nanoseconds, names interned by the reader, and the rare
/// error or merge key in the reader's [`Extra`] table.
#[derive(Clone, Debug)]
pub(crate) struct Span {
    pub start: i64,
    /// [`OPEN`] while a `B` had no `E` when the file ended.
    pub end: i64,
    pub name: u32,
    /// 1 + the index of its error and key in the reader's [`Extra`] table; 0 for neither.
    pub extra: u32,
    /// Orders spans with the same start and end, outer first: a `B` span's depth when it
    /// opened; for `X` spans (written as they close, inner first) the reverse of file order.
    pub rank: u32,
    pub flags: u8,
}

const _: () = assert!(std::mem::size_of::<Span>() == 32);

/// What few spans carry besides times and a name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extra {
    /// 1 + the index of its error text in the reader's table; 0 for none.
    pub error: u32,
    /// Spans with the same key on a lane are one task (tokio's `task.id`); [`NO_KEY`] if none.
    pub key: u64,
}

/// The end of a span still open when the trace ends.
pub(crate) const OPEN: i64 = i64::MAX;
/// No merge key.
pub(crate) const NO_KEY: u64 = u64::MAX;

impl Span {
    pub(crate) fn end(&self) -> Option<i64> {
        (self.end != OPEN).then_some(self.end)
    }

    fn extra<'e>(&self, extras: &'e [Extra]) -> Option<&'e Extra> {
        extras.get((self.extra as usize).checked_sub(1)?)
    }

    /// 1 + the index of its error text; 0 for none.
    pub(crate) fn error(&self, extras: &[Extra]) -> u32 {
        self.extra(extras).map_or(0, |e| e.error)
    }

    pub(crate) fn key(&self, extras: &[Extra]) -> Option<u64> {
        self.extra(extras).map(|e| e.key).filter(|&k| k != NO_KEY)
    }
}

/// The span's name matched the user's `--task` filter.
pub(crate) const PRED: u8 = 1;
/// A pool's dispatch frame (`_WorkItem.run`, `_process_worker`): what it calls are tasks.
pub(crate) const POOL_FRAME: u8 = 2;
/// Library or interpreter code (the Python standard library, C functions): never a task.
pub(crate) const LIBRARY: u8 = 4;
/// The producer marks this span as a task (poolscope `cat:task`, Ray `task::`, tokio blocking).
pub(crate) const PRODUCER_TASK: u8 = 8;
/// Not a span but an instant (viztracer's exception, a tracing error event): never a task nor
/// a step; its error, if any, is the enclosing task's.
pub(crate) const MARK: u8 = 16;
/// The span's function returned a value (viztracer `--log_func_retval`): it did not raise,
/// whatever exceptions were raised and caught inside it.
pub(crate) const RETURNED: u8 = 32;

/// How tasks are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Every top-level span is a task.
    TopLevel,
    /// The outermost spans carrying any of these flags.
    Outermost(u8),
    /// The outermost non-library spans called under a pool's dispatch frame.
    UnderPool,
}

/// A task found on a lane: the index of its span, and what it contains.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub span: usize,
    pub steps: u32,
    pub first_step: Option<u32>,
    /// The error of the last step or mark inside it that carried one (0: none).
    pub inner_error: u32,
}

/// Counts of spans that were not tasks.
#[derive(Default, Debug)]
pub(crate) struct Counts {
    pub inner_steps: u64,
    pub not_tasks: u64,
}

struct Frame {
    end: i64,
    under_pool: bool,
    task: Option<usize>,
}

/// Sorts a lane's spans by start (outer first) and finds its tasks. `outer` is set when
/// they lie inside spans still open (`B` events not yet closed), none of them a task: whether
/// one of those is a pool's dispatch frame.
pub(crate) fn find_tasks(
    spans: &mut [Span],
    extras: &[Extra],
    rule: Rule,
    counts: &mut Counts,
    outer: Option<bool>,
) -> Vec<Found> {
    spans.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(a.rank.cmp(&b.rank))
    });
    let mut stack: Vec<Frame> = Vec::new();
    if let Some(under_pool) = outer {
        stack.push(Frame {
            end: OPEN,
            under_pool,
            task: None,
        });
    }
    let mut found: Vec<Found> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let end = s.end;
        let error = s.error(extras);
        while let Some(top) = stack.last() {
            // a mark at a span's very end is still inside it
            let past = top.end < s.start || (top.end == s.start && s.flags & MARK == 0);
            if past || top.end < end {
                stack.pop();
            } else {
                break;
            }
        }
        let parent = stack.last();
        let in_task = parent.and_then(|p| p.task);
        if s.flags & MARK != 0 {
            if let (Some(t), true) = (in_task, error > 0) {
                found[t].inner_error = error;
            }
            continue;
        }
        let under_pool = parent.is_some_and(|p| p.under_pool);
        let is_task = in_task.is_none()
            && match rule {
                Rule::TopLevel => parent.is_none(),
                Rule::Outermost(mask) => s.flags & mask != 0,
                Rule::UnderPool => under_pool && s.flags & LIBRARY == 0,
            };
        let task = if is_task {
            found.push(Found {
                span: i,
                steps: 0,
                first_step: None,
                inner_error: 0,
            });
            Some(found.len() - 1)
        } else {
            if let Some(t) = in_task {
                counts.inner_steps += 1;
                let f = &mut found[t];
                f.steps = f.steps.saturating_add(1);
                f.first_step.get_or_insert(s.name);
                if error > 0 {
                    f.inner_error = error;
                }
            } else {
                counts.not_tasks += 1;
            }
            in_task
        };
        stack.push(Frame {
            end,
            under_pool: under_pool || s.flags & POOL_FRAME != 0,
            task,
        });
    }
    found
}
