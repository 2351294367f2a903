//! A replay as it is read: a streaming reader's lanes and tasks (in start order) become one
//! run's [`PoolEvent`]s in time order, without gathering the recording. It makes the same
//! events, in the same order, as [`replay_events`](super::adapt::replay_events) makes of
//! the whole recording: at one time, lanes start before tasks are queued, queued before
//! started, started before ended; ends wait in a heap as long as their tasks run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::adapt::{Adapter, external_config, run_started};
use super::{LaneId, LaneInfo, SourceEvent, TaskRecord};
use crate::event::{PoolEvent, RunId, RunSource};

/// A task's end, waiting for its time.
struct End {
    at_ns: u64,
    seq: u64,
    task: String,
    lane: Option<LaneId>,
    error: Option<String>,
    cpu_ns: Option<u64>,
}

impl PartialEq for End {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ns, self.seq) == (other.at_ns, other.seq)
    }
}
impl Eq for End {}
impl PartialOrd for End {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for End {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ns, self.seq).cmp(&(other.at_ns, other.seq))
    }
}

/// Turns a streaming reader's events into a run's events, handed to `out` one by one.
pub struct Streamer<'o> {
    run: RunId,
    origin_ns: u64,
    pid: u32,
    source: Option<RunSource>,
    adapter: Adapter,
    out: &'o mut dyn FnMut(PoolEvent),
    buf: Vec<PoolEvent>,
    /// Lanes told of and not yet started (a lane starts with its first task).
    lanes: Vec<Option<LaneInfo>>,
    /// Tasks starting at the same time, handed on together.
    group: Vec<TaskRecord>,
    ends: BinaryHeap<Reverse<End>>,
    seq: u64,
    began: bool,
}

impl<'o> Streamer<'o> {
    /// A streamer of run `run`, started at `origin_ns` by process `pid`; `source` says what
    /// is replayed (its producer is filled in from the reader's first word).
    pub fn new(
        run: RunId,
        origin_ns: u64,
        source: RunSource,
        pid: u32,
        out: &'o mut dyn FnMut(PoolEvent),
    ) -> Self {
        Streamer {
            run,
            origin_ns,
            pid,
            source: Some(source),
            adapter: Adapter::new(run, Duration::ZERO),
            out,
            buf: Vec::new(),
            lanes: Vec::new(),
            group: Vec::new(),
            ends: BinaryHeap::new(),
            seq: 0,
            began: false,
        }
    }

    /// Names the recording's format (before the run begins).
    pub fn name_format(&mut self, name: &str) {
        if let Some(RunSource::Replay { format, .. }) = &mut self.source {
            *format = name.to_string();
        }
    }

    /// Whether the run has begun: the reader found a task.
    pub fn began(&self) -> bool {
        self.began
    }

