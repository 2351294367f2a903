//! The thread pool, with real OS threads: identity, reuse, timing, failures, cancellation.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use crate::common::*;
use poolscope::config::{Mode, RunConfig};
use poolscope::coordinator::RunControl;
use poolscope::event::{EventKind, WorkerLabel};
use poolscope::workload::Workload;

fn seed(task_ms: u64) -> RunConfig {
    RunConfig {
        mode: Mode::Thread,
        task_ms,
        ..RunConfig::default()
    }
}

/// The comm name of thread `tid` of this process, read while it is alive.
fn comm_of(tid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[tokio::test]
async fn six_tasks_reuse_three_named_threads_with_real_tids() {
    // Check each worker's TID against the kernel while its task is running.
    let seen_alive = Arc::new(Mutex::new(Vec::new()));
    let labels = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let (alive, names) = (Arc::clone(&seen_alive), Arc::clone(&labels));
    let (report, events) = run_with(&seed(50), RunControl::new(), move |ev| match &ev.kind {
        EventKind::WorkerSpawned { worker, label } => {
            names.lock().unwrap().insert(*worker, label.clone());
        }
        EventKind::TaskStarted { worker, .. } => {
            if let Some(WorkerLabel::Thread { name, tid }) = names.lock().unwrap().get(worker) {
                alive.lock().unwrap().push((name.clone(), comm_of(*tid)));
            }
        }
        _ => {}
    })
    .await;

    let labels = labels.lock().unwrap();
    assert_eq!(labels.len(), 3, "exactly 3 workers: {labels:?}");
    let mut tids = HashSet::new();
    let mut names = BTreeSet::new();
    for label in labels.values() {
        let WorkerLabel::Thread { name, tid } = label else {
            panic!("thread mode spawned a process: {label:?}");
        };
        assert!(*tid > 0);
        assert_ne!(
            *tid,
            poolscope::sys::gettid(),
            "a worker is not the test thread"
        );
        tids.insert(*tid);
        names.insert(name.clone());
    }
    assert_eq!(tids.len(), 3, "distinct TIDs");
    assert_eq!(
        names,
        BTreeSet::from(["Thread-1".into(), "Thread-2".into(), "Thread-3".into()])
    );
    // The kernel agrees: each TID was a live thread of ours, carrying the worker's name.
    let alive = seen_alive.lock().unwrap();
    assert_eq!(alive.len(), 6);
    for (name, comm) in alive.iter() {
        assert_eq!(comm.as_deref(), Some(name.as_str()));
    }

    let used: HashSet<_> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TaskStarted { worker, .. } => Some(worker),
            _ => None,
        })
        .collect();
    assert_eq!(used.len(), 3, "6 tasks on 3 workers use exactly 3 workers");

    let mut results = report.results.clone();
    results.sort_unstable();
    assert_eq!(results, vec![0, 1, 4, 9, 16, 25]);
    // Completion order: the report lists results in the order the workers stamped the
    // tasks' ends, whatever order the reports arrived in.
    let mut finished: Vec<(std::time::Duration, u64)> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TaskFinished { result, .. } => {
                Some((e.at, result.expect("a built-in pool gives its result")))
            }
            _ => None,
        })
        .collect();
    finished.sort_by_key(|&(at, _)| at);
    let by_end: Vec<u64> = finished.into_iter().map(|(_, r)| r).collect();
    assert_eq!(report.results, by_end);
}

#[tokio::test]
async fn every_task_starts_once_and_finishes_once_after_it_started() {
    let (_, events) = run(&RunConfig {
        tasks: 12,
        ..seed(20)
    })
    .await;
    let times = task_times(&events);
    assert_eq!(times.started.len(), 12);
    for task in 0..12 {
        let started = &times.started[&task];
        let ended = &times.ended[&task];
        assert_eq!(started.len(), 1, "task {task} started once");
        assert_eq!(ended.len(), 1, "task {task} ended once");
        assert_eq!(Some(started[0].0), ended[0].0, "same worker");
        let took = ended[0].1 - started[0].1;
        assert!(
            took.as_millis() >= 20,
            "task {task} ran {took:?}, less than its 20 ms sleep"
        );
    }
    // The run's events end with the coordinator's exit and the tally.
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::RunFinished {
            finished: 12,
            failed: 0,
            cancelled: 0
        })
    ));
}

