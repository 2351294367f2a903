//! Sources wired into poolscope, end to end through the binary: `log`/`snapshot` of a real
//! Python program watched live (`-- PROGRAM`), of every fixture format replayed
//! (`--replay`), the round trip through `--trace`, and bad input. Plus frames of a replayed
//! Ray timeline and of a live Python run, snapshotted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use poolscope::event::RunSource;
use poolscope::model::Model;
use poolscope::source::adapt::{Adapter, external_config, replay_events, run_started};
use poolscope::source::{ReadOptions, read_file};
use poolscope::view::{self, ViewState, text::buffer_to_text};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn poolscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poolscope"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `python3`, or `None` after saying loudly that the live tests are skipped.
fn python3() -> Option<&'static str> {
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => Some("python3"),
        _ => {
            eprintln!("SKIPPED: python3 is not installed, so programs are not watched live");
            None
        }
    }
}

/// The example-style task lines of a log: (who, logger, message) for `running`/`done`/`failed`.
fn task_lines(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .filter_map(|l| {
            // names may hold ": " themselves (a joblog's commands), messages only after "failed"
            let cut = ["running", "done"]
                .iter()
                .find_map(|m| l.strip_suffix(m)?.strip_suffix(": ").map(str::len))
                .or_else(|| l.rfind(": failed: "))?;
            let (head, message) = (&l[..cut], l[cut + 2..].to_string());
            let mut words: Vec<&str> = head.split_whitespace().collect();
            let logger = words.pop()?.to_string();
            Some((words.join(" "), logger, message))
        })
        .collect()
}

fn count(lines: &[(String, String, String)], logger: &str, message: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.1 == logger && l.2 == message)
        .count()
}

// ---- a program, live -------------------------------------------------------------------------

