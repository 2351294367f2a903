//! Chrome Trace Event Format JSON: an array or `{"traceEvents": […]}`, with or without the
//! final `]`; `X` events and `B`/`E` pairs; integer or string `pid`/`tid`; `M` events naming
//! processes and threads.
//!
//! Which spans are tasks depends on who wrote the trace (see [`Producer`]); a `--task`
//! filter overrides that: the outermost spans whose name it accepts are the tasks. Spans
//! inside a task are its inner steps. Lanes are the threads (or processes) that ran tasks.
//!
//! Spans are kept compactly per lane until what encloses them is read (a parent span is
//! often written after its children), then folded into tasks and handed on in start order
//! (`fold`); the raw JSON never is.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use super::json_array::{Item, JsonArray};
use super::span_tree::{
    LIBRARY, MARK, NO_KEY, OPEN, POOL_FRAME, PRED, PRODUCER_TASK, RETURNED, Rule, Span,
};
use super::{MAX_ERROR, MAX_LANES, MAX_NAME, ReadStats, SourceError, SourceEvent, clip};

mod fold;

use fold::{Fold, LaneSpans};
pub(crate) use fold::{Peaks, Tuning};

/// A hash map keyed by what the trace writes, looked up once or twice per event: a fast
/// hash (a trace that collides keys only slows its own replay; every table is bounded).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Entries of a cache (viztracer's whole names) before it is emptied.
const MAX_REMEMBERED: usize = 1 << 16;

/// Deepest nesting of `B` events kept open on a lane; deeper ones are refused.
const MAX_DEPTH: usize = 4096;

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

/// The reader's state while it streams through the file.
struct Reader<'f> {
    filter: Option<&'f dyn Fn(&str) -> bool>,
    stats: ReadStats,
    evidence: Evidence,
    names: Vec<Box<str>>,
    /// Whether `--task` matches each name.
    matches: Vec<bool>,
    name_ids: FastMap<Box<str>, u32>,
    /// viztracer's whole names, their interned `func` and flags.
    python_names: FastMap<Box<str>, (u32, u8)>,
    /// Lookups it answered since it was last emptied.
    python_hits: u64,
    /// Lanes in the order first seen: they are numbered in this order, so a replay is the
    /// same each time (tasks starting together keep it).
    lanes: Vec<LaneSpans>,
    lane_ids: FastMap<(Id, Id), usize>,
    process_names: HashMap<Id, String>,
    thread_names: HashMap<(Id, Id), String>,
    fold: Fold,
}

/// Reads a Chrome trace, pushing its lanes and then its tasks (in start order) to `sink`.
/// `filter`, when given, chooses the tasks by name instead of the producer's default.
pub fn read(
    input: impl Read,
    file: &str,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Producer), SourceError> {
    let (stats, producer, _) = read_with(input, file, filter, Tuning::default(), sink)?;
    Ok((stats, producer))
}

/// [`read`] within the bounds `tuning` (tests fold small files as big ones are folded), and
/// the most it held at once.
pub(crate) fn read_with(
    input: impl Read,
    file: &str,
    filter: Option<&dyn Fn(&str) -> bool>,
    tuning: Tuning,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Producer, Peaks), SourceError> {
    let mut array = JsonArray::open(input, file, "traceEvents")?;
    let mut r = Reader::new(filter, tuning);
    loop {
        match array.next_object()? {
            // an object begins the window (`next_object` never hands one out)
            None | Some(Item::Object(..)) => {}
            Some(Item::NotObject(line)) => {
                r.stats.reject(line, "not a trace event object");
                continue;
            }
            Some(Item::TooLong(line)) => {
                r.stats.reject(line, "trace event over 1 MiB");
                continue;
            }
            Some(Item::End { cut_off }) => {
                r.stats.cut_off = cut_off;
                break;
            }
        }
        if !event_in_place(&mut array, &mut r)? {
            break;
        }
        r.settle(sink);
    }
    if r.stats.records == 0 && r.file_is_empty_of_events() {
        return Err(SourceError::invalid(file, None, "no trace events"));
    }
    let producer = r.finish(sink);
    r.fold.peaks.names = r.names.len();
    Ok((r.stats, producer, r.fold.peaks))
}

