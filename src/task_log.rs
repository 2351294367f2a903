//! One record per task, for machines: `log --format jsonl|csv`. Like GNU parallel's joblog,
//! each line says which task ran where, when, and how it ended. Pure: events in, text out.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::event::{EventKind, PoolEvent, TaskId, WorkerId, WorkerLabel};
use crate::task_names::TaskNames;
use crate::workload::Workload;

/// The columns, in order; also the CSV header.
pub const COLUMNS: [&str; 10] = [
    "task", "worker", "pid", "tid", "start_s", "end_s", "cpu_s", "outcome", "result", "error",
];

/// Tasks started and not yet ended that are remembered at most; a task whose start was
/// forgotten still gets its record, without a start.
const MAX_OPEN: usize = 1 << 20;

/// A machine-readable format of `poolscope log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
}

/// One task, as a record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskRecord {
    /// The call, e.g. `blocks(3)`.
    pub task: String,
    /// The worker's name: `Thread-2`, or `PID 4242`.
    pub worker: Option<String>,
    /// The process that ran it.
    pub pid: Option<u32>,
    /// The kernel thread that ran it (thread mode).
    pub tid: Option<i64>,
    /// The host or cluster node it ran on, for sources that span machines (jsonl only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When it started, in seconds since the run's start.
    pub start_s: Option<f64>,
    /// When it ended, likewise.
    pub end_s: f64,
    /// CPU time its thread spent on it, in seconds, when the source measured it; the rest
    /// of `end_s - start_s` it waited (a lock, the GIL, a core, I/O).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// `ok` or `failed`.
    pub outcome: &'static str,
    /// Its return value, if it returned one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<u64>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Turns a run's events into task records.
#[derive(Debug)]
pub struct TaskRecords {
    format: RecordFormat,
    workload: Workload,
    /// The run is poolscope's own experiment (its tasks are named by the workload).
    experiment: bool,
    coordinator_pid: u32,
    workers: HashMap<WorkerId, WorkerLabel>,
    started: HashMap<TaskId, Duration>,
    names: TaskNames,
    header_done: bool,
}

impl TaskRecords {
    /// Records in `format`.
    pub fn new(format: RecordFormat) -> Self {
        TaskRecords {
            format,
            workload: Workload::Blocks,
            experiment: true,
            coordinator_pid: 0,
            workers: HashMap::new(),
            started: HashMap::new(),
            names: TaskNames::new(),
            header_done: false,
        }
    }

    /// The CSV header (once), for output that must start with it even if no task ends.
    pub fn header(&mut self, out: &mut String) {
        if self.format == RecordFormat::Csv && !self.header_done {
            self.header_done = true;
            out.push_str(&COLUMNS.join(","));
            out.push('\n');
        }
    }

    /// Applies `ev`; appends a line to `out` if it ended a task.
    pub fn apply(&mut self, ev: &PoolEvent, out: &mut String) {
        if let (EventKind::EventsDropped { count }, RecordFormat::Jsonl) = (&ev.kind, self.format) {
            // Not a task: a record of its own, so a reader knows the records are incomplete.
            let _ = writeln!(
                out,
                "{{\"dropped\":{count},\"at_s\":{}}}",
                ev.at.as_secs_f64()
            );
            return;
        }
        if let Some(mut record) = self.record(ev) {
            record.clean();
            self.header(out);
            match self.format {
                RecordFormat::Jsonl => {
                    // Serialising plain strings and numbers cannot fail.
                    if let Ok(line) = serde_json::to_string(&record) {
                        out.push_str(&line);
                    }
                }
                RecordFormat::Csv => write_csv(&record, out),
            }
            out.push('\n');
        }
    }

    /// A task whose name is not kept: the experiment's call, or the dashboard's `task N`
    /// (never the workload's call for a program's task, which would name what it never ran).
    fn label(&self, task: TaskId) -> String {
        if self.experiment {
            self.workload.call_label(task)
        } else {
            format!("task {}", task + 1)
        }
    }

    fn record(&mut self, ev: &PoolEvent) -> Option<TaskRecord> {
        match &ev.kind {
            EventKind::RunStarted {
                config,
                coordinator_pid,
                source,
                ..
            } => {
                self.workload = config.workload;
                self.experiment = source.is_experiment();
                self.coordinator_pid = *coordinator_pid;
                self.workers.clear();
                self.started.clear();
                self.names = TaskNames::new();
            }
            EventKind::TaskNamed { task, name } => self.names.insert(*task, name),
            EventKind::WorkerSpawned { worker, label } => {
                self.workers.insert(*worker, label.clone());
            }
            _ => {}
        }
        if let Some((task, _, at)) = ev.task_start()
            && self.started.len() < MAX_OPEN
        {
            self.started.insert(task, at);
        }
        let (task, worker, end) = ev.task_end()?;
        let label = worker.and_then(|w| self.workers.get(&w));
        let (pid, tid) = match label {
            Some(WorkerLabel::Thread { tid, .. }) => {
                (Some(self.coordinator_pid), Some(i64::from(*tid)))
            }
            Some(WorkerLabel::Process { pid }) => (Some(*pid), None),
            Some(WorkerLabel::External(w)) => (w.pid, w.tid),
            None => (None, None),
        };
        let (outcome, result, error) = match &ev.kind {
            EventKind::TaskFinished { result, .. } | EventKind::TaskRan { result, .. } => {
                ("ok", *result, None)
            }
            EventKind::TaskFailed { error, .. } => ("failed", None, Some(error.clone())),
            _ => return None,
        };
        Some(TaskRecord {
            task: self
                .names
                .get(task)
                .map_or_else(|| self.label(task), ToString::to_string),
            worker: label.map(|l| match l {
                WorkerLabel::Thread { name, .. } => name.clone(),
                WorkerLabel::External(w) => w.name.clone(),
                other @ WorkerLabel::Process { .. } => other.to_string(),
            }),
            pid,
            tid,
            host: match label {
                Some(WorkerLabel::External(w)) => w.host.clone(),
                _ => None,
            },
            start_s: self.started.remove(&task).map(|d| d.as_secs_f64()),
            end_s: end.as_secs_f64(),
            cpu_s: ev.kind.task_cpu().map(|d| d.as_secs_f64()),
            outcome,
            result,
            error,
        })
    }
}

