//! What the coordinator promises about a run, checked with real threads and processes
//! against the run's own record: the log and the results follow the workers' clocks, every
//! task has exactly one end, `wall` ends at the last task's end, and a killed run's trace
//! still parses.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use poolscope::config::{Mode, RunConfig};
use poolscope::coordinator::RunControl;
use poolscope::event::{EventKind, PoolEvent, TaskId};
use serde_json::Value;

/// The most one line (or result) may come before an earlier one, by the run's own trace.
const TOLERANCE_US: f64 = 3_000.0;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("poolscope-coord-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Parses a trace file, closing the array if the run was cut short. A SIGKILL can stop the
/// kernel inside one write (it checks between pages), so the last line of a killed run's
/// trace may be an event cut short: that line alone is dropped, as poolscope's own reader of
/// a cut trace does; the damage must stay within it.
fn parse_trace(path: &Path) -> Result<Vec<Value>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes);
    let trimmed = text.trim_end();
    if trimmed.ends_with(']') {
        return serde_json::from_str(trimmed).map_err(|e| format!("{e}"));
    }
    let closed = |body: &str| format!("{}\n]", body.trim_end().trim_end_matches(','));
    serde_json::from_str(&closed(trimmed)).or_else(|e| {
        let whole_lines = trimmed.rfind('\n').map_or("", |i| &trimmed[..i]);
        serde_json::from_str(&closed(whole_lines))
            .map_err(|_| format!("{e} (file of {} bytes)", bytes.len()))
    })
}

/// Start and end (µs on the trace's clock) of each task, from its complete events.
fn spans(trace: &[Value]) -> HashMap<TaskId, (f64, f64)> {
    trace
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            let n = e["args"]["n"].as_u64().expect("task number");
            let ts = e["ts"].as_f64().expect("ts");
            let dur = e["dur"].as_f64().expect("dur");
            (n, (ts, ts + dur))
        })
        .collect()
}

/// The task a log line is about and whether it is its `done` line.
fn task_line(line: &str) -> Option<(TaskId, bool)> {
    let (head, message) = line.rsplit_once("): ")?;
    let n = head.rsplit_once('(')?.1.parse().ok()?;
    match message {
        "running" => Some((n, false)),
        "done" => Some((n, true)),
        _ => None,
    }
}

/// The results listed on the log's `results: [...]` line.
fn results_line(log: &str) -> Vec<u64> {
    let line = log
        .lines()
        .find_map(|l| l.split_once("results: [").map(|(_, rest)| rest))
        .expect("a results line");
    let list = line.split(']').next().unwrap_or("");
    list.split(", ")
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a number"))
        .collect()
}

/// Adjacent pairs where the second happened more than the tolerance before the first.
fn inversions(times: &[f64]) -> Vec<(usize, f64)> {
    times
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] - w[1] > TOLERANCE_US)
        .map(|(i, w)| (i, (w[0] - w[1]) / 1000.0))
        .collect()
}

fn check_log_order(mode: Mode, task_ms: u64) {
    let trace = scratch(&format!("order-{mode}-{task_ms}.json"));
    let out = Command::new(exe())
        .args(["log", "--mode", mode.name(), "--tasks", "60"])
        .args(["--task-ms", &task_ms.to_string()])
        .arg("--trace")
        .arg(&trace)
        .output()
        .expect("poolscope log runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8(out.stdout).expect("utf-8 log");
    let spans = spans(&parse_trace(&trace).expect("the trace parses"));
    assert_eq!(spans.len(), 60, "every task is in the trace");

    let times: Vec<f64> = log
        .lines()
        .filter_map(task_line)
        .map(|(n, done)| {
            let (start, end) = spans[&n];
            if done { end } else { start }
        })
        .collect();
    assert_eq!(times.len(), 120, "a running and a done line per task");
    let bad = inversions(&times);
    assert!(
        bad.is_empty(),
        "{mode} {task_ms} ms: log lines out of time order (line, ms): {bad:?}\n{log}"
    );

    let by_square: HashMap<u64, TaskId> = (0..60).map(|n| (n * n, n)).collect();
    let ends: Vec<f64> = results_line(&log)
        .iter()
        .map(|r| spans[&by_square[r]].1)
        .collect();
    assert_eq!(ends.len(), 60);
    let bad = inversions(&ends);
    assert!(
        bad.is_empty(),
        "{mode} {task_ms} ms: results out of end order (index, ms): {bad:?}\n{log}"
    );
}

#[test]
fn thread_log_and_results_follow_the_workers_clocks() {
    check_log_order(Mode::Thread, 5);
    check_log_order(Mode::Thread, 15);
}

#[test]
fn process_log_and_results_follow_the_workers_clocks() {
    check_log_order(Mode::Process, 5);
    check_log_order(Mode::Process, 15);
}

/// The end time of each task, from the events.
fn ends(events: &[PoolEvent]) -> HashMap<TaskId, Vec<Duration>> {
    let mut ends: HashMap<TaskId, Vec<Duration>> = HashMap::new();
    for e in events {
        if let Some((task, _, at)) = e.task_end() {
            ends.entry(task).or_default().push(at);
        }
    }
    ends
}

#[tokio::test]
async fn report_results_and_wall_follow_the_workers_stamps_in_both_modes() {
    for mode in [Mode::Thread, Mode::Process] {
        let config = RunConfig {
            mode,
            tasks: 30,
            task_ms: 5,
            ..RunConfig::default()
        };
        let (report, events) = run(&config).await;
        let mut finished: Vec<(Duration, u64)> = events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::TaskFinished { result, .. } | EventKind::TaskRan { result, .. } => {
                    Some((e.at, result.expect("a built-in pool gives its result")))
                }
                _ => None,
            })
            .collect();
        finished.sort_by_key(|&(at, _)| at);
        let expected: Vec<u64> = finished.iter().map(|&(_, r)| r).collect();
        assert_eq!(report.results, expected, "{mode}: results by end time");
        // wall: from the run's start to the last task's end, not to the workers' exit.
        let last_end = finished.last().map(|&(at, _)| at);
        assert_eq!(Some(report.wall), last_end, "{mode}");
        let exited = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::WorkerExited { .. }))
            .map(|e| e.at)
            .max();
        assert!(exited.is_some_and(|t| t >= report.wall), "{mode}");
    }
}

