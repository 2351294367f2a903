//! Chrome Trace Event Format JSON: an array or `{"traceEvents": […]}`, with or without the
//! final `]`; `X` events and `B`/`E` pairs; integer or string `pid`/`tid`; `M` events naming
//! processes and threads.
//!
//! Which spans are tasks depends on who wrote the trace (see [`Producer`]); a `--task`
//! filter overrides that: the outermost spans whose name it accepts are the tasks. Spans
//! inside a task are its inner steps. Lanes are the threads (or processes) that ran tasks.
//!
//! Spans are kept compactly per lane until the end of the file, because a parent span is
//! often written after its children; the raw JSON never is.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use super::json_array::{Item, JsonArray};
use super::span_tree::{
    self, Counts, LIBRARY, MARK, NO_KEY, OPEN, POOL_FRAME, PRED, PRODUCER_TASK, RETURNED, Rule,
    Span,
};
use super::{
    LaneId, LaneInfo, MAX_ERROR, MAX_LANES, MAX_NAME, MAX_TIME_NS, ReadStats, SourceError,
    SourceEvent, TaskRecord, clip,
};

/// Who wrote a trace, which decides the default choice of tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// Unknown: every top-level span on a lane is a task.
    Generic,
    /// poolscope's own `--trace`: the `cat:"task"` events.
    Poolscope,
    /// viztracer: the user's functions called by a pool (`_WorkItem.run` in a thread pool,
    /// `_process_worker` in a process pool, through `map`'s `_process_chunk`).
    Viztracer,
    /// py-spy `record -f chrometrace`: as viztracer (sampled, so consecutive calls of one
    /// function on a thread merge into one span).
    PySpy,
    /// tracing-chrome with tokio's task spans: `runtime.spawn` spans with `kind=blocking`,
    /// merged by `task.id`, named by their first inner span.
    TracingChrome,
    /// `ray timeline`: the `task::NAME` events; lanes are worker processes grouped by node;
    /// the driver's `submit_task` events are not tasks.
    Ray,
}

impl Producer {
    /// Its name for the user.
    pub fn name(self) -> &'static str {
        match self {
            Producer::Generic => "Chrome trace",
            Producer::Poolscope => "poolscope trace",
            Producer::Viztracer => "viztracer",
            Producer::PySpy => "py-spy (tasks are sampled runs)",
            Producer::TracingChrome => "tracing-chrome",
            Producer::Ray => "ray timeline",
        }
    }

    fn rule(self) -> Rule {
        match self {
            Producer::Generic => Rule::TopLevel,
            Producer::Viztracer | Producer::PySpy => Rule::UnderPool,
            Producer::Poolscope | Producer::TracingChrome | Producer::Ray => {
                Rule::Outermost(PRODUCER_TASK)
            }
        }
    }
}

/// A `pid` or `tid` as traces write them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Id {
    Int(i64),
    Str(Box<str>),
}

impl Id {
    fn from_value(v: Option<&Value>) -> Option<Id> {
        match v? {
            Value::Number(n) => n.as_i64().map(Id::Int),
            Value::String(s) if s.len() <= MAX_NAME => Some(Id::Str(s.as_str().into())),
            _ => None,
        }
    }
}

/// One trace event as the file writes it (fields checked later, where used). Its strings
/// borrow from the event's bytes unless they hold escapes: no allocation per event.
#[derive(Deserialize, Default)]
pub(crate) struct RawEvent<'a> {
    #[serde(default, borrow)]
    pub ph: Cow<'a, str>,
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub cat: Cow<'a, str>,
    #[serde(default)]
    pub ts: Option<Value>,
    #[serde(default)]
    pub dur: Option<Value>,
    #[serde(default)]
    pub pid: Option<Value>,
    #[serde(default)]
    pub tid: Option<Value>,
    #[serde(default)]
    pub args: Option<Value>,
}

/// Evidence of who wrote the trace, gathered while reading.
#[derive(Default)]
struct Evidence {
    poolscope: bool,
    ray: bool,
    tokio: bool,
    viztracer: bool,
    pyspy: bool,
}

