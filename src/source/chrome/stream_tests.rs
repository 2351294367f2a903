//! The streaming fold against the whole-file fold: the same tasks from every committed
//! Chrome fixture, however early the producer is decided and the spans folded; and the
//! reader's state bounded on a trace of many tasks.

use std::fmt::Write as _;

use super::{Peaks, Producer, Tuning, read_with};
use crate::source::{ReadStats, SourceEvent, TaskRecord};

const FIXTURES: &[&str] = &[
    "pyspy_thread.json",
    "ray_fail60.json",
    "ray_timeline.json",
    "tracing_chrome_tokio.json",
    "viztracer_exceptions.json",
    "viztracer_exceptions_retval.json",
    "viztracer_process.json",
    "viztracer_six_thread.json",
    "viztracer_thread.json",
];

/// Lanes and tasks read from `bytes` within `tuning`, as the sink got them.
fn read(
    bytes: &[u8],
    filter: Option<&dyn Fn(&str) -> bool>,
    tuning: Tuning,
) -> (Vec<SourceEvent>, ReadStats, Peaks) {
    let (events, stats, _, peaks) = read_as(bytes, filter, tuning);
    (events, stats, peaks)
}

fn read_as(
    bytes: &[u8],
    filter: Option<&dyn Fn(&str) -> bool>,
    tuning: Tuning,
) -> (Vec<SourceEvent>, ReadStats, Producer, Peaks) {
    let mut events = Vec::new();
    let (stats, producer, peaks) =
        read_with(bytes, "t", filter, tuning, &mut |e| events.push(e)).unwrap();
    (events, stats, producer, peaks)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/chrome/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap()
}

