//! The process pool, with real child processes: PIDs, parentage, reuse, failures, clean-up.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use poolscope::config::{Mode, RunConfig};
use poolscope::coordinator::RunControl;
use poolscope::event::{EventKind, WorkerLabel};
use poolscope::workload::Workload;

fn seed(task_ms: u64) -> RunConfig {
    RunConfig {
        mode: Mode::Process,
        task_ms,
        ..RunConfig::default()
    }
}

#[tokio::test]
async fn six_tasks_reuse_three_child_processes_alive_while_they_work() {
    // While each task runs, ask the kernel who its worker's parent is.
    let parents = Arc::new(Mutex::new(Vec::new()));
    let by_worker = Arc::new(Mutex::new(HashMap::new()));
    let (seen, workers) = (Arc::clone(&parents), Arc::clone(&by_worker));
    let (report, events) = run_with(&seed(100), RunControl::new(), move |ev| match &ev.kind {
        EventKind::WorkerSpawned {
            worker,
            label: WorkerLabel::Process { pid },
        } => {
            workers.lock().unwrap().insert(*worker, *pid);
        }
        EventKind::TaskStarted { worker, .. } => {
            let pid = workers.lock().unwrap()[worker];
            seen.lock().unwrap().push((pid, parent_of(pid)));
        }
        _ => {}
    })
    .await;

    let me = std::process::id();
    let pids = spawned_pids(&events);
    assert_eq!(pids.len(), 3, "three workers, none replaced");
    assert_eq!(
        pids.iter().collect::<HashSet<_>>().len(),
        3,
        "distinct PIDs"
    );
    assert!(!pids.contains(&me), "no worker is the test process itself");
    let parents = parents.lock().unwrap();
    assert_eq!(parents.len(), 6);
    for (pid, parent) in parents.iter() {
        assert_eq!(*parent, Some(me), "PID {pid} alive and our child mid-task");
    }
    let used: HashSet<u32> = parents.iter().map(|(pid, _)| *pid).collect();
    assert_eq!(
        used.len(),
        3,
        "6 tasks on 3 processes use exactly 3 processes"
    );

    let mut results = report.results.clone();
    results.sort_unstable();
    assert_eq!(results, vec![0, 1, 4, 9, 16, 25]);

    let times = task_times(&events);
    for task in 0..6 {
        let (w1, start) = times.started[&task][0];
        let (w2, end) = times.ended[&task][0];
        assert_eq!(times.started[&task].len(), 1);
        assert_eq!(times.ended[&task].len(), 1);
        assert_eq!(Some(w1), w2);
        assert!(end - start >= Duration::from_millis(100), "task {task}");
    }
    // The run only ends once the children have been reaped.
    for pid in pids {
        assert!(!exists(pid), "PID {pid} still exists after the run");
    }
}

#[tokio::test]
async fn instant_tasks_are_pipelined_and_none_is_lost() {
    let config = RunConfig {
        tasks: 5_000,
        workload: Workload::Noop,
        ..seed(0)
    };
    let (report, events) = run(&config).await;
    assert_eq!(report.results.len(), 5_000);
    assert_eq!(report.failed, 0);
    let times = task_times(&events);
    assert_eq!(times.started.len(), 5_000);
    assert!(times.started.values().all(|s| s.len() == 1));
    let sum: u64 = report.results.iter().sum();
    assert_eq!(sum, (0..5_000u64).map(|n| n * n).sum::<u64>());
}

#[tokio::test]
async fn task_errors_and_panics_in_a_child_fail_the_task_not_the_worker() {
    let config = RunConfig {
        tasks: 15,
        workload: Workload::Fail,
        ..seed(5)
    };
    let (report, events) = run(&config).await;
    let failed: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskFailed { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    let expected: BTreeSet<u64> = (0..15).filter(|&n| Workload::Fail.fails(n)).collect();
    assert_eq!(failed, expected);
    assert_eq!(report.results.len() + expected.len(), 15);
    assert_eq!(
        spawned_pids(&events).len(),
        3,
        "no worker died or was replaced"
    );
    // A panic in a child is caught there: nothing leaks onto its stderr.
    let stderr_lines = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WorkerOutput { .. }))
        .count();
    assert_eq!(stderr_lines, 0);
}

#[tokio::test]
async fn cancel_in_process_mode_stops_queued_tasks_and_reaps_children() {
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
    assert!(report.cancelled >= 30, "{report:?}");
    assert_eq!(
        report.results.len() as u64 + report.failed + report.cancelled,
        40
    );
    for pid in spawned_pids(&events) {
        assert!(!exists(pid), "PID {pid} outlived the cancelled run");
    }
}