impl Evidence {
    fn producer(&self) -> Producer {
        if self.poolscope {
            Producer::Poolscope
        } else if self.ray {
            Producer::Ray
        } else if self.tokio {
            Producer::TracingChrome
        } else if self.viztracer {
            Producer::Viztracer
        } else if self.pyspy {
            Producer::PySpy
        } else {
            Producer::Generic
        }
    }
}

/// Spans of one lane, and its `B` events still open.
struct LaneSpans {
    spans: Vec<Span>,
    open: Vec<Span>,
    /// Failure instants: their time and text, made marks once the lane is complete.
    marks: Vec<(i64, String)>,
}

/// The reader's state while it streams through the file.
struct Reader<'f> {
    filter: Option<&'f dyn Fn(&str) -> bool>,
    stats: ReadStats,
    evidence: Evidence,
    names: Vec<Box<str>>,
    name_ids: HashMap<Box<str>, u32>,
    errors: Vec<Box<str>>,
    lanes: HashMap<(Id, Id), LaneSpans>,
    process_names: HashMap<Id, String>,
    thread_names: HashMap<(Id, Id), String>,
}

/// Reads a Chrome trace, pushing its lanes and then its tasks (in start order) to `sink`.
/// `filter`, when given, chooses the tasks by name instead of the producer's default.
pub fn read(
    input: impl Read,
    file: &str,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Producer), SourceError> {
    let mut array = JsonArray::open(input, file, "traceEvents")?;
    let mut r = Reader::new(filter);
    loop {
        match array.next_item()? {
            Item::Object(bytes, line) => {
                r.stats.records += 1;
                match serde_json::from_slice::<RawEvent>(bytes) {
                    Ok(ev) => r.event(ev, line),
                    Err(e) => r.stats.reject(line, format!("not a trace event: {e}")),
                }
            }
            Item::NotObject(line) => r.stats.reject(line, "not a trace event object"),
            Item::TooLong(line) => r.stats.reject(line, "trace event over 1 MiB"),
            Item::End { cut_off } => {
                r.stats.cut_off = cut_off;
                break;
            }
        }
    }
    if r.stats.records == 0 && r.file_is_empty_of_events() {
        return Err(SourceError::invalid(file, None, "no trace events"));
    }
    let producer = r.evidence.producer();
    r.finish(producer, sink);
    Ok((r.stats, producer))
}

/// Trace events made by another reader (speedscope's profiles as `B`/`E` spans), turned into
/// lanes and tasks by the same rules as a Chrome trace's.
pub(crate) struct Spans<'f>(Reader<'f>);

impl<'f> Spans<'f> {
    /// An empty set; `filter` as for [`read`].
    pub(crate) fn new(filter: Option<&'f dyn Fn(&str) -> bool>) -> Self {
        Spans(Reader::new(filter))
    }

    /// Takes one event (a span's `B`, `E` or `X`, or an `M` naming a thread).
    pub(crate) fn event(&mut self, ev: RawEvent, line: u64) {
        self.0.stats.records += 1;
        self.0.event(ev, line);
    }

    /// What has been refused so far, to add to.
    pub(crate) fn stats(&mut self) -> &mut ReadStats {
        &mut self.0.stats
    }

    /// Finds the tasks and pushes lanes and tasks to `sink`.
    pub(crate) fn finish(mut self, sink: &mut dyn FnMut(SourceEvent)) -> (ReadStats, Producer) {
        let producer = self.0.evidence.producer();
        self.0.finish(producer, sink);
        (self.0.stats, producer)
    }
}

impl<'f> Reader<'f> {
    fn new(filter: Option<&'f dyn Fn(&str) -> bool>) -> Self {
        Reader {
            filter,
            stats: ReadStats::default(),
            evidence: Evidence::default(),
            names: Vec::new(),
            name_ids: HashMap::new(),
            errors: Vec::new(),
            lanes: HashMap::new(),
            process_names: HashMap::new(),
            thread_names: HashMap::new(),
        }
    }
}