fn tasks(events: &[SourceEvent]) -> Vec<&TaskRecord> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Task(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn every_fixture_folds_to_the_same_tasks_when_decided_and_folded_early() {
    let by_name = |n: &str| n.starts_with("work") || n == "blocks";
    let filters = [None, Some(&by_name as &dyn Fn(&str) -> bool)];
    for name in FIXTURES {
        let bytes = fixture(name);
        for filter in filters {
            let (whole, whole_stats, producer, _) = read_as(&bytes, filter, Tuning::default());
            let mut checked = 0;
            for decide_after in [1, 2, 5, 10, 20, 50, 100, 200] {
                let tuning = Tuning {
                    decide_after,
                    ..Tuning::default()
                };
                let (early, stats, early_producer, _) = read_as(&bytes, filter, tuning);
                // Evidence of the producer that comes later than the decision cannot count:
                // big traces are decided after 262 144 events.
                if early_producer != producer {
                    continue;
                }
                checked += 1;
                let what = format!(
                    "{name}, filter {}, decided after {decide_after}",
                    filter.is_some()
                );
                assert_eq!(tasks(&early), tasks(&whole), "{what}");
                assert_eq!(early, whole, "{what}: the same lanes too");
                assert_eq!(
                    (stats.inner_steps, stats.not_tasks, stats.rejected),
                    (
                        whole_stats.inner_steps,
                        whole_stats.not_tasks,
                        whole_stats.rejected
                    ),
                    "{what}"
                );
            }
            assert!(checked >= 3, "{name}: decided early only {checked} times");
        }
    }
}

/// A viztracer-like trace: `tasks` tasks on `threads` threads, each a pool frame around a
/// user function around `steps` steps, written inner first as viztracer writes them.
fn generated(tasks: u64, threads: u64, steps: u64) -> Vec<u8> {
    generated_as(tasks, threads, steps, false)
}

/// As [`generated`], or in start order (outer first, as some writers sort them), then
/// under one `_process_worker` frame per thread, as a process pool's worker runs its tasks.
fn generated_as(tasks: u64, threads: u64, steps: u64, start_order: bool) -> Vec<u8> {
    let mut s = String::from("{\"traceEvents\":[\n");
    s.push_str(r#"{"ph":"M","name":"process_name","pid":1,"tid":1,"args":{"name":"py"}}"#);
    let pool = "_WorkItem.run (/usr/lib/python3.11/concurrent/futures/thread.py:53)";
    let ev = |tid: u64, ts: u64, dur: u64, name: &str| {
        format!(
            ",\n{{\"pid\":1,\"tid\":{tid},\"ts\":{ts},\"dur\":{dur},\"name\":\"{name}\",\"ph\":\"X\",\"cat\":\"FEE\"}}"
        )
    };
    if start_order {
        let worker = "_process_worker (/usr/lib/python3.11/concurrent/futures/process.py:240)";
        for t in 0..threads {
            s.push_str(&ev(10 + t, 0, tasks * 1000, worker));
        }
    }
    for i in 0..tasks {
        let tid = 10 + i % threads;
        let t0 = (i / threads) * 1000 + i % threads + 1;
        let mut task = Vec::new();
        for k in 0..steps {
            task.push(ev(
                tid,
                t0 + 20 + k * 10,
                5,
                &format!("step (/home/u/app.py:{k})"),
            ));
        }
        task.push(ev(
            tid,
            t0 + 10,
            900,
            &format!("work_{} (/home/u/app.py:1)", i % 7),
        ));
        if !start_order {
            task.push(ev(tid, t0 + 5, 910, pool));
        }
        if start_order {
            task.reverse();
        }
        s.extend(task);
    }
    s.push_str("\n]}\n");
    s.into_bytes()
}

#[test]
fn a_trace_written_outer_first_under_long_pool_frames_folds_the_same() {
    let bytes = generated_as(3_000, 3, 2, true);
    let (whole, _, _) = read(&bytes, None, Tuning::default());
    assert_eq!(tasks(&whole).len(), 3_000);
    for max_pending in [1 << 8, 1 << 20] {
        // the window holds more than a fold of every lane (3 × 64 spans): start order kept
        let tuning = Tuning {
            decide_after: 50,
            window: 256,
            max_pending,
        };
        let (early, _, peaks) = read(&bytes, None, tuning);
        assert_eq!(tasks(&early), tasks(&whole), "max_pending {max_pending}");
        assert!(peaks.waiting <= max_pending.max(3 * 3_000 + 3), "{peaks:?}");
    }
}

#[test]
fn the_readers_state_stays_bounded_however_many_tasks() {
    let small = Tuning {
        decide_after: 100,
        window: 64,
        max_pending: 1 << 12,
    };
    let mut held = Vec::new();
    for tasks_n in [1_000u64, 20_000] {
        let bytes = generated(tasks_n, 4, 3);
        let (events, stats, peaks) = read(&bytes, None, small);
        let found = tasks(&events);
        assert_eq!(found.len() as u64, tasks_n, "every task found");
        assert!(
            found
                .iter()
                .all(|t| t.steps == 3 && t.name.starts_with("work_"))
        );
        assert!(
            found.windows(2).all(|w| w[0].start_ns <= w[1].start_ns),
            "handed on in start order"
        );
        assert_eq!(stats.rejected + stats.bad_times, 0);
        let lanes = events
            .iter()
            .filter(|e| matches!(e, SourceEvent::Lane { .. }))
            .count();
        assert_eq!(lanes, 4);
        // the window, and the tasks of the spans read before the decision
        assert!(peaks.ready <= small.window + 100 + 4, "{peaks:?}");
        held.push(peaks);
    }
    // Twenty times the tasks, the same state: spans waiting are those read before the
    // decision and one task's per lane, not the file's.
    assert_eq!(held[0].waiting, held[1].waiting, "{held:?}");
    assert!(held[1].waiting <= 100 + 4 * 5, "{held:?}");
    assert_eq!(held[0].names, held[1].names, "names are interned once");
}

#[test]
fn spans_that_nothing_settles_are_folded_at_the_bound_not_kept() {
    // A generic trace (no producer): top-level spans are tasks, but a later span may
    // enclose any of them, so nothing settles them before the end. The bound folds them.
    // Written as they close (a parent after its child): nothing is complete before the end.
    let mut s = String::from("[");
    for i in 0..5_000u64 {
        let _ = write!(
            s,
            "{{\"ph\":\"X\",\"pid\":1,\"tid\":2,\"ts\":{},\"dur\":2,\"name\":\"step\"}},\
             {{\"ph\":\"X\",\"pid\":1,\"tid\":2,\"ts\":{},\"dur\":5,\"name\":\"t\"}},",
            i * 10 + 1,
            i * 10
        );
    }
    s.push_str("{\"ph\":\"X\",\"pid\":1,\"tid\":2,\"ts\":0,\"dur\":0,\"name\":\"t\"}]");
    let tuning = Tuning {
        decide_after: 10,
        window: 16,
        max_pending: 256,
    };
    let (events, stats, peaks) = read(s.as_bytes(), None, tuning);
    assert!(peaks.waiting <= 257, "{peaks:?}");
    let found = tasks(&events);
    assert!(
        found.len() >= 5_000 && found.iter().filter(|t| t.steps == 1).count() >= 4_900,
        "{}",
        found.len()
    );
    assert!(
        stats
            .first_problem
            .as_deref()
            .is_some_and(|p| p.contains("spans waited at once")),
        "said: {:?}",
        stats.first_problem
    );
}

#[test]
fn a_million_distinct_names_are_not_all_kept() {
    // 150 000 tasks, each with a name of its own: names nothing waiting uses are dropped
    let n = 150_000u64;
    let mut s = String::from("[");
    let pool = "_WorkItem.run (/usr/lib/python3.11/concurrent/futures/thread.py:53)";
    for i in 0..n {
        let (tid, t0) = (10 + i % 4, (i / 4) * 100 + i % 4);
        let _ = write!(
            s,
            "{{\"pid\":1,\"tid\":{tid},\"ts\":{},\"dur\":50,\"name\":\"work_{i} (/home/u/a.py:1)\",\"ph\":\"X\",\"cat\":\"FEE\"}},\
             {{\"pid\":1,\"tid\":{tid},\"ts\":{},\"dur\":60,\"name\":\"{pool}\",\"ph\":\"X\",\"cat\":\"FEE\"}},",
            t0 + 10,
            t0 + 5
        );
    }
    s.pop();
    s.push(']');
    let tuning = Tuning {
        decide_after: 100,
        ..Tuning::default()
    };
    let (events, _, peaks) = read(s.as_bytes(), None, tuning);
    let found = tasks(&events);
    assert_eq!(found.len() as u64, n);
    for (i, t) in found.iter().enumerate() {
        assert_eq!(t.name, format!("work_{i}"));
    }
    assert!(peaks.names <= 1 << 17, "{peaks:?}");
}

#[test]
fn tasks_found_before_the_decision_keep_their_start_order_past_a_small_window() {
    // 2 000 events read before the decision hold 400 tasks on 4 lanes; each lane folds
    // its share when its next span comes, so a 16-task window alone would hand on lane
    // 0's before lane 3's earlier ones
    let bytes = generated(2_000, 4, 3);
    let (whole, _, _) = read(&bytes, None, Tuning::default());
    let tuning = Tuning {
        decide_after: 2_000,
        window: 16,
        max_pending: 1 << 20,
    };
    let (early, _, _) = read(&bytes, None, tuning);
    assert_eq!(tasks(&early), tasks(&whole));
}
