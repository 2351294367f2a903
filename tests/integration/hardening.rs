//! Hostile input against poolscope's own surfaces, with real processes: outside text in every
//! sink, output paths onto the input, `kill -9` of poolscope, a stalled poolscope.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common;

/// A private scratch directory for one test, removed first if an earlier run left it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poolscope-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn poolscope_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::exe())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- outside text (issue 22.1) ---------------------------------------------------------------

/// Event lines with an escape sequence, a C1 control, a bidi override and a zero-width
/// character in every text field the protocol has.
const HOSTILE_EVENTS: [&str; 7] = [
    r#"{"poolscope":1}"#,
    r#"{"ev":"worker_started","s":0.001,"pid":4242,"tid":4243,"name":"T\u001b]0;pwned-thread\u0007x"}"#,
    r#"{"ev":"task_started","s":0.002,"id":"a","name":"job\u001b]0;pwned-task\u0007\u202eevil\u200b","pid":4242,"tid":4243}"#,
    r#"{"ev":"task_failed","s":0.003,"id":"a","error":"Err\u001b[2J\u009b31m\u2066x"}"#,
    r#"{"ev":"task_started","s":0.004,"id":"b","name":"ok","pid":4242,"tid":4243}"#,
    r#"{"ev":"task_finished","s":0.005,"id":"b"}"#,
    r#"{"ev":"worker_exited","s":0.006,"pid":4242,"tid":4243,"status":"gone\u001b]0;pwned-status\u0007"}"#,
];

/// The first character in `s` that would act on a terminal or hide text, if any: C0 controls
/// other than newline, DEL, C1 controls, bidi overrides and isolates, zero-width characters.
fn first_unsafe(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|&(_, c)| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    })
}

fn assert_clean(what: &str, s: &str) {
    if let Some((i, c)) = first_unsafe(s) {
        let from = s[..i].char_indices().rev().nth(30).map_or(0, |(j, _)| j);
        panic!("{what}: {c:?} at byte {i}, after {:?}", &s[from..i]);
    }
}

/// A program that writes the hostile events to the channel and a hostile line to stdout.
fn hostile_program(dir: &Path) -> PathBuf {
    let path = dir.join("hostile.sh");
    let mut script = String::from("#!/bin/sh\nprintf '%s\\n' \\\n");
    for line in HOSTILE_EVENTS {
        script.push_str("  '");
        script.push_str(line);
        script.push_str("' \\\n");
    }
    script.push_str("  > \"$POOLSCOPE_EVENTS\"\n");
    script.push_str("[ -n \"$HOSTILE_STDOUT\" ] && printf 'out\\033]0;pwned-stdout\\007\\342\\200\\256line\\n'\nexit 0\n");
    std::fs::write(&path, script).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path
}

/// Checks that `file` is well-formed XML, with Python's parser when there is one.
fn assert_well_formed_xml(file: &Path) {
    let py = common::test_python();
    let check = Command::new(&py)
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(file)
        .output();
    match check {
        Ok(o) => assert!(o.status.success(), "ill-formed SVG: {}", text(&o.stderr)),
        Err(_) => eprintln!("SKIPPED: no Python to parse the SVG as XML"),
    }
}