impl Reader<'_> {
    fn file_is_empty_of_events(&self) -> bool {
        self.lanes.is_empty()
    }

    fn event(&mut self, ev: RawEvent, line: u64) {
        let args = ev.args.as_ref();
        match &*ev.ph {
            "M" => self.metadata(&ev, line),
            "X" | "B" | "E" => self.span(&ev, args, line),
            "i" | "I" => self.instant(&ev, args, line),
            _ => {} // counters, flows, async events: not spans of a lane
        }
    }

    fn metadata(&mut self, ev: &RawEvent, line: u64) {
        let name = ev
            .args
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str);
        let (Some(pid), Some(name)) = (Id::from_value(ev.pid.as_ref()), name) else {
            return;
        };
        let name = clip(name, MAX_NAME);
        match &*ev.name {
            "process_name" => {
                if name.starts_with("poolscope run ") {
                    self.evidence.poolscope = true;
                }
                self.process_names.insert(pid, name);
            }
            "thread_name" => match Id::from_value(ev.tid.as_ref()) {
                Some(tid) => {
                    if self.thread_names.len() < MAX_LANES {
                        self.thread_names.insert((pid, tid), name);
                    }
                }
                None => self.stats.reject(line, "thread_name without a tid"),
            },
            _ => {}
        }
    }

    fn span(&mut self, ev: &RawEvent, args: Option<&Value>, line: u64) {
        let (Some(pid), Some(tid)) = (
            Id::from_value(ev.pid.as_ref()),
            Id::from_value(ev.tid.as_ref()),
        ) else {
            return self.stats.reject(line, "span without a usable pid and tid");
        };
        let Some(ts) = micros_to_ns(ev.ts.as_ref()) else {
            return self.stats.bad_time(line, "span without a valid time");
        };
        let end = match &*ev.ph {
            "X" => match ev.dur.as_ref().map(|d| micros_to_ns(Some(d))) {
                None => Some(ts),
                Some(Some(dur)) => Some(ts.saturating_add(dur)),
                Some(None) => return self.stats.bad_time(line, "span with a negative duration"),
            },
            _ => None,
        };
        if !self.lanes.contains_key(&(pid.clone(), tid.clone())) && self.lanes.len() >= MAX_LANES {
            return self.stats.reject(line, "too many lanes");
        }
        if ev.ph == "E" {
            return self.close(pid, tid, ts, line);
        }
        let mut span = self.classify(ev, args, ts, end);
        let Some(lane) = self.lane_mut(pid, tid) else {
            return self.stats.reject(line, "too many lanes");
        };
        if ev.ph == "B" {
            span.rank = u32::try_from(lane.open.len()).unwrap_or(u32::MAX);
            lane.open.push(span);
        } else {
            span.rank = u32::MAX - u32::try_from(lane.spans.len()).unwrap_or(u32::MAX);
            lane.spans.push(span);
        }
    }

    /// An instant that records a failure (viztracer's `Exception - …` with
    /// `--log_exception`, an event with an `error` field) becomes a mark on its thread: the
    /// task that encloses it failed with its text. Other instants are not kept.
    fn instant(&mut self, ev: &RawEvent, args: Option<&Value>, line: u64) {
        let text = match ev.name.strip_prefix("Exception - ") {
            Some(rest) => {
                self.evidence.viztracer = true;
                python_exception(rest)
            }
            None => match error_arg(args) {
                Some(e) => e,
                None => return,
            },
        };
        let (Some(pid), Some(tid)) = (
            Id::from_value(ev.pid.as_ref()),
            Id::from_value(ev.tid.as_ref()),
        ) else {
            return self
                .stats
                .reject(line, "instant without a usable pid and tid");
        };
        let Some(ts) = micros_to_ns(ev.ts.as_ref()) else {
            return self.stats.bad_time(line, "instant without a valid time");
        };
        let Some(lane) = self.lane_mut(pid, tid) else {
            return self.stats.reject(line, "too many lanes");
        };
        lane.marks.push((ts, text));
    }

    fn lane_mut(&mut self, pid: Id, tid: Id) -> Option<&mut LaneSpans> {
        let key = (pid, tid);
        if !self.lanes.contains_key(&key) && self.lanes.len() >= MAX_LANES {
            return None;
        }
        Some(self.lanes.entry(key).or_insert_with(|| LaneSpans {
            spans: Vec::new(),
            open: Vec::new(),
            marks: Vec::new(),
        }))
    }

    fn close(&mut self, pid: Id, tid: Id, ts: i64, line: u64) {
        let Some(lane) = self.lanes.get_mut(&(pid, tid)) else {
            return self.stats.reject(line, "E event without a B");
        };
        let Some(mut span) = lane.open.pop() else {
            return self.stats.reject(line, "E event without a B");
        };
        if ts < span.start {
            return self.stats.bad_time(line, "span ends before it starts");
        }
        span.end = ts;
        lane.spans.push(span);
    }

    /// The span's flags, name, key and error, from what its producer writes.
    fn classify(
        &mut self,
        ev: &RawEvent,
        args: Option<&Value>,
        start: i64,
        end: Option<i64>,
    ) -> Span {
        let arg_str = |k: &str| args.and_then(|a| a.get(k)).and_then(Value::as_str);
        let mut flags = 0;
        let mut name = &*ev.name;
        let mut key = None;
        let mut error = None;
        match &*ev.cat {
            "FEE" | "fee" => {
                self.evidence.viztracer = true;
                flags |= python_flags(name, viztracer_file(name));
                name = name.split(" (").next().unwrap_or(name); // `func (file:line)` → `func`
                // `--log_func_retval`: `<NULL>` is what a function that raised returned
                match arg_str("return_value") {
                    Some("<NULL>") => error = Some("raised an exception".into()),
                    Some(_) => flags |= RETURNED,
                    None => {}
                }
            }
            "py-spy" => {
                self.evidence.pyspy = true;
                flags |= python_flags(name, arg_str("filename"));
            }
            "task" if ev.ph == "X" => {
                flags |= PRODUCER_TASK;
                error = arg_str("error").map(|e| clip(e, MAX_ERROR).into_boxed_str());
                if error.is_none() && arg_str("outcome") == Some("failed") {
                    error = Some("failed".into());
                }
            }
            cat if cat.starts_with("task::") => {
                self.evidence.ray = true;
                flags |= PRODUCER_TASK;
                name = arg_str("name").unwrap_or(&cat["task::".len()..]);
            }
            // Ray marks a task that raised on its `task:execute` step: the exception's type,
            // value and traceback.
            "task:execute" if arg_str("value").is_some() || arg_str("type").is_some() => {
                error = Some(ray_error(arg_str("type"), arg_str("value")).into_boxed_str());
            }
            "submit_task" => self.evidence.ray = true,
            _ if ev.name == "runtime.spawn" && arg_str("kind") == Some("blocking") => {
                self.evidence.tokio = true;
                let internal = arg_str("fn").is_some_and(|f| f.starts_with("tokio::"));
                if !internal {
                    flags |= PRODUCER_TASK;
                    key = arg_str("task.id").and_then(|id| id.trim_matches('"').parse().ok());
                }
            }
            _ => {}
        }
        if error.is_none() && ev.cat != "task" {
            error = error_arg(args).map(String::into_boxed_str); // tracing's `error` field
        }
        if self.filter.is_some_and(|f| f(name)) {
            flags |= PRED;
        }
        let error = match error {
            Some(text) => {
                self.errors.push(text);
                u32::try_from(self.errors.len()).unwrap_or(0)
            }
            None => 0,
        };
        Span {
            start,
            end: end.unwrap_or(OPEN),
            key: key.unwrap_or(NO_KEY),
            name: self.intern(name),
            error,
            rank: 0,
            flags,
        }
    }

    /// A zero-length span carrying `text` as its error.
    fn error_span(&mut self, ts: i64, text: String) -> Span {
        self.errors.push(text.into_boxed_str());
        Span {
            start: ts,
            end: ts,
            key: NO_KEY,
            name: 0,
            error: u32::try_from(self.errors.len()).unwrap_or(0),
            rank: 0,
            flags: 0,
        }
    }

    fn error_text(&self, error: u32) -> Option<String> {
        (error > 0)
            .then(|| self.errors.get(error as usize - 1))
            .flatten()
            .map(ToString::to_string)
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let boxed: Box<str> = clip(name, MAX_NAME).into();
        self.names.push(boxed.clone());
        self.name_ids.insert(boxed, id);
        id
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("?", |n| n)
    }
}

