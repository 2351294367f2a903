//! Helpers shared by the integration tests: real runs, collected events, /proc probes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use poolscope::config::RunConfig;
use poolscope::coordinator::{RunControl, RunOptions, RunReport, run_blocking_tasks};
use poolscope::event::{EventKind, PoolEvent, TaskId, WorkerId, WorkerLabel};
use tokio::sync::mpsc;

/// Every test's upper bound: a hung pool fails the test instead of hanging CI.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// The poolscope binary cargo built for these tests.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_poolscope"))
}

pub fn opts() -> RunOptions {
    RunOptions::new(7, exe())
}

/// Awaits `fut`, failing the test if it takes longer than [`TEST_LIMIT`].
pub async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, fut)
        .await
        .expect("test exceeded its time limit")
}

/// Runs `config` for real; `on_event` sees every event as it arrives (while workers live).
pub async fn run_with(
    config: &RunConfig,
    control: RunControl,
    on_event: impl FnMut(&PoolEvent) + Send + 'static,
) -> (RunReport, Vec<PoolEvent>) {
    run_with_opts(config, &opts(), control, on_event).await
}

/// [`run_with`] with other run options (another worker binary, say).
pub async fn run_with_opts(
    config: &RunConfig,
    opts: &RunOptions,
    control: RunControl,
    mut on_event: impl FnMut(&PoolEvent) + Send + 'static,
) -> (RunReport, Vec<PoolEvent>) {
    let (tx, mut rx) = mpsc::channel(64);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(batch) = rx.recv().await {
            for ev in batch {
                on_event(&ev);
                events.push(ev);
            }
        }
        events
    });
    let report = bounded(run_blocking_tasks(config, opts, &control, tx))
        .await
        .expect("run failed");
    let events = bounded(collector).await.expect("collector panicked");
    (report, events)
}

/// Runs `config` to completion and returns the report and every event.
pub async fn run(config: &RunConfig) -> (RunReport, Vec<PoolEvent>) {
    run_with(config, RunControl::new(), |_| {}).await
}

/// Per task: (worker, start) from `TaskStarted` and (worker, finish) from `TaskFinished`/`TaskFailed`.
#[derive(Debug, Default)]
pub struct TaskTimes {
    pub started: HashMap<TaskId, Vec<(WorkerId, Duration)>>,
    pub ended: HashMap<TaskId, Vec<(Option<WorkerId>, Duration)>>,
}

pub fn task_times(events: &[PoolEvent]) -> TaskTimes {
    let mut t = TaskTimes::default();
    for ev in events {
        match &ev.kind {
            EventKind::TaskStarted { task, worker } => {
                t.started.entry(*task).or_default().push((*worker, ev.at));
            }
            EventKind::TaskFinished { task, worker, .. } => t
                .ended
                .entry(*task)
                .or_default()
                .push((Some(*worker), ev.at)),
            EventKind::TaskRan {
                task,
                worker,
                started,
                ..
            } => {
                t.started
                    .entry(*task)
                    .or_default()
                    .push((*worker, *started));
                t.ended
                    .entry(*task)
                    .or_default()
                    .push((Some(*worker), ev.at));
            }
            EventKind::TaskFailed { task, worker, .. } => {
                t.ended.entry(*task).or_default().push((*worker, ev.at));
            }
            _ => {}
        }
    }
    t
}

/// The PIDs of the worker processes a run spawned, in spawn order.
pub fn spawned_pids(events: &[PoolEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkerSpawned {
                label: WorkerLabel::Process { pid },
                ..
            } => Some(*pid),
            _ => None,
        })
        .collect()
}

/// Field 4 of /proc/PID/stat (the parent PID), or None if the process is gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a process with this PID exists (a zombie counts: it has not been reaped).
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls until `cond` holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The direct children of this process, from /proc/self/task/*/children.
pub fn my_children() -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                kids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    kids
}

/// A Python interpreter that can import every one of `modules`, or `None` after saying on the
/// test output (not captured by the harness) which test skipped and how to run it.
///
/// The interpreter is `$POOLSCOPE_TEST_PYTHON`, else the `.venv` that `.ci/run` makes from
/// `tests/requirements.txt`, else `python3`. Under `POOLSCOPE_REQUIRE_PYTHON=1` (set by
/// `.ci/run`) a missing package fails the test instead: CI never passes by skipping.
pub fn python_with(test: &str, modules: &[&str]) -> Option<PathBuf> {
    use std::io::Write as _;
    let python = test_python();
    let probe = format!(
        "import {}",
        if modules.is_empty() {
            "sys".to_owned()
        } else {
            modules.join(", ")
        }
    );
    let ok = std::process::Command::new(&python)
        .args(["-c", &probe])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let what = if modules.is_empty() {
        "python3".to_owned()
    } else {
        format!("the Python packages {}", modules.join(", "))
    };
    let line = format!(
        "SKIPPED {test}: needs {what}, not importable by {}. Run `bash .ci/run` (it makes .venv from \
         tests/requirements.txt), or POOLSCOPE_TEST_PYTHON=/path/to/python cargo test",
        python.display()
    );
    assert!(
        std::env::var_os("POOLSCOPE_REQUIRE_PYTHON").is_none(),
        "{line}"
    );
    // Straight to stderr: the harness captures eprintln! of passing tests, and a skip must show.
    let _ = writeln!(std::io::stderr(), "{line}");
    None
}

/// The interpreter Python-package tests use (see [`python_with`]).
pub fn test_python() -> PathBuf {
    if let Some(p) = std::env::var_os("POOLSCOPE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Makes a FIFO at `path` (with mkfifo(1): the tests use no unsafe code).
pub fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
}