#[tokio::test]
async fn panicking_and_failing_tasks_fail_alone_and_the_threads_survive() {
    let config = RunConfig {
        tasks: 15,
        workload: Workload::Fail,
        ..seed(5)
    };
    let (report, events) = run(&config).await;
    let failed: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskFailed { task, error, .. } => {
                assert!(error.contains("on purpose"), "{error}");
                Some(*task)
            }
            _ => None,
        })
        .collect();
    let expected: BTreeSet<u64> = (0..15).filter(|&n| Workload::Fail.fails(n)).collect();
    assert_eq!(failed, expected);
    assert_eq!(report.failed, expected.len() as u64);
    assert_eq!(report.results.len() + expected.len(), 15);
    let panicked = events.iter().any(|e| {
        matches!(&e.kind, EventKind::TaskFailed { error, .. } if error.starts_with("panicked: "))
    });
    assert!(panicked, "the 7th task's panic is reported as such");
    // No worker died: the same three threads ran everything and left cleanly.
    let spawned = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkerSpawned { .. }))
        .count();
    assert_eq!(spawned, 3);
    let clean_exits = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::WorkerExited { exit, .. } if exit.is_clean()))
        .count();
    assert_eq!(clean_exits, 3);
}

#[tokio::test]
async fn cancel_drops_queued_tasks_and_lets_running_ones_end() {
    let control = RunControl::new();
    let trigger = control.cancel.clone();
    let config = RunConfig {
        workers: 2,
        tasks: 40,
        ..seed(100)
    };
    let (report, events) = run_with(&config, control, move |ev| {
        if matches!(ev.kind, EventKind::TaskStarted { .. }) {
            trigger.cancel();
        }
    })
    .await;
    let started = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskStarted { .. }))
        .count() as u64;
    assert!(report.cancelled >= 30, "most tasks never ran: {report:?}");
    assert!(started <= 10, "only the tasks already taken ran: {started}");
    // Tasks that had started ran to their end: nothing is left unaccounted for.
    assert_eq!(report.results.len() as u64, started);
    assert_eq!(report.results.len() as u64 + report.cancelled, 40);
}

#[tokio::test]
async fn abort_stops_threads_from_taking_queued_tasks() {
    let control = RunControl::new();
    let trigger = control.abort.clone();
    let config = RunConfig {
        workers: 2,
        tasks: 20,
        ..seed(150)
    };
    let (report, events) = run_with(&config, control, move |ev| {
        if matches!(ev.kind, EventKind::TaskStarted { .. }) {
            trigger.cancel();
        }
    })
    .await;
    // Threads cannot be killed: their running tasks end, but no queued task may start.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let started = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskStarted { .. }))
        .count() as u64;
    assert!(started <= 2, "only the tasks already taken ran: {started}");
    assert!(report.cancelled >= 18, "{report:?}");
    assert_eq!(
        report.results.len() as u64 + report.failed + report.cancelled,
        20
    );
}

#[tokio::test]
async fn each_thread_is_ready_after_its_spawn_and_before_its_first_task() {
    let (_, events) = run(&seed(10)).await;
    let mut spawned = std::collections::HashMap::new();
    let mut ready = std::collections::HashMap::new();
    let mut first_start = std::collections::HashMap::new();
    for ev in &events {
        match &ev.kind {
            EventKind::WorkerSpawned { worker, .. } => {
                spawned.insert(*worker, ev.at);
            }
            EventKind::WorkerReady { worker } => {
                assert!(ready.insert(*worker, ev.at).is_none(), "ready once");
            }
            _ => {
                if let Some((_, worker, at)) = ev.task_start() {
                    first_start.entry(worker).or_insert(at);
                }
            }
        }
    }
    assert_eq!(ready.len(), 3, "{ready:?}");
    for (worker, at) in &ready {
        assert!(spawned[worker] <= *at, "{worker:?} ready before its spawn");
        if let Some(start) = first_start.get(worker) {
            assert!(*at <= *start, "{worker:?} ran a task before it was ready");
        }
    }
}

#[tokio::test]
async fn threads_still_busy_after_an_abort_report_their_exit_later() {
    // Tasks outlast the coordinator's shutdown grace (2 s), so the run returns while its
    // threads are still in them; their exits must still reach the consumer.
    let control = RunControl::new();
    let trigger = control.abort.clone();
    let config = RunConfig {
        workers: 2,
        tasks: 4,
        ..seed(2_600)
    };
    let (report, events) = run_with(&config, control, move |ev| {
        if matches!(ev.kind, EventKind::TaskStarted { .. }) {
            trigger.cancel();
        }
    })
    .await;
    let finished_at = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::RunFinished { .. }))
        .expect("the run finished");
    let late = &events[finished_at + 1..];
    let exits = |events: &[poolscope::event::PoolEvent]| {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::WorkerExited { .. }))
            .count()
    };
    // The thread whose start triggered the abort was still in its task when the run ended;
    // the other may not have taken one before the queue closed, and then left in time.
    assert!(exits(late) >= 1, "a leftover thread said it left: {late:?}");
    assert_eq!(
        exits(&events),
        2,
        "every thread's exit reached the consumer"
    );
    assert!(
        late.iter().all(|e| e.task_end().is_none()),
        "a task already given its end gets no second one: {late:?}"
    );
    assert_eq!(report.finished + report.failed + report.cancelled, 4);
}
