//! Runs as Chrome trace-event JSON (the array format), which Perfetto and `chrome://tracing`
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
    /// Each lane's name, for its counter tracks.
    lane_names: HashMap<WorkerId, String>,
    /// Tasks handed to the queue and not yet started, for the queue-depth counter.
    queued: u64,
    /// The run, for labelling its worker processes.
    id: RunId,
    /// Kernel lanes' running and waiting shares, gathered into counter windows.
    states: crate::model::states::StateWindows,
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
                lane_names: HashMap::new(),
                queued: 0,
                id,
                states: crate::model::states::StateWindows::default(),
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
        if ev.task_start().is_some() {
            self.queued = self.queued.saturating_sub(1);
        }
        match &ev.kind {
            EventKind::WorkerSpawned { worker, label } => out.extend(self.lane(*worker, label)),
            EventKind::TaskNamed { task, name } => self.names.insert(*task, name),
            EventKind::TaskStarted { task, .. } => {
                self.started.insert(*task, ev.at);
            }
            EventKind::TasksQueued { count, .. } => {
                self.queued = self.queued.saturating_add(*count);
                out.push(self.queue_counter(ts(ev.at)));
            }
            EventKind::WorkerStats(sample) => out.extend(self.counters(sample, ts(ev.at))),
            EventKind::KernelSample(sample) => {
                for (worker, running, waiting) in self.states.close(ev.at, sample) {
                    let (Some((pid, _)), Some(name)) =
                        (self.lanes.get(&worker), self.lane_names.get(&worker))
                    else {
                        continue;
                    };
                    out.push(
                        json!({"name": format!("{name} running / waiting %"), "ph": "C",
                        "ts": ts(ev.at), "pid": pid,
                        "args": {"running_pct": running, "waiting_pct": waiting}}),
                    );
                }
            }
            EventKind::TaskFinished {
                task,
                worker,
                result,
                cpu,
            }
            | EventKind::TaskRan {
                task,
                worker,
                result,
                cpu,
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
                    task_args(*task, *result, None, *cpu),
                    ts,
                ));
            }
            EventKind::TaskFailed {
                task,
                worker: Some(worker),
                error,
                cpu,
            } => {
                let start = self.started.remove(task);
                out.extend(self.span(
                    ev,
                    (*task, *worker),
                    start,
                    task_args(*task, None, Some(error), *cpu),
                    ts,
                ));
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
        self.lane_names.insert(worker, name.clone());
        let mut out = Vec::with_capacity(4);
        if process {
            out.push(meta("process_name", &pid, &tid, &name));
            // A run's worker processes sort together, each labelled with its run.
            out.push(json!({"name": "process_labels", "ph": "M", "pid": pid,
                "args": {"labels": format!("poolscope run {}", self.id)}}));
            out.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid,
                "args": {"sort_index": self.id}}));
        }
        out.push(meta("thread_name", &pid, &tid, &name));
        out
    }

    /// Counter tracks (`"ph":"C"`) from a monitor sample: each worker's CPU % and, for a
    /// process, its memory, on the worker's own process; the queue's depth beside them.
    fn counters(&self, sample: &crate::sample::Sample, ts: f64) -> Vec<Value> {
        let mut out = Vec::with_capacity(2 * sample.workers.len() + 1);
        for stat in &sample.workers {
            let (Some((pid, _)), Some(name)) = (
                self.lanes.get(&stat.worker),
                self.lane_names.get(&stat.worker),
            ) else {
                continue;
            };
            if let Some(cpu) = stat.cpu_pct {
                out.push(json!({"name": format!("{name} CPU %"), "ph": "C", "ts": ts,
                    "pid": pid, "args": {"cpu_pct": round2(f64::from(cpu))}}));
            }
            if let Some(rss) = stat.rss {
                let mib = rss as f64 / (1024.0 * 1024.0);
                out.push(
                    json!({"name": format!("{name} memory MiB"), "ph": "C", "ts": ts,
                    "pid": pid, "args": {"rss_mib": round2(mib)}}),
                );
            }
        }
        out.push(self.queue_counter(ts));
        out
    }

    /// The queue depth as a counter on the run's coordinator.
    fn queue_counter(&self, ts: f64) -> Value {
        json!({"name": "queue depth", "ph": "C", "ts": ts, "pid": self.coordinator,
            "args": {"queued": self.queued}})
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
    let errors: HashMap<TaskId, &str> = run
        .failures
        .iter()
        .map(|f| (f.task, f.error.as_str()))
        .collect();
    let mut spans: Vec<Value> = Vec::new();
    for lane in &run.lanes {
        let Some((pid, tid)) = rt.lanes.get(&lane.worker) else {
            continue;
        };
        for s in &lane.spans {
            // As `--trace` writes them: a failure carries its error text (while the model
            // still keeps it) and the same colour.
            let args = match s.outcome {
                Outcome::Finished => json!({"n": s.task, "outcome": "finished"}),
                Outcome::Failed => json!({"n": s.task, "outcome": "failed",
                    "error": errors.get(&s.task).copied().unwrap_or("failed")}),
            };
            spans.push(task_event(
                &rt.label(s.task),
                (s.start, s.end),
                (pid, tid),
                us(s.start),
                args,
            ));
        }
    }
    for v in spans {
        trace.write(v)?;
    }
    trace.finish()
}

