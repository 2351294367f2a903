//! Replays of hostile inputs fed by real processes: endless lines, NULs after a valid start,
//! gigabytes through a FIFO. Each must be refused with one line and exit 1, and the
//! poolscope process's peak RSS (its own `VmHWM`, read while it runs) must stay bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use poolscope::source::{ReadOptions, Recording, read_file, read_input};

use crate::common;

/// A generous bound: poolscope reading 3 GB must hold nowhere near it.
const MAX_RSS_KB: i64 = 100 * 1024;

struct Ran {
    code: Option<i32>,
    stderr: String,
    max_rss_kb: i64,
}

/// Runs poolscope with `args` and its stdin from `stdin` (a real process's output, if any),
/// reading its peak RSS (`VmHWM`) from /proc while it runs. Not `wait4`'s `ru_maxrss`: Linux
/// carries the parent's high-water mark into a child across exec, so a child of this big test
/// process would report the test's own RSS.
fn run(args: &[&str], feeder: Option<&str>) -> Ran {
    let dir = tempdir();
    let err_path = dir.join("stderr");
    let mut cmd = Command::new(common::exe());
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut feed = None;
    if let Some(script) = feeder {
        let mut f = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        cmd.stdin(f.stdout.take().unwrap());
        feed = Some(f);
    } else {
        cmd.stdin(Stdio::null());
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // our copy of the feeder's pipe: poolscope alone holds it
    let status_file = format!("/proc/{}/status", child.id());
    let deadline = std::time::Instant::now() + common::TEST_LIMIT;
    let mut rss = 0;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kb(&s))
        {
            rss = rss.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "poolscope {args:?} did not end within {:?}",
                common::TEST_LIMIT
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    if let Some(mut f) = feed {
        let _ = f.kill();
        let _ = f.wait();
    }
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Ran {
        code: status.code(),
        stderr,
        max_rss_kb: rss,
    }
}

/// `VmHWM` (peak resident set, KiB) from a /proc/PID/status text.
fn vm_hwm_kb(status: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "poolscope-replay-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_refused(r: &Ran, what: &str, expect: &str) {
    assert_eq!(
        r.code,
        Some(1),
        "{what}: exit 1 expected; stderr: {}",
        r.stderr
    );
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "{what}: one line: {}",
        r.stderr
    );
    assert!(r.stderr.contains(expect), "{what}: {}", r.stderr);
    assert!(
        r.max_rss_kb < MAX_RSS_KB,
        "{what}: peak RSS {} KB",
        r.max_rss_kb
    );
}

const JOBLOG_HEADER: &str =
    r"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

#[test]
fn a_joblog_header_then_a_3_gb_line_is_refused_in_bounded_memory() {
    let feeder = format!("printf '{JOBLOG_HEADER}'; head -c 3000000000 /dev/zero | tr '\\0' x");
    let r = run(&["log", "--replay", "/dev/stdin"], Some(&feeder));
    assert_refused(&r, "joblog long line", "without a newline");
}

#[test]
fn gigabytes_through_a_fifo_are_refused_in_bounded_memory() {
    let dir = tempdir();
    let fifo = dir.join("fifo");
    common::mkfifo(&fifo);
    // the writer fills the FIFO until poolscope stops reading and it gets SIGPIPE
    let script = format!(
        "(printf '{JOBLOG_HEADER}'; head -c 3000000000 /dev/zero) > '{}'",
        fifo.display()
    );
    let mut writer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let r = run(&["log", "--replay", fifo.to_str().unwrap()], None);
    let _ = writer.kill();
    let _ = writer.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_refused(&r, "FIFO", "without a newline");
}

#[test]
fn dev_zero_as_a_joblog_or_a_protocol_recording_is_refused() {
    for format in ["joblog", "poolscope"] {
        let r = run(
            &["log", "--replay", "/dev/zero", "--replay-format", format],
            None,
        );
        assert_refused(&r, format, "/dev/zero");
    }
}

