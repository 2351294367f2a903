//! Runs as Chrome trace-event JSON (the array format), which Perfetto and chrome://tracing
//! open: one complete (`"ph":"X"`) event per task, metadata naming each lane.
//!
//! Events are written as they happen, and the format allows the closing `]` to be missing,
//! so a run that is killed still leaves a readable file.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Mode;
use crate::event::{EventKind, PoolEvent, RunId, RunSource, TaskId, WorkerId, WorkerLabel};
use crate::model::{Outcome, Run};
use crate::task_names::TaskNames;
use crate::workload::Workload;

/// What the writer remembers of one run while it is under way.
struct RunTrace {
    origin_ns: u64,
    mode: Mode,
    workload: Workload,
    coordinator: u32,
    /// Each lane's trace `pid` and `tid`: numbers, or strings for lanes without a process.
    lanes: HashMap<WorkerId, (Value, Value)>,
    started: HashMap<TaskId, Duration>,
    names: TaskNames,
}

/// Bytes of whole events gathered before they go to the file in one write.
const WRITE_CHUNK: usize = 32 * 1024;

/// Streams [`PoolEvent`]s into a trace file.
///
/// Events are gathered whole in a buffer of its own and handed to the output only at event
/// boundaries, so a run killed at any moment leaves a file that ends after a complete event
/// (a `BufWriter` of its own would flush at a fixed size, cutting an event in two).
pub struct TraceWriter<W: Write> {
    out: W,
    pending: Vec<u8>,
    wrote_any: bool,
    session_origin_ns: Option<u64>,
    runs: HashMap<RunId, RunTrace>,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(b"[")?;
        Ok(TraceWriter {
            out,
            pending: Vec::with_capacity(WRITE_CHUNK),
            wrote_any: false,
            session_origin_ns: None,
            runs: HashMap::new(),
        })
    }

    /// Writes what `ev` adds to the trace.
    pub fn apply(&mut self, ev: &PoolEvent) -> io::Result<()> {
        if let EventKind::RunStarted {
            config,
            coordinator_pid,
            origin_ns,
            source,
        } = &ev.kind
        {
            return self.run_started(ev.run, config, (*coordinator_pid, *origin_ns), source);
        }
        if let EventKind::RunFinished { .. } = ev.kind {
            self.runs.remove(&ev.run);
            return Ok(());
        }
        let session = self.session_origin_ns.unwrap_or(0);
        let Some(run) = self.runs.get_mut(&ev.run) else {
            return Ok(());
        };
        let out = run.entries(ev, session);
        for v in out {
            self.write(v)?;
        }
        Ok(())
    }

    /// A run's process name and its start marker.
    fn run_started(
        &mut self,
        id: RunId,
        config: &crate::config::RunConfig,
        (coordinator_pid, origin_ns): (u32, u64),
        source: &RunSource,
    ) -> io::Result<()> {
        let session = *self.session_origin_ns.get_or_insert(origin_ns);
        self.runs.insert(
            id,
            RunTrace {
                origin_ns,
                mode: config.mode,
                workload: config.workload,
                coordinator: coordinator_pid,
                lanes: HashMap::new(),
                started: HashMap::new(),
                names: TaskNames::new(),
            },
        );
        let ts = us(Duration::from_nanos(origin_ns.saturating_sub(session)));
        let name = match source {
            RunSource::Experiment => format!("poolscope run {id} ({} pool)", config.mode),
            other => format!("poolscope run {id} ({other})"),
        };
        let pid = coordinator_pid;
        self.write(meta("process_name", &json!(pid), &json!(pid), &name))?;
        self.write(json!({"name": name, "ph": "i", "s": "p", "ts": ts,
            "pid": pid, "tid": pid,
            "args": {"workers": config.workers, "tasks": config.tasks,
                     "workload": config.workload.name(), "task_ms": config.task_ms}}))
    }

    /// Pushes what has been written so far to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.out.flush()
    }

    /// Closes the JSON array and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.pending.extend_from_slice(b"\n]\n");
        self.flush()?;
        Ok(self.out)
    }

    fn write(&mut self, v: Value) -> io::Result<()> {
        self.pending
            .extend_from_slice(if self.wrote_any { b",\n" } else { b"\n" });
        self.wrote_any = true;
        serde_json::to_writer(&mut self.pending, &v).map_err(io::Error::other)?;
        if self.pending.len() >= WRITE_CHUNK {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Hands the whole events gathered so far to the output in one write.
    fn write_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.out.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

impl RunTrace {
    /// The trace entries one event of this run adds, with `session` the trace's time zero.
    fn entries(&mut self, ev: &PoolEvent, session: u64) -> Vec<Value> {
        let offset = Duration::from_nanos(self.origin_ns.saturating_sub(session));
        let ts = |at: Duration| us(offset + at);
        let mut out: Vec<Value> = Vec::new();
        match &ev.kind {
            EventKind::WorkerSpawned { worker, label } => out.extend(self.lane(*worker, label)),
            EventKind::TaskNamed { task, name } => self.names.insert(*task, name),
            EventKind::TaskStarted { task, .. } => {
                self.started.insert(*task, ev.at);
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
            }
            | EventKind::TaskRan {
                task,
                worker,
                result,
                ..
            } => {
                let start = match ev.kind {
                    EventKind::TaskRan { started, .. } => Some(started),
                    _ => self.started.remove(task),
                };
                out.extend(self.span(
                    ev,
                    (*task, *worker),
                    start,
                    json!({"n": task, "result": result}),
                    ts,
                ));
            }
            EventKind::TaskFailed {
                task,
                worker: Some(worker),
                error,
            } => {
                let start = self.started.remove(task);
                if let Some(mut e) = self.span(
                    ev,
                    (*task, *worker),
                    start,
                    json!({"n": task, "error": error}),
                    ts,
                ) {
                    e["cname"] = json!("terrible");
                    out.push(e);
                }
            }
            EventKind::TaskOverdue { task, worker } => {
                let name = format!("{} overdue", self.label(*task));
                out.extend(self.instant(*worker, name, ts(ev.at)));
            }
            EventKind::WorkerExited { worker, exit } if !exit.is_clean() => {
                out.extend(self.instant(*worker, format!("worker {exit}"), ts(ev.at)));
            }
            _ => {}
        }
        out
    }

    /// Names a new worker's lane (in process mode its process too) and remembers where it is.
    fn lane(&mut self, worker: WorkerId, label: &WorkerLabel) -> Vec<Value> {
        let (pid, tid, name, process) = match label {
            WorkerLabel::Thread { name, tid } => (
                json!(self.coordinator),
                json!(tid),
                name.clone(),
                self.mode == Mode::Process,
            ),
            WorkerLabel::Process { pid } => (json!(pid), json!(pid), format!("PID {pid}"), true),
            WorkerLabel::External(w) if w.pid.is_some() => {
                let pid = w.pid.unwrap_or_default();
                (
                    json!(pid),
                    json!(w.tid.unwrap_or(i64::from(pid))),
                    w.name.clone(),
                    w.tid.is_none(),
                )
            }
            // No process to name it by (a cluster worker, a job slot): strings, which trace
            // readers (poolscope's among them) take as a node and a worker.
            WorkerLabel::External(w) => {
                let name = &w.name;
                let node = w.host.as_deref().unwrap_or(name);
                (
                    json!(format!("Node {node}")),
                    json!(name),
                    name.clone(),
                    false,
                )
            }
        };
        self.lanes.insert(worker, (pid.clone(), tid.clone()));
        let mut out = Vec::with_capacity(2);
        if process {
            out.push(meta("process_name", &pid, &tid, &name));
        }
        out.push(meta("thread_name", &pid, &tid, &name));
        out
    }

    /// Task `task`'s name: the one its source gave, else the workload's call.
    fn label(&self, task: TaskId) -> String {
        match self.names.get(task) {
            Some(name) => name.to_string(),
            None => self.workload.call_label(task),
        }
    }

    /// A task's complete event on its worker's lane, if the start and the lane are known.
    fn span(
        &self,
        ev: &PoolEvent,
        (task, worker): (TaskId, WorkerId),
        start: Option<Duration>,
        args: Value,
        ts: impl Fn(Duration) -> f64,
    ) -> Option<Value> {
        let start = start?;
        let (pid, tid) = self.lanes.get(&worker)?;
        Some(task_event(
            &self.label(task),
            (start, ev.at),
            (pid, tid),
            ts(start),
            args,
        ))
    }

    /// A marker on a worker's lane.
    fn instant(&self, worker: WorkerId, name: String, ts: f64) -> Option<Value> {
        let (pid, tid) = self.lanes.get(&worker)?;
        Some(json!({"name": name, "ph": "i", "s": "t", "ts": ts, "pid": pid, "tid": tid}))
    }
}

/// A run as the model keeps it (its recent spans, with their outcome but not their values),
/// as trace events: what the dashboard's `e` key exports.
pub fn run_to_trace<W: Write>(run: &Run, out: W) -> io::Result<W> {
    let mut trace = TraceWriter::new(out)?;
    let ev = |at, kind| PoolEvent {
        run: run.id,
        at,
        kind,
    };
    trace.apply(&ev(
        Duration::ZERO,
        EventKind::RunStarted {
            config: run.config.clone(),
            coordinator_pid: run.coordinator_pid,
            origin_ns: run.origin_ns,
            source: Box::new(run.source.clone()),
        },
    ))?;
    for lane in &run.lanes {
        trace.apply(&ev(
            lane.spawned_at,
            EventKind::WorkerSpawned {
                worker: lane.worker,
                label: lane.label.clone(),
            },
        ))?;
    }
    let Some(rt) = trace.runs.get_mut(&run.id) else {
        return trace.finish();
    };
    rt.names = run.names.clone();
    let mut spans: Vec<Value> = Vec::new();
    for lane in &run.lanes {
        let Some((pid, tid)) = rt.lanes.get(&lane.worker) else {
            continue;
        };
        for s in &lane.spans {
            let outcome = match s.outcome {
                Outcome::Finished => "finished",
                Outcome::Failed => "failed",
            };
            spans.push(task_event(
                &rt.label(s.task),
                (s.start, s.end),
                (pid, tid),
                us(s.start),
                json!({"n": s.task, "outcome": outcome}),
            ));
        }
    }
    for v in spans {
        trace.write(v)?;
    }
    trace.finish()
}

fn task_event(
    name: &str,
    (start, end): (Duration, Duration),
    (pid, tid): (&Value, &Value),
    ts: f64,
    args: Value,
) -> Value {
    json!({"name": name, "cat": "task", "ph": "X", "ts": ts,
        "dur": us(end.saturating_sub(start)), "pid": pid, "tid": tid, "args": args})
}

fn meta(kind: &str, pid: &Value, tid: &Value, name: &str) -> Value {
    json!({"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
}

/// Microseconds, as trace timestamps are, to the nanosecond.
fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}
