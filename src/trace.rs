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
use crate::event::{EventKind, PoolEvent, RunId, TaskId, WorkerId, WorkerLabel};
use crate::model::{Outcome, Run};
use crate::workload::Workload;

/// What the writer remembers of one run while it is under way.
struct RunTrace {
    origin_ns: u64,
    mode: Mode,
    workload: Workload,
    coordinator: u32,
    lanes: HashMap<WorkerId, (u32, i64)>,
    started: HashMap<TaskId, Duration>,
}

/// Streams [`PoolEvent`]s into a trace file.
pub struct TraceWriter<W: Write> {
    out: W,
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
        } = &ev.kind
        {
            let session = *self.session_origin_ns.get_or_insert(*origin_ns);
            self.runs.insert(
                ev.run,
                RunTrace {
                    origin_ns: *origin_ns,
                    mode: config.mode,
                    workload: config.workload,
                    coordinator: *coordinator_pid,
                    lanes: HashMap::new(),
                    started: HashMap::new(),
                },
            );
            let ts = us(Duration::from_nanos(origin_ns.saturating_sub(session)));
            let name = format!("poolscope run {} ({} pool)", ev.run, config.mode);
            self.write(meta(
                "process_name",
                *coordinator_pid,
                *coordinator_pid as i64,
                &name,
            ))?;
            return self.write(json!({"name": name, "ph": "i", "s": "p", "ts": ts,
                "pid": coordinator_pid, "tid": coordinator_pid,
                "args": {"workers": config.workers, "tasks": config.tasks,
                         "workload": config.workload.name(), "task_ms": config.task_ms}}));
        }
        let session = self.session_origin_ns.unwrap_or(0);
        let Some(run) = self.runs.get_mut(&ev.run) else {
            return Ok(());
        };
        let offset = Duration::from_nanos(run.origin_ns.saturating_sub(session));
        let ts = |at: Duration| us(offset + at);
        let mut out: Vec<Value> = Vec::new();
        match &ev.kind {
            EventKind::WorkerSpawned { worker, label } => {
                let (pid, tid, name) = match label {
                    WorkerLabel::Thread { name, tid } => {
                        (run.coordinator, i64::from(*tid), name.clone())
                    }
                    WorkerLabel::Process { pid } => (*pid, i64::from(*pid), format!("PID {pid}")),
                };
                run.lanes.insert(*worker, (pid, tid));
                if run.mode == Mode::Process {
                    out.push(meta("process_name", pid, tid, &name));
                }
                out.push(meta("thread_name", pid, tid, &name));
            }
            EventKind::TaskStarted { task, .. } => {
                run.started.insert(*task, ev.at);
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
            } => {
                if let (Some(start), Some(&(pid, tid))) =
                    (run.started.remove(task), run.lanes.get(worker))
                {
                    out.push(task_event(
                        run.workload,
                        *task,
                        (start, ev.at),
                        (pid, tid),
                        ts(start),
                        json!({"n": task, "result": result}),
                    ));
                }
            }
            EventKind::TaskRan {
                task,
                worker,
                started,
                result,
            } => {
                if let Some(&(pid, tid)) = run.lanes.get(worker) {
                    out.push(task_event(
                        run.workload,
                        *task,
                        (*started, ev.at),
                        (pid, tid),
                        ts(*started),
                        json!({"n": task, "result": result}),
                    ));
                }
            }
            EventKind::TaskFailed {
                task,
                worker: Some(worker),
                error,
            } => {
                if let (Some(start), Some(&(pid, tid))) =
                    (run.started.remove(task), run.lanes.get(worker))
                {
                    let mut e = task_event(
                        run.workload,
                        *task,
                        (start, ev.at),
                        (pid, tid),
                        ts(start),
                        json!({"n": task, "error": error}),
                    );
                    e["cname"] = json!("terrible");
                    out.push(e);
                }
            }
            EventKind::TaskOverdue { task, worker } => {
                if let Some(&(pid, tid)) = run.lanes.get(worker) {
                    out.push(
                        json!({"name": format!("{} overdue", run.workload.call_label(*task)),
                        "ph": "i", "s": "t", "ts": ts(ev.at), "pid": pid, "tid": tid}),
                    );
                }
            }
            EventKind::WorkerExited { worker, exit } if !exit.is_clean() => {
                if let Some(&(pid, tid)) = run.lanes.get(worker) {
                    out.push(
                        json!({"name": format!("worker {exit}"), "ph": "i", "s": "t",
                        "ts": ts(ev.at), "pid": pid, "tid": tid}),
                    );
                }
            }
            EventKind::RunFinished { .. } => {
                self.runs.remove(&ev.run);
            }
            _ => {}
        }
        for v in out {
            self.write(v)?;
        }
        Ok(())
    }

    /// Pushes what has been written so far to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Closes the JSON array and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"\n]\n")?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn write(&mut self, v: Value) -> io::Result<()> {
        self.out
            .write_all(if self.wrote_any { b",\n" } else { b"\n" })?;
        self.wrote_any = true;
        serde_json::to_writer(&mut self.out, &v).map_err(io::Error::other)
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
    let Some(rt) = trace.runs.get(&run.id) else {
        return trace.finish();
    };
    let mut spans: Vec<Value> = Vec::new();
    for lane in &run.lanes {
        let Some(&(pid, tid)) = rt.lanes.get(&lane.worker) else {
            continue;
        };
        for s in &lane.spans {
            let outcome = match s.outcome {
                Outcome::Finished => "finished",
                Outcome::Failed => "failed",
            };
            spans.push(task_event(
                rt.workload,
                s.task,
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
    workload: Workload,
    task: TaskId,
    (start, end): (Duration, Duration),
    (pid, tid): (u32, i64),
    ts: f64,
    args: Value,
) -> Value {
    json!({"name": workload.call_label(task), "cat": "task", "ph": "X", "ts": ts,
        "dur": us(end.saturating_sub(start)), "pid": pid, "tid": tid, "args": args})
}

fn meta(kind: &str, pid: u32, tid: i64, name: &str) -> Value {
    json!({"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
}

/// Microseconds, as trace timestamps are, to the nanosecond.
fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}