#[test]
fn nuls_after_a_valid_chrome_or_dask_start_are_refused_at_once() {
    let starts = [
        (
            "chrome",
            r#"[{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":2},"#,
        ),
        ("chrome object", r#"{"traceEvents":[{"ph":"X","name":"a","#),
        ("dask", r#"[{"worker":"tcp://a:1","startstops":[],"#),
        ("dask array", r#"[{"worker":"tcp://a:1","startstops":[]}, "#),
    ];
    for (what, start) in starts {
        let feeder = format!("printf '%s' '{start}'; head -c 2000000000 /dev/zero");
        let r = run(&["snapshot", "--replay", "/dev/stdin"], Some(&feeder));
        assert_refused(&r, what, "NUL");
    }
}

#[test]
fn data_errors_exit_1_and_name_a_reason() {
    let dir = tempdir();
    // a joblog with no jobs: no --task hint (a joblog has no spans to choose), exit 1
    let empty = dir.join("empty.joblog");
    std::fs::write(
        &empty,
        JOBLOG_HEADER.replace(r"\t", "\t").replace(r"\n", "\n"),
    )
    .unwrap();
    let r = run(&["log", "--replay", empty.to_str().unwrap()], None);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("no tasks found"), "{}", r.stderr);
    assert!(!r.stderr.contains("--task"), "{}", r.stderr);
    assert!(!r.stderr.contains("()"), "{}", r.stderr);
    // a protocol recording with no tasks: the same
    let proto = dir.join("empty.jsonl");
    std::fs::write(&proto, "{\"poolscope\":1}\n").unwrap();
    let r = run(&["log", "--replay", proto.to_str().unwrap()], None);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(!r.stderr.contains("--task"), "{}", r.stderr);
    // a Chrome trace whose spans are not tasks keeps the hint
    let chrome = dir.join("t.json");
    std::fs::write(&chrome, r#"[{"ph":"i","name":"x","pid":1,"tid":1,"ts":1}]"#).unwrap();
    let r = run(&["log", "--replay", chrome.to_str().unwrap()], None);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("--task"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- failures the recordings hold ----------------------------------------------------------

fn fixture(rel: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Recording {
    read_file(&fixture(rel), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// `n native_tid ok|failed` lines the recorded program wrote itself.
fn truth(rel: &str) -> Vec<(u32, i64, bool)> {
    std::fs::read_to_string(fixture(rel))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2] == "failed",
            )
        })
        .collect()
}

/// The failed tasks' (native tid, error) of a replay, sorted, against the program's truth.
fn assert_failures_match(rec: &Recording, truth: &[(u32, i64, bool)]) {
    assert_eq!(rec.tasks.len(), truth.len(), "{:?}", rec.tasks);
    let mut got: Vec<(i64, String)> = rec
        .tasks
        .iter()
        .filter_map(|t| {
            let tid = rec.lanes[t.lane.unwrap().0 as usize].tid.unwrap();
            t.error.clone().map(|e| (tid, e))
        })
        .collect();
    got.sort();
    let mut want: Vec<(i64, String)> = truth
        .iter()
        .filter(|t| t.2)
        .map(|&(n, tid, _)| (tid, format!("ValueError: task {n} failed")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn viztracer_exceptions_fail_the_tasks_that_raised_them() {
    // --log_exception alone: the exception instant inside a task fails it
    let rec = read("chrome/viztracer_exceptions.json");
    assert_eq!(rec.producer, "viztracer");
    assert_failures_match(&rec, &truth("chrome/viztracer_exceptions.truth"));
    // with --log_func_retval too: `<NULL>` says which returned nothing
    let rec = read("chrome/viztracer_exceptions_retval.json");
    assert_failures_match(&rec, &truth("chrome/viztracer_exceptions_retval.truth"));
}

#[test]
fn a_caught_exception_does_not_fail_a_task_that_returned() {
    // a task that raised and caught inside itself, then returned a value
    let trace = r#"[
      {"ph":"X","cat":"FEE","name":"_WorkItem.run (/usr/lib/python3.11/concurrent/futures/thread.py:53)","pid":1,"tid":2,"ts":0,"dur":100},
      {"ph":"X","cat":"FEE","name":"work (/home/user/a.py:3)","pid":1,"tid":2,"ts":10,"dur":50,"args":{"return_value":"4"}},
      {"ph":"i","cat":"instant","name":"Exception - KeyError() = KeyError('k')","pid":1,"tid":2,"ts":20,"s":"p"},
      {"ph":"X","cat":"FEE","name":"work (/home/user/a.py:3)","pid":1,"tid":2,"ts":70,"dur":20,"args":{"return_value":"<NULL>"}},
      {"ph":"i","cat":"instant","name":"Exception - OSError() = OSError(5, 'gone')","pid":1,"tid":2,"ts":90,"s":"p"}
    ]"#;
    let rec = read_input(trace.as_bytes(), "t", &ReadOptions::default()).unwrap();
    let errors: Vec<Option<&str>> = rec.tasks.iter().map(|t| t.error.as_deref()).collect();
    assert_eq!(errors, [None, Some("OSError(5, 'gone')")]);
}

#[test]
fn ray_failed_tasks_are_failures_with_their_exception() {
    let rec = read("chrome/ray_fail60.json");
    assert_eq!(rec.producer, "ray timeline");
    assert_eq!(rec.tasks.len(), 60);
    // ray_fail60.py raises in tasks 3, 11, 19, 27, 35, 43 and 51
    let mut failed: Vec<u32> = rec
        .tasks
        .iter()
        .filter_map(|t| t.error.as_deref())
        .map(|e| {
            let n = e
                .strip_prefix("ValueError: task ")
                .and_then(|r| r.strip_suffix(" failed on purpose"))
                .unwrap_or_else(|| panic!("{e}"));
            n.parse().unwrap()
        })
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, [3, 11, 19, 27, 35, 43, 51]);
    assert!(rec.lanes.iter().all(|l| l.name.starts_with("worker ")));
    // the older fixture's one failing task too
    let rec = read("chrome/ray_timeline.json");
    let failed: Vec<(&str, &str)> = rec
        .tasks
        .iter()
        .filter_map(|t| t.error.as_deref().map(|e| (t.name.as_str(), e)))
        .collect();
    assert_eq!(failed, [("__main__.fails", "ValueError: boom")]);
}

/// `snapshot --replay FILE`'s frame, without colour (it must succeed).
fn snapshot_of(file: &Path) -> String {
    let out = Command::new(common::exe())
        .args(["snapshot", "--replay"])
        .arg(file)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_failed_replay_is_failed_in_log_and_snapshot() {
    let text = snapshot_of(&fixture("chrome/ray_fail60.json"));
    assert!(text.contains("7 failed"), "{text}");
    assert!(text.contains("53 ok") || text.contains("53 done"), "{text}");
}

/// A recording whose writer dropped events (the probe's channel was full) is incomplete, and
/// every replay says so: `log`'s stderr, a `dropped` record in jsonl where the recording told
/// it (after the task before it, before the task after it, at the time of the last event
/// before it), and the snapshot's header. Its replay said nothing anywhere: the recording
/// looked whole.
#[test]
fn a_recordings_dropped_events_are_told_by_every_replay() {
    let dir = tempdir();
    let file = dir.join("dropped.jsonl");
    // As the Python probe writes them: 17 events dropped between two tasks, 3 more at the end.
    let lines = [
        r#"{"poolscope":1,"origin_ns":1000000000,"producer":"python-probe","pid":5}"#,
        r#"{"ev":"worker_started","t":1000000000,"pid":5,"tid":7,"name":"w"}"#,
        r#"{"ev":"task_ran","t":1100000000,"end_t":1200000000,"id":"5-1","name":"f","pid":5,"tid":7}"#,
        r#"{"ev":"dropped","t":1300000000,"count":17,"pid":5}"#,
        r#"{"ev":"task_ran","t":1400000000,"end_t":1500000000,"id":"5-9","name":"f","pid":5,"tid":7}"#,
        r#"{"ev":"dropped","t":1600000000,"count":3,"pid":5}"#,
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let poolscope = |args: &[&str]| {
        Command::new(common::exe())
            .args(args)
            .arg(&file)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let log = poolscope(&["log", "--format", "jsonl", "--replay"]);
    let stdout = String::from_utf8_lossy(&log.stdout);
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert!(log.status.success(), "{stderr}");
    let kinds: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            match v.get("dropped") {
                Some(n) => format!("dropped {n} at {}", v["at_s"]),
                None => format!("task {}", v["start_s"]),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "task 0.1",
            "dropped 17 at 0.2",
            "task 0.4",
            "dropped 3 at 0.5"
        ],
        "{stdout}"
    );
    assert!(
        stderr.contains("20 events") && stderr.contains("incomplete"),
        "{stderr}"
    );
    let text = snapshot_of(&file);
    assert!(text.contains("20 events lost"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `log --format jsonl --replay` of a protocol recording of `lines` (after its header): the
/// records as `task START` and `dropped N`, and stderr.
fn replayed_records(name: &str, header: &str, lines: &[&str]) -> (Vec<String>, String) {
    let dir = tempdir();
    let file = dir.join(name);
    let text: Vec<&str> = std::iter::once(header)
        .chain(lines.iter().copied())
        .collect();
    std::fs::write(&file, text.join("\n") + "\n").unwrap();
    let out = Command::new(common::exe())
        .args(["log", "--format", "jsonl", "--replay"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{name}: {stderr}");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            match v.get("dropped") {
                Some(n) => format!("dropped {n}"),
                None => format!("task {}", v["start_s"]),
            }
        })
        .collect();
    let _ = std::fs::remove_dir_all(dir);
    (records, stderr)
}

/// Counts of dropped events that lie or come oddly move no task (the hostile tester's): one
/// read before any task, in a recording without an origin, became the clock's origin and
/// every task was refused; one without a time went before the tasks read before it; counts
/// of two processes came out in the order read, not by time; one a day late stretched the
/// run to a day.
#[test]
fn drop_counts_told_oddly_move_no_task() {
    let task = |t: u64, n: u32| {
        format!(
            r#"{{"ev":"task_ran","t":{t},"end_t":{},"id":"5-{n}","name":"f","pid":5,"tid":7}}"#,
            t + 1_000_000
        )
    };
    let (t1, t2, t3) = (
        task(1_001_000_000, 1),
        task(1_003_000_000, 2),
        task(1_005_000_000, 3),
    );
    let no_origin = r#"{"poolscope":1,"producer":"python-probe","pid":5}"#;
    let origin = r#"{"poolscope":1,"origin_ns":1000000000,"producer":"python-probe","pid":5}"#;
    let late = r#"{"ev":"dropped","t":1050000000,"count":3,"pid":5}"#;
    let (got, stderr) = replayed_records("first.jsonl", no_origin, &[late, &t1, &t2]);
    assert_eq!(got, ["dropped 3", "task 0.0", "task 0.002"], "{stderr}");
    let untimed = r#"{"ev":"dropped","count":4,"pid":5}"#;
    let (got, _) = replayed_records("untimed.jsonl", origin, &[&t1, &t2, untimed, &t3]);
    assert_eq!(got, ["task 0.001", "task 0.003", "dropped 4", "task 0.005"]);
    let pid6 = r#"{"ev":"dropped","t":1004000000,"count":6,"pid":6}"#;
    let pid5 = r#"{"ev":"dropped","t":1002000000,"count":5,"pid":5}"#;
    let (got, _) = replayed_records("two.jsonl", origin, &[&t1, pid6, pid5, &t2, &t3]);
    let want = [
        "task 0.001",
        "dropped 5",
        "task 0.003",
        "dropped 6",
        "task 0.005",
    ];
    assert_eq!(got, want);
    let day = r#"{"ev":"dropped","t":87400000000000,"count":3,"pid":5}"#;
    let dir = tempdir();
    let file = dir.join("day.jsonl");
    std::fs::write(&file, [origin, &t1, day, &t2].join("\n") + "\n").unwrap();
    let header: String = snapshot_of(&file).lines().take(2).collect();
    assert!(header.contains("3 events lost"), "{header}");
    assert!(header.contains("4 ms"), "the run is 4 ms long: {header}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A recording's task queued and never seen to run was called "cancelled", a word the
/// recording never said (its end may have been dropped, or the program exited first): it is
/// "never ran", and the replay "ended" (not finished: not every task was seen to end).
#[test]
fn a_replays_task_that_never_ran_is_not_called_cancelled() {
    let dir = tempdir();
    let file = dir.join("queued.jsonl");
    let lines = [
        r#"{"poolscope":1,"origin_ns":1000000000,"producer":"python-probe","pid":5}"#,
        r#"{"ev":"task_queued","t":1000000000,"id":"5-1","name":"f"}"#,
        r#"{"ev":"task_queued","t":1000000000,"id":"5-2","name":"g"}"#,
        r#"{"ev":"task_ran","t":1100000000,"end_t":1200000000,"id":"5-1","name":"f","pid":5,"tid":7}"#,
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let text = snapshot_of(&file);
    let header: String = text.lines().take(2).collect::<Vec<_>>().join("\n");
    assert!(header.contains("never ran 1"), "{header}");
    assert!(
        header.lines().next().is_some_and(|l| l.ends_with(" ended")),
        "{header}"
    );
    assert!(!header.contains("cancelled"), "{header}");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- GNU parallel slots --------------------------------------------------------------------

/// The share of jobs whose rebuilt slot is the `{%}` the command carried (`slot=N`).
fn slot_agreement(rel: &str) -> (usize, usize) {
    let rec = read(rel);
    let mut agree = 0;
    for t in &rec.tasks {
        let real = t.name.split("slot=").nth(1).unwrap();
        let real: String = real.chars().take_while(char::is_ascii_digit).collect();
        let lane = &rec.lanes[t.lane.unwrap().0 as usize];
        agree += usize::from(lane.name == format!("slot {real}"));
    }
    (agree, rec.tasks.len())
}

#[test]
fn joblog_slots_agree_with_parallels_own_slot_numbers() {
    for (rel, jobs) in [
        ("joblog/parallel_j4_30.joblog", 30),
        ("joblog/parallel_j3_3000.joblog", 3000),
        ("joblog/parallel_j4_1500_true.joblog", 1500),
        ("joblog/parallel.joblog", 10),
    ] {
        let (agree, n) = slot_agreement(rel);
        assert_eq!(n, jobs, "{rel}");
        // at least 99 %
        assert!(agree * 100 >= n * 99, "{rel}: {agree} of {n} slots agree");
    }
}

/// `--keep-order` joblogs are in job order, not in the order parallel reaped the jobs and
/// freed their slots: the slots are rebuilt from the times (reaps in batches between starts,
/// each batch in job order). Reaps within a millisecond of each other cannot be ordered, and
/// each wrong guess swaps two slots' names from there on, so agreement with `{%}` is far
/// from a plain joblog's (it was 29 % and 46 % with the reaps taken in order of end, now 64 %
/// and 86 %); the number of slots is right.
#[test]
fn keep_order_joblog_slots_are_rebuilt_from_the_times() {
    for (rel, jobs, at_least_percent) in [
        ("joblog/parallel_keep_order_j4_30.joblog", 30, 100),
        ("joblog/parallel_keep_order_j3_3000.joblog", 3000, 60),
        ("joblog/parallel_keep_order_j4_1500_true.joblog", 1500, 80),
    ] {
        let (agree, n) = slot_agreement(rel);
        assert_eq!(n, jobs, "{rel}");
        assert!(
            agree * 100 >= n * at_least_percent,
            "{rel}: {agree} of {n} slots agree"
        );
        let rec = read(rel);
        let real: std::collections::BTreeSet<&str> = rec
            .tasks
            .iter()
            .map(|t| {
                t.name
                    .split("slot=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            rec.lanes.len(),
            real.len(),
            "{rel}: as many slots as parallel used"
        );
    }
}

// ---- formats detected from their bytes -----------------------------------------------------

#[test]
fn gzip_recordings_replay_as_their_contents() {
    // made by `gzip -9`: the same tasks, lanes and failures as the plain file
    let plain = read("chrome/ray_fail60.json");
    let gz = read("chrome/ray_fail60.json.gz");
    assert!(gz.gzip && !plain.gzip);
    assert_eq!(gz.producer, "ray timeline");
    assert_eq!(gz.lanes, plain.lanes);
    assert_eq!(gz.tasks, plain.tasks);
    // every other format too, compressed here
    for rel in [
        "joblog/parallel_j4_30.joblog",
        "dask/task_stream.json",
        "poolscope/probe_seed_thread.jsonl",
        "chrome/viztracer_exceptions.json",
    ] {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &bytes).unwrap();
        let gz = enc.finish().unwrap();
        let got = read_input(&gz[..], rel, &ReadOptions::default()).unwrap();
        let want = read(rel);
        assert_eq!(got.format, want.format, "{rel}");
        assert_eq!(got.tasks, want.tasks, "{rel}");
    }
}

#[test]
fn a_cut_off_gzip_recording_replays_what_it_holds() {
    let gz = std::fs::read(fixture("chrome/ray_fail60.json.gz")).unwrap();
    let cut = &gz[..gz.len() * 2 / 3];
    let rec = read_input(cut, "cut.gz", &ReadOptions::default()).unwrap();
    assert!(rec.gzip && rec.stats.cut_off);
    let whole = read("chrome/ray_fail60.json");
    assert!(!rec.tasks.is_empty() && rec.tasks.len() < whole.tasks.len());
}

#[test]
fn an_unknown_format_says_what_it_looks_like_and_what_poolscope_reads() {
    let r = run(&["log", "--replay", common::exe().to_str().unwrap()], None);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("an ELF executable"), "{}", r.stderr);
    for format in ["Chrome trace JSON", "Dask", "joblog", "gzip"] {
        assert!(r.stderr.contains(format), "{}", r.stderr);
    }
    let err = read_input(&b"hello\x01world"[..], "t", &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"text "hello\x01world""#) || err.contains("binary data"),
        "{err}"
    );
}

#[test]
fn py_spy_speedscope_lanes_are_the_pool_threads_and_tasks_say_they_are_sampled() {
    let rec = read("speedscope/pyspy_nine_tasks.json");
    assert_eq!(rec.format, Some(poolscope::source::Format::Speedscope));
    assert!(rec.producer.contains("sampled"), "{}", rec.producer);
    // the threads that ran tasks, by the native ids the tasks wrote themselves
    let mut want: Vec<i64> = truth("speedscope/pyspy_nine_tasks.truth")
        .iter()
        .map(|t| t.1)
        .collect();
    want.sort_unstable();
    want.dedup();
    let mut got: Vec<i64> = rec.lanes.iter().map(|l| l.tid.unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, want);
    assert!(
        rec.lanes
            .iter()
            .all(|l| l.name.starts_with("ThreadPoolExecutor-0_"))
    );
    // back-to-back calls sampled with one stack are one run: each lane's work is `work`
    assert!(
        rec.tasks.iter().all(|t| t.name == "work"),
        "{:?}",
        rec.tasks
    );
    assert!(rec.tasks.iter().all(|t| t.end_ns > t.start_ns));
}

#[test]
fn pyinstrument_speedscope_tasks_are_top_frames_or_the_task_filter() {
    let rec = read("speedscope/pyinstrument_sequential.json");
    assert_eq!(rec.lanes.len(), 1);
    assert_eq!(rec.lanes[0].tid, None, "no thread id is made up");
    let names: Vec<&str> = rec.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["<module>"], "the profile's top frame");
    let only_work = |n: &str| n == "work";
    let opts = ReadOptions {
        task_filter: Some(&only_work),
        ..ReadOptions::default()
    };
    let rec = read_file(&fixture("speedscope/pyinstrument_sequential.json"), &opts).unwrap();
    // pyinstrument's call tree merges the six calls of `work` into one frame
    let names: Vec<&str> = rec.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["work"]);
    let t = &rec.tasks[0];
    let took = t.end_ns.unwrap() - t.start_ns.unwrap();
    assert!(took >= 150_000_000, "six 30 ms calls: {took} ns");
}

#[test]
fn a_perfetto_protobuf_trace_replays_its_thread_slices_and_errors() {
    let rec = read("perfetto/tracing_perfetto_six.pftrace");
    assert_eq!(rec.format, Some(poolscope::source::Format::Perfetto));
    // three worker threads named by their thread descriptors, two tasks each
    let mut names: Vec<&str> = rec.lanes.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["worker-0", "worker-1", "worker-2"]);
    assert!(rec.lanes.iter().all(|l| l.pid.is_some() && l.tid.is_some()));
    assert_eq!(rec.tasks.len(), 6);
    for lane in 0..3u32 {
        let on: Vec<_> = rec
            .tasks
            .iter()
            .filter(|t| t.lane == Some(poolscope::source::LaneId(lane)))
            .collect();
        assert_eq!(on.len(), 2, "lane {lane}");
        assert!(on.iter().all(|t| t.name == "task" && t.steps == 1));
    }
    // task 4 ran on worker-1 (tasks w and w + 3 on worker-w) and logged `error = …`
    let failed: Vec<(&str, &str)> = rec
        .tasks
        .iter()
        .filter_map(|t| {
            let lane = &rec.lanes[t.lane.unwrap().0 as usize];
            t.error.as_deref().map(|e| (lane.name.as_str(), e))
        })
        .collect();
    assert_eq!(failed, [("worker-1", "task 4 failed")]);
}

#[test]
fn a_big_perfetto_trace_replays_packet_by_packet_in_bounded_memory() {
    // 300 000 tasks of three nested slices (1.8 M packets, 38 MB) through a pipe: decoded
    // whole, this took about 550 MB (3 M slices: 1.08 GB); read packet by packet, the reader
    // holds one packet and the open spans.
    replay_generated("perfetto/gen_nested.py", "300000 8", 100_000);
}

/// `log --replay /dev/stdin` of what generator `script` writes with `args`: it exits 0,
/// peaking under `max_kb`.
fn replay_generated(script: &str, args: &str, max_kb: i64) {
    let feeder = format!("python3 {} - {args}", fixture(script).display());
    assert_within(&log_jsonl("/dev/stdin", &[], Some(&feeder)), max_kb);
}

#[test]
fn a_long_protocol_recording_replays_as_it_is_read() {
    // 300 000 tasks (72 MB) through a pipe: gathered whole, this took 101 MB, and
    // 331 MB for a million; told on as they end, in start order, the replay holds a window.
    replay_generated("poolscope/gen_many.py", "300000 4", 64_000);
}

#[test]
fn perfetto_slices_before_their_tracks_descriptor_wait_for_it() {
    let dir = tempdir();
    let path = dir.join("late.pftrace");
    let made = Command::new("python3")
        .arg(fixture("perfetto/gen_nested.py"))
        .arg(&path)
        .args(["40", "4", "late"])
        .status()
        .unwrap();
    assert!(made.success());
    let rec = read_file(&path, &ReadOptions::default()).unwrap();
    assert_eq!(rec.tasks.len(), 40, "{:?}", rec.stats);
    assert_eq!(rec.lanes.len(), 4);
    assert!(rec.tasks.iter().all(|t| t.name == "task" && t.steps == 2));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the same file replays the same way ----------------------------------------------------

#[test]
fn lanes_of_tasks_starting_together_are_numbered_in_file_order() {
    // 16 threads, each with one task at time 0, written in descending tid order: lanes were
    // once numbered in a hash map's (random) order, so two replays of one file differed.
    let events: Vec<String> = (0..16)
        .map(|i| {
            let tid = 115 - i;
            format!(r#"{{"ph":"X","name":"t{tid}","pid":1,"tid":{tid},"ts":0,"dur":5}}"#)
        })
        .collect();
    let trace = format!("[{}]", events.join(",\n"));
    let rec = read_input(trace.as_bytes(), "t", &ReadOptions::default()).unwrap();
    let lanes: Vec<&str> = rec.lanes.iter().map(|l| l.name.as_str()).collect();
    let expect: Vec<String> = (0..16).map(|i| format!("thread {}", 115 - i)).collect();
    assert_eq!(lanes, expect);
    let tasks: Vec<(&str, u32)> = rec
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.lane.unwrap().0))
        .collect();
    let expect: Vec<(String, u32)> = (0..16).map(|i| (format!("t{}", 115 - i), i)).collect();
    let expect: Vec<(&str, u32)> = expect.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    assert_eq!(tasks, expect);
}

/// Hostile pass: a sampled speedscope profile of 75 stacks 200 000 frames deep (30 MB) took
/// 349 MB, memory in proportion to the stacks' depth. Only the outermost frames make tasks.
#[test]
fn deep_speedscope_stacks_cost_no_memory_for_their_depth() {
    use std::fmt::Write as _;
    let dir = tempdir();
    let path = dir.join("deep.speedscope.json");
    let stack = vec!["1"; 200_000].join(",");
    let mut samples = String::new();
    for i in 0..75 {
        let _ = write!(samples, "{}[0,{stack}]", if i == 0 { "" } else { "," });
    }
    let weights = vec!["1"; 75].join(",");
    let doc = format!(
        r#"{{"$schema":"https://www.speedscope.app/file-format-schema.json","exporter":"test",
        "shared":{{"frames":[{{"name":"work"}},{{"name":"inner"}}]}},
        "profiles":[{{"type":"sampled","name":"MainThread","unit":"milliseconds",
        "startValue":0,"endValue":75,"samples":[{samples}],"weights":[{weights}]}}]}}"#
    );
    std::fs::write(&path, doc).unwrap();
    let r = log_jsonl(path.to_str().unwrap(), &[], None);
    let _ = std::fs::remove_dir_all(&dir);
    assert_within(&r, MAX_RSS_KB);
}

/// `log --replay FILE [EXTRA…] --format jsonl`, fed by `feeder` when given.
fn log_jsonl(file: &str, extra: &[&str], feeder: Option<&str>) -> Ran {
    let mut args = vec!["log", "--replay", file, "--format", "jsonl"];
    args.extend_from_slice(extra);
    run(&args, feeder)
}

/// The replay exited 0 and peaked under `max_kb`.
fn assert_within(r: &Ran, max_kb: i64) {
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.max_rss_kb < max_kb, "peak RSS {} KB", r.max_rss_kb);
}

/// A 2 000 000-sample py-spy profile (48 MB) took 273 MB: the file held as text, then each
/// sample as a vector of its frames. Parsed as it is read, a sample costs 4 bytes.
#[test]
fn a_long_sampled_speedscope_profile_costs_memory_for_its_stacks_not_its_samples() {
    use std::io::Write as _;
    let dir = tempdir();
    let path = dir.join("long.speedscope.json");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let samples = 2_000_000;
    write!(
        out,
        r#"{{"$schema":"https://www.speedscope.app/file-format-schema.json","profiles":[{{"type":"sampled","name":"Thread 7 \"worker\"","unit":"seconds","startValue":0,"endValue":{},"samples":["#,
        f64::from(samples) * 0.01
    )
    .unwrap();
    for i in 0..samples {
        // 20 samples a task, tasks taking turns among 8 functions
        let task = 10 + (i / 20) % 8;
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}[0,1,2,3,4,5,6,{task}]").unwrap();
    }
    out.write_all(br#"],"weights":["#).unwrap();
    for i in 0..samples {
        write!(out, "{}0.01", if i == 0 { "" } else { "," }).unwrap();
    }
    let frames: Vec<String> = (0..18).map(|f| format!(r#"{{"name":"f{f}"}}"#)).collect();
    write!(
        out,
        r#"]}}],"shared":{{"frames":[{}]}},"exporter":"test"}}"#,
        frames.join(",")
    )
    .unwrap();
    out.into_inner().unwrap().sync_all().unwrap();
    let r = log_jsonl(path.to_str().unwrap(), &["--task", "^f1[0-7]$"], None);
    let _ = std::fs::remove_dir_all(&dir);
    assert_within(&r, MAX_RSS_KB);
}

#[test]
fn bench_replay_reports_the_replays_events_rate_and_peak_memory() {
    // ray_fail60: 60 tasks, of which 7 failed; both consumers read every event of the file
    let path = fixture("chrome/ray_fail60.json");
    let rec = read("chrome/ray_fail60.json");
    for model in [false, true] {
        let mut cmd = Command::new(common::exe());
        cmd.args(["bench", "--replay"]).arg(&path);
        if model {
            cmd.arg("--model");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["events"], rec.stats.records, "{line}");
        assert_eq!(line["consumer"], if model { "model" } else { "jsonl" });
        if !model {
            assert_eq!(line["records_out"], 60, "a record per task: {line}");
        }
        assert!(line["peak_rss_kb"].as_i64().unwrap() > 0, "{line}");
        assert!(line["events_per_s"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["read_s"].as_f64().unwrap() >= 0.0, "{line}");
    }
}