/// Parses the object beginning `array`'s window in place (no copy, no second scan) and
/// takes it; one that runs past the window is read on, one that does not parse is split by
/// scanning, to say why. `false` once the input ends (cut inside the object).
fn event_in_place<R: Read>(array: &mut JsonArray<R>, r: &mut Reader) -> Result<bool, SourceError> {
    let line = array.line();
    loop {
        let parsed = {
            let mut one = serde_json::Deserializer::from_slice(array.window()).into_iter();
            match one.next() {
                Some(Ok(ev)) => Ok::<(RawEvent, usize), bool>((ev, one.byte_offset())),
                Some(Err(e)) => Err(e.is_eof()),
                None => Err(true),
            }
        };
        let eof = match parsed {
            Ok((ev, n)) => {
                r.stats.records += 1;
                r.event(ev, line);
                array.consume(n);
                return Ok(true);
            }
            Err(eof) => eof,
        };
        if !(eof && array.more()?) {
            break;
        }
    }
    match array.take_object()? {
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
            return Ok(false);
        }
    }
    Ok(true)
}

/// Trace events made by another reader (speedscope's profiles as `B`/`E` spans), turned into
/// lanes and tasks by the same rules as a Chrome trace's.
pub(crate) struct Spans<'f>(Reader<'f>);

impl<'f> Spans<'f> {
    /// An empty set; `filter` as for [`read`].
    pub(crate) fn new(filter: Option<&'f dyn Fn(&str) -> bool>) -> Self {
        let whole = Tuning {
            decide_after: u64::MAX,
            ..Tuning::default()
        };
        Spans(Reader::new(filter, whole))
    }

    /// An empty set read as a stream: tasks are handed on as they settle ([`Self::event_to`]),
    /// in bounded memory, as a Chrome trace's are.
    pub(crate) fn streaming(filter: Option<&'f dyn Fn(&str) -> bool>) -> Self {
        Spans(Reader::new(filter, Tuning::default()))
    }

    /// Takes one event (a span's `B`, `E` or `X`, or an `M` naming a thread).
    pub(crate) fn event(&mut self, ev: RawEvent, line: u64) {
        self.0.stats.records += 1;
        self.0.event(ev, line);
    }

    /// Takes one event and hands on to `sink` the tasks it settles (see [`Self::streaming`]).
    pub(crate) fn event_to(&mut self, ev: RawEvent, line: u64, sink: &mut dyn FnMut(SourceEvent)) {
        self.event(ev, line);
        self.0.settle(sink);
    }

    /// What has been refused so far, to add to.
    pub(crate) fn stats(&mut self) -> &mut ReadStats {
        &mut self.0.stats
    }

    /// Finds the tasks and pushes lanes and tasks to `sink`.
    pub(crate) fn finish(mut self, sink: &mut dyn FnMut(SourceEvent)) -> (ReadStats, Producer) {
        let producer = self.0.finish(sink);
        (self.0.stats, producer)
    }
}

impl<'f> Reader<'f> {
    /// After an event: decides the producer once enough is read, and hands on the tasks
    /// past the window.
    fn settle(&mut self, sink: &mut dyn FnMut(SourceEvent)) {
        let tuning = self.fold.tuning;
        if self.fold.decided.is_none() && self.stats.records >= tuning.decide_after {
            self.decide();
        }
        let window = tuning.window + self.fold.backlog;
        if self.fold.ready() > window {
            self.emit(window, sink);
        }
    }

