//! The event protocol (`docs/protocol.md`): JSON lines, a header then one event per line.
//!
//! [`Decoder`] checks each line as it comes (for a live program); [`read`] runs it over a file
//! or FIFO. Nothing a writer says is trusted: lines over [`MAX_LINE`] are refused unread,
//! unknown fields ignored, unknown kinds counted, and every time and id checked.

mod packed;

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use serde_json::{Map, Value};

use super::lanes::LaneTable;
use super::lines::{Line, LineReader};
use super::{
    LaneId, LaneInfo, MAX_ERROR, MAX_LINE, MAX_NAME, MAX_TIME_NS, ReadStats, SourceError,
    SourceEvent, clip,
};

/// The protocol version this reader speaks.
pub const VERSION: u64 = 1;
/// Longest task id accepted.
const MAX_ID: usize = 128;
/// Most tasks started and not yet ended that are tracked; more is refused.
const MAX_OPEN: usize = 1 << 20;

/// A lane as the protocol names it: host, pid, and tid (absent for a whole process).
type LaneKey = (Option<String>, u32, Option<i64>);

/// Checks protocol lines one at a time and turns them into [`SourceEvent`]s.
pub struct Decoder {
    file: String,
    line: u64,
    header: bool,
    origin_ns: Option<u64>,
    lanes: LaneTable<LaneKey>,
    started: HashMap<String, u64>,
    /// The names `name` lines announced, by pid and number, for `packed` lines.
    names: HashMap<u32, HashMap<u64, String>>,
    /// How many names `names` holds.
    names_kept: usize,
    /// The processes in `names`, in the order they first named one.
    naming_pids: VecDeque<u32>,
    stats: ReadStats,
}

impl Decoder {
    /// A decoder for the stream called `file` in errors.
    pub fn new(file: &str) -> Self {
        Decoder {
            file: file.to_string(),
            line: 0,
            header: false,
            origin_ns: None,
            lanes: LaneTable::new(),
            started: HashMap::new(),
            names: HashMap::new(),
            names_kept: 0,
            naming_pids: VecDeque::new(),
            stats: ReadStats::default(),
        }
    }

    /// What has been refused or not understood so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Counts a line longer than [`MAX_LINE`], which the caller did not keep.
    pub fn oversized_line(&mut self) {
        self.line += 1;
        self.stats.records += 1;
        let line = self.line;
        self.stats
            .reject(line, format!("line over {} KiB refused", MAX_LINE / 1024));
    }

    /// Decodes one line (without its newline). Only a bad header is an error: a stream that
    /// does not begin with one is not this protocol. A bad event line is counted and skipped.
    pub fn line(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError> {
        self.line += 1;
        let line = self.line;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.stats.records += 1;
        let obj = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(obj)) => obj,
            Ok(_) if !self.header => return Err(self.no_header()),
            Ok(_) => {
                self.stats.reject(line, "not a JSON object");
                return Ok(());
            }
            Err(_) if !self.header => return Err(self.no_header()),
            Err(e) => {
                self.stats.reject(line, format!("not JSON: {e}"));
                return Ok(());
            }
        };
        if !self.header {
            return self.read_header(&obj);
        }
        if let Err(what) = self.event(&obj, sink) {
            self.count(what);
        }
        Ok(())
    }

    /// Counts a record of the current line that was not used.
    fn count(&mut self, what: Problem) {
        let line = self.line;
        match what {
            Problem::Bad(w) => self.stats.reject(line, w),
            Problem::Time(w) => self.stats.bad_time(line, w),
            Problem::UnknownKind => self.stats.unknown_kinds += 1,
        }
    }

    /// Marks the stream as cut inside its last line.
    pub fn cut_off(&mut self) {
        self.stats.cut_off = true;
    }

    /// The counts, once the stream has ended.
    pub fn finish(self) -> ReadStats {
        self.stats
    }

    fn no_header(&self) -> SourceError {
        SourceError::invalid(
            &self.file,
            Some(self.line),
            "not a poolscope event stream: the first line must be a header like {\"poolscope\":1}",
        )
    }

    fn read_header(&mut self, obj: &Map<String, Value>) -> Result<(), SourceError> {
        let Some(version) = obj.get("poolscope").and_then(Value::as_u64) else {
            return Err(self.no_header());
        };
        if version != VERSION {
            return Err(SourceError::invalid(
                &self.file,
                Some(self.line),
                format!("protocol version {version}; this poolscope reads version {VERSION}"),
            ));
        }
        self.origin_ns = match obj.get("origin_ns") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                SourceError::invalid(
                    &self.file,
                    Some(self.line),
                    "origin_ns is not a count of nanoseconds",
                )
            })?),
        };
        self.header = true;
        Ok(())
    }
}

