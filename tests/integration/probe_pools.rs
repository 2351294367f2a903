//! The Python probe on every common pool: a real program (`tests/fixtures/python/pools.py`
//! and friends) records each task's own truth (pid, native tid, start and end on
//! `time.monotonic_ns()`, outcome) to a side file; `poolscope log --format jsonl --args` must
//! show the same tasks, on the same lanes (TIDs for thread lanes, PIDs for process lanes), with
//! the same failures and durations within 2 ms.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/python")
        .join(rel)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "poolscope-probe-pools-{}-{name}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `poolscope ARGS -- PY PROGRAM PROGRAM_ARGS`, killed if it takes over a minute.
fn poolscope(args: &[&str], py: &Path, program: &Path, program_args: &[&str]) -> Output {
    poolscope_within(common::TEST_LIMIT, args, py, program, program_args, &[])
}

/// [`poolscope`], killed after `limit`, with `env` added to its environment (and so the
/// program's).
fn poolscope_within(
    limit: Duration,
    args: &[&str],
    py: &Path,
    program: &Path,
    program_args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut child = Command::new(common::exe())
        .envs(env.iter().copied())
        .args(args)
        .arg("--")
        .arg(py)
        .arg(program)
        .args(program_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "poolscope hung on {}: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// One task, as its program saw it or as poolscope showed it.
#[derive(Debug, Clone, PartialEq)]
struct Task {
    pid: u64,
    /// `None`: a process lane (the task ran on its process's main thread).
    tid: Option<u64>,
    dur_ns: i64,
    error: Option<String>,
}

/// The program's own records, by task number.
fn truth(path: &Path) -> BTreeMap<u64, Task> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let (_, task) = truth_task(&v);
        assert!(
            out.insert(v["n"].as_u64().unwrap(), task).is_none(),
            "{line}"
        );
    }
    out
}

/// One line of the program's own records: its start (ns) and its task.
fn truth_task(v: &Value) -> (i64, Task) {
    let start = v["start"].as_i64().unwrap();
    let task = Task {
        pid: v["pid"].as_u64().unwrap(),
        tid: (!v["main"].as_bool().unwrap()).then(|| v["tid"].as_u64().unwrap()),
        dur_ns: v["end"].as_i64().unwrap() - start,
        error: v["error"].as_str().map(str::to_owned),
    };
    (start, task)
}

/// One of poolscope's task records: its start (s) and its task.
fn seen_task(line: &str) -> (f64, Task) {
    let v: Value = serde_json::from_str(line).unwrap();
    let start = v["start_s"].as_f64().unwrap_or_else(|| panic!("{line}"));
    let task = Task {
        pid: v["pid"].as_u64().unwrap(),
        tid: v["tid"].as_u64(),
        dur_ns: ((v["end_s"].as_f64().unwrap() - start) * 1e9).round() as i64,
        error: v["error"].as_str().map(str::to_owned),
    };
    (start, task)
}

/// The number a task's name carries: `work(12)` is 12, `add(40, 1)` (which calls
/// `work(41)`) is 41.
fn number(name: &str) -> u64 {
    let inner = name
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no arguments in {name:?}"));
    inner.split(", ").map(|a| a.parse::<u64>().unwrap()).sum()
}

/// poolscope's task records, by task number.
fn seen(stdout: &str) -> BTreeMap<u64, Task> {
    let mut out = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.starts_with("{\"task\"")) {
        let v: Value = serde_json::from_str(line).unwrap();
        let (_, task) = seen_task(line);
        let n = number(v["task"].as_str().unwrap());
        assert!(out.insert(n, task).is_none(), "task {n} twice: {stdout}");
    }
    out
}

/// Runs `pools.py KIND` under poolscope and checks every task against the program's truth.
///
/// Tasks, lanes and failures must match on the first run. Durations must match within 2 ms
/// on every task of one run out of two: the probe's stamp and the program's are a few µs of
/// bytecode apart, and a loaded machine (the suite runs beside others on 2 cores) can
/// preempt a process there for 10 ms or more; a probe that is wrong is wrong on both runs.
fn check_kind(test: &str, kind: &str, modules: &[&str]) {
    let Some(py) = common::python_with(test, modules) else {
        return;
    };
    durations_right_once_in_two(kind, || run_kind(&py, kind));
}

/// Runs `one` (a run that returns its tasks whose durations are more than 2 ms off) until a
/// run has none, twice at most: a probe that is wrong is wrong on both runs.
fn durations_right_once_in_two(kind: &str, one: impl Fn() -> Vec<String>) {
    let mut late = Vec::new();
    for _ in 0..2 {
        late = one();
        if late.is_empty() {
            return;
        }
    }
    panic!("{kind}: durations off by more than 2 ms on both runs: {late:?}");
}

/// `program` (a fixture) run by `py` with the probe loaded and its events written to the
/// plain file `events`, which is made empty first.
fn probed_to_file(py: &Path, program: &str, args: &[&OsStr], events: &Path) -> Output {
    probed_to_file_with(py, program, args, events, &[])
}