#[tokio::test]
async fn an_aborted_run_gives_every_task_exactly_one_end_in_both_modes() {
    for mode in [Mode::Thread, Mode::Process] {
        let control = RunControl::new();
        let trigger = control.abort.clone();
        let config = RunConfig {
            mode,
            workers: 3,
            tasks: 30,
            task_ms: 300,
            ..RunConfig::default()
        };
        let (report, events) = run_with(&config, control, move |ev| {
            if matches!(ev.kind, EventKind::TaskStarted { .. }) {
                trigger.cancel();
            }
        })
        .await;
        let ends = ends(&events);
        let twice: Vec<_> = ends.iter().filter(|(_, e)| e.len() > 1).collect();
        assert!(twice.is_empty(), "{mode}: tasks with two ends: {twice:?}");
        let failed = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TaskFailed { .. }))
            .count() as u64;
        assert_eq!(failed, report.failed, "{mode}: {report:?}");
        assert_eq!(
            report.finished + report.failed + report.cancelled,
            30,
            "{mode}: {report:?}"
        );
        assert_eq!(ends.len() as u64, report.finished + report.failed);
    }
}

/// Waits until `path` holds at least `bytes`, or gives up after the test limit.
fn wait_for_size(path: &Path, bytes: u64) -> bool {
    eventually(TEST_LIMIT, || {
        std::fs::metadata(path).is_ok_and(|m| m.len() >= bytes)
    })
}

#[test]
fn a_sigkilled_runs_trace_parses_once_closed() {
    // A high event rate, so writes are large and frequent; killed at a few sizes.
    for (i, size) in [200_000u64, 1_000_000, 3_000_000].into_iter().enumerate() {
        let trace = scratch(&format!("killed-{i}.json"));
        let _ = std::fs::remove_file(&trace);
        let mut child = Command::new(exe())
            .args(["log", "--workload", "noop", "--task-ms", "0"])
            .args(["--tasks", "10000000", "--workers", "2", "--trace"])
            .arg(&trace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("poolscope log starts");
        let grew = wait_for_size(&trace, size);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        assert!(grew, "the trace never reached {size} bytes");
        let events = parse_trace(&trace).unwrap_or_else(|e| panic!("killed at {size}: {e}"));
        assert!(spans(&events).len() > 100, "tasks were traced");
    }
}

#[tokio::test]
async fn an_abort_ends_the_run_even_when_the_consumer_stopped_reading() {
    for mode in [Mode::Thread, Mode::Process] {
        let config = RunConfig {
            mode,
            workers: 2,
            tasks: 1_000_000,
            task_ms: 0,
            workload: poolscope::workload::Workload::Noop,
            ..RunConfig::default()
        };
        // A consumer that never reads: its one slot fills with the run's first batch.
        let (tx, _never_read) = tokio::sync::mpsc::channel(1);
        let control = RunControl::new();
        let abort = control.abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            abort.cancel();
        });
        let opts = opts();
        let run = poolscope::coordinator::run_blocking_tasks(&config, &opts, &control, tx);
        let report = tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .unwrap_or_else(|_| panic!("{mode}: the run hung on a consumer that does not read"))
            .expect("the run ends");
        assert!(report.finished < 1_000_000, "{mode}: {report:?}");
    }
}
