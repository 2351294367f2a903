//! Handing tasks on: in start order, lanes numbered and described as their first task goes,
//! times made relative to the trace's first span; and the name table kept bounded.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::super::{Id, Producer, Reader};
use super::{NAMES_KEPT, Ready, Rule};
use crate::source::{LaneId, LaneInfo, MAX_NAME, MAX_TIME_NS, SourceEvent, TaskRecord, clip};

impl Reader<'_> {
    /// Hands on the earliest tasks while more than `keep` wait.
    pub(in crate::source::chrome) fn emit(
        &mut self,
        keep: usize,
        sink: &mut dyn FnMut(SourceEvent),
    ) {
        if self.fold.ready.len() <= keep {
            return;
        }
        if self.fold.zero.is_none() {
            self.begin(keep == 0, sink);
        }
        while self.fold.ready.len() > keep {
            let Some(Reverse(r)) = self.fold.ready.pop() else {
                break;
            };
            self.emit_one(r, sink);
        }
    }

    /// Relative times of a task, if sane.
    fn times(&self, r: &Ready) -> Option<(u64, Option<u64>)> {
        let zero = self.fold.zero.unwrap_or(0);
        let max = MAX_TIME_NS as i64;
        let start = r
            .start
            .checked_sub(zero)
            .filter(|s| (0..=max).contains(s))?;
        let end = match r.end.map(|e| e.saturating_sub(zero)) {
            Some(e) if e > max || e < start => return None,
            e => e,
        };
        Some((start as u64, end.map(|e| e as u64)))
    }

    /// Tells the sink who wrote the trace, before its first lane; at the end of the file it
    /// also knows how many lanes and tasks there are.
    fn begin(&mut self, whole: bool, sink: &mut dyn FnMut(SourceEvent)) {
        self.fold.zero = Some(self.fold.origin.unwrap_or(0));
        let producer = self.fold.decided.map_or(Producer::Generic, |d| d.0);
        let mut lanes: Vec<usize> = Vec::new();
        let mut tasks = 0u64;
        if whole {
            let mut used = vec![false; self.fold.task_lanes.len()];
            for Reverse(r) in &self.fold.ready {
                if self.times(r).is_some() {
                    tasks += 1;
                    used[r.lane] = true;
                }
            }
            lanes = (0..used.len()).filter(|&l| used[l]).collect();
        } else {
            lanes.extend(0..self.fold.task_lanes.len());
        }
        let processes = !lanes.is_empty()
            && lanes.iter().all(|&l| {
                let info = self.lane_info(producer, l);
                info.tid.is_none() && info.pid.is_some()
            });
        sink(SourceEvent::Begin {
            producer: producer.name().to_string(),
            lanes: whole.then(|| u32::try_from(lanes.len()).unwrap_or(u32::MAX)),
            tasks: whole.then_some(tasks),
            processes,
        });
    }

    fn emit_one(&mut self, r: Ready, sink: &mut dyn FnMut(SourceEvent)) {
        self.fold.backlog = self.fold.backlog.saturating_sub(1);
        let Some((start, end)) = self.times(&r) else {
            self.stats
                .bad_time(0, "span absurdly far from the trace's start");
            return;
        };
        if self.fold.ids.len() <= r.lane {
            self.fold.ids.resize(r.lane + 1, None);
        }
        let lane = match self.fold.ids[r.lane] {
            Some(id) => id,
            None => {
                let id = LaneId(self.fold.next_lane);
                self.fold.next_lane += 1;
                self.fold.ids[r.lane] = Some(id);
                let producer = self.fold.decided.map_or(Producer::Generic, |d| d.0);
                let info = self.lane_info(producer, r.lane);
                sink(SourceEvent::Lane {
                    lane: id,
                    info,
                    at_ns: None,
                });
                id
            }
        };
        self.fold.emitted += 1;
        sink(SourceEvent::Task(TaskRecord {
            task: self.fold.emitted.to_string(),
            name: self.name(r.name).to_string(),
            lane: Some(lane),
            queued_ns: None,
            start_ns: Some(start),
            end_ns: end,
            error: r.error,
            cpu_ns: None,
            steps: r.steps,
        }));
    }

    /// Folds what every lane still holds and hands every task on.
    pub(in crate::source::chrome) fn finish(
        &mut self,
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Producer {
        if self.fold.decided.is_none() {
            self.decide();
        }
        let (producer, rule) = self
            .fold
            .decided
            .unwrap_or((Producer::Generic, Rule::TopLevel));
        for i in 0..self.lanes.len() {
            self.fold_rest(i, rule);
        }
        self.stats.inner_steps += self.fold.counts.inner_steps;
        self.stats.not_tasks += self.fold.counts.not_tasks;
        self.emit(0, sink);
        if self.fold.forced > 0 {
            self.stats.note(
                0,
                format!(
                    "over {} spans waited at once: {} times a lane's spans were \
                     made tasks before what encloses them was read",
                    self.fold.tuning.max_pending, self.fold.forced
                ),
            );
        }
        producer
    }

    /// Keeps only the names a waiting span or task uses, renumbered; the next compaction
    /// comes when the table has doubled (or reached [`NAMES_KEPT`]) again.
    pub(in crate::source::chrome) fn compact_names(&mut self) {
        let old = std::mem::take(&mut self.names);
        let old_matches = std::mem::take(&mut self.matches);
        let mut new_id = vec![u32::MAX; old.len()];
        let (names, matches) = (&mut self.names, &mut self.matches);
        let mut renumber = |id: &mut u32| {
            let i = *id as usize;
            let Some(slot) = new_id.get_mut(i) else {
                return;
            };
            if *slot == u32::MAX {
                *slot = u32::try_from(names.len()).unwrap_or(u32::MAX);
                names.push(old[i].clone());
                matches.push(old_matches.get(i).copied().unwrap_or(false));
            }
            *id = *slot;
        };
        for lane in &mut self.lanes {
            let spans = lane
                .spans
                .iter_mut()
                .chain(&mut lane.open)
                .chain(&mut lane.marks);
            for s in spans {
                renumber(&mut s.name);
            }
            if let Some(h) = lane.held.as_mut() {
                renumber(&mut h.name);
            }
        }
        let mut ready = std::mem::take(&mut self.fold.ready).into_vec();
        for Reverse(r) in &mut ready {
            renumber(&mut r.name);
        }
        self.fold.ready = BinaryHeap::from(ready);
        self.name_ids.clear();
        for (i, n) in self.names.iter().enumerate() {
            self.name_ids
                .insert(n.clone(), u32::try_from(i).unwrap_or(u32::MAX));
        }
        self.python_names.clear(); // it holds old ids
        self.fold.names_limit = NAMES_KEPT.max(self.names.len() * 2);
        self.fold.names_compacted += 1;
    }

    /// Who a task lane is: Ray lanes are workers on a node; a process with a single task
    /// lane in a trace of several processes is a process lane; otherwise a thread.
    fn lane_info(&self, producer: Producer, task_lane: usize) -> LaneInfo {
        let (pid, tid) = &self.lanes[self.fold.task_lanes[task_lane]].key;
        let single = self.fold.per_pid.get(pid) == Some(&1) && self.fold.per_pid.len() > 1;
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
        let is_process = tid_num.is_some_and(|t| Some(t) == real_pid.map(i64::from)) || single;
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