/// [`probed_to_file`] with `env` added to the program's environment.
fn probed_to_file_with(
    py: &Path,
    program: &str,
    args: &[&OsStr],
    events: &Path,
    env: &[(&str, &str)],
) -> Output {
    std::fs::write(events, "").unwrap();
    Command::new(py)
        .arg(fixture(program))
        .args(args)
        .env("POOLSCOPE_EVENTS", events)
        .env("PYTHONPATH", probe_dir())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `log --format jsonl --replay EVENTS`.
fn replayed(events: &Path) -> Output {
    Command::new(common::exe())
        .args(["log", "--format", "jsonl", "--replay"])
        .arg(events)
        .output()
        .unwrap()
}

/// The fixture `program` run by `py` without the probe.
fn alone(py: &Path, program: &str) -> Output {
    Command::new(py).arg(fixture(program)).output().unwrap()
}

/// The Python probe's directory as poolscope writes it (with its native part) and puts on
/// PYTHONPATH: one for the tests of this run, in cargo's scratch directory for tests (under
/// `target/`, which `cargo clean` empties).
fn probe_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("python-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        poolscope::source::channel::write_probe(&dir).unwrap();
        dir
    })
    .clone()
}

/// poolscope with `args`, watching `program` (a fixture) run by `py`; its stdout, once it
/// exited successfully.
fn watched_ok(args: &[&str], py: &Path, program: &str) -> String {
    let out = poolscope(args, py, &fixture(program), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    stdout
}

/// `pools.py KIND` run under `poolscope log --format jsonl` with `args` and `env`: its
/// scratch directory, its truth file, and poolscope's stdout and stderr.
fn run_pools(
    py: &Path,
    kind: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (PathBuf, PathBuf, String, String) {
    let dir = scratch(kind);
    let side = dir.join("truth.jsonl");
    let log = [&["log", "--format", "jsonl"][..], args].concat();
    let out = poolscope_within(
        common::TEST_LIMIT,
        &log,
        py,
        &fixture("pools.py"),
        &[kind, side.to_str().unwrap()],
        env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{kind}: {stderr}");
    (dir, side, stdout, stderr)
}

/// One run of [`check_kind`]: the tasks whose durations are more than 2 ms off.
fn run_kind(py: &Path, kind: &str) -> Vec<String> {
    let (dir, side, stdout, stderr) = run_pools(py, kind, &["--args"], &[]);
    let truth = truth(&side);
    let seen = seen(&stdout);
    assert!(
        truth.len() >= 9,
        "{kind}: the program ran {} tasks",
        truth.len()
    );
    assert_eq!(
        truth.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>(),
        "{kind}: the tasks\n{stdout}\n{stderr}"
    );
    let mut late = Vec::new();
    for (n, want) in &truth {
        let got = &seen[n];
        assert_eq!(
            (got.pid, got.tid, &got.error),
            (want.pid, want.tid, &want.error),
            "{kind}: task {n}'s lane and outcome"
        );
        if (got.dur_ns - want.dur_ns).abs() > 2_000_000 {
            late.push(format!(
                "task {n} took {} ns, poolscope says {} ns",
                want.dur_ns, got.dur_ns
            ));
        }
    }
    let lanes = |m: &BTreeMap<u64, Task>| -> BTreeSet<(u64, Option<u64>)> {
        m.values().map(|t| (t.pid, t.tid)).collect()
    };
    assert_eq!(lanes(&truth), lanes(&seen), "{kind}: the lanes");
    assert!(!stderr.contains("no tasks seen"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
    late
}

#[test]
fn concurrent_futures_thread_pool_tasks_on_their_threads() {
    check_kind("futures_thread", "futures-thread", &[]);
}

/// A thread that ended too soon for the kernel sampler to see it end ended with the program
/// at the latest: its lane says `exited`, never `idle`, once the program has exited.
#[test]
fn a_thread_that_ended_unseen_is_shown_exited_once_the_program_has() {
    let Some(py) = common::python_with("short_thread", &[]) else {
        return;
    };
    let out = poolscope(&["snapshot"], &py, &fixture("short_thread.py"), &[]);
    let frame = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lane = frame
        .lines()
        .find(|l| l.contains("TPE-0_0") && !l.contains(" took "))
        .unwrap_or_else(|| panic!("no lane for the pool's thread:\n{frame}"));
    assert!(
        lane.contains(" exited ") && !lane.contains(" idle "),
        "{lane}\n{frame}"
    );
}

/// Without `--args` a plain function's second call takes the probe's fast path (packed
/// records, made by the probe's native part where poolscope has one): the same tasks, lanes
/// and failures. Tasks are then named `work`, so they are matched lane by lane, in the order
/// they started.
#[test]
fn concurrent_futures_thread_pool_without_args_tasks_on_their_threads() {
    let Some(py) = common::python_with("futures_thread_without_args", &[]) else {
        return;
    };
    let kind = "futures-thread";
    durations_right_once_in_two(kind, || run_by_lane(&py, kind, &[]));
}

/// The same, with the probe's fast path done in Python (`POOLSCOPE_NATIVE=0`, as where its
/// native part cannot be loaded): the same records.
#[test]
fn concurrent_futures_thread_pool_in_python_alone_tasks_on_their_threads() {
    let Some(py) = common::python_with("futures_thread_in_python", &[]) else {
        return;
    };
    let kind = "futures-thread";
    let env = [("POOLSCOPE_NATIVE", "0")];
    durations_right_once_in_two(kind, || run_by_lane(&py, kind, &env));
}

/// Tasks a probe could get wrong (`odd_tasks.py`): work items holding a list of arguments and
/// a mapping that is not a dict (Python 3.8's submit makes the list; the native part took it
/// for a tuple: wrong results, or a crash), exceptions whose `__str__` raises `SystemExit` or
/// `KeyboardInterrupt` (the probe's reading of the message replaced the task's exception, and
/// lost the task), a task whose child goes on after a fork (it wrote a record of a name it
/// never gave). The program prints the same with the probe, native or not, as without it,
/// and the recording has the parent's 23 tasks, none refused.
#[test]
fn odd_tasks_run_as_without_the_probe_and_none_is_refused() {
    let Some(py) = common::python_with("odd_tasks", &[]) else {
        return;
    };
    let want = String::from_utf8_lossy(&alone(&py, "odd_tasks.py").stdout).into_owned();
    assert!(want.contains("forks [0, 1, 2"), "{want}");
    for native in ["1", "0"] {
        let dir = scratch("odd");
        let events = dir.join("events.jsonl");
        let env = [("POOLSCOPE_NATIVE", native)];
        let out = probed_to_file_with(&py, "odd_tasks.py", &[], &events, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "native {native}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "native {native}"
        );
        let replay = replayed(&events);
        let records = String::from_utf8_lossy(&replay.stdout);
        let stderr = String::from_utf8_lossy(&replay.stderr);
        assert!(!stderr.contains("refused"), "native {native}: {stderr}");
        let mut by_pid: BTreeMap<u64, usize> = BTreeMap::new();
        for line in records.lines().filter(|l| l.starts_with(r#"{"task""#)) {
            let v: Value = serde_json::from_str(line).unwrap();
            *by_pid.entry(v["pid"].as_u64().unwrap()).or_default() += 1;
        }
        let parent = by_pid.values().max().copied();
        assert_eq!(parent, Some(23), "native {native}: {by_pid:?}\n{records}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A function first called while poolscope has stopped reading (`name_under_pressure.py`):
/// the probe's buffer overflows and its oldest records are dropped, the record naming the
/// function among them, which goes again before its tasks. (It was lost for good, and the
/// 100 000 records of the function's tasks were refused as nameless.) Also with arguments as
/// Python 3.8 gives them, where the native part queues in chunks and the task runs the Python
/// way: the buffer is bounded in records, not entries (with the bound counted in entries
/// there, nothing was dropped and nothing bounded).
#[test]
fn a_name_dropped_with_the_buffer_is_written_again_before_its_tasks() {
    let Some(py) = common::python_with("name_under_pressure", &[]) else {
        return;
    };
    for (native, list_args) in [("1", "0"), ("0", "0"), ("1", "1")] {
        let case = format!("native {native}, list args {list_args}");
        let dir = scratch("pressure");
        let fifo = dir.join("events");
        common::mkfifo(&fifo);
        let recording = dir.join("recording.jsonl");
        let mut reader = Command::new("cat")
            .arg(&fifo)
            .stdout(std::fs::File::create(&recording).unwrap())
            .spawn()
            .unwrap();
        let out = Command::new(&py)
            .arg(fixture("name_under_pressure.py"))
            .env("POOLSCOPE_EVENTS", &fifo)
            .env("PYTHONPATH", probe_dir())
            .env("POOLSCOPE_NATIVE", native)
            .env("LIST_ARGS", list_args)
            .env("READER", reader.id().to_string())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        // The program let the reader go on; it ends at the end of what the program wrote.
        let _ = reader.wait();
        let replay = replayed(&recording);
        let records = String::from_utf8_lossy(&replay.stdout);
        let stderr = String::from_utf8_lossy(&replay.stderr);
        assert!(stderr.contains("dropped"), "{case}: {stderr}");
        assert!(!stderr.contains("refused"), "{case}: {stderr}");
        let late = records.lines().filter(|l| l.contains(r#""task":"late""#));
        assert!(late.count() > 1000, "{case}: {stderr}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A batch the probe cannot make lines of (`batch_lost.py`: its formatter raises) is counted
/// lost whole, each of its 200 packed records, not as one line (it was, and a chunk of
/// records counted as one entry would be too); the tasks around it are seen.
#[test]
fn a_batch_lost_in_the_probe_is_counted_by_its_records() {
    let Some(py) = common::python_with("batch_lost", &[]) else {
        return;
    };
    for native in ["1", "0"] {
        let dir = scratch("batch-lost");
        let events = dir.join("events.jsonl");
        let out = probed_to_file_with(
            &py,
            "batch_lost.py",
            &[],
            &events,
            &[("POOLSCOPE_NATIVE", native)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "native {native}: {stderr}");
        let text = std::fs::read_to_string(&events).unwrap();
        let dropped: u64 = text
            .lines()
            .filter(|l| l.contains(r#""ev":"dropped""#))
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["count"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(dropped, 200, "native {native}: {text}");
        let replay = replayed(&events);
        let records = String::from_utf8_lossy(&replay.stdout);
        let tasks = records
            .lines()
            .filter(|l| l.starts_with(r#"{"task""#))
            .count();
        assert_eq!(tasks, 20, "native {native}: {records}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// poolscope built on Linux has the probe's native part (`fast.c`), and the probe loads it
/// under the Python the tests run; `POOLSCOPE_NATIVE=0` keeps it out. Without this, a build
/// that lost it would pass every other test in Python alone, at several times the cost.
#[test]
fn the_probe_loads_its_native_part_where_poolscope_has_one() {
    let Some(py) = common::python_with("native_part", &[]) else {
        return;
    };
    let has = !poolscope::source::PYTHON_PROBE_NATIVE.is_empty();
    assert_eq!(has, cfg!(target_os = "linux"), "built with its native part");
    let loaded = |env: &[(&str, &str)]| {
        let out = poolscope_within(
            common::TEST_LIMIT,
            &["log"],
            &py,
            &fixture("native_part.py"),
            &[],
            env,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("native: ").map(str::to_owned))
    };
    let native = if has { "True" } else { "False" };
    assert_eq!(
        loaded(&[("POOLSCOPE_NATIVE", "1")]).as_deref(),
        Some(native)
    );
    assert_eq!(
        loaded(&[("POOLSCOPE_NATIVE", "0")]).as_deref(),
        Some("False")
    );
}

/// A thread pool's tasks whose function the probe has named are packed records (no line made
/// per task, issue 17): the recording holds `packed` lines, and its replay has each lane's
/// tasks as the program recorded them: long and quick ones, and the failure among them.
#[test]
fn packed_thread_pool_tasks_replay_as_the_program_recorded_them() {
    let Some(py) = common::python_with("packed_thread_pool_tasks", &[]) else {
        return;
    };
    durations_right_once_in_two("packed", || {
        let dir = scratch("packed");
        let (side, events) = (dir.join("truth.jsonl"), dir.join("events.jsonl"));
        let args = [OsStr::new("futures-thread"), side.as_os_str()];
        let out = probed_to_file(&py, "pools.py", &args, &events);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let text = std::fs::read_to_string(&events).unwrap();
        assert!(text.contains(r#"{"ev":"packed","#), "{text}");
        let replay = replayed(&events);
        let stdout = String::from_utf8_lossy(&replay.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&replay.stderr).into_owned();
        assert!(replay.status.success(), "{stderr}");
        assert!(stdout.contains("task 33 fails"), "{stdout}");
        let late = by_lane_late("packed", &side, &stdout, &stderr);
        let _ = std::fs::remove_dir_all(dir);
        late
    });
}

/// A lane's tasks reach poolscope in the order they ran: a task reported in lines ends, then
/// packed tasks run on the same thread before the probe's next flush. The probe wrote the
/// packed ones first, and the lane lost the earlier task (101 done of 102); and a thread whose
/// first task was packed came before the line naming it, and stayed `thread TID`.
#[test]
fn a_lanes_tasks_told_in_lines_and_packed_arrive_in_the_order_they_ran() {
    let Some(py) = common::python_with("packed_order", &[]) else {
        return;
    };
    let args = ["snapshot", "--width", "120", "--height", "30"];
    let frame = watched_ok(&args, &py, "packed_order.py");
    assert!(frame.contains("done 122/122"), "{frame}");
    assert!(
        frame.contains("│  102 done"),
        "the lane has every task: {frame}"
    );
    assert!(frame.contains("second_0"), "{frame}");
    assert!(!frame.contains("thread "), "{frame}");
}

/// A task's CPU time is measured unless the last task of its name was tiny (the clock costs
/// more than such a task): the slow task that follows tiny ones on the same thread has it,
/// and on that thread a tiny task has it exactly when the tiny task before it took 0.1 ms
/// or more (the first, its name's first, always; a thread's first task can take that long).
#[test]
fn cpu_time_is_measured_by_name_not_lost_after_tiny_tasks() {
    let Some(py) = common::python_with("cpu_by_name", &[]) else {
        return;
    };
    let stdout = watched_ok(&["log", "--format", "jsonl"], &py, "packed_order.py");
    let first_pool: Vec<Value> = stdout
        .lines()
        .filter(|l| l.contains(r#""worker":"ThreadPoolExecutor-0_0""#))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let slow: Vec<_> = first_pool.iter().filter(|t| t["task"] == "slow").collect();
    assert!(
        slow.len() == 1 && slow[0].get("cpu_s").is_some(),
        "{stdout}"
    );
    let quick: Vec<(bool, f64)> = first_pool
        .iter()
        .filter(|t| t["task"] == "quick")
        .map(|t| {
            let wall = t["end_s"].as_f64().unwrap() - t["start_s"].as_f64().unwrap();
            (t.get("cpu_s").is_some(), wall)
        })
        .collect();
    assert_eq!(quick.len(), 101, "{stdout}");
    assert!(quick[0].0, "{stdout}");
    for pair in quick.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 >= 100e-6, "{pair:?}\n{stdout}");
    }
}

/// The probe's names of packed tasks are kept by code, not by function: 3000 lambdas made in
/// a loop, each holding an object, are one name and none of them is kept alive; a plain
/// function after them still has its tasks packed. (By function, the probe kept 1087 of the
/// objects alive, wrote 1087 names past its bound of 1024, and packed nothing after.)
#[test]
fn names_of_packed_tasks_keep_no_function_alive_and_stay_bounded() {
    let Some(py) = common::python_with("names_bound", &[]) else {
        return;
    };
    let dir = scratch("names");
    let events = dir.join("events.jsonl");
    let out = probed_to_file(&py, "names_bound.py", &[], &events);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alive 0\n",
        "{stderr}"
    );
    let text = std::fs::read_to_string(&events).unwrap();
    let names = text
        .lines()
        .filter(|l| l.contains(r#""ev":"name""#))
        .count();
    assert!((1..=3).contains(&names), "{names} names");
    assert!(text.contains(r#""ev":"packed""#), "hot's tasks are packed");
    let replay = replayed(&events);
    let records = String::from_utf8_lossy(&replay.stdout);
    let tasks = records
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .count();
    assert_eq!(tasks, 4000, "{}", String::from_utf8_lossy(&replay.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

/// A packed task waiting in a thread pool's queue holds no object the garbage collector
/// tracks beyond what the stdlib's own queued task holds: `gc_tracked.py` prints the
/// collector's count per queued task, and the count with the probe must be the count
/// without it. (A tuple per task made it one more, and a program with many objects alive ran
/// its full collection several times as often.)
#[test]
fn queued_packed_tasks_give_the_garbage_collector_nothing_more_to_track() {
    let Some(py) = common::python_with("gc_tracked", &[]) else {
        return;
    };
    let tracked = |out: &Output| -> f64 {
        let text = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        text.trim()
            .strip_prefix("tracked ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}{stderr}"))
    };
    let alone = alone(&py, "gc_tracked.py");
    let dir = scratch("gc");
    let events = dir.join("events.jsonl");
    let probed = probed_to_file(&py, "gc_tracked.py", &[], &events);
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.contains(r#""ev":"packed""#), "hot's tasks are packed");
    let (alone, probed) = (tracked(&alone), tracked(&probed));
    // A flush of the probe's may run while the tasks are queued: its own objects are freed
    // once it is done, but one caught midway counts a few among 2000 tasks.
    assert!(
        probed - alone < 0.5,
        "{probed} tracked objects per queued task with the probe, {alone} without"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A fork while a thread pool has tasks queued: the child runs the tasks it inherited, and
/// the probe changes none of their outcomes (it cleared its names in the child and failed 17
/// of them with `IndexError`), and their records are taken, none refused, each run its own.
#[test]
fn a_forked_child_runs_the_packed_tasks_it_inherited_as_the_program_would() {
    let Some(py) = common::python_with("fork_queued", &[]) else {
        return;
    };
    let alone = alone(&py, "fork_queued.py");
    let dir = scratch("fork");
    let events = dir.join("events.jsonl");
    let probed = probed_to_file(&py, "fork_queued.py", &[], &events);
    let said = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(said(&alone), "child: ok 23, failed 0, not done 3\n");
    assert_eq!(
        said(&probed),
        said(&alone),
        "{}",
        String::from_utf8_lossy(&probed.stderr)
    );
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.contains(r#""ev":"packed""#), "the tasks were packed");
    let replay = replayed(&events);
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{stderr}");
    assert!(!stderr.contains("refused"), "{stderr}");
    // Each process's runs are its own tasks: the child's run of a task queued as a line in
    // the parent had the parent's id, and one run of each such pair was lost or merged.
    let records = String::from_utf8_lossy(&replay.stdout);
    let tasks = records
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .count();
    assert_eq!(tasks, 27 + 23, "{records}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Tasks still running when the program exits end failed at the program's end, not at the
/// last event poolscope had (the hostile tester: 2-second tasks cut by an exit at 0.5 s were
/// shown 50 ms and 0.06 ms long): each lasts from its start to the exit the program recorded,
/// give or take the time poolscope takes to see the exit.
#[test]
fn tasks_cut_by_the_programs_exit_end_at_its_exit() {
    let Some(py) = common::python_with("exit_midway", &[]) else {
        return;
    };
    let dir = scratch("exit");
    let side = dir.join("truth.jsonl");
    let out = poolscope(
        &["log", "--format", "jsonl"],
        &py,
        &fixture("exit_midway.py"),
        &[side.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let truth: Vec<Value> = std::fs::read_to_string(&side)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let exit = truth.iter().find_map(|v| v["exit"].as_i64()).unwrap();
    let mut want: Vec<f64> = truth
        .iter()
        .filter_map(|v| v["start"].as_i64())
        .map(|s| (exit - s) as f64 / 1e9)
        .collect();
    let mut got: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .inspect(|v| assert_eq!(v["outcome"], "failed", "{v}"))
        .map(|v| v["end_s"].as_f64().unwrap() - v["start_s"].as_f64().unwrap())
        .collect();
    want.sort_by(f64::total_cmp);
    got.sort_by(f64::total_cmp);
    assert_eq!(got.len(), 2, "{stderr}");
    for (g, w) in got.iter().zip(&want) {
        // Seen after the exit by at most the time the reaping takes; never before it.
        assert!(*g >= w - 0.002 && *g <= w + 0.1, "{got:?} vs {want:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A recording to a FIFO whose reader comes late (`POOLSCOPE_EVENTS=fifo`, `cat fifo` started
/// after the program) starts with its header, then says what was dropped: the header was
/// written once, to no reader, and lost, and nothing after it could be read ("no
/// traceEvents array"). Nor does each failed write of a name use up another number: `noop`
/// was named as 0, 1, … 63 in one such run, on the way to the bound of 1024 names. And what
/// was lost is told where the loss began.
#[test]
fn a_fifo_read_late_records_its_header_first_and_names_once() {
    use std::io::Read as _;
    let Some(py) = common::python_with("many", &[]) else {
        return;
    };
    let dir = scratch("late");
    let fifo = dir.join("events");
    common::mkfifo(&fifo);
    let mut program = Command::new(&py)
        .arg(fixture("many.py"))
        .arg("30000")
        .env("POOLSCOPE_EVENTS", &fifo)
        .env("PYTHONPATH", probe_dir())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut text = String::new();
    std::fs::File::open(&fifo)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(program.wait().unwrap().success());
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with(r#"{"poolscope":1"#), "{first}");
    let numbers: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.contains(r#""ev":"name""#))
        .filter_map(|l| l.split(r#""n":"#).nth(1)?.split(',').next())
        .collect();
    assert_eq!(numbers, BTreeSet::from(["0"]), "noop, the only name, is 0");
    // What was lost before the reader came is told at the time the loss began, before every
    // task the recording holds (it was the time of the telling, after the first of them).
    let recording = dir.join("recording.jsonl");
    std::fs::write(&recording, &text).unwrap();
    let replay = replayed(&recording);
    let records = String::from_utf8_lossy(&replay.stdout);
    let first = |prefix: &str| records.lines().position(|l| l.starts_with(prefix));
    let (lost, task) = (first(r#"{"dropped""#), first(r#"{"task""#));
    assert!(lost.is_some(), "events were lost before the reader came");
    assert!(task.is_some_and(|task| lost < Some(task)), "{records}");
    let _ = std::fs::remove_dir_all(dir);
}

/// One run of `pools.py KIND` without `--args`, each lane's tasks compared in start order;
/// returns the tasks whose durations are more than 2 ms off.
fn run_by_lane(py: &Path, kind: &str, env: &[(&str, &str)]) -> Vec<String> {
    let (dir, side, stdout, stderr) = run_pools(py, kind, &[], env);
    let late = by_lane_late(kind, &side, &stdout, &stderr);
    let _ = std::fs::remove_dir_all(dir);
    late
}

/// The program's truth file `side` and poolscope's records `stdout` compared lane by lane,
/// in start order: the same lanes with the same failures in the same places; returns the
/// tasks whose durations are more than 2 ms off.
fn by_lane_late(kind: &str, side: &Path, stdout: &str, stderr: &str) -> Vec<String> {
    let truth = by_lane(truth_starts(side));
    let mut seen = Started::new();
    for line in stdout.lines().filter(|l| l.starts_with("{\"task\"")) {
        let (start, task) = seen_task(line);
        seen.entry((task.pid, task.tid))
            .or_default()
            .push(((start * 1e9) as i64, task));
    }
    let seen = by_lane(seen);
    assert!(
        truth.values().map(Vec::len).sum::<usize>() >= 12,
        "{kind}: {truth:?}"
    );
    let errors = |m: &BTreeMap<Lane, Vec<Task>>| -> Vec<_> {
        m.iter()
            .map(|(lane, tasks)| {
                (
                    *lane,
                    tasks.iter().map(|t| t.error.clone()).collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    assert_eq!(
        errors(&truth),
        errors(&seen),
        "{kind}: each lane's tasks\n{stdout}\n{stderr}"
    );
    let mut late = Vec::new();
    for (lane, tasks) in &truth {
        for (want, got) in tasks.iter().zip(&seen[lane]) {
            if (got.dur_ns - want.dur_ns).abs() > 2_000_000 {
                late.push(format!(
                    "{lane:?}: {} ns, poolscope says {} ns",
                    want.dur_ns, got.dur_ns
                ));
            }
        }
    }
    late
}

/// A lane: its pid, and its thread's tid (`None` for a process lane).
type Lane = (u64, Option<u64>);

/// Tasks with their start times (any unit), by lane.
type Started = BTreeMap<Lane, Vec<(i64, Task)>>;

/// The program's own records with their start times, by lane.
fn truth_starts(path: &Path) -> Started {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Started::new();
    for line in text.lines() {
        let (start, task) = truth_task(&serde_json::from_str(line).unwrap());
        out.entry((task.pid, task.tid))
            .or_default()
            .push((start, task));
    }
    out
}

/// Each lane's tasks in the order they started.
fn by_lane(lanes: Started) -> BTreeMap<Lane, Vec<Task>> {
    lanes
        .into_iter()
        .map(|(lane, mut tasks)| {
            tasks.sort_by_key(|(start, _)| *start);
            (lane, tasks.into_iter().map(|(_, t)| t).collect())
        })
        .collect()
}

#[test]
fn concurrent_futures_process_pool_chunked_map_one_task_per_call_fork() {
    check_kind("futures_process_fork", "futures-process-fork", &[]);
}

#[test]
fn concurrent_futures_process_pool_chunked_map_one_task_per_call_spawn() {
    check_kind("futures_process_spawn", "futures-process-spawn", &[]);
}

#[test]
fn multiprocessing_pool_every_method_fork() {
    check_kind("mp_pool_fork", "mp-pool-fork", &[]);
}

#[test]
fn multiprocessing_pool_every_method_spawn() {
    check_kind("mp_pool_spawn", "mp-pool-spawn", &[]);
}

#[test]
fn multiprocessing_pool_every_method_forkserver() {
    check_kind("mp_pool_forkserver", "mp-pool-forkserver", &[]);
}

#[test]
fn multiprocessing_thread_pool_every_method() {
    check_kind("mp_threadpool", "mp-threadpool", &[]);
}

#[test]
fn joblib_loky() {
    check_kind("joblib_loky", "joblib-loky", &["joblib"]);
}

#[test]
fn joblib_threading() {
    check_kind("joblib_threading", "joblib-threading", &["joblib"]);
}

#[test]
fn joblib_multiprocessing() {
    check_kind(
        "joblib_multiprocessing",
        "joblib-multiprocessing",
        &["joblib"],
    );
}

// ---- workers that die, and the program's own descriptors and modules ----------------------

/// `pools.py`'s kin `dying.py HOW`: the dying task fails with the worker's end, on its lane.
fn check_death(test: &str, how: &str, status: &str) {
    let Some(py) = common::python_with(test, &[]) else {
        return;
    };
    let dir = scratch(how);
    let side = dir.join("pid");
    let out = poolscope(
        &["log", "--format", "jsonl"],
        &py,
        &fixture("dying.py"),
        &[how, side.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{how}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u64 = std::fs::read_to_string(&side)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let records: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let died: Vec<&Value> = records.iter().filter(|r| r["task"] == "die").collect();
    assert_eq!(died.len(), 1, "{how}: {stdout}");
    assert_eq!(died[0]["pid"].as_u64(), Some(pid), "{how}: its lane");
    assert_eq!(died[0]["outcome"], "failed", "{how}: {stdout}");
    let error = died[0]["error"].as_str().unwrap();
    assert!(error.ends_with(status), "{how}: {error}");
    assert!(
        records
            .iter()
            .any(|r| r["task"] == "fine" && r["outcome"] == "ok"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_process_pool_worker_that_exits_mid_task_fails_its_task_with_the_exit_status() {
    check_death("dying_exit", "exit", "exit 7");
}

#[test]
fn a_process_pool_worker_killed_mid_task_fails_its_task_with_the_signal() {
    check_death("dying_sigkill", "sigkill", "killed by SIGKILL");
}

#[test]
fn a_multiprocessing_pool_worker_that_exits_mid_task_fails_its_task() {
    check_death("dying_mp_exit", "mp-exit", "exit 7");
}

/// Issue 22.8: with the probe, a `ProcessPoolExecutor.map` whose worker SIGKILLs itself hung
/// at shutdown in about 1 run of 10 (`InvalidStateError` in the executor's manager thread).
#[test]
fn a_process_pool_worker_that_sigkills_itself_never_hangs_the_program() {
    let Some(py) = common::python_with("sigkill_map", &[]) else {
        return;
    };
    for run in 0..12 {
        let out = poolscope(&["log"], &py, &fixture("sigkill_map.py"), &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "run {run}");
        assert!(stdout.contains("BrokenProcessPool"), "run {run}: {stdout}");
    }
}

/// Issue 22.4: a program that closes descriptors from 3 up and puts a file of its own on
/// every number got the probe's JSON lines written into its file.
#[test]
fn the_probe_never_writes_into_a_descriptor_the_program_reused() {
    let Some(py) = common::python_with("closes_fds", &[]) else {
        return;
    };
    let dir = scratch("fds");
    let own = dir.join("own.txt");
    let out = poolscope(
        &["log", "--format", "jsonl"],
        &py,
        &fixture("closes_fds.py"),
        &[own.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&own).unwrap(),
        "the program's own line\n"
    );
    // The probe reopened its channel: the tasks after the program's closes are seen too.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tasks = stdout
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .count();
    assert_eq!(tasks, 300, "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 22.13: the probe imported `json` before the program, so a program's own json.py
/// beside it was shadowed by the standard library's.
#[test]
fn a_programs_own_json_module_is_not_shadowed_by_the_probe() {
    let Some(py) = common::python_with("own_json", &[]) else {
        return;
    };
    let out = poolscope(
        &["log", "--format", "jsonl"],
        &py,
        &fixture("own_json/main.py"),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("{\"task\":\"sq\""))
            .count(),
        10
    );
}

/// A program using no pool the probe watches is told so, never a silent "0 tasks".
#[test]
fn a_program_without_a_watched_pool_is_told_no_tasks_were_seen() {
    let Some(py) = common::python_with("no_tasks", &[]) else {
        return;
    };
    let dir = scratch("none");
    let program = dir.join("plain.py");
    std::fs::write(
        &program,
        "import threading\nthreading.Thread(target=print).start()\n",
    )
    .unwrap();
    let out = poolscope(&["log"], &py, &program, &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no tasks seen: poolscope watches concurrent.futures, multiprocessing, joblib and \
             Dask in Python programs; see --help"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 22.10: 200 000 tiny tasks: about 150 000 events were dropped, and then tasks and
/// the whole run were marked "cancelled" although the program exited 0. Then, under load,
/// about one run in two lost a task: its line was refused for a `cpu_ns` over its wall time
/// (the probe read the CPU clock around the wall clock's window, not inside it; see
/// [`cpu_charged_between_the_probes_clock_reads_loses_no_task`]). Now every task is seen
/// done, nothing is refused, and only events the program itself dropped and counted (said in
/// the header) may be missing.
#[test]
fn two_hundred_thousand_tiny_tasks_end_finished_and_none_cancelled() {
    let Some(py) = common::python_with("many", &[]) else {
        return;
    };
    let out = poolscope_within(
        Duration::from_secs(180),
        &["snapshot"],
        &py,
        &fixture("many.py"),
        &["200000"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let header: String = stdout.lines().take(2).collect::<Vec<_>>().join("\n");
    assert!(header.contains("finished"), "{header}");
    assert!(!header.contains("cancelled"), "{header}");
    assert!(!header.contains("failed"), "{header}");
    if !header.contains("done 200000/200000") {
        assert!(header.contains("events lost"), "{header}\n{stderr}");
    }
    assert!(!stderr.contains("refused"), "{header}\n{stderr}");
}

/// A process worker's failed task is written by the worker itself before its pool can end
/// it (`end_while_flushing.py`: its flusher holds the channel's lock at that moment).
#[test]
fn a_process_workers_task_end_is_written_before_its_pool_can_end_it() {
    let Some(py) = common::python_with("end_while_flushing", &[]) else {
        return;
    };
    let out = poolscope(
        &["log", "--format", "jsonl"],
        &py,
        &fixture("end_while_flushing.py"),
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let tasks: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tasks.len(), 1, "{stdout}\n{stderr}");
    assert_eq!(tasks[0]["outcome"], "failed", "{stdout}");
    assert_eq!(tasks[0]["error"], "ValueError: task 7 fails", "{stdout}");
}

/// Issue 17/22.10, the cause of the tasks lost under load: CPU time the kernel charges to a
/// worker thread between the probe's clock reads (an interrupt, a host's steal) made a task's
/// `cpu_ns` exceed its wall time, and poolscope refused the task. `charged_cpu.py` makes that
/// happen on every task (1.5 ms of the thread's CPU around each CPU-clock read); all 30
/// tasks were refused before the probe read its CPU clock inside the wall clock's window.
#[test]
fn cpu_charged_between_the_probes_clock_reads_loses_no_task() {
    let Some(py) = common::python_with("charged_cpu", &[]) else {
        return;
    };
    let dir = scratch("charged");
    let side = dir.join("truth.jsonl");
    let out = poolscope(
        &["log", "--format", "jsonl", "--args"],
        &py,
        &fixture("charged_cpu.py"),
        &[side.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("refused"), "{stderr}");
    let truth = truth(&side);
    let seen = seen(&stdout);
    assert_eq!(truth.len(), 30);
    assert_eq!(
        truth.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>(),
        "{stdout}\n{stderr}"
    );
    for (n, want) in &truth {
        let got = &seen[n];
        assert_eq!(
            (got.pid, got.tid, &got.error),
            (want.pid, want.tid, &want.error)
        );
        // The probe's window holds the task's own (and here the charged CPU besides).
        assert!(got.dur_ns >= want.dur_ns, "task {n}: {got:?} {want:?}");
    }
    for line in stdout.lines().filter(|l| l.starts_with("{\"task\"")) {
        let v: Value = serde_json::from_str(line).unwrap();
        let wall = v["end_s"].as_f64().unwrap() - v["start_s"].as_f64().unwrap();
        let cpu = v["cpu_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("no cpu_s: {line}"));
        // Each task spent at least the 3 ms charged around its two reads, within its wall.
        assert!((0.003..=wall + 1e-6).contains(&cpu), "{line}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A task that runs for a while is seen running before it ends (the probe reports its start
/// from its worker's slot; a quick task is one `task_ran` line): the program reads its own
/// events 0.3 s into a 0.6 s task and finds its start; the recording replays with every task.
#[test]
fn a_long_task_is_reported_started_before_it_ends() {
    let Some(py) = common::python_with("long_task_start", &[]) else {
        return;
    };
    let dir = scratch("long");
    let events = dir.join("events.jsonl");
    let out = probed_to_file(&py, "long_task_start.py", &[events.as_os_str()], &events);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "started 1\ndone\n");
    let replay = replayed(&events);
    let records = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let tasks: Vec<&str> = records
        .lines()
        .filter(|l| l.starts_with("{\"task\""))
        .collect();
    assert_eq!(tasks.len(), 51, "{records}");
    assert!(
        tasks.iter().all(|l| l.contains("\"outcome\":\"ok\"")),
        "{records}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