/// An `error` field's text (tracing-chrome writes a span's or event's fields as `args`).
fn error_arg(args: Option<&Value>) -> Option<String> {
    let e = args?.get("error")?;
    let text = match e {
        Value::String(s) => s.trim_matches('"').to_string(),
        Value::Null | Value::Bool(false) => return None,
        other => other.to_string(),
    };
    (!text.is_empty()).then(|| clip(&text, MAX_ERROR))
}

/// viztracer's `ValueError() = ValueError('task 2 failed')` → `ValueError: task 2 failed`.
fn python_exception(text: &str) -> String {
    let repr = text.split_once(" = ").map_or(text, |(_, r)| r).trim();
    let plain = repr.split_once('(').and_then(|(ty, rest)| {
        let inner = rest.strip_suffix(')')?;
        let q = inner.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let msg = inner.strip_prefix(q)?.strip_suffix(q)?;
        let is_type = !ty.is_empty() && ty.chars().all(|c| c.is_alphanumeric() || "_.".contains(c));
        is_type.then(|| format!("{ty}: {msg}"))
    });
    clip(&plain.unwrap_or_else(|| repr.to_string()), MAX_ERROR)
}

/// Ray's `<class 'ValueError'>` and `boom` → `ValueError: boom`.
fn ray_error(ty: Option<&str>, value: Option<&str>) -> String {
    let ty = ty.map(|t| {
        t.trim_start_matches("<class '")
            .trim_end_matches("'>")
            .rsplit('.')
            .next()
            .unwrap_or(t)
    });
    let text = match (ty, value) {
        (Some(t), Some(v)) if !v.is_empty() => format!("{t}: {v}"),
        (Some(t), _) => t.to_string(),
        (None, Some(v)) => v.to_string(),
        (None, None) => "failed".to_string(),
    };
    clip(&text, MAX_ERROR)
}