    /// Takes the reader's next event.
    pub fn push(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Begin {
                producer,
                lanes,
                tasks,
                processes,
            } => self.begin(producer, lanes, tasks, processes),
            SourceEvent::Lane { lane, info, .. } => {
                let i = lane.0 as usize;
                if self.lanes.len() <= i {
                    self.lanes.resize(i + 1, None);
                }
                self.lanes[i] = Some(info);
            }
            SourceEvent::Task(t) => {
                if self.group.first().is_some_and(|g| g.start_ns != t.start_ns) {
                    self.flush_group();
                }
                self.group.push(t);
            }
            // After what starts or ends at its time or before, as a whole recording's replay.
            SourceEvent::LaneExited { at_ns, .. }
            | SourceEvent::Dropped {
                at_ns: Some(at_ns), ..
            } => {
                let group_at = self.group.first().map(|g| g.start_ns.or(g.queued_ns));
                if group_at.is_some_and(|at| at.unwrap_or(0) <= at_ns) {
                    self.flush_group();
                }
                self.ends_before(at_ns.saturating_add(1));
                self.apply(ev);
            }
            other => self.apply(other),
        }
    }

    /// Hands on what is left and the run's end.
    pub fn finish(mut self) {
        if !self.began {
            return;
        }
        self.flush_group();
        self.ends_before(u64::MAX);
        let end = self.adapter.finish();
        (self.out)(end);
    }

    fn begin(&mut self, producer: String, lanes: Option<u32>, tasks: Option<u64>, processes: bool) {
        let Some(mut source) = self.source.take() else {
            return; // a second first word: ignored
        };
        if let RunSource::Replay { producer: p, .. } = &mut source {
            *p = producer;
        }
        let config = external_config(lanes, tasks.unwrap_or(0), processes);
        let start = run_started(self.run, config, self.pid, self.origin_ns, source);
        self.began = true;
        (self.out)(start);
    }

    fn apply(&mut self, ev: SourceEvent) {
        if !self.began {
            self.begin(String::new(), None, None, false);
        }
        self.adapter.apply(ev, &mut self.buf);
        for ev in self.buf.drain(..) {
            (self.out)(ev);
        }
    }

    /// Hands on the ends before `at_ns`, in time order.
    fn ends_before(&mut self, at_ns: u64) {
        while self.ends.peek().is_some_and(|Reverse(e)| e.at_ns < at_ns) {
            let Some(Reverse(e)) = self.ends.pop() else {
                break;
            };
            self.apply(SourceEvent::TaskEnded {
                task: e.task,
                lane: e.lane,
                at_ns: e.at_ns,
                error: e.error,
                cpu_ns: e.cpu_ns,
            });
        }
    }

    /// The tasks starting at one time: earlier ends, then new lanes, then the queueing,
    /// starts, and ends-to-be of each.
    fn flush_group(&mut self) {
        let group = std::mem::take(&mut self.group);
        let Some(first) = group.first() else {
            return;
        };
        let at_ns = first.start_ns.or(first.queued_ns).unwrap_or(0);
        self.ends_before(at_ns);
        for t in &group {
            let Some(lane) = t.lane else { continue };
            if let Some(info) = self.lanes.get_mut(lane.0 as usize).and_then(Option::take) {
                self.apply(SourceEvent::Lane {
                    lane,
                    info,
                    at_ns: Some(at_ns),
                });
            }
        }
        for t in &group {
            self.apply(SourceEvent::TaskQueued {
                task: t.task.clone(),
                name: t.name.clone(),
                at_ns: t.queued_ns.or(t.start_ns).unwrap_or(0),
            });
        }
        for t in group {
            if let (Some(lane), Some(start)) = (t.lane, t.start_ns) {
                self.apply(SourceEvent::TaskStarted {
                    task: t.task.clone(),
                    name: String::new(),
                    lane,
                    at_ns: start,
                });
            }
            if let Some(at_ns) = t.end_ns {
                self.seq += 1;
                self.ends.push(Reverse(End {
                    at_ns,
                    seq: self.seq,
                    task: t.task,
                    lane: t.lane,
                    error: t.error,
                    cpu_ns: t.cpu_ns,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::adapt::replay_events;
    use crate::source::{ReadOptions, read_file, stream_file};

    /// The jsonl records of a run's events.
    fn records(events: &[PoolEvent]) -> String {
        let mut r = crate::task_log::TaskRecords::new(crate::task_log::RecordFormat::Jsonl);
        let mut out = String::new();
        for e in events {
            r.apply(e, &mut out);
        }
        out
    }

    /// Each lane of the run the events make, with its spans' times and outcomes.
    fn lanes(events: &[PoolEvent]) -> Vec<(String, Vec<String>)> {
        let mut model = crate::model::Model::new();
        for e in events {
            model.apply(e);
        }
        let run = model.run.unwrap();
        run.lanes
            .iter()
            .map(|l| {
                let spans = l.spans.iter();
                let spans = spans.map(|s| format!("{:?} {:?} {:?}", s.start, s.end, s.outcome));
                (l.label.to_string(), spans.collect())
            })
            .collect()
    }

    /// Every committed fixture of every format (gzip too), with and without `--task`:
    /// streamed as it is read, the run's events are those the whole recording replays to,
    /// in order.
    #[test]
    fn a_streamed_replay_is_the_whole_recordings_replay() {
        let mut files = Vec::new();
        for format in [
            "chrome",
            "dask",
            "joblog",
            "perfetto",
            "poolscope",
            "speedscope",
        ] {
            let dir = format!("{}/tests/fixtures/{format}", env!("CARGO_MANIFEST_DIR"));
            let mut these: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    if p.is_dir() {
                        return false; // a fixture's making
                    }
                    let ext = p.extension().map(|e| e.to_string_lossy().into_owned());
                    !matches!(ext.as_deref(), Some("py" | "truth" | "md" | "txt" | "sh"))
                })
                .collect();
            these.sort();
            assert!(!these.is_empty(), "{dir}");
            files.extend(these);
        }
        assert!(files.len() >= 25, "{files:?}");
        let work = |n: &str| n.contains("work") || n == "blocks";
        for filter in [None, Some(&work as &dyn Fn(&str) -> bool)] {
            let opts = ReadOptions {
                format: None,
                task_filter: filter,
                ..ReadOptions::default()
            };
            for path in &files {
                let rec = read_file(path, &opts).unwrap();
                let source = RunSource::Replay {
                    file: "f".into(),
                    format: "any".into(),
                    producer: rec.producer.clone(),
                };
                let whole: Vec<PoolEvent> = replay_events(&rec, 1, 7, source.clone(), 9).collect();
                let mut streamed = Vec::new();
                let mut out = |ev: PoolEvent| streamed.push(ev);
                let mut streamer = Streamer::new(1, 7, source, 9, &mut out);
                let info = stream_file(path, &opts, &mut |ev| streamer.push(ev)).unwrap();
                assert!(info.streamed && info.tasks.is_empty());
                assert_eq!(streamer.began(), !rec.tasks.is_empty());
                streamer.finish();
                assert_eq!(info.stats, rec.stats);
                if rec.tasks.is_empty() {
                    // no task: no run (the caller says so and exits 1)
                    assert!(streamed.is_empty());
                    continue;
                }
                assert_eq!(streamed.len(), whole.len(), "{path:?}");
                if rec.format == Some(crate::source::Format::Poolscope) {
                    // A protocol task is queued before it starts, and the stream tells its
                    // queueing just before its start, so it numbers tasks in start order:
                    // the same records, and the same spans on the same lanes.
                    assert_eq!(records(&streamed), records(&whole), "{path:?}");
                    assert_eq!(lanes(&streamed), lanes(&whole), "{path:?}");
                    continue;
                }
                for (a, b) in streamed.iter().zip(&whole) {
                    assert_eq!(a, b, "{path:?}");
                }
            }
        }
    }
}