/// Why an event line was not used.
enum Problem {
    Bad(String),
    Time(String),
    UnknownKind,
}

fn bad(what: impl Into<String>) -> Problem {
    Problem::Bad(what.into())
}

impl Decoder {
    fn event(
        &mut self,
        obj: &Map<String, Value>,
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), Problem> {
        let kind = obj.get("ev").and_then(Value::as_str).ok_or_else(|| {
            if obj.contains_key("poolscope") {
                // JSON lines: what follows is read on, on the first header's clock.
                bad("a second header: another recording appended to the first?")
            } else {
                bad("no \"ev\" kind")
            }
        })?;
        if kind == "dropped" {
            let count = obj
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("dropped without a count"))?;
            self.stats.dropped_by_writer = self.stats.dropped_by_writer.saturating_add(count);
            // A bad time does not unsay the count: it is then told where it was read. Nor is
            // the count's time the clock's origin (a writer tells it after what it follows).
            let at_ns = match self.origin_ns {
                Some(_) => self.time(obj, "t", "s").ok(),
                None => None,
            };
            if count > 0 {
                sink(SourceEvent::Dropped { count, at_ns });
            }
            return Ok(());
        }
        match kind {
            "name" => return self.name(obj),
            "packed" => return self.packed(obj, sink),
            _ => {}
        }
        if !matches!(
            kind,
            "worker_started"
                | "worker_exited"
                | "task_queued"
                | "task_started"
                | "task_ran"
                | "task_finished"
                | "task_failed"
        ) {
            return Err(Problem::UnknownKind);
        }
        let at_ns = self.time(obj, "t", "s")?;
        match kind {
            "worker_started" => {
                let (lane, info) = self.lane(obj, true)?;
                let at_ns = Some(at_ns);
                sink(SourceEvent::Lane { lane, info, at_ns });
            }
            "worker_exited" => {
                let key = lane_key(obj)?;
                let status = opt_str(obj, "status", MAX_ERROR)?;
                // A worker that never ran a task has no lane to end (the Python probe tells
                // the end of every worker process the pools reap, busy or not).
                let Some(lane) = self.lanes.get(&key) else {
                    return Ok(());
                };
                sink(SourceEvent::LaneExited {
                    lane,
                    at_ns,
                    status,
                });
            }
            "task_queued" => {
                let task = task_id(obj)?;
                let name = display_name(obj)?.ok_or_else(|| bad("task_queued without a name"))?;
                sink(SourceEvent::TaskQueued { task, name, at_ns });
            }
            "task_started" => {
                let (task, _) = self.task_start(obj, at_ns, sink)?;
                self.started.insert(task, at_ns);
            }
            "task_ran" => self.task_ran(obj, at_ns, sink)?,
            _ => self.task_end(obj, kind == "task_failed", at_ns, sink)?,
        }
        Ok(())
    }

    /// The start of a task (`task_started`, or the first half of `task_ran`): its lane if
    /// new, its queue time if it carries one, and the start.
    fn task_start(
        &mut self,
        obj: &Map<String, Value>,
        at_ns: u64,
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Result<(String, LaneId), Problem> {
        let task = task_id(obj)?;
        let name = display_name(obj)?.unwrap_or_default();
        if self.started.len() >= MAX_OPEN && !self.started.contains_key(&task) {
            return Err(bad("too many tasks running at once"));
        }
        let queued = self.queued_with_start(obj, at_ns)?;
        let (lane, new) = self.lane_for_task(obj)?;
        if let Some(info) = new {
            sink(SourceEvent::Lane {
                lane,
                info,
                at_ns: Some(at_ns),
            });
        }
        if let Some(q) = queued {
            let (task, name) = (task.clone(), name.clone());
            sink(SourceEvent::TaskQueued {
                task,
                name,
                at_ns: q,
            });
        }
        let started = SourceEvent::TaskStarted {
            task: task.clone(),
            name,
            lane,
            at_ns,
        };
        sink(started);
        Ok((task, lane))
    }

    /// The `queued_t`/`queued_s` a start may carry (a writer's shortcut for a `task_queued`
    /// it had not written yet); it cannot be after the start.
    fn queued_with_start(
        &mut self,
        obj: &Map<String, Value>,
        start: u64,
    ) -> Result<Option<u64>, Problem> {
        if !obj.contains_key("queued_t") && !obj.contains_key("queued_s") {
            return Ok(None);
        }
        let queued = self.time(obj, "queued_t", "queued_s")?;
        if queued > start {
            return Err(Problem::Time("task queued after it started".into()));
        }
        Ok(Some(queued))
    }

    /// A task that started at `t` and ended at `end_t`, written as one line.
    fn task_ran(
        &mut self,
        obj: &Map<String, Value>,
        start: u64,
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), Problem> {
        let end = self.time(obj, "end_t", "end_s")?;
        if end < start {
            let task = task_id(obj)?;
            return Err(Problem::Time(format!("task {task} ends before it starts")));
        }
        let cpu_ns = within_wall(cpu_ns(obj)?, end - start)?;
        let (task, lane) = self.task_start(obj, start, sink)?;
        let lane = Some(lane);
        sink(SourceEvent::TaskEnded {
            task,
            lane,
            at_ns: end,
            error: None,
            cpu_ns,
        });
        Ok(())
    }

    fn task_end(
        &mut self,
        obj: &Map<String, Value>,
        failed: bool,
        at_ns: u64,
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), Problem> {
        let task = task_id(obj)?;
        let start = self.started.get(&task).copied();
        if let Some(start) = start
            && at_ns < start
        {
            return Err(Problem::Time(format!("task {task} ends before it starts")));
        }
        let cpu_ns = match start {
            Some(start) => within_wall(cpu_ns(obj)?, at_ns - start)?,
            None => cpu_ns(obj)?,
        };
        self.started.remove(&task);
        let lane = match obj.get("pid") {
            Some(_) => self.lanes.get(&lane_key(obj)?),
            None => None,
        };
        let error = if failed {
            Some(opt_str(obj, "error", MAX_ERROR)?.unwrap_or_else(|| "failed".into()))
        } else {
            None
        };
        sink(SourceEvent::TaskEnded {
            task,
            lane,
            at_ns,
            error,
            cpu_ns,
        });
        Ok(())
    }

    /// A time as nanoseconds since the origin: field `ns` (`CLOCK_MONOTONIC` nanoseconds) or
    /// `secs` (seconds since the origin). Before the origin, negative, or past
    /// [`MAX_TIME_NS`] is a lie.
    fn time(&mut self, obj: &Map<String, Value>, ns: &str, secs: &str) -> Result<u64, Problem> {
        if let Some(t) = obj.get(ns) {
            let t = t.as_u64().ok_or_else(|| {
                Problem::Time("t is not a non-negative integer of nanoseconds".into())
            })?;
            let origin = *self.origin_ns.get_or_insert(t);
            let rel = t
                .checked_sub(origin)
                .ok_or_else(|| Problem::Time("time before the origin".into()))?;
            return within(rel);
        }
        if let Some(s) = obj.get(secs) {
            let s = s
                .as_f64()
                .ok_or_else(|| Problem::Time("s is not a number of seconds".into()))?;
            if !s.is_finite() || s < 0.0 {
                return Err(Problem::Time("time before the origin".into()));
            }
            if s > (MAX_TIME_NS / 1_000_000_000) as f64 {
                return Err(Problem::Time("time absurdly far in the future".into()));
            }
            return within((s * 1e9).round() as u64);
        }
        Err(bad(format!("no time ({ns} or {secs})")))
    }

    fn lane(
        &mut self,
        obj: &Map<String, Value>,
        declared: bool,
    ) -> Result<(LaneId, LaneInfo), Problem> {
        let key = lane_key(obj)?;
        let name = opt_str(obj, "name", MAX_NAME)?;
        let info = LaneInfo {
            host: key.0.clone(),
            pid: Some(key.1),
            tid: key.2,
            name: name.unwrap_or_else(|| default_lane_name(&key)),
        };
        let made = info.clone();
        let (lane, new) = self
            .lanes
            .get_or_add(key, || made)
            .ok_or_else(|| bad("too many workers"))?;
        if declared && !new {
            self.lanes.set_info(lane, info.clone());
        }
        Ok((lane, info))
    }

    /// The lane of a `task_started`, declaring it (named by `thread`) if it is new.
    fn lane_for_task(
        &mut self,
        obj: &Map<String, Value>,
    ) -> Result<(LaneId, Option<LaneInfo>), Problem> {
        let key = lane_key(obj)?;
        if let Some(lane) = self.lanes.get(&key) {
            return Ok((lane, None));
        }
        let name = opt_str(obj, "thread", MAX_NAME)?.unwrap_or_else(|| default_lane_name(&key));
        let info = LaneInfo {
            host: key.0.clone(),
            pid: Some(key.1),
            tid: key.2,
            name,
        };
        let made = info.clone();
        let (lane, _) = self
            .lanes
            .get_or_add(key, || made)
            .ok_or_else(|| bad("too many workers"))?;
        Ok((lane, Some(self.lanes.info(lane).clone())))
    }
}