/// viztracer names a Python function `func (/path/file.py:12)`; a C function has no path.
fn viztracer_file(name: &str) -> Option<&str> {
    let (_, rest) = name.rsplit_once(" (")?;
    Some(rest.trim_end_matches(')'))
}

/// The flags of a Python frame: a pool's dispatch frame, or library code.
fn python_flags(name: &str, file: Option<&str>) -> u8 {
    let func = name.split(" (").next().unwrap_or(name);
    let mut flags = 0;
    if matches!(func, "_WorkItem.run" | "_process_worker") {
        flags |= POOL_FRAME;
    }
    let library = match file {
        None => true,
        Some(f) => {
            f.starts_with('<')
                || (f.contains("/lib/python")
                    && !f.contains("/site-packages/")
                    && !f.contains("/dist-packages/"))
        }
    };
    if library {
        flags |= LIBRARY;
    }
    flags
}

/// A trace time (microseconds, integer or fractional) as nanoseconds; `None` if it is not a
/// finite, non-negative number of sane size.
fn micros_to_ns(v: Option<&Value>) -> Option<i64> {
    let us = v?.as_f64()?;
    if !(0.0..=4.0e15).contains(&us) {
        return None;
    }
    Some((us * 1000.0).round() as i64)
}

/// A task's error: what a step or mark inside it says, unless the task returned a value;
/// else its own (`--log_func_retval`'s `<NULL>`, poolscope's `error`).
fn task_error(s: &Span, f: &span_tree::Found) -> u32 {
    if f.inner_error > 0 && s.flags & RETURNED == 0 {
        f.inner_error
    } else {
        s.error
    }
}

/// A task found in the trace, before lanes are numbered and times made relative.
struct Pending {
    lane: usize,
    start: i64,
    end: Option<i64>,
    name: String,
    error: Option<String>,
    steps: u32,
}

