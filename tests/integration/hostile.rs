//! A hostile user's pass over this round's surfaces (output paths, outside text), with real
//! processes: each test is a fault that was found by hand and failed before its fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use super::common;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poolscope-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd` to its end, killed if it outlives the test limit (nothing waits forever).
fn run(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > common::TEST_LIMIT {
            let _ = child.kill();
            panic!("{cmd:?} still running after {:?}", common::TEST_LIMIT);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn poolscope(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(common::exe());
    cmd.current_dir(dir).args(args);
    run(cmd)
}

/// `--trace mytool -- mytool`, with `mytool` found on `PATH`: the program's own executable is
/// an input, and was replaced by the trace (this pass replaced a pyenv `python3` shim so).
#[test]
fn the_programs_executable_found_on_path_is_never_written() {
    let dir = scratch("exe");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("mytool");
    let script = format!(
        "#!{}\nprint('hi')\n",
        which(&common::test_python()).display()
    );
    std::fs::write(&tool, &script).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(common::exe());
    cmd.current_dir(&dir).env("PATH", path).args([
        "log",
        "--trace",
        tool.to_str().unwrap(),
        "--",
        "mytool",
    ]);
    let out = run(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(err.contains("is the input"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&tool).unwrap(),
        script,
        "the program is intact"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `--trace` naming poolscope's own executable (a copy, run from where it lies).
#[test]
fn poolscope_never_writes_onto_its_own_executable() {
    let dir = scratch("self");
    let me = dir.join("poolscope");
    std::fs::copy(common::exe(), &me).unwrap();
    let before = std::fs::read(&me).unwrap();
    let mut cmd = Command::new(&me);
    cmd.current_dir(&dir)
        .args(["log", "--tasks", "2", "--trace", me.to_str().unwrap()]);
    let out = run(cmd);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        std::fs::read(&me).unwrap() == before,
        "the executable is intact"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An existing private output is replaced by a file as private, not by one with the umask's
/// permissions.
#[test]
fn a_replaced_output_keeps_its_permissions() {
    let dir = scratch("mode");
    let file = dir.join("private.json");
    std::fs::write(&file, "secret").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = poolscope(&dir, &["log", "--tasks", "2", "--trace", "private.json"]);
    assert!(out.status.success(), "{out:?}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(trace.as_array().is_some_and(|a| !a.is_empty()), "{trace}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The longest run of `mark` in `text`.
fn longest_run(text: &str, mark: char) -> usize {
    let (mut best, mut now) = (0, 0);
    for c in text.chars() {
        now = if c == mark { now + 1 } else { 0 };
        best = best.max(now);
    }
    best
}

/// A task named `e` and 5000 combining acute accents: terminals keep a few marks per cell
/// and start new cells for the rest (tmux shifted the results panel's border 8 columns), so
/// no sink may pass more than a few marks on one letter.
#[test]
fn a_flood_of_combining_marks_reaches_no_sink() {
    let dir = scratch("marks");
    let name = format!("e{}", "\u{301}".repeat(5000));
    let trace = serde_json::json!({"traceEvents": [
        {"name": name, "ph": "X", "ts": 0, "dur": 500, "pid": 1, "tid": 1},
        {"name": "ok", "ph": "X", "ts": 600, "dur": 500, "pid": 1, "tid": 1},
    ]});
    std::fs::write(dir.join("marks.json"), trace.to_string()).unwrap();
    for args in [
        &["log", "--replay", "marks.json"][..],
        &["log", "--replay", "marks.json", "--format", "csv"],
        &["snapshot", "--replay", "marks.json"],
    ] {
        let out = poolscope(&dir, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let run = longest_run(&text, '\u{301}');
        assert!(
            (1..=4).contains(&run),
            "{args:?}: {run} marks on one letter"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `program` as the shell finds it.
fn which(program: &Path) -> PathBuf {
    if program.components().count() > 1 {
        return program.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap()
}

/// A protocol writer that lies in `cpu_ns`: 50 s of one thread's CPU in a task of 1 s wall
/// (and the same through a `task_started`/`task_finished` pair) was shown as truth (`cpu_s`
/// 50.0 in jsonl, "cpu 50.00 s" in the lane's detail). A thread cannot run longer than the
/// task lasted: the lying line is refused, said on stderr; an honest one next to it stays.
#[test]
fn cpu_longer_than_the_task_is_refused_not_shown() {
    let dir = scratch("cpu");
    let lines = [
        r#"{"poolscope":1,"origin_ns":1000}"#,
        r#"{"ev":"task_ran","t":1000,"end_t":1000001000,"id":"a","name":"liar","pid":10,"tid":12,"cpu_ns":50000000000}"#,
        r#"{"ev":"task_started","t":1000,"id":"b","name":"liar2","pid":10,"tid":14}"#,
        r#"{"ev":"task_finished","t":1000001000,"id":"b","cpu_ns":2000000000}"#,
        r#"{"ev":"task_ran","t":1000,"end_t":1000001000,"id":"c","name":"honest","pid":10,"tid":13,"cpu_ns":999999999}"#,
    ];
    std::fs::write(dir.join("cpu.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = poolscope(&dir, &["log", "--replay", "cpu.jsonl", "--format", "jsonl"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &recs {
        let cpu = r["cpu_s"].as_f64();
        let wall = r["end_s"].as_f64().unwrap() - r["start_s"].as_f64().unwrap();
        assert!(
            cpu.is_none_or(|c| c <= wall + 0.001),
            "a lie shown as truth: {r}"
        );
    }
    let honest = recs.iter().find(|r| r["task"] == "honest").unwrap();
    assert_eq!(honest["cpu_s"].as_f64(), Some(0.999_999_999));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cpu_ns"), "said: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Replays `file` with `log --format jsonl`: its exit code, its task lines and its stderr.
fn replay(dir: &Path, file: &Path) -> (Option<i32>, usize, String) {
    let out = poolscope(
        dir,
        &[
            "log",
            "--replay",
            file.to_str().unwrap(),
            "--format",
            "jsonl",
        ],
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), lines, stderr)
}

/// A recording with a second JSON document after the first (`cat a.json b.json`) was read
/// to the end of the first and the rest silently dropped. Chrome, Dask and speedscope files
/// hold one document: the second is refused, with where it begins; whitespace, and the
/// top-level object's other members after the events, are not.
#[test]
fn a_second_json_document_after_the_first_is_refused_not_dropped() {
    let dir = scratch("concatenated");
    for (name, rel) in [
        ("chrome-object", "chrome/viztracer_thread.json"),
        ("chrome-array", "poolscope/trace_thread.json"),
        ("dask", "dask/task_stream.json"),
        ("speedscope", "speedscope/pyinstrument_sequential.json"),
    ] {
        let one = std::fs::read(fixture(rel)).unwrap();
        let (code, tasks, stderr) = replay(&dir, &fixture(rel));
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert!(tasks > 0, "{name}");
        // Trailing whitespace is no second document.
        let spaced = dir.join(format!("{name}-spaced.json"));
        std::fs::write(&spaced, [&one[..], b"\n\n  \t\r\n"].concat()).unwrap();
        assert_eq!(
            replay(&dir, &spaced),
            (Some(0), tasks, String::new()),
            "{name}"
        );
        for (what, tail) in [
            ("twice", one.clone()),
            ("garbage", b"\nhello".to_vec()),
            ("array", b"[]".to_vec()),
        ] {
            let joined = dir.join(format!("{name}-{what}.json"));
            std::fs::write(&joined, [&one[..], b"\n", &tail[..]].concat()).unwrap();
            let (code, tasks, stderr) = replay(&dir, &joined);
            assert_eq!(code, Some(1), "{name} {what}: {stderr}");
            assert_eq!(tasks, 0, "{name} {what}");
            assert_eq!(stderr.lines().count(), 1, "{name} {what}: {stderr}");
            let said = ["follows the end of the first", "trailing characters"];
            assert!(
                said.iter().any(|s| stderr.contains(s)),
                "{name} {what}: {stderr}"
            );
        }
    }
    // poolscope's protocol is JSON lines: a recording appended to another is read on, and
    // its header is refused as what it is (it said: no "ev" kind).
    let one = std::fs::read(fixture("poolscope/probe_seed_thread.jsonl")).unwrap();
    let twice = dir.join("protocol-twice.jsonl");
    std::fs::write(&twice, [&one[..], &one[..]].concat()).unwrap();
    let (code, tasks, stderr) = replay(&dir, &twice);
    assert_eq!((code, tasks), (Some(0), 6), "{stderr}");
    assert!(stderr.contains("1 records refused"), "{stderr}");
    assert!(stderr.contains("a second header"), "{stderr}");
    // The trace object's members after the events are read past, not refused.
    let one = std::fs::read_to_string(fixture("chrome/viztracer_thread.json")).unwrap();
    let end = one.trim_end().strip_suffix('}').unwrap();
    let more = dir.join("chrome-members.json");
    let members = r#", "displayTimeUnit": "ns", "otherData": {"a": [1, "]}"]}, "x": null}"#;
    std::fs::write(&more, format!("{end}{members}\n")).unwrap();
    let (code, tasks, stderr) = replay(&dir, &more);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    assert_eq!(
        tasks,
        replay(&dir, &fixture("chrome/viztracer_thread.json")).1
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `kill -9` of poolscope while it replaces an existing `--trace` file: the old file stays
/// whole and no temporary file is left beside it (one was: `.out.json.poolscope-PID-0.tmp`).
/// The replay reads a FIFO that the test holds open, so poolscope is surely mid-run (it
/// opens the trace before the recording) when it is killed.
#[test]
fn kill_9_while_replacing_a_trace_leaves_no_temporary_file() {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = scratch("kill9-trace");
    let fifo = dir.join("in.json");
    common::mkfifo(&fifo);
    std::fs::write(dir.join("out.json"), "old").unwrap();
    let mut child = Command::new(common::exe())
        .current_dir(&dir)
        .args(["log", "--replay", "in.json", "--trace", "out.json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Opening a FIFO to write without blocking fails until its reader has it open.
    let start = Instant::now();
    let mut writer = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(w) => break w,
            Err(_) if start.elapsed() < common::TEST_LIMIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("poolscope never opened the recording: {e}"),
        }
    };
    std::io::Write::write_all(&mut writer, b"[{\"ph\":\"M\",\"pid\":1,\"tid\":1,").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(writer);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["in.json", "out.json"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("out.json")).unwrap(),
        "old"
    );
    let _ = std::fs::remove_dir_all(dir);
}