fn within(rel: u64) -> Result<u64, Problem> {
    if rel > MAX_TIME_NS {
        return Err(Problem::Time("time absurdly far in the future".into()));
    }
    Ok(rel)
}

fn default_lane_name(key: &LaneKey) -> String {
    match key.2 {
        Some(tid) => format!("thread {tid}"),
        None => format!("PID {}", key.1),
    }
}

/// The `pid` of a line: 1…2³¹−1.
fn pid(obj: &Map<String, Value>) -> Result<u32, Problem> {
    obj.get("pid")
        .and_then(Value::as_u64)
        .filter(|p| (1..=i32::MAX as u64).contains(p))
        .map(|p| p as u32)
        .ok_or_else(|| bad("pid missing or not a process id"))
}

fn lane_key(obj: &Map<String, Value>) -> Result<LaneKey, Problem> {
    let pid = pid(obj)?;
    let tid = match obj.get("tid") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|t| *t >= 1)
                .ok_or_else(|| bad("tid is not a thread id"))?,
        ),
    };
    let host = opt_str(obj, "host", MAX_NAME)?;
    Ok((host, pid, tid))
}

fn task_id(obj: &Map<String, Value>) -> Result<String, Problem> {
    match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(bad("task id is not a short string")),
        None => Err(bad("task event without an id")),
    }
}