impl Reader<'_> {
    /// Finds each lane's tasks, numbers the lanes that ran any, and emits lanes then tasks.
    fn finish(&mut self, producer: Producer, sink: &mut dyn FnMut(SourceEvent)) {
        let rule = if self.filter.is_some() {
            Rule::Outermost(PRED)
        } else {
            producer.rule()
        };
        let mut counts = Counts::default();
        let mut keys: Vec<(Id, Id)> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut origin = i64::MAX;
        let mut lanes = std::mem::take(&mut self.lanes);
        for (key, lane) in &mut lanes {
            lane.spans.append(&mut lane.open); // a B never closed: still running at the end
            for (ts, text) in std::mem::take(&mut lane.marks) {
                let mut mark = self.error_span(ts, text);
                mark.flags |= MARK;
                lane.spans.push(mark);
            }
            origin = lane.spans.iter().map(|s| s.start).fold(origin, i64::min);
            let found = span_tree::find_tasks(&mut lane.spans, rule, &mut counts);
            if found.is_empty() {
                continue;
            }
            keys.push(key.clone());
            let index = keys.len() - 1;
            let merged = self.merge_by_key(index, &lane.spans, &found, producer);
            pending.extend(merged);
            // this lane's spans are done with: free them before the next lane's tasks pile up
            lane.spans = Vec::new();
        }
        self.stats.inner_steps += counts.inner_steps;
        self.stats.not_tasks += counts.not_tasks;
        pending.sort_by_key(|p| p.start);
        self.emit(producer, &keys, pending, origin, sink);
    }

    /// One [`Pending`] per task; tokio's blocking spans with one `task.id` become one task.
    fn merge_by_key(
        &self,
        lane: usize,
        spans: &[Span],
        found: &[span_tree::Found],
        producer: Producer,
    ) -> Vec<Pending> {
        let mut out: Vec<Pending> = Vec::new();
        let mut by_key: HashMap<u64, usize> = HashMap::new();
        for f in found {
            let s = &spans[f.span];
            let name = match (producer, f.first_step) {
                (Producer::TracingChrome, Some(step)) if self.filter.is_none() => self.name(step),
                _ => self.name(s.name),
            };
            if let Some(&i) = s.key().and_then(|k| by_key.get(&k)) {
                let p: &mut Pending = &mut out[i];
                p.end = p
                    .end
                    .max(s.end())
                    .filter(|_| s.end().is_some() && p.end.is_some());
                p.steps = p.steps.saturating_add(f.steps);
                if p.name == self.name(s.name) && f.first_step.is_some() {
                    p.name = name.to_string();
                }
                continue;
            }
            if let Some(k) = s.key() {
                by_key.insert(k, out.len());
            }
            out.push(Pending {
                lane,
                start: s.start,
                end: s.end(),
                name: name.to_string(),
                error: self.error_text(task_error(s, f)),
                steps: f.steps,
            });
        }
        out
    }

    fn emit(
        &mut self,
        producer: Producer,
        keys: &[(Id, Id)],
        pending: Vec<Pending>,
        origin: i64,
        sink: &mut dyn FnMut(SourceEvent),
    ) {
        let mut task_lanes_per_pid: HashMap<&Id, usize> = HashMap::new();
        for (pid, _) in keys {
            *task_lanes_per_pid.entry(pid).or_default() += 1;
        }
        let many_pids = task_lanes_per_pid.len() > 1;
        let mut ids: Vec<Option<LaneId>> = vec![None; keys.len()];
        let mut next = 0u32;
        let mut seq = 0u64;
        for p in pending {
            let start = p.start.saturating_sub(origin);
            let end = p.end.map(|e| e.saturating_sub(origin));
            if start > MAX_TIME_NS as i64 || end.is_some_and(|e| e > MAX_TIME_NS as i64) {
                self.stats
                    .bad_time(0, "span absurdly far from the trace's start");
                continue;
            }
            let lane = match ids[p.lane] {
                Some(id) => id,
                None => {
                    let id = LaneId(next);
                    next += 1;
                    ids[p.lane] = Some(id);
                    let (pid, tid) = &keys[p.lane];
                    let single = task_lanes_per_pid.get(pid) == Some(&1) && many_pids;
                    let info = self.lane_info(producer, pid, tid, single);
                    sink(SourceEvent::Lane {
                        lane: id,
                        info,
                        at_ns: None,
                    });
                    id
                }
            };
            seq += 1;
            sink(SourceEvent::Task(TaskRecord {
                task: seq.to_string(),
                name: p.name,
                lane: Some(lane),
                queued_ns: None,
                start_ns: Some(start as u64),
                end_ns: end.map(|e| e as u64),
                error: p.error,
                cpu_ns: None,
                steps: p.steps,
            }));
        }
    }

    /// Who a lane is: Ray lanes are workers on a node; a process with a single task lane in a
    /// trace of several processes is a process lane; otherwise a thread.
    fn lane_info(
        &self,
        producer: Producer,
        pid: &Id,
        tid: &Id,
        single_in_process: bool,
    ) -> LaneInfo {
        let thread_name = self.thread_names.get(&(pid.clone(), tid.clone()));
        let real_pid = match pid {
            Id::Int(p) => u32::try_from(*p)
                .ok()
                .filter(|p| (1..=i32::MAX as u32).contains(p)),
            Id::Str(_) => None,
        };
        if producer == Producer::Ray || matches!((pid, tid), (Id::Str(_), Id::Str(_))) {
            return cluster_lane(pid, tid, thread_name);
        }
        let tid_num = match tid {
            // py-spy writes pthread ids, not kernel thread ids
            Id::Int(t) if producer == Producer::PySpy && thread_name.is_none() => {
                let name = format!("thread {t:#x}");
                return LaneInfo {
                    host: None,
                    pid: real_pid,
                    tid: None,
                    name,
                };
            }
            Id::Int(t) => Some(*t),
            Id::Str(_) => None,
        };
        let is_process =
            tid_num.is_some_and(|t| Some(t) == real_pid.map(i64::from)) || single_in_process;
        if is_process {
            let name = self.process_lane_name(pid, real_pid, thread_name);
            return LaneInfo {
                host: None,
                pid: real_pid,
                tid: None,
                name,
            };
        }
        let name = match (thread_name, tid) {
            (Some(n), _) => n.clone(),
            (None, Id::Int(t)) => format!("thread {t}"),
            (None, Id::Str(s)) => clip(s, MAX_NAME),
        };
        LaneInfo {
            host: None,
            pid: real_pid,
            tid: tid_num,
            name,
        }
    }

    /// A process lane's name: the process's own (`ForkProcess-2`), else `PID n`.
    fn process_lane_name(
        &self,
        pid: &Id,
        real_pid: Option<u32>,
        thread: Option<&String>,
    ) -> String {
        if let (Some(t), Some(p)) = (thread, real_pid)
            && *t == format!("PID {p}")
        {
            return t.clone(); // poolscope's own traces name process lanes so
        }
        match (self.process_names.get(pid), real_pid) {
            (Some(n), _) if !n.is_empty() && !n.starts_with("poolscope run") => n.clone(),
            (_, Some(p)) => format!("PID {p}"),
            _ => thread.cloned().unwrap_or_else(|| "process".into()),
        }
    }
}

/// A lane of a cluster trace (Ray): a worker, grouped by its node.
fn cluster_lane(pid: &Id, tid: &Id, thread_name: Option<&String>) -> LaneInfo {
    let host = match pid {
        Id::Str(s) => clip(s.strip_prefix("Node ").unwrap_or(s), MAX_NAME),
        Id::Int(p) => p.to_string(),
    };
    let name = match (thread_name, tid) {
        (Some(n), _) => n.clone(),
        (None, Id::Str(s)) => worker_name(s),
        (None, Id::Int(t)) => format!("worker {t}"),
    };
    LaneInfo {
        host: Some(host),
        pid: None,
        tid: None,
        name,
    }
}

/// `worker:5c8f0e…` → `worker 5c8f0e12`.
fn worker_name(tid: &str) -> String {
    match tid.split_once(':') {
        Some((kind, id)) => format!("{kind} {}", id.chars().take(8).collect::<String>()),
        None => clip(tid, MAX_NAME),
    }
}