/// A task's complete event; a failed one (its args carry an `error`) is drawn in the
/// viewers' failure colour, whichever way the trace was made.
fn task_event(
    name: &str,
    (start, end): (Duration, Duration),
    (pid, tid): (&Value, &Value),
    ts: f64,
    args: Value,
) -> Value {
    let failed = args.get("error").is_some();
    let mut e = json!({"name": name, "cat": "task", "ph": "X", "ts": ts,
        "dur": us(end.saturating_sub(start)), "pid": pid, "tid": tid, "args": args});
    if failed {
        e["cname"] = json!("terrible");
    }
    e
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn meta(kind: &str, pid: &Value, tid: &Value, name: &str) -> Value {
    json!({"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
}

/// Microseconds, as trace timestamps are, to the nanosecond.
fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

/// A task's args: its number, its result or error when there is one, and the CPU time its
/// thread spent on it (`cpu_s`) when the source measured it. Nothing absent is made up.
fn task_args(
    task: TaskId,
    result: Option<u64>,
    error: Option<&str>,
    cpu: Option<Duration>,
) -> Value {
    let mut args = serde_json::Map::new();
    args.insert("n".into(), json!(task));
    if let Some(result) = result {
        args.insert("result".into(), json!(result));
    }
    if let Some(error) = error {
        args.insert("error".into(), json!(error));
    }
    if let Some(cpu) = cpu {
        args.insert("cpu_s".into(), json!(cpu.as_secs_f64()));
    }
    Value::Object(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::sample::{Sample, WorkerStat};

    use crate::event::test_event as ev;

    fn events() -> Vec<PoolEvent> {
        let w = WorkerId(0);
        vec![
            ev(
                0,
                EventKind::RunStarted {
                    config: RunConfig {
                        mode: Mode::Process,
                        workload: Workload::Fail,
                        ..RunConfig::default()
                    },
                    coordinator_pid: 10,
                    origin_ns: 0,
                    source: Box::default(),
                },
            ),
            ev(
                0,
                EventKind::WorkerSpawned {
                    worker: w,
                    label: WorkerLabel::Process { pid: 77 },
                },
            ),
            ev(1, EventKind::TasksQueued { first: 0, count: 3 }),
            ev(2, EventKind::TaskStarted { task: 0, worker: w }),
            ev(
                300,
                EventKind::WorkerStats(Sample {
                    workers: vec![WorkerStat {
                        worker: w,
                        cpu_pct: Some(12.5),
                        rss: Some(3 << 20),
                    }],
                    ..Sample::default()
                }),
            ),
            ev(
                400,
                EventKind::TaskFailed {
                    task: 0,
                    worker: Some(w),
                    error: "fail(0) raised".into(),
                    cpu: None,
                },
            ),
        ]
    }

    fn parse(bytes: Vec<u8>) -> Vec<Value> {
        serde_json::from_slice::<Vec<Value>>(&bytes).expect("a whole trace")
    }

    #[test]
    fn samples_become_counter_tracks_of_cpu_memory_and_queue_depth() {
        let mut t = TraceWriter::new(Vec::new()).unwrap();
        for e in &events() {
            t.apply(e).unwrap();
        }
        let all = parse(t.finish().unwrap());
        let counter = |name: &str| {
            all.iter()
                .filter(|e| e["ph"] == "C" && e["name"] == name)
                .map(|e| e["args"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(counter("PID 77 CPU %"), vec![json!({"cpu_pct": 12.5})]);
        assert_eq!(counter("PID 77 memory MiB"), vec![json!({"rss_mib": 3.0})]);
        let labelled = all.iter().any(|e| {
            e["name"] == "process_labels"
                && e["pid"] == 77
                && e["args"]["labels"] == "poolscope run 1"
        });
        assert!(labelled, "a worker process is labelled with its run");
        // Three queued, then one started before the sample.
        assert_eq!(
            counter("queue depth"),
            vec![json!({"queued": 3}), json!({"queued": 2})]
        );
    }

    #[test]
    fn the_e_export_carries_the_error_and_colour_that_trace_writes() {
        let mut t = TraceWriter::new(Vec::new()).unwrap();
        let mut model = crate::model::Model::new();
        for e in events() {
            t.apply(&e).unwrap();
            model.apply(&e);
        }
        let traced = parse(t.finish().unwrap());
        let run = model.run.expect("a run");
        let exported = parse(run_to_trace(&run, Vec::new()).unwrap());
        let failed = |all: &[Value]| {
            all.iter()
                .find(|e| e["ph"] == "X")
                .map(|e| (e["args"]["error"].clone(), e["cname"].clone()))
        };
        let want = Some((json!("fail(0) raised"), json!("terrible")));
        assert_eq!(failed(&traced), want);
        assert_eq!(failed(&exported), want);
    }
}