/// `name`, with `args` in parentheses when the writer sent them (`blocks(3)`).
fn display_name(obj: &Map<String, Value>) -> Result<Option<String>, Problem> {
    let Some(name) = opt_str(obj, "name", MAX_NAME)? else {
        return Ok(None);
    };
    Ok(Some(match opt_str(obj, "args", MAX_NAME)? {
        Some(args) => format!("{name}({args})"),
        None => name,
    }))
}

fn opt_str(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, Problem> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(clip(s, max))),
        Some(_) => Err(bad(format!("{key} is not a string"))),
    }
}

/// The optional `cpu_ns` of a task's end: CPU time its thread spent on it, a non-negative
/// integer no larger than any time the reader accepts.
fn cpu_ns(obj: &Map<String, Value>) -> Result<Option<u64>, Problem> {
    match obj.get("cpu_ns") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(ns) if ns <= MAX_TIME_NS => Ok(Some(ns)),
            Some(_) => Err(bad("cpu_ns is past any time a task can take")),
            None => Err(bad("cpu_ns is not a non-negative integer of nanoseconds")),
        },
    }
}

/// How much a task's CPU time may exceed its wall time: the writer reads the two clocks at
/// slightly different instants.
const CPU_SLACK_NS: u64 = 1_000_000;

/// `cpu_ns` of a task that lasted `wall_ns`: one thread cannot run longer than the task
/// lasted, so more (past [`CPU_SLACK_NS`]) is a lie, refused rather than shown.
fn within_wall(cpu_ns: Option<u64>, wall_ns: u64) -> Result<Option<u64>, Problem> {
    match cpu_ns {
        Some(ns) if ns > wall_ns.saturating_add(CPU_SLACK_NS) => {
            Err(bad("cpu_ns is longer than the task lasted"))
        }
        other => Ok(other),
    }
}

/// Reads a protocol stream (a recording, or a FIFO until its writers close it) to its end.
pub fn read(
    input: impl BufRead,
    file: &str,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReadStats, SourceError> {
    read_lines(LineReader::new(input), file, &mut |_| {}, sink)
}

/// Reads a live stream as [`read`] does, telling `on_header` the header's origin (its
/// `origin_ns`, if it gives one) as soon as the header is read, so the caller can put the
/// program's times on its own clock.
pub fn read_live(
    input: impl BufRead,
    file: &str,
    on_header: &mut dyn FnMut(Option<u64>),
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReadStats, SourceError> {
    read_lines(LineReader::live(input), file, on_header, sink)
}

fn read_lines(
    mut input: LineReader<impl BufRead>,
    file: &str,
    on_header: &mut dyn FnMut(Option<u64>),
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReadStats, SourceError> {
    let mut dec = Decoder::new(file);
    let mut told = false;
    loop {
        match input.next_line(file)? {
            Line::Whole => {
                dec.line(input.text(), sink)?;
                if dec.header && !told {
                    told = true;
                    on_header(dec.origin_ns);
                }
            }
            Line::TooLong if !dec.header => {
                dec.oversized_line();
                return Err(dec.no_header());
            }
            Line::TooLong => dec.oversized_line(),
            Line::Last => {
                // No newline at the end: whole if it parses, else the stream was cut off.
                if serde_json::from_slice::<Value>(input.text()).is_ok() {
                    dec.line(input.text(), sink)?;
                } else {
                    dec.cut_off();
                }
                break;
            }
            Line::Eof => break,
        }
    }
    if !dec.header {
        return Err(SourceError::invalid(
            file,
            None,
            "empty event stream (no header line)",
        ));
    }
    Ok(dec.finish())
}