#[test]
fn log_of_the_seed_thread_program_shows_three_lanes_and_six_blocks_tasks() {
    let Some(py) = python3() else { return };
    let program = fixture("python/asyncio_executor_thread.py");
    let out = poolscope(&["log", "--", py, program.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // the program's own log passes through
    assert!(
        stderr.contains("run_blocking_tasks: results: ["),
        "{stderr}"
    );
    let lines = task_lines(&stdout);
    assert_eq!(count(&lines, "blocks", "running"), 6, "{stdout}");
    assert_eq!(count(&lines, "blocks", "done"), 6, "{stdout}");
    let lanes: BTreeSet<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(lanes.len(), 3, "{stdout}");
    assert!(lanes.iter().all(|l| l.starts_with("ThreadPoolExecutor-0_")));

    // with --args the example's own logger names come back: blocks(0)…blocks(5)
    let out = poolscope(&["log", "--args", "--", py, program.to_str().unwrap()]);
    let lines = task_lines(&text(&out.stdout));
    let calls: BTreeSet<&str> = lines.iter().map(|l| l.1.as_str()).collect();
    let want: BTreeSet<String> = (0..6).map(|n| format!("blocks({n})")).collect();
    assert_eq!(calls, want.iter().map(String::as_str).collect());
}

#[test]
fn log_of_the_seed_process_program_shows_the_real_worker_pids() {
    let Some(py) = python3() else { return };
    let program = fixture("python/asyncio_executor_process.py");
    let out = poolscope(&["log", "--", py, program.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines = task_lines(&stdout);
    assert_eq!(count(&lines, "blocks", "running"), 6, "{stdout}");
    let ours: HashSet<u32> = lines
        .iter()
        .map(|l| l.0.strip_prefix("PID ").unwrap().parse().unwrap())
        .collect();
    // `PID 29895          blocks(0): running`: the PIDs the program itself logs
    let theirs: HashSet<u32> = stderr
        .lines()
        .filter(|l| l.contains("blocks("))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs);
}

/// The six-task program's report: its PID and, per finished task, [n, pid, ppid, tid, gppid].
fn report(stdout: &str) -> (u32, Vec<Vec<i64>>) {
    let line = stdout.lines().find(|l| l.starts_with('{')).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let done = v["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect();
    (v["pid"].as_u64().unwrap() as u32, done)
}

#[test]
fn log_of_a_process_pool_shows_workers_that_were_children_of_the_program_and_a_failure() {
    let Some(py) = python3() else { return };
    let program = fixture("python/six_tasks.py");
    let out = poolscope(&["log", "--", py, program.to_str().unwrap(), "fork"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let (pid, done) = report(&stdout);
    let lines = task_lines(&stdout);
    let lanes: BTreeSet<u32> = lines
        .iter()
        .map(|l| l.0.strip_prefix("PID ").unwrap().parse().unwrap())
        .collect();
    let workers: BTreeSet<u32> = done.iter().map(|d| d[1] as u32).collect();
    assert_eq!(lanes, workers, "{stdout}");
    assert_eq!(lanes.len(), 3);
    assert!(
        done.iter().all(|d| d[2] == i64::from(pid)),
        "children of the program"
    );
    assert!(!lanes.contains(&pid));
    assert_eq!(count(&lines, "work", "running"), 6, "{stdout}");
    assert_eq!(count(&lines, "work", "done"), 5, "{stdout}");
    let failed: Vec<_> = lines.iter().filter(|l| l.2.starts_with("failed")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert_eq!(failed[0].2, "failed: ValueError: task 4 fails");
}

#[test]
fn snapshot_of_a_live_thread_pool_shows_its_lanes_tasks_and_failure() {
    let Some(py) = python3() else { return };
    let program = fixture("python/six_tasks.py");
    // The probe's lanes alone (no kernel lanes for the main thread and the interpreter's).
    let args = [
        "snapshot",
        "--state-ms",
        "0",
        "--",
        py,
        program.to_str().unwrap(),
        "thread",
    ];
    let out = poolscope(&args);
    let frame = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(frame.contains(" PROGRAM "), "{frame}");
    assert!(frame.contains("3 lanes"), "{frame}");
    assert!(frame.contains("done 6/6"), "{frame}");
    assert!(frame.contains("failed 1"), "{frame}");
    // long thread names are shortened alike: `TPE-0_0 41234`
    assert!(frame.contains("TPE-0_0 "), "{frame}");
    assert!(
        frame.contains("ThreadPoolExecutor-0_0 "),
        "the log names them in full: {frame}"
    );
    assert!(frame.contains("work ×6"), "{frame}");
    // the program's stdout is in the log panel, not on poolscope's
    assert!(frame.contains("{\"pid\":"), "{frame}");
}

#[test]
fn a_failing_program_passes_its_exit_status_on() {
    let Some(py) = python3() else { return };
    let out = poolscope(&["log", "--", py, "-c", "import sys; sys.exit(3)"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("exit 3"), "{stderr}");
    let out = poolscope(&["log", "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/program"), "{stderr}");
}

fn alive(pid: u32) -> bool {
    // A zombie has ended; only its parent's reaping is left.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[test]
fn no_process_of_the_program_outlives_poolscope() {
    let Some(py) = python3() else { return };
    let script = "import concurrent.futures as cf, time\n\
        with cf.ProcessPoolExecutor(2) as p:\n    list(p.map(time.sleep, [60, 60]))\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolscope"))
        .args(["log", "--", py, "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut workers = BTreeSet::new();
    let mut line = String::new();
    while workers.len() < 2 && stdout.read_line(&mut line).unwrap() > 0 {
        if let Some((who, _)) = line.split_once(": running")
            && let Some(pid) = who.split_whitespace().nth(1)
        {
            workers.insert(pid.parse::<u32>().unwrap());
        }
        line.clear();
    }
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|&p| alive(p)));
    // SAFETY: signalling our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let deadline = Instant::now() + Duration::from_secs(20);
    while workers.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = workers.iter().filter(|&&p| alive(p)).collect();
    assert!(left.is_empty(), "workers {left:?} outlived poolscope");
}

// ---- recordings, replayed --------------------------------------------------------------------

const FIXTURES: &[&str] = &[
    "chrome/viztracer_thread.json",
    "chrome/viztracer_process.json",
    "chrome/viztracer_six_thread.json",
    "chrome/pyspy_thread.json",
    "chrome/tracing_chrome_tokio.json",
    "chrome/ray_timeline.json",
    "dask/task_stream.json",
    "joblog/parallel.joblog",
    "poolscope/trace_thread.json",
    "poolscope/trace_process.json",
    "poolscope/probe_seed_thread.jsonl",
    "poolscope/probe_seed_process.jsonl",
];

#[test]
fn snapshot_of_every_fixture_format_shows_its_lanes_and_tasks() {
    for rel in FIXTURES {
        let rec = read_file(&fixture(rel), &ReadOptions::default()).unwrap();
        let path = fixture(rel);
        let out = poolscope(&["snapshot", "--replay", path.to_str().unwrap()]);
        let frame = text(&out.stdout);
        assert!(out.status.success(), "{rel}: {}", text(&out.stderr));
        assert!(frame.contains(" REPLAY "), "{rel}:\n{frame}");
        let lanes = format!(" {} lane", rec.lanes.len());
        assert!(frame.contains(&lanes), "{rel} has{lanes}s:\n{frame}");
        let done = rec.tasks.iter().filter(|t| t.end_ns.is_some()).count();
        let tasks = format!("done {done}/{}", rec.tasks.len());
        assert!(frame.contains(&tasks), "{rel}: {tasks}\n{frame}");
        let failed = rec.tasks.iter().filter(|t| t.error.is_some()).count();
        if failed > 0 {
            assert!(
                frame.contains(&format!("failed {failed}")),
                "{rel}:\n{frame}"
            );
        }
    }
    // and what they hold, for a few known ones
    let frame = text(
        &poolscope(&[
            "snapshot",
            "--replay",
            fixture("chrome/ray_timeline.json").to_str().unwrap(),
        ])
        .stdout,
    );
    assert!(
        frame.contains("3 lanes") && frame.contains("done 7/7"),
        "{frame}"
    );
    assert!(frame.contains("worker e6db0cc6"), "{frame}");
    let frame = text(
        &poolscope(&[
            "snapshot",
            "--replay",
            fixture("joblog/parallel.joblog").to_str().unwrap(),
        ])
        .stdout,
    );
    assert!(
        frame.contains("slot 3") && frame.contains("failed 2"),
        "{frame}"
    );
}

#[test]
fn a_trace_round_trip_gives_the_same_tasks_on_the_same_lanes() {
    let dir = std::env::temp_dir().join(format!("poolscope-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // the built-in experiment, recorded, then replayed
    let first = dir.join("run.json");
    let out = poolscope(&[
        "log",
        "--task-ms",
        "20",
        "--tasks",
        "8",
        "--workload",
        "fail",
        "--trace",
        first.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let live = task_lines(&text(&out.stdout));
    let out = poolscope(&["log", "--replay", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed = task_lines(&text(&out.stdout));
    let by_task = |lines: &[(String, String, String)]| -> BTreeMap<String, (String, String)> {
        lines
            .iter()
            .filter(|l| l.2 != "running")
            .map(|l| (l.1.clone(), (l.0.clone(), l.2.clone())))
            .collect()
    };
    assert_eq!(by_task(&replayed), by_task(&live));
    assert_eq!(by_task(&live).len(), 8);
    // every fixture: replayed into a trace, the trace replays the same log
    for rel in FIXTURES {
        let trace = dir.join("again.json");
        let path = fixture(rel);
        let once = poolscope(&[
            "log",
            "--replay",
            path.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ]);
        assert!(once.status.success(), "{rel}: {}", text(&once.stderr));
        let twice = poolscope(&["log", "--replay", trace.to_str().unwrap()]);
        assert!(twice.status.success(), "{rel}: {}", text(&twice.stderr));
        let (a, b) = (
            task_lines(&text(&once.stdout)),
            task_lines(&text(&twice.stdout)),
        );
        assert!(!a.is_empty(), "{rel}");
        let sorted = |mut v: Vec<(String, String, String)>| {
            v.sort();
            v
        };
        assert_eq!(sorted(a), sorted(b), "{rel}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_replay_input_is_one_line_and_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("poolscope-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let garbage = write("garbage.bin", b"\x00\x01\x02 not a recording at all");
    let empty = write("empty.json", b"");
    let no_tasks = write(
        "none.json",
        b"[{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"x\"}}]",
    );
    let header = write("v9.jsonl", b"{\"poolscope\":9}\n");
    let viz = fixture("chrome/viztracer_thread.json");
    let viz = viz.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["log", "--replay", "/nonexistent/run.json"],
            "/nonexistent/run.json",
        ),
        (vec!["log", "--replay", &garbage], "garbage.bin"),
        (vec!["snapshot", "--replay", &empty], "empty.json"),
        (vec!["log", "--replay", &no_tasks], "none.json"),
        (vec!["log", "--replay", &header], "v9.jsonl"),
        (
            vec!["log", "--replay", viz, "--replay-format", "joblog"],
            "viztracer_thread.json",
        ),
        (vec!["log", "--replay", viz, "--task", "("], "--task"),
        (vec!["log", "--replay", viz, "--workers", "4"], "--workers"),
        (vec!["log", "--replay", viz, "--", "python3"], "--replay"),
    ];
    for (args, names) in cases {
        let out = poolscope(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

// ---- frames --------------------------------------------------------------------------------

fn render(model: &Model, w: u16, h: u16) -> String {
    let now = model
        .run
        .as_ref()
        .and_then(|r| r.ended_at)
        .unwrap_or_default();
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| view::draw(f, model, &ViewState::default(), now))
        .unwrap();
    buffer_to_text(terminal.backend().buffer())
}

#[test]
fn frame_of_a_replayed_ray_timeline() {
    let path = fixture("chrome/ray_timeline.json");
    let rec = read_file(&path, &ReadOptions::default()).unwrap();
    let source = RunSource::Replay {
        file: "ray_timeline.json".into(),
        format: "chrome".into(),
        producer: rec.producer.clone(),
    };
    let mut model = Model::new();
    for ev in replay_events(&rec, 1, 0, source, 4242) {
        model.apply(&ev);
    }
    insta::assert_snapshot!(render(&model, 120, 30));
}

/// A recording's model as the dashboard takes it in: run 1, every span kept when `whole`.
fn replayed(file: &str, format: &str, whole: bool) -> Model {
    let path = fixture(file);
    let rec = read_file(&path, &ReadOptions::default()).unwrap();
    replayed_rec(&rec, file, format, whole)
}

fn replayed_rec(
    rec: &poolscope::source::Recording,
    file: &str,
    format: &str,
    whole: bool,
) -> Model {
    let source = RunSource::Replay {
        file: file.into(),
        format: format.into(),
        producer: rec.producer.clone(),
    };
    let mut model = Model::new();
    if whole {
        model.keep_every_span();
    }
    for ev in replay_events(rec, 1, 0, source, 4242) {
        model.apply(&ev);
    }
    model
}

#[test]
fn a_replay_explored_whole_is_drawn_in_detail_anywhere_in_it() {
    // 3 000 tasks of 100 µs on one thread, every 150 µs, the 1 501st failing: far more than
    // the 256 spans a live lane keeps, so its middle is coarse unless every span is kept.
    let dir = std::env::temp_dir().join(format!("poolscope-whole-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("steps.json");
    let events: Vec<String> = (0..3000u64)
        .map(|i| {
            let args = if i == 1500 {
                r#","args":{"error":"ValueError: boom"}"#
            } else {
                ""
            };
            format!(
                r#"{{"ph":"X","name":"step","pid":1,"tid":7,"ts":{},"dur":100{args}}}"#,
                i * 150
            )
        })
        .collect();
    std::fs::write(&path, format!("{{\"traceEvents\":[{}]}}", events.join(","))).unwrap();
    let rec = read_file(&path, &ReadOptions::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(rec.tasks.len(), 3000);
    // Zoomed ×256 with the failed task (225.0 ms) in the middle of the window.
    let state = ViewState {
        zoom: 8,
        follow: false,
        anchor: Duration::from_millis(226),
        ..ViewState::default()
    };
    let draw = |model: &Model| {
        let now = model
            .run
            .as_ref()
            .and_then(|r| r.ended_at)
            .unwrap_or_default();
        let mut terminal = Terminal::new(TestBackend::new(100, 14)).unwrap();
        terminal
            .draw(|f| view::draw(f, model, &state, now))
            .unwrap();
        buffer_to_text(terminal.backend().buffer())
    };
    let whole = replayed_rec(&rec, "steps.json", "chrome", true);
    let archive = whole.run.as_ref().and_then(|r| r.archive.as_ref()).unwrap();
    assert_eq!(archive.len(), 3000, "every span is kept");
    let detailed = draw(&whole);
    let coarse = draw(&replayed_rec(&rec, "steps.json", "chrome", false));
    let lane_row = |frame: &str| {
        frame
            .lines()
            .find(|l| l.contains("thread 7 7"))
            .unwrap_or_else(|| panic!("no lane row: {frame}"))
            .to_string()
    };
    let (detailed_row, coarse_row) = (lane_row(&detailed), lane_row(&coarse));
    assert!(
        detailed_row.matches("step").count() >= 5,
        "each task is a bar with its name: {detailed}"
    );
    assert!(
        !coarse_row.contains("step"),
        "a lane that keeps recent spans only has shades here: {coarse}"
    );
    insta::assert_snapshot!(detailed);
}

/// A watched cluster that has no lane yet said "no lane holds a task that matches the
/// filter" with no filter set (seen in tmux with `--dask`).
#[test]
fn a_run_without_lanes_does_not_speak_of_a_filter() {
    let source = RunSource::Program {
        command: "dask tcp://127.0.0.1:8786".into(),
    };
    let mut model = Model::new();
    model.apply(&run_started(
        1,
        external_config(None, 0, false),
        42,
        0,
        source,
    ));
    let frame = render(&model, 120, 30);
    assert!(!frame.contains("filter ("), "{frame}");
    let mut state = ViewState::default();
    state.filter.pattern = "nothing".into();
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
    terminal
        .draw(|f| view::draw(f, &model, &state, Duration::ZERO))
        .unwrap();
    let filtered = buffer_to_text(terminal.backend().buffer());
    assert!(filtered.contains("matches the filter"), "{filtered}");
}

#[test]
fn frame_of_a_live_python_run() {
    // The probe's events of a real run of the example's thread program, fed as they came
    // through the live path's adapter (a recorded run, so the frame is the same each time).
    let file = std::fs::File::open(fixture("poolscope/probe_seed_thread.jsonl")).unwrap();
    let mut model = Model::new();
    let source = RunSource::Program {
        command: "python3 asyncio_executor_thread.py".into(),
    };
    let start = run_started(1, external_config(None, 0, false), 29129, 0, source);
    model.apply(&start);
    let mut adapter = Adapter::new(1, Duration::ZERO);
    let mut out = Vec::new();
    poolscope::source::protocol::read(BufReader::new(file), "probe", &mut |ev| {
        adapter.apply(ev, &mut out);
    })
    .unwrap();
    out.push(adapter.finish());
    for ev in &out {
        model.apply(ev);
    }
    insta::assert_snapshot!(render(&model, 120, 30));
}

// ---- the dashboard -------------------------------------------------------------------------

mod dash {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use poolscope::config::RunConfig;
    use poolscope::dashboard::{Exit, Input, PoolRuntime, Session, SessionSource, run_main_loop};
    use poolscope::event::{EventKind, PoolEvent, RunSource};
    use poolscope::source::program::ProgramSpec;
    use poolscope::view::text::buffer_to_text;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use tokio::sync::mpsc;

    use super::{fixture, python3};

    type Seen = Arc<Mutex<Vec<PoolEvent>>>;

    fn key(code: KeyCode) -> Input {
        Input::Terminal(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn session(source: SessionSource, pool: &PoolRuntime, seen: &Seen) -> Session {
        let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_poolscope"));
        let mut session = Session::new(RunConfig::default(), exe, pool.handle().clone());
        session.source = source;
        let sink = Arc::clone(seen);
        session.tap = Some(Box::new(move |ev| sink.lock().unwrap().push(ev.clone())));
        session
    }

    async fn until(seen: &Seen, what: &str, cond: impl Fn(&[PoolEvent]) -> bool) {
        let end = Instant::now() + Duration::from_secs(60);
        while !cond(&seen.lock().unwrap()) {
            assert!(Instant::now() < end, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn finished_runs(seen: &[PoolEvent]) -> usize {
        seen.iter()
            .filter(|e| matches!(e.kind, EventKind::RunFinished { .. }))
            .count()
    }

    #[tokio::test]
    async fn a_live_program_runs_again_on_r_and_experiment_keys_say_they_do_not_apply() {
        let Some(py) = python3() else { return };
        let spec = ProgramSpec {
            argv: vec![
                py.into(),
                fixture("python/six_tasks.py").into(),
                "thread".into(),
            ],
            show_args: false,
            capture_output: true,
            kernel_period: None,
            stdout_to_stderr: false,
            title: None,
            guard: Some(env!("CARGO_BIN_EXE_poolscope").into()),
        };
        let pool = PoolRuntime::start().unwrap();
        let seen = Seen::default();
        let session = session(SessionSource::Program(spec), &pool, &seen);
        let (tx, rx) = mpsc::channel(16);
        let watcher = Arc::clone(&seen);
        let mut screen = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let driver = tokio::spawn(async move {
            until(&watcher, "the first run's end", |s| finished_runs(s) == 1).await;
            tx.send(key(KeyCode::Char('m'))).await.unwrap();
            tx.send(key(KeyCode::Char('r'))).await.unwrap();
            until(&watcher, "the second run's end", |s| finished_runs(s) == 2).await;
            tokio::time::sleep(Duration::from_millis(100)).await; // a frame of it
            tx.send(key(KeyCode::Char('q'))).await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let exit = run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
            .await
            .unwrap();
        driver.abort();
        assert_eq!(exit, Exit::Quit);
        let seen = seen.lock().unwrap();
        let runs: Vec<_> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RunStarted { source, .. } => Some((e.run, (**source).clone())),
                _ => None,
            })
            .collect();
        assert_eq!(runs.len(), 2, "r ran the program again; m did not");
        assert!(
            runs.iter()
                .all(|(_, s)| matches!(s, RunSource::Program { .. }))
        );
        for (run, _) in &runs {
            let of = |f: fn(&EventKind) -> bool| {
                seen.iter().filter(|e| e.run == *run && f(&e.kind)).count()
            };
            assert_eq!(of(|k| matches!(k, EventKind::TaskStarted { .. })), 6);
            assert_eq!(of(|k| matches!(k, EventKind::TaskFailed { .. })), 1);
            assert_eq!(of(|k| matches!(k, EventKind::WorkerSpawned { .. })), 3);
            assert_eq!(of(|k| matches!(k, EventKind::ProgramExited { .. })), 1);
        }
        let frame = buffer_to_text(screen.backend().buffer());
        assert!(
            frame.contains(" PROGRAM ") && frame.contains("done 6/6"),
            "{frame}"
        );
    }

    #[tokio::test]
    async fn a_replay_shows_the_whole_recording_and_moves_in_time() {
        let model = super::replayed("joblog/parallel.joblog", "joblog", true);
        let pool = PoolRuntime::start().unwrap();
        let seen = Seen::default();
        let session = session(SessionSource::Replay(Box::new(model)), &pool, &seen);
        let (tx, rx) = mpsc::channel(16);
        let mut screen = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let driver = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await; // a frame of it
            for code in [
                KeyCode::Char('r'),
                KeyCode::Left,
                KeyCode::Left,
                KeyCode::Char('q'),
            ] {
                tx.send(key(code)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let exit = run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
            .await
            .unwrap();
        driver.abort();
        assert_eq!(exit, Exit::Quit);
        let seen = seen.lock().unwrap();
        let started = seen
            .iter()
            .filter(|e| matches!(e.kind, EventKind::RunStarted { .. }))
            .count();
        assert_eq!(
            started, 0,
            "the replay was read before; r does not replay it again"
        );
        let frame = buffer_to_text(screen.backend().buffer());
        assert!(
            frame.contains(" REPLAY ") && frame.contains("done 10/10"),
            "{frame}"
        );
        assert!(
            frame.contains("not following"),
            "← moved back in time: {frame}"
        );
        assert!(
            !frame.contains("┴0ms"),
            "the window no longer starts at zero: {frame}"
        );
    }
}