/// Every sink of one source: snapshot text, `--svg`, `log` text, csv and jsonl.
fn assert_every_sink_clean(dir: &Path, source: &[&str]) {
    let with = |extra: &[&str]| -> Vec<String> {
        extra
            .iter()
            .chain(source)
            .map(|s| (*s).to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = poolscope_in(dir, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let snap = run(with(&["snapshot"]));
    assert_clean("snapshot text", &snap);
    assert!(snap.contains("\\u{1b}]0;pwned-thread"), "{snap}");
    let svg = dir.join("frame.svg");
    run(with(&["snapshot", "--svg", "frame.svg"]));
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert_clean("svg", &svg_text);
    assert!(svg_text.contains("pwned-thread"));
    assert_well_formed_xml(&svg);
    let log = run(with(&["log"]));
    assert_clean("log text", &log);
    assert!(
        log.contains("job\\u{1b}]0;pwned-task\\u{7}\\u{202e}evil\\u{200b}"),
        "{log}"
    );
    let csv = run(with(&["log", "--format", "csv"]));
    assert_clean("log csv", &csv);
    assert!(csv.contains("Err\\u{1b}[2J\\u{9b}31m\\u{2066}x"), "{csv}");
    let jsonl = run(with(&["log", "--format", "jsonl"]));
    assert_clean("log jsonl", &jsonl);
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl record");
        assert_clean("jsonl value", &v.to_string());
    }
    assert_eq!(jsonl.lines().count(), 2, "{jsonl}");
}

#[test]
fn outside_text_from_a_live_program_reaches_no_sink_raw() {
    let dir = scratch("hostile-program");
    hostile_program(&dir);
    assert_every_sink_clean(&dir, &["--", "./hostile.sh"]);
    // The program's own output, captured for the log panel, is cleaned too.
    let out = Command::new(common::exe())
        .args(["snapshot", "--", "./hostile.sh"])
        .env("HOSTILE_STDOUT", "1")
        .current_dir(&dir)
        .output()
        .unwrap();
    let snap = text(&out.stdout);
    assert_clean("snapshot with program output", &snap);
    assert!(snap.contains("out\\u{1b}]0;pwned-stdout"), "{snap}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn outside_text_from_a_replayed_recording_reaches_no_sink_raw() {
    let dir = scratch("hostile-replay");
    std::fs::write(dir.join("rec.jsonl"), HOSTILE_EVENTS.join("\n") + "\n").unwrap();
    assert_every_sink_clean(&dir, &["--replay", "rec.jsonl"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_joblog_command_with_escapes_reaches_no_sink_raw() {
    let dir = scratch("hostile-joblog");
    let joblog = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n\
        1\t:\t1795595746.284\t0.105\t0\t0\t0\t0\techo \x1b]0;pwned-job\x07\u{202e}x\n\
        2\t:\t1795595746.289\t0.200\t0\t0\t3\t0\techo \u{9b}2J\n";
    std::fs::write(dir.join("jobs.joblog"), joblog).unwrap();
    for args in [
        &["log", "--replay", "jobs.joblog"][..],
        &["log", "--format", "csv", "--replay", "jobs.joblog"],
        &["log", "--format", "jsonl", "--replay", "jobs.joblog"],
        &["snapshot", "--replay", "jobs.joblog"],
    ] {
        let out = poolscope_in(&dir, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_clean(&format!("{args:?}"), &text(&out.stdout));
        assert!(text(&out.stdout).contains("pwned-job"), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_dashboard_frame_of_hostile_names_holds_no_unsafe_cell() {
    use poolscope::model::Model;
    use poolscope::source::adapt::replay_events;
    use poolscope::source::{ReadOptions, read_file};
    use poolscope::view::{self, ViewState};
    use ratatui::{Terminal, backend::TestBackend};
    let dir = scratch("hostile-frame");
    let file = dir.join("rec.jsonl");
    std::fs::write(&file, HOSTILE_EVENTS.join("\n") + "\n").unwrap();
    let rec = read_file(&file, &ReadOptions::default()).unwrap();
    let source = poolscope::event::RunSource::Replay {
        file: "rec\x1b]0;pwned-file\x07.jsonl".into(),
        format: "poolscope".into(),
        producer: "\u{202e}x".into(),
    };
    let mut model = Model::new();
    for ev in replay_events(&rec, 1, 0, source, 1) {
        model.apply(&ev);
    }
    for (w, h) in [(80, 24), (120, 40), (250, 80)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal
            .draw(|f| view::draw(f, &model, &ViewState::default(), Duration::from_millis(10)))
            .unwrap();
        for cell in &terminal.backend().buffer().content {
            assert_clean(&format!("cell at {w}x{h}"), cell.symbol());
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs shell command `cmd` in `dir` on a pty (util-linux `script`), types `q` after 3 s and
/// waits for it to end (at most 20 s): its exit status and all it wrote to the terminal.
/// `None` (said loudly) where `script` is not installed.
fn quit_on_a_pty(dir: &Path, cmd: &str) -> Option<(std::process::ExitStatus, Vec<u8>)> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `script` is not installed, so no pty");
        return None;
    }
    let mut child = Command::new("script")
        .args(["-qfec", cmd, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut bytes);
        bytes
    });
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = stdin.write_all(b"q");
    drop(stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd}: did not end after q");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Some((status, reader.join().unwrap()))
}

/// The dashboard on a real terminal (a pty from `script`): the program's escape sequences
/// never reach it, so the pane title stays as it was.
#[test]
fn the_dashboard_on_a_real_terminal_sends_no_program_escape() {
    let dir = scratch("hostile-pty");
    hostile_program(&dir);
    let cmd = format!(
        "stty rows 40 cols 120; HOSTILE_STDOUT=1 TERM=xterm-256color {} -- ./hostile.sh",
        common::exe().display()
    );
    let Some((_, bytes)) = quit_on_a_pty(&dir, &cmd) else {
        return;
    };
    let shown = String::from_utf8_lossy(&bytes);
    assert!(
        !bytes.windows(2).any(|w| w == b"\x1b]"),
        "an OSC sequence reached the terminal"
    );
    assert!(!bytes.windows(3).any(|w| w == "\u{202e}".as_bytes()));
    assert!(
        shown.contains("\\u{1b}]0;pwned"),
        "the hostile names are shown escaped: {shown}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- a watched program's output and end (issue 17.2) -----------------------------------------

/// A program that writes its events (two tasks, the last ending right before it exits), a
/// line of its own on stdout, then ends as `$END` says: `exit N` or `kill -N $$`.
fn ending_program(dir: &Path) -> PathBuf {
    let path = dir.join("ending.sh");
    let script = r#"#!/bin/sh
printf '%s\n' '{"poolscope":1}' \
  '{"ev":"task_started","s":0.001,"id":"a","name":"first","pid":7,"tid":8}' \
  '{"ev":"task_finished","s":0.002,"id":"a"}' \
  '{"ev":"task_started","s":0.003,"id":"b","name":"last","pid":7,"tid":8}' \
  '{"ev":"task_failed","s":0.004,"id":"b","error":"ValueError: at the end"}' > "$POOLSCOPE_EVENTS"
echo "the program's own line"
eval "$END"
"#;
    std::fs::write(&path, script).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path
}

fn run_ending(dir: &Path, end: &str, args: &[&str]) -> Output {
    Command::new(common::exe())
        .args(args)
        .args(["--", "./ending.sh"])
        .env("END", end)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_snapshot_prints_its_frame_whatever_the_program_end() {
    let dir = scratch("snapshot-ends");
    ending_program(&dir);
    for (end, code) in [
        ("exit 0", 0),
        ("exit 5", 5),
        ("kill -KILL $$", 137),
        ("kill -TERM $$", 143),
    ] {
        let out = run_ending(&dir, end, &["snapshot"]);
        let frame = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{end}: {}",
            text(&out.stderr)
        );
        assert!(
            frame.contains("poolscope") && frame.contains("last"),
            "{end}: no frame: {frame}"
        );
        assert!(frame.lines().count() >= 20, "{end}: {frame}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn log_records_own_stdout_and_the_program_writes_to_stderr() {
    let dir = scratch("log-records-only");
    ending_program(&dir);
    for _ in 0..3 {
        let out = run_ending(&dir, "exit 3", &["log", "--format", "jsonl"]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let records: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not a record: {e}"))
            })
            .collect();
        let tasks: Vec<&str> = records
            .iter()
            .map(|r| r["task"].as_str().unwrap())
            .collect();
        assert_eq!(tasks, ["first", "last"], "no record is lost: {stdout}");
        assert_eq!(records[1]["error"], "ValueError: at the end");
        assert!(text(&out.stderr).contains("the program's own line"));
        let out = run_ending(&dir, "exit 0", &["log", "--format", "csv"]);
        assert_eq!(out.status.code(), Some(0));
        let csv = text(&out.stdout);
        assert_eq!(csv.lines().count(), 3, "header and two records only: {csv}");
        assert!(!csv.contains("own line"));
    }
    // Text keeps passing the program's output through.
    let out = run_ending(&dir, "exit 0", &["log"]);
    assert!(text(&out.stdout).contains("the program's own line"));
    let _ = std::fs::remove_dir_all(dir);
}

// ---- output paths (issue 22.3) ----------------------------------------------------------------

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Runs poolscope expecting a refusal: non-zero, one line on stderr naming the reason.
fn assert_refused(dir: &Path, args: &[&str], reason: &str) {
    let out = poolscope_in(dir, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(reason), "{args:?}: {stderr}");
}

/// The dashboard writes a replay's trace as it reads the recording: `--trace` onto the
/// recording replaced it (found in tmux), where `log` and `snapshot` refused. On a pty.
#[test]
fn the_dashboard_writes_no_trace_onto_the_recording_it_replays() {
    let dir = scratch("dash-output-path");
    let original = std::fs::read(fixture("chrome/ray_timeline.json")).unwrap();
    std::fs::write(dir.join("X.json"), &original).unwrap();
    let cmd = format!(
        "stty rows 24 cols 80; TERM=xterm-256color {} --replay X.json --trace X.json",
        common::exe().display()
    );
    // Refused, it has ended before the q; a dashboard that took the file quits on it.
    let Some((status, bytes)) = quit_on_a_pty(&dir, &cmd) else {
        return;
    };
    let shown = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        std::fs::read(dir.join("X.json")).unwrap() == original,
        "the recording was replaced by the trace"
    );
    assert_eq!(status.code(), Some(1), "{shown}");
    assert!(shown.contains("is the input"), "{shown}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_output_is_written_onto_the_input_or_through_a_symlink() {
    let dir = scratch("output-paths");
    let original = std::fs::read(fixture("chrome/viztracer_thread.json")).unwrap();
    std::fs::write(dir.join("X.json"), &original).unwrap();
    std::os::unix::fs::symlink("X.json", dir.join("link.json")).unwrap();
    std::fs::hard_link(dir.join("X.json"), dir.join("hard.json")).unwrap();
    let input = "is the input";
    let link = "is a symbolic link";
    let cases: [(&[&str], &str); 7] = [
        (&["log", "--replay", "X.json", "--trace", "X.json"], input),
        (&["log", "--replay", "X.json", "--trace", "./X.json"], input),
        (
            &["log", "--replay", "X.json", "--trace", "hard.json"],
            input,
        ),
        (&["log", "--replay", "X.json", "--trace", "link.json"], link),
        (
            &["snapshot", "--replay", "X.json", "--trace", "X.json"],
            input,
        ),
        (
            &["snapshot", "--replay", "X.json", "--svg", "X.json"],
            input,
        ),
        (
            &["snapshot", "--replay", "X.json", "--svg", "link.json"],
            link,
        ),
    ];
    for (args, reason) in cases {
        assert_refused(&dir, args, reason);
        assert_eq!(
            std::fs::read(dir.join("X.json")).unwrap(),
            original,
            "{args:?}"
        );
    }
    // A program's own file is an input too.
    assert_refused(
        &dir,
        &["snapshot", "--svg", "X.json", "--", "cat", "X.json"],
        input,
    );
    assert_eq!(std::fs::read(dir.join("X.json")).unwrap(), original);
    // A file that is not an input is replaced whole, leaving no temporary file behind.
    std::fs::write(dir.join("old.svg"), "old").unwrap();
    let out = poolscope_in(
        &dir,
        &[
            "snapshot", "--replay", "X.json", "--svg", "old.svg", "--trace", "t.json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(dir.join("old.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    assert!(
        std::fs::read_to_string(dir.join("t.json"))
            .unwrap()
            .starts_with('[')
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains(".poolscope-")),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- messages and exit codes (issue 22.14) ----------------------------------------------------

#[test]
fn a_recording_without_tasks_is_a_data_error_with_exit_1() {
    let dir = scratch("no-tasks");
    std::fs::write(dir.join("empty.jsonl"), "{\"poolscope\":1}\n").unwrap();
    std::fs::write(
        dir.join("jobs.joblog"),
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
    )
    .unwrap();
    for file in ["empty.jsonl", "jobs.joblog"] {
        let out = poolscope_in(&dir, &["log", "--replay", file]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains("no tasks found"), "{stderr}");
        assert!(
            !stderr.contains("--task"),
            "no Chrome hint for {file}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refused_events_always_say_why() {
    let dir = scratch("refused-why");
    // Well-formed lines the adapter refuses: a task that ends twice, a worker never started.
    let script = r#"#!/bin/sh
printf '%s\n' '{"poolscope":1}' \
  '{"ev":"task_started","s":0.001,"id":"a","name":"f","pid":7,"tid":8}' \
  '{"ev":"task_finished","s":0.002,"id":"a"}' \
  '{"ev":"task_finished","s":0.003,"id":"a"}' > "$POOLSCOPE_EVENTS"
"#;
    std::fs::write(dir.join("twice.sh"), script).unwrap();
    let out = poolscope_in(&dir, &["log", "--format", "jsonl", "--", "sh", "twice.sh"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 refused ("), "{stderr}");
    assert!(!stderr.contains("()"), "an empty reason: {stderr}");
    assert!(stderr.contains("ended twice"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- the watched program's tree outlives no kill of poolscope (issue 22.2) ----------------------

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Every process but poolscope's own (and its guard's) whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() != "poolscope")
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

fn channel_dirs_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("poolscope-{pid}-"))
        })
        .map(|e| e.path())
        .collect()
}

/// Starts `poolscope log -- PROGRAM`, waits until `expected` processes carry `marker`,
/// `kill -9`s poolscope, and asserts that all of them and the channel directory go.
fn assert_tree_dies_with_poolscope(program: &[&str], marker: &str, expected: usize) {
    /// Kills poolscope if the test fails before it does.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let poolscope = Command::new(common::exe())
        .arg("log")
        .arg("--")
        .args(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut poolscope = Killed(poolscope);
    let pid = poolscope.0.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = processes_with(marker);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = processes_with(marker);
    }
    assert_eq!(seen.len(), expected, "{program:?} did not start");
    assert_eq!(channel_dirs_of(pid).len(), 1);
    poolscope.0.kill().unwrap(); // SIGKILL: poolscope gets no chance to clean up
    poolscope.0.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (seen.iter().any(|&p| alive(p)) || !channel_dirs_of(pid).is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<_> = seen.iter().filter(|&&p| alive(p)).collect();
    assert!(
        left.is_empty(),
        "{program:?}: {left:?} outlived a kill -9 of poolscope"
    );
    assert!(
        channel_dirs_of(pid).is_empty(),
        "the channel directory was left"
    );
}

#[test]
fn kill_9_of_poolscope_ends_a_program_that_ignores_sigterm() {
    let py = common::test_python();
    let marker = format!("hardening-ignores-term-{}", std::process::id());
    let script = format!(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(100)  # {marker}\n"
    );
    assert_tree_dies_with_poolscope(&[py.to_str().unwrap(), "-c", &script], &marker, 1);
}

#[test]
fn kill_9_of_poolscope_ends_a_shell_its_children_and_a_setsid_grandchild() {
    // The shell, `sleep` and `setsid sleep` all carry the marker in their command lines.
    let marker = format!("100.{}", std::process::id());
    let script = format!("sleep {marker}1 & setsid sleep {marker}2 & wait");
    assert_tree_dies_with_poolscope(&["bash", "-c", &script], &marker, 3);
}

/// Kills the listed processes if the test fails while they live.
struct KillOnDrop(Vec<u32>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// A program that kills its own guard (`kill -9 $PPID`) and leaves a `setsid` grandchild and
/// a plain child behind: they come back to poolscope (a child subreaper too), which ends them
/// before it exits. Each process writes its own PID to a side file; none is alive after.
#[test]
fn a_program_that_kills_its_guard_leaves_nothing_behind() {
    let dir = scratch("guard-killed");
    let pids = dir.join("pids");
    let marker = format!("100.{}5", std::process::id());
    let script = format!(
        "setsid sleep {marker}1 >/dev/null 2>&1 </dev/null & echo $! >> '{p}'\n\
         sleep {marker}2 >/dev/null 2>&1 & echo $! >> '{p}'\n\
         echo $$ >> '{p}'\n\
         kill -9 $PPID\n\
         wait\n",
        p = pids.display()
    );
    let start = std::time::Instant::now();
    let out = poolscope_in(&dir, &["log", "--", "bash", "-c", &script]);
    let recorded: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let _cleanup = KillOnDrop(recorded.clone());
    assert_eq!(recorded.len(), 3, "{}", text(&out.stderr));
    let left: Vec<_> = recorded.iter().filter(|&&p| alive(p)).collect();
    assert!(
        left.is_empty(),
        "{left:?} of {recorded:?} outlived poolscope, whose guard was killed ({:?}; {})",
        start.elapsed(),
        text(&out.stderr)
    );
    assert!(processes_with(&marker).is_empty());
    let said = text(&out.stderr);
    assert!(said.contains("guard was killed"), "{said}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A program that stops its guard (`kill -STOP $PPID`): asked to end (SIGTERM), poolscope
/// wakes the guard, which ends the tree itself, rather than waiting out its 5 s limit and
/// killing the group (which took 5.0 s).
#[test]
fn a_stopped_guard_is_woken_to_end_the_tree() {
    let dir = scratch("guard-stopped");
    let marker = format!("100.{}6", std::process::id());
    let script = format!(
        "setsid sleep {marker}1 >/dev/null 2>&1 </dev/null & kill -STOP $PPID; sleep {marker}2"
    );
    let mut child = Command::new(common::exe())
        .current_dir(&dir)
        .args(["log", "--", "bash", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    // the two sleeps (bash runs the last one in its own place)
    while processes_with(&marker).len() < 2 && start.elapsed() < common::TEST_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = processes_with(&marker);
    let _cleanup = KillOnDrop(seen.clone());
    assert_eq!(seen.len(), 2);
    let stat = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = |pid: u32| stat(pid).rsplit(')').next().unwrap_or("").to_string();
    let parent = |pid: u32| -> u32 {
        let fields = after_comm(pid);
        fields
            .split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0)
    };
    let guard = seen
        .iter()
        .map(|&p| parent(p))
        .find(|&pp| stat(pp).contains("(poolscope)"))
        .expect("the program's guard");
    while !after_comm(guard).trim_start().starts_with('T') && start.elapsed() < common::TEST_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = std::time::Instant::now();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait().unwrap();
    let took = asked.elapsed();
    assert!(
        seen.iter().all(|&p| !alive(p)),
        "{seen:?} outlived poolscope"
    );
    assert!(
        took < Duration::from_secs(4),
        "poolscope took {took:?}: the guard slept on"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_guard_passes_the_program_exit_on_and_costs_no_wait() {
    let dir = scratch("guard-exit");
    let header = "echo '{\"poolscope\":1}' > \"$POOLSCOPE_EVENTS\"; ";
    for (end, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("kill -KILL $$", 137),
        ("kill -SEGV $$", 139),
    ] {
        let start = std::time::Instant::now();
        let program = format!("{header}{end}");
        let out = poolscope_in(&dir, &["log", "--", "sh", "-c", &program]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{end}: {}",
            text(&out.stderr)
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{end}: {:?}",
            start.elapsed()
        );
    }
    // What the program leaves behind goes when it ends, after a grace period.
    let marker = format!("100.{}3", std::process::id());
    let program = format!("{header}sleep {marker} & exit 4");
    let out = poolscope_in(&dir, &["log", "--", "sh", "-c", &program]);
    assert_eq!(out.status.code(), Some(4));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !processes_with(&marker).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(processes_with(&marker).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

// ---- the process pool's deadlines (issues 22.7, 22.15) ------------------------------------------

/// A stalled poolscope (SIGSTOP for 3 s, then SIGCONT) judges its workers' deadlines by the
/// reports they wrote meanwhile: 500 ms tasks under a 1000 ms timeout all finish, and no
/// worker is killed. Three runs, as the fault was seen in 3 of 3.
#[test]
fn a_stalled_poolscope_kills_no_healthy_worker() {
    for run in 0..3 {
        let child = Command::new(common::exe())
            .args([
                "log",
                "--mode",
                "process",
                "--workers",
                "3",
                "--tasks",
                "18",
            ])
            .args([
                "--task-ms",
                "500",
                "--task-timeout-ms",
                "1000",
                "--format",
                "csv",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        // SAFETY: signalling our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
        std::thread::sleep(Duration::from_secs(3));
        // SAFETY: as above.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGCONT);
        }
        let out = child.wait_with_output().unwrap();
        let csv = text(&out.stdout);
        assert!(out.status.success(), "run {run}: {}", text(&out.stderr));
        let failed: Vec<&str> = csv
            .lines()
            .filter(|l| !l.contains(",ok,"))
            .skip(1)
            .collect();
        assert!(
            failed.is_empty(),
            "run {run}: healthy tasks failed: {failed:?}"
        );
        assert_eq!(csv.lines().count(), 19, "run {run}: {csv}");
        let pids: std::collections::BTreeSet<&str> = csv
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(2))
            .collect();
        assert_eq!(pids.len(), 3, "run {run}: no worker was replaced: {pids:?}");
    }
}

/// A worker script: the first instance exits 3 on its first task; every replacement is
/// silent (never answers its settings).
fn silent_replacement_worker(dir: &Path) -> PathBuf {
    let script = dir.join("worker.sh");
    let text = format!(
        "#!/bin/sh\nif mkdir '{mark}' 2>/dev/null; then\n  exec '{real}' \"$@\" --misbehave exit3\nfi\nexec sleep 60\n",
        mark = dir.join("first").display(),
        real = common::exe().display(),
    );
    std::fs::write(&script, text).unwrap();
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    script
}

#[tokio::test]
async fn a_silent_replacement_worker_gets_the_task_timeout_not_ten_seconds() {
    use poolscope::config::{Mode, RunConfig};
    use poolscope::coordinator::{RunControl, RunOptions};
    let dir = scratch("silent-replacement");
    let exe = silent_replacement_worker(&dir);
    let config = RunConfig {
        mode: Mode::Process,
        workers: 1,
        tasks: 3,
        task_ms: 20,
        task_timeout_ms: Some(1000),
        ..RunConfig::default()
    };
    let start = std::time::Instant::now();
    let (_, events) =
        common::run_with_opts(&config, &RunOptions::new(3, exe), RunControl::new(), |_| {}).await;
    let took = start.elapsed();
    let notes: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            poolscope::event::EventKind::WorkerExited { exit, .. } => Some(exit.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no answer to its settings within 1 s")),
        "{notes:?}"
    );
    assert!(
        notes.iter().all(|n| !n.contains("within 10 s")),
        "{notes:?}"
    );
    // Each silent worker now costs 1 s, not 10: the old run took over 30 s.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    for pid in common::spawned_pids(&events) {
        assert!(
            common::eventually(Duration::from_secs(5), || !common::exists(pid)),
            "worker {pid} outlived the run"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

// ---- a program flooding its output (issue 22.12) ------------------------------------------------

/// A flood of output reaches the log panel a chunk at a time: its last lines, and a count
/// of those not shown, instead of an event per line (timings: see the report, not asserted).
#[test]
fn a_flood_of_program_output_shows_its_last_lines_and_a_count() {
    let dir = scratch("flood");
    let program =
        "echo '{\"poolscope\":1}' > \"$POOLSCOPE_EVENTS\"; seq 1 300000; seq 1 300000 >&2";
    let args = ["snapshot", "--height", "200", "--", "sh", "-c", program];
    let out = poolscope_in(&dir, &args);
    let frame = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        frame.contains("› 300000 "),
        "the last line is shown: {frame}"
    );
    assert!(frame.contains("lines not shown"), "{frame}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- descriptors per process worker (issue 22.16) -------------------------------------------

/// 256 process workers run under a *hard* open-files limit of 1024: each costs poolscope
/// one socket for both directions, a stderr pipe and a pidfd, not four descriptors.
#[test]
fn two_hundred_fifty_six_process_workers_fit_a_hard_limit_of_1024() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(common::exe());
    cmd.args([
        "log",
        "--mode",
        "process",
        "--workers",
        "256",
        "--tasks",
        "256",
    ])
    .args(["--task-ms", "1", "--format", "csv"])
    .stdin(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert_eq!(csv.lines().count(), 257, "{}", text(&out.stderr));
    assert!(csv.lines().skip(1).all(|l| l.contains(",ok,")));
}