#[tokio::test]
async fn dropping_a_run_mid_task_leaves_no_child_behind() {
    let config = RunConfig {
        tasks: 6,
        ..seed(5_000)
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let run = tokio::spawn(async move {
        poolscope::coordinator::run_blocking_tasks(&config, &opts(), &RunControl::new(), tx).await
    });
    let mut spawned = Vec::new();
    let mut started = 0;
    while started < 3 {
        let batch = bounded(rx.recv()).await.expect("run ended early");
        for ev in batch {
            match ev.kind {
                EventKind::WorkerSpawned {
                    label: WorkerLabel::Process { pid },
                    ..
                } => spawned.push(pid),
                EventKind::TaskStarted { .. } => started += 1,
                _ => {}
            }
        }
    }
    assert_eq!(spawned.len(), 3);
    assert!(spawned.iter().all(|&p| exists(p)));
    // Abandon the run mid-task: the pool is dropped with its 5-second tasks running.
    run.abort();
    let _ = run.await;
    drop(rx);
    let gone = tokio::task::spawn_blocking(move || {
        eventually(Duration::from_secs(3), || {
            spawned
                .iter()
                .all(|&p| !my_children().contains(&p) && !exists(p))
        })
    })
    .await
    .unwrap();
    assert!(gone, "children outlived their dropped pool");
}

#[tokio::test]
async fn abort_kills_and_reaps_the_children_before_returning() {
    let config = RunConfig {
        tasks: 6,
        ..seed(10_000)
    };
    let control = RunControl::new();
    let trigger = control.abort.clone();
    let mut started = 0;
    let (report, events) = run_with(&config, control, move |ev| {
        if matches!(ev.kind, EventKind::TaskStarted { .. }) {
            started += 1;
            if started == 3 {
                trigger.cancel();
            }
        }
    })
    .await;
    assert_eq!(report.results.len(), 0);
    assert_eq!(report.failed + report.cancelled, 6, "{report:?}");
    let pids = spawned_pids(&events);
    assert_eq!(pids.len(), 3);
    // Reaped, not merely killed: not even a zombie is left when the run returns.
    for pid in pids {
        assert!(!exists(pid), "PID {pid} left behind by an aborted run");
    }
    // Asked to stop with SIGTERM first; mid-task workers die of it at once.
    let stopped = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::WorkerExited { exit, .. } if exit.to_string() == "killed by SIGTERM"))
        .count();
    assert_eq!(stopped, 3);
}

/// Field `n` (1-based, after the command name) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

#[tokio::test]
async fn each_worker_answers_its_settings_before_it_gets_a_task_and_has_its_own_group() {
    let groups = Arc::new(Mutex::new(Vec::new()));
    let pids = Arc::new(Mutex::new(HashMap::new()));
    let (seen, by_worker) = (Arc::clone(&groups), Arc::clone(&pids));
    let config = RunConfig {
        workers: 4,
        tasks: 8,
        ..seed(50)
    };
    let (report, events) = run_with(&config, RunControl::new(), move |ev| match &ev.kind {
        EventKind::WorkerSpawned {
            worker,
            label: WorkerLabel::Process { pid },
        } => {
            by_worker.lock().unwrap().insert(*worker, *pid);
        }
        EventKind::TaskStarted { worker, .. } => {
            let pid = by_worker.lock().unwrap()[worker];
            // Field 5 is the process group.
            seen.lock().unwrap().push((pid, stat_field(pid, 5)));
        }
        _ => {}
    })
    .await;
    assert_eq!(report.results.len(), 8);
    let mut spawned = HashMap::new();
    let mut ready = HashMap::new();
    for e in &events {
        match e.kind {
            EventKind::WorkerSpawned { worker, .. } => {
                spawned.insert(worker, e.at);
            }
            EventKind::WorkerReady { worker } => {
                assert!(ready.insert(worker, e.at).is_none(), "ready once");
            }
            _ => {}
        }
        if let Some((_, worker, start)) = e.task_start() {
            assert!(
                ready[&worker] <= start,
                "a task before its worker was ready"
            );
        }
    }
    assert_eq!(ready.len(), 4, "{ready:?}");
    for (worker, at) in &ready {
        assert!(spawned[worker] <= *at);
    }
    // Their own process group: a terminal's Ctrl-C to ours does not reach them.
    let ours = stat_field(std::process::id(), 5);
    for (pid, group) in groups.lock().unwrap().iter() {
        assert_eq!(
            *group,
            Some(i64::from(*pid)),
            "PID {pid} leads its own group"
        );
        assert_ne!(*group, ours);
    }
}

#[tokio::test]
async fn an_aborted_run_ends_every_task_exactly_once() {
    let config = RunConfig {
        tasks: 30,
        ..seed(2_000)
    };
    let control = RunControl::new();
    let trigger = control.abort.clone();
    let (report, events) = run_with(&config, control, move |ev| {
        if matches!(ev.kind, EventKind::TaskStarted { .. }) {
            trigger.cancel();
        }
    })
    .await;
    assert_eq!(report.finished + report.failed + report.cancelled, 30);
    let mut ends: HashMap<u64, usize> = HashMap::new();
    for e in &events {
        if let Some((task, _, _)) = e.task_end() {
            *ends.entry(task).or_insert(0) += 1;
        }
    }
    assert!(ends.values().all(|&n| n == 1), "{ends:?}");
}
