//! Dask task-stream records: the data of `distributed.get_task_stream()` (or
//! `client.get_task_stream()`), dumped as a JSON array. A lane per worker address and thread,
//! a task per `compute` start/stop; `status: "error"` is a failure with its `exception_text`.

use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use super::json_array::{Item, JsonArray};
use super::{
    LaneId, LaneInfo, MAX_ERROR, MAX_LANES, MAX_NAME, MAX_TIME_NS, ReadStats, SourceError,
    SourceEvent, TaskRecord, clip,
};

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    worker: Option<String>,
    #[serde(default)]
    thread: Option<Value>,
    #[serde(default)]
    startstops: Vec<StartStop>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    exception_text: Option<String>,
}

#[derive(Deserialize)]
struct StartStop {
    #[serde(default)]
    action: String,
    start: f64,
    stop: f64,
}

struct Pending {
    lane: usize,
    start: f64,
    stop: f64,
    name: String,
    error: Option<String>,
}

/// Reads a task stream, pushing its lanes and then its tasks (in start order) to `sink`.
pub fn read(
    input: impl Read,
    file: &str,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReadStats, SourceError> {
    let mut array = JsonArray::open(input, file, "data")?;
    let mut stats = ReadStats::default();
    let mut lanes = Lanes::default();
    let mut tasks: Vec<Pending> = Vec::new();
    loop {
        let (bytes, line) = match array.next_item()? {
            Item::Object(bytes, line) => (bytes, line),
            Item::NotObject(line) => {
                stats.reject(line, "not a task-stream record");
                continue;
            }
            Item::TooLong(line) => {
                stats.reject(line, "record over 1 MiB");
                continue;
            }
            Item::End { cut_off } => {
                stats.cut_off = cut_off;
                break;
            }
        };
        stats.records += 1;
        match serde_json::from_slice::<Record>(bytes) {
            Ok(rec) => lanes.add(rec, line, &mut stats, &mut tasks),
            Err(e) => stats.reject(line, format!("not a task-stream record: {e}")),
        }
    }
    emit(&lanes.keys, tasks, &mut stats, sink);
    Ok(stats)
}

/// Lanes by (worker address, thread), in order of first appearance.
#[derive(Default)]
struct Lanes {
    keys: Vec<(String, String)>,
    index: HashMap<(String, String), usize>,
}

impl Lanes {
    /// Takes a record's `compute` spans as tasks on its worker's lane.
    fn add(&mut self, rec: Record, line: u64, stats: &mut ReadStats, tasks: &mut Vec<Pending>) {
        let Some(worker) = rec.worker.as_deref().map(|w| clip(w, MAX_NAME)) else {
            return stats.reject(line, "record without a worker");
        };
        let thread = match &rec.thread {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => clip(s, MAX_NAME),
            _ => String::new(),
        };
        let key = (worker, thread);
        let lane = match self.index.get(&key) {
            Some(&i) => i,
            None if self.keys.len() >= MAX_LANES => return stats.reject(line, "too many lanes"),
            None => {
                self.keys.push(key.clone());
                self.index.insert(key, self.keys.len() - 1);
                self.keys.len() - 1
            }
        };
        let name = rec
            .key
            .as_ref()
            .map_or_else(|| "task".to_string(), key_name);
        let error = (rec.status.as_deref() == Some("error"))
            .then(|| clip(rec.exception_text.as_deref().unwrap_or("error"), MAX_ERROR));
        for ss in rec.startstops.iter().filter(|s| s.action == "compute") {
            if !(ss.start.is_finite() && ss.stop.is_finite() && ss.start >= 0.0) {
                stats.bad_time(line, "compute time is not a time");
            } else if ss.stop < ss.start {
                stats.bad_time(line, "compute stops before it starts");
            } else {
                tasks.push(Pending {
                    lane,
                    start: ss.start,
                    stop: ss.stop,
                    name: name.clone(),
                    error: error.clone(),
                });
            }
        }
    }
}

fn emit(
    lanes: &[(String, String)],
    mut tasks: Vec<Pending>,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(SourceEvent),
) {
    tasks.sort_by(|a, b| a.start.total_cmp(&b.start));
    let origin = tasks.first().map_or(0.0, |t| t.start);
    let mut threads_per_worker: HashMap<&str, usize> = HashMap::new();
    for (w, _) in lanes {
        *threads_per_worker.entry(w).or_default() += 1;
    }
    let mut ids: Vec<Option<LaneId>> = vec![None; lanes.len()];
    let mut next = 0u32;
    for (seq, t) in tasks.into_iter().enumerate() {
        let start = ((t.start - origin) * 1e9).round();
        let end = ((t.stop - origin) * 1e9).round();
        if end > MAX_TIME_NS as f64 {
            stats.bad_time(0, "compute time absurdly far from the stream's start");
            continue;
        }
        let lane = *ids[t.lane].get_or_insert_with(|| {
            let id = LaneId(next);
            next += 1;
            let (worker, thread) = &lanes[t.lane];
            let several = threads_per_worker
                .get(worker.as_str())
                .copied()
                .unwrap_or(1)
                > 1;
            let address = worker.split_once("://").map_or(worker.as_str(), |(_, a)| a);
            let name = if several {
                format!("worker {address} · thread {thread}")
            } else {
                format!("worker {address}")
            };
            sink(SourceEvent::Lane {
                lane: id,
                info: LaneInfo {
                    host: worker_host(worker),
                    pid: None,
                    tid: None,
                    name,
                },
                at_ns: None,
            });
            id
        });
        sink(SourceEvent::Task(TaskRecord {
            task: (seq + 1).to_string(),
            name: t.name,
            lane: Some(lane),
            queued_ns: None,
            start_ns: Some(start as u64),
            end_ns: Some(end as u64),
            error: t.error,
            cpu_ns: None,
            steps: 0,
        }));
    }
}

/// `tcp://10.0.0.5:40113` → `10.0.0.5`.
fn worker_host(address: &str) -> Option<String> {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let host = match rest.rsplit_once(':') {
        Some((h, _)) => h,
        None => rest,
    };
    (!host.is_empty()).then(|| host.trim_matches(['[', ']']).to_string())
}

/// A Dask key's function name, as Dask's `key_split` gives it: `blocks-eebf28…` → `blocks`,
/// `('sum-aggregate-5f2a…', 3)` → `sum-aggregate`.
fn key_name(key: &Value) -> String {
    let raw = match key {
        Value::String(s) => s.as_str(),
        Value::Array(parts) => parts.first().and_then(Value::as_str).unwrap_or("task"),
        _ => "task",
    };
    let raw = raw.trim_start_matches(['(', '\'', '"']);
    let raw = raw.split(['\'', '"', ',']).next().unwrap_or(raw);
    let mut words = raw.split('-');
    let mut name = words.next().unwrap_or("task").to_string();
    for w in words {
        let hexish = w.len() >= 8 && w.chars().all(|c| c.is_ascii_hexdigit());
        if hexish || w.chars().all(|c| c.is_ascii_digit()) || w.is_empty() {
            break;
        }
        name.push('-');
        name.push_str(w);
    }
    clip(&name, MAX_NAME)
}