    fn new(filter: Option<&'f dyn Fn(&str) -> bool>, tuning: Tuning) -> Self {
        Reader {
            filter,
            stats: ReadStats::default(),
            evidence: Evidence::default(),
            names: Vec::new(),
            matches: Vec::new(),
            name_ids: FastMap::default(),
            python_names: FastMap::default(),
            python_hits: 0,
            lanes: Vec::new(),
            lane_ids: FastMap::default(),
            process_names: HashMap::new(),
            thread_names: HashMap::new(),
            fold: Fold::new(tuning),
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
        if ev.ph == "E" {
            return self.close(pid, tid, ts, line);
        }
        let (mut span, error, key) = self.classify(ev, args, ts, end);
        let Some(i) = self.lane_index(pid, tid) else {
            return self.stats.reject(line, "too many lanes");
        };
        self.arrived(i, span.start);
        let lane = &mut self.lanes[i];
        span.extra = lane.extra(error, key.unwrap_or(NO_KEY));
        if ev.ph == "B" {
            if lane.open.len() >= MAX_DEPTH {
                return self.stats.reject(line, "B events nested too deeply");
            }
            span.rank = u32::try_from(lane.open.len()).unwrap_or(u32::MAX);
            lane.open.push(span);
            self.fold.waiting += 1;
        } else {
            span.rank = u32::MAX - lane.x_seen;
            lane.x_seen = lane.x_seen.saturating_add(1);
            self.fold.saw_start(span.start);
            lane.spans.push(span);
            self.closed(i, false);
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
        let Some(i) = self.lane_index(pid, tid) else {
            return self.stats.reject(line, "too many lanes");
        };
        self.arrived(i, ts);
        let lane = &mut self.lanes[i];
        let extra = lane.extra(Some(text.into_boxed_str()), NO_KEY);
        lane.marks.push(Span {
            start: ts,
            end: ts,
            name: 0,
            extra,
            rank: 0,
            flags: MARK,
        });
        self.fold.saw_start(ts);
        self.fold.waiting += 1;
    }

    /// The index of lane (`pid`, `tid`), added if new; `None` past [`MAX_LANES`].
    fn lane_index(&mut self, pid: Id, tid: Id) -> Option<usize> {
        let key = (pid, tid);
        if let Some(&i) = self.lane_ids.get(&key) {
            return Some(i);
        }
        if self.lanes.len() >= MAX_LANES {
            return None;
        }
        self.lane_ids.insert(key.clone(), self.lanes.len());
        self.lanes.push(LaneSpans::new(key));
        Some(self.lanes.len() - 1)
    }

    fn close(&mut self, pid: Id, tid: Id, ts: i64, line: u64) {
        let Some(&i) = self.lane_ids.get(&(pid, tid)) else {
            return self.stats.reject(line, "E event without a B");
        };
        let lane = &mut self.lanes[i];
        let Some(mut span) = lane.open.pop() else {
            return self.stats.reject(line, "E event without a B");
        };
        self.fold.waiting -= 1;
        if ts < span.start {
            return self.stats.bad_time(line, "span ends before it starts");
        }
        span.end = ts;
        self.fold.saw_start(span.start);
        lane.spans.push(span);
        self.closed(i, true);
    }

    /// The span's flags and name, and its error and merge key, from what its producer
    /// writes.
    fn classify(
        &mut self,
        ev: &RawEvent,
        args: Option<&Value>,
        start: i64,
        end: Option<i64>,
    ) -> (Span, Option<Box<str>>, Option<u64>) {
        let arg_str = |k: &str| args.and_then(|a| a.get(k)).and_then(Value::as_str);
        let mut flags = 0;
        let mut name = &*ev.name;
        let mut key = None;
        let mut error = None;
        let mut name_id = None;
        match &*ev.cat {
            "FEE" | "fee" => {
                self.evidence.viztracer = true;
                let (id, f) = self.python_name(name);
                flags |= f;
                name_id = Some(id);
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
        let name = name_id.unwrap_or_else(|| self.intern(name));
        if self.matches.get(name as usize).copied().unwrap_or(false) {
            flags |= PRED;
        }
        let span = Span {
            start,
            end: end.unwrap_or(OPEN),
            name,
            extra: 0,
            rank: 0,
            flags,
        };
        (span, error, key)
    }

    /// A viztracer name (`func (/path/file.py:12)`): `func` interned, and the frame's
    /// flags; remembered by the whole name, as a trace calls few functions many times.
    fn python_name(&mut self, raw: &str) -> (u32, u8) {
        if let Some(&known) = self.python_names.get(raw) {
            self.python_hits += 1;
            return known;
        }
        let flags = python_flags(raw, viztracer_file(raw));
        let id = self.intern(raw.split(" (").next().unwrap_or(raw));
        if self.python_names.len() >= MAX_REMEMBERED {
            // a cache, bounded whatever the trace; one of names that never come again
            // (a name per task) is only a cost, and is not kept on
            let useful = self.python_hits >= MAX_REMEMBERED as u64;
            self.python_names.clear();
            self.python_hits = 0;
            if !useful {
                self.python_names.shrink_to_fit();
                return (id, flags);
            }
        }
        if self.python_hits > 0 || self.python_names.len() < MAX_REMEMBERED / 2 {
            self.python_names.insert(raw.into(), (id, flags));
        }
        (id, flags)
    }

    /// The id of `name` (clipped), and whether `--task` matches it, added if new.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        // a long or multi-line name is kept clipped, and found again by its clipped form
        let clipped = clip(name, MAX_NAME);
        if let Some(&id) = self.name_ids.get(clipped.as_str()) {
            return id;
        }
        if self.names.len() >= self.fold.names_limit {
            self.compact_names();
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let boxed: Box<str> = clipped.into();
        self.matches.push(self.filter.is_some_and(|f| f(name)));
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

#[cfg(test)]
mod stream_tests;