impl TaskRecord {
    /// Outside text made safe to write, whatever the event's source did.
    fn clean(&mut self) {
        use crate::outside_text::clean;
        clean(&mut self.task);
        self.worker
            .iter_mut()
            .chain(self.error.iter_mut())
            .for_each(clean);
    }
}

fn write_csv(r: &TaskRecord, out: &mut String) {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let fields = [
        r.task.clone(),
        opt(r.worker.clone()),
        opt(r.pid.map(|p| p.to_string())),
        opt(r.tid.map(|t| t.to_string())),
        opt(r.start_s.map(|s| format!("{s:.6}"))),
        format!("{:.6}", r.end_s),
        opt(r.cpu_s.map(|s| format!("{s:.6}"))),
        r.outcome.to_string(),
        opt(r.result.map(|v| v.to_string())),
        opt(r.error.clone()),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // RFC 4180: a field with a comma, a quote or a line break is quoted, quotes doubled.
        if f.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", f.replace('"', "\"\""));
        } else {
            out.push_str(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mode, RunConfig};

    use crate::event::test_event as ev;

    fn events() -> Vec<PoolEvent> {
        let w = WorkerId(0);
        vec![
            ev(
                0,
                EventKind::RunStarted {
                    config: RunConfig {
                        mode: Mode::Process,
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
            ev(1, EventKind::TaskStarted { task: 2, worker: w }),
            ev(
                1001,
                EventKind::TaskFinished {
                    task: 2,
                    worker: w,
                    result: Some(4),
                    cpu: Some(Duration::from_micros(250_500)),
                },
            ),
            ev(
                1500,
                EventKind::TaskFailed {
                    task: 3,
                    worker: Some(w),
                    error: "boom, \"really\"".into(),
                    cpu: None,
                },
            ),
        ]
    }

    /// 1 000 000 tasks queued at once by a program, replayed: past the names kept, each
    /// record was labelled `noop(N)`, a call of the experiment's workload it never ran.
    #[test]
    fn a_programs_task_whose_name_is_not_kept_is_not_named_after_the_workload() {
        let mut events = events();
        if let EventKind::RunStarted { config, source, .. } = &mut events[0].kind {
            config.workload = Workload::Noop;
            **source = crate::event::RunSource::Program {
                command: "python3 app.py".into(),
            };
        }
        let mut r = TaskRecords::new(RecordFormat::Jsonl);
        let mut out = String::new();
        for e in &events {
            r.apply(e, &mut out);
        }
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["task"], "task 3");
        assert_eq!(lines[1]["task"], "task 4");
    }

    #[test]
    fn a_programs_drop_count_is_a_jsonl_record_of_its_own() {
        let mut out = String::new();
        let mut jsonl = TaskRecords::new(RecordFormat::Jsonl);
        jsonl.apply(&ev(1500, EventKind::EventsDropped { count: 42 }), &mut out);
        assert_eq!(out, "{\"dropped\":42,\"at_s\":1.5}\n");
        let mut csv = TaskRecords::new(RecordFormat::Csv);
        out.clear();
        csv.apply(&ev(1500, EventKind::EventsDropped { count: 42 }), &mut out);
        assert_eq!(out, "", "csv has no row for it; log's summary says it");
    }

    #[test]
    fn jsonl_has_one_object_per_task_with_its_columns() {
        let mut r = TaskRecords::new(RecordFormat::Jsonl);
        let mut out = String::new();
        for e in &events() {
            r.apply(e, &mut out);
        }
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["task"], "blocks(2)");
        assert_eq!(lines[0]["pid"], 77);
        assert_eq!(lines[0]["start_s"], 0.001);
        assert_eq!(lines[0]["result"], 4);
        assert_eq!(lines[0]["cpu_s"], 0.2505);
        assert!(
            lines[1].get("cpu_s").is_none(),
            "not measured: absent, not 0"
        );
        assert_eq!(lines[1]["outcome"], "failed");
        assert_eq!(lines[1]["error"], "boom, \"really\"");
        assert!(lines[1].get("result").is_none());
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_it() {
        let mut r = TaskRecords::new(RecordFormat::Csv);
        let mut out = String::new();
        for e in &events() {
            r.apply(e, &mut out);
        }
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "blocks(2),PID 77,77,,0.001000,1.001000,0.250500,ok,4,"
        );
        assert_eq!(
            lines[2],
            "blocks(3),PID 77,77,,,1.500000,,failed,,\"boom, \"\"really\"\"\""
        );
    }
}
