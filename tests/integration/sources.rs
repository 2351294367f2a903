//! Sources: every replay format on real recordings made with the real tools
//! (`tests/fixtures/README.md` says how each was made), the event protocol's defences, and the
//! Python probe on the real `python3` with real threads and processes.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use poolscope::source::channel::{ARGS_ENV, EVENTS_ENV, EventFifo};
use poolscope::source::{
    Format, LaneId, ReadOptions, Recording, SourceError, TaskRecord, detect_format, protocol,
    read_file, read_input,
};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Recording {
    read_file(&fixture(rel), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn read_text(format: Option<Format>, text: &str) -> Result<Recording, SourceError> {
    let opts = ReadOptions {
        format,
        ..ReadOptions::default()
    };
    read_input(text.as_bytes(), "input", &opts)
}

fn lane_names(r: &Recording) -> Vec<String> {
    r.lanes.iter().map(|l| l.name.clone()).collect()
}

fn tasks_on(r: &Recording, lane: usize) -> Vec<&TaskRecord> {
    r.tasks
        .iter()
        .filter(|t| t.lane == Some(LaneId(lane as u32)))
        .collect()
}

fn failed(r: &Recording) -> Vec<(&str, &str)> {
    r.tasks
        .iter()
        .filter_map(|t| t.error.as_deref().map(|e| (t.name.as_str(), e)))
        .collect()
}

/// Every lane ran a task, tasks are in start order, and none ends before it starts.
fn assert_sane(r: &Recording) {
    for (i, _) in r.lanes.iter().enumerate() {
        assert!(!tasks_on(r, i).is_empty(), "lane {i} ran nothing");
    }
    let starts: Vec<u64> = r.tasks.iter().filter_map(|t| t.start_ns).collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "not in start order"
    );
    for t in &r.tasks {
        if let (Some(s), Some(e)) = (t.start_ns, t.end_ns) {
            assert!(s <= e, "task {} ends before it starts", t.task);
        }
    }
}

// ---- Chrome traces -------------------------------------------------------------------------

#[test]
fn viztracer_thread_pool_tasks_are_the_functions_under_work_item_run() {
    let r = read("chrome/viztracer_thread.json");
    assert_eq!(r.producer, "viztracer");
    assert_sane(&r);
    let mut names = lane_names(&r);
    names.sort();
    assert_eq!(
        names,
        [
            "ThreadPoolExecutor-0_0",
            "ThreadPoolExecutor-0_1",
            "ThreadPoolExecutor-0_2"
        ]
    );
    assert!(r.lanes.iter().all(|l| l.tid.is_some() && l.pid.is_some()));
    assert_eq!(r.tasks.len(), 6);
    assert!(r.tasks.iter().all(|t| t.name == "blocks"));
    // `blocks` sleeps 0.1 s: every span is about that long, not a whole thread's life
    for t in &r.tasks {
        let d = t.end_ns.unwrap() - t.start_ns.unwrap();
        assert!((90_000_000..200_000_000).contains(&d), "{d} ns");
    }
}

#[test]
fn viztracer_library_calls_under_the_pool_are_not_tasks() {
    // Recorded to depth 14: `_WorkItem.run` also calls `Future.set_result` and friends.
    let r = read("chrome/viztracer_six_thread.json");
    assert_sane(&r);
    assert_eq!(r.lanes.len(), 3);
    assert_eq!(r.tasks.len(), 6);
    assert!(r.tasks.iter().all(|t| t.name == "work"), "{:?}", r.tasks);
    assert!(r.stats.not_tasks > 100);
}

#[test]
fn viztracer_process_pool_lanes_are_the_worker_processes() {
    let r = read("chrome/viztracer_process.json");
    assert_sane(&r);
    assert_eq!(r.lanes.len(), 3);
    let pids: HashSet<u32> = r.lanes.iter().filter_map(|l| l.pid).collect();
    assert_eq!(pids.len(), 3, "three distinct worker PIDs");
    assert!(r.lanes.iter().all(|l| l.tid.is_none()), "process lanes");
    assert!(r.lanes.iter().all(|l| l.name.starts_with("ForkProcess-")));
    assert_eq!(r.tasks.len(), 6);
    assert!(r.tasks.iter().all(|t| t.name == "blocks"));
}

#[test]
fn py_spy_samples_give_the_pool_threads_and_their_function() {
    let r = read("chrome/pyspy_thread.json");
    assert_eq!(r.producer, "py-spy (tasks are sampled runs)");
    assert_sane(&r);
    assert_eq!(r.lanes.len(), 3);
    // Sampling merges a thread's consecutive calls of one function into one span.
    assert!((3..=6).contains(&r.tasks.len()), "{}", r.tasks.len());
    assert!(r.tasks.iter().all(|t| t.name == "blocks"));
}

#[test]
fn tracing_chrome_blocking_spans_merge_by_task_id() {
    let r = read("chrome/tracing_chrome_tokio.json");
    assert_eq!(r.producer, "tracing-chrome");
    assert_sane(&r);
    // The runtime's own worker thread runs a `kind=blocking` span too; it is not a task.
    assert_eq!(r.lanes.len(), 3);
    assert_eq!(r.tasks.len(), 6, "{:?}", r.tasks);
    assert!(r.tasks.iter().all(|t| t.name == "blocks" && t.steps == 1));
}

#[test]
fn ray_timeline_tasks_are_task_events_on_workers_grouped_by_node() {
    let r = read("chrome/ray_timeline.json");
    assert_eq!(r.producer, "ray timeline");
    assert_sane(&r);
    assert_eq!(
        r.tasks.len(),
        7,
        "the driver's submit_task events are not tasks"
    );
    let blocks = r
        .tasks
        .iter()
        .filter(|t| t.name == "__main__.blocks")
        .count();
    assert_eq!(blocks, 6);
    assert!(r.tasks.iter().any(|t| t.name == "__main__.fails"));
    assert!(
        r.lanes
            .iter()
            .all(|l| l.host.as_deref() == Some("192.0.2.2"))
    );
    assert!(r.lanes.iter().all(|l| l.name.starts_with("worker ")));
    assert!(!lane_names(&r).iter().any(|n| n.starts_with("driver")));
    // deserialize_arguments, execute and store_outputs are steps inside each task
    assert!(r.tasks.iter().all(|t| t.steps >= 2));
}

#[test]
fn a_task_filter_chooses_the_spans_that_are_tasks() {
    let only_execute = |name: &str| name == "task:execute";
    let opts = ReadOptions {
        format: None,
        task_filter: Some(&only_execute),
        ..ReadOptions::default()
    };
    let r = read_file(&fixture("chrome/ray_timeline.json"), &opts).unwrap();
    assert_eq!(r.tasks.len(), 7);
    assert!(r.tasks.iter().all(|t| t.name == "task:execute"));
}

#[test]
fn a_cut_off_chrome_trace_replays_what_it_holds() {
    let text = std::fs::read_to_string(fixture("poolscope/trace_thread.json")).unwrap();
    let whole = read_text(None, &text).unwrap();
    // cut in the middle of the last task event
    let cut = &text[..text.rfind("\"cat\":\"task\"").unwrap()];
    let r = read_text(None, cut).unwrap();
    assert!(r.stats.cut_off);
    assert_eq!(r.tasks.len(), whole.tasks.len() - 1);
    // without the final `]` but otherwise whole: nothing lost, nothing cut
    let open = text.trim_end().trim_end_matches(']');
    let r = read_text(None, open).unwrap();
    assert!(!r.stats.cut_off);
    assert_eq!(r.tasks, whole.tasks);
}

#[test]
fn chrome_b_e_pairs_string_ids_metadata_and_the_object_form() {
    let text = r#"{"displayTimeUnit":"ms","otherData":{"x":[1,{"y":"]"}]},"traceEvents":[
        {"ph":"M","name":"thread_name","pid":"p","tid":"w1","args":{"name":"alpha"}},
        {"ph":"B","name":"job","pid":"p","tid":"w1","ts":10},
        {"ph":"B","name":"step","pid":"p","tid":"w1","ts":11},
        {"ph":"E","pid":"p","tid":"w1","ts":12},
        {"ph":"E","pid":"p","tid":"w1","ts":20},
        {"ph":"X","name":"job","pid":7,"tid":8,"ts":15,"dur":5},
        {"ph":"X","name":"inner","pid":7,"tid":8,"ts":16,"dur":1},
        {"ph":"B","name":"unfinished","pid":7,"tid":8,"ts":30}
    ]}"#;
    let r = read_text(None, text).unwrap();
    assert_eq!(r.producer, "Chrome trace");
    assert_eq!(r.tasks.len(), 3, "{:?}", r.tasks);
    let first = &r.tasks[0];
    assert_eq!(
        (first.name.as_str(), first.start_ns, first.end_ns),
        ("job", Some(0), Some(10_000))
    );
    assert_eq!(first.steps, 1);
    assert_eq!(r.lanes[first.lane.unwrap().0 as usize].name, "alpha");
    assert_eq!(r.tasks[1].steps, 1);
    assert_eq!(r.tasks[2].name, "unfinished");
    assert_eq!(r.tasks[2].end_ns, None, "still running when the trace ends");
}

#[test]
fn chrome_bad_events_are_counted_not_trusted() {
    let text = r#"[
        {"ph":"X","name":"ok","pid":1,"tid":1,"ts":0,"dur":5},
        {"ph":"X","name":"negative","pid":1,"tid":2,"ts":-5,"dur":5},
        {"ph":"X","name":"backwards","pid":1,"tid":2,"ts":5,"dur":-5},
        {"ph":"X","name":"nan","pid":1,"tid":2,"ts":"soon","dur":5},
        {"ph":"X","name":"no lane","ts":5,"dur":5},
        {"ph":"E","pid":1,"tid":3,"ts":5},
        {"ph":"X","name":"far","pid":1,"tid":4,"ts":9.0e13,"dur":1},
        42,
        {"ph":"X","name":"ok2","pid":1,"tid":1,"ts":10,"dur":5}
    ]"#;
    let r = read_text(None, text).unwrap();
    let names: Vec<&str> = r.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ok", "ok2"]);
    // times: negative, backwards, not a number, absurdly far; refused: no lane, E alone, 42
    assert_eq!(r.stats.bad_times, 4, "{:?}", r.stats);
    assert_eq!(r.stats.rejected, 3, "{:?}", r.stats);
    assert!(r.stats.first_problem.is_some());
}

#[test]
fn chrome_garbage_is_one_clear_error() {
    let e = read_text(Some(Format::Chrome), "hello")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "input:1: not a JSON array or object");
    let e = read_text(Some(Format::Chrome), r#"{"foo": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no \"traceEvents\" array"), "{e}");
    let e = read_text(None, "").unwrap_err().to_string();
    assert_eq!(e, "input: empty file");
    let e = read_text(None, "\u{1}\u{2}binary").unwrap_err().to_string();
    assert!(
        e.starts_with("input:1: not a recording poolscope knows"),
        "{e}"
    );
}

// ---- poolscope's own traces: a round trip --------------------------------------------------

#[test]
fn poolscope_traces_replay_with_their_lanes_and_failures() {
    let r = read("poolscope/trace_thread.json");
    assert_eq!(r.producer, "poolscope trace");
    assert_sane(&r);
    let mut names = lane_names(&r);
    names.sort();
    assert_eq!(names, ["Thread-1", "Thread-2", "Thread-3"]);
    assert_eq!(r.tasks.len(), 8);
    let mut f = failed(&r);
    f.sort_unstable();
    assert_eq!(
        f,
        [
            ("fail(4)", "fail(4) raised an error on purpose"),
            ("fail(6)", "panicked: fail(6) panicked on purpose")
        ]
    );
    let r = read("poolscope/trace_process.json");
    assert_sane(&r);
    assert!(
        r.lanes
            .iter()
            .all(|l| l.tid.is_none() && l.name == format!("PID {}", l.pid.unwrap()))
    );
    assert_eq!(r.tasks.len(), 8);
    assert_eq!(failed(&r).len(), 2);
}

#[test]
fn a_live_poolscope_trace_round_trips_to_the_same_tasks_on_the_same_lanes() {
    let dir = tempdir();
    let trace = dir.join("trace.json");
    let out = Command::new(env!("CARGO_BIN_EXE_poolscope"))
        .args([
            "log",
            "--workload",
            "fail",
            "--tasks",
            "9",
            "--task-ms",
            "20",
            "--trace",
        ])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The example-style log says which thread ran each task and how it ended.
    let mut from_log = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((who, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((task, what)) = rest.trim_start().split_once(": ") else {
            continue;
        };
        if what == "done" || what.starts_with("failed") {
            from_log.insert((task.to_string(), who.to_string(), what != "done"));
        }
    }
    let r = read_file(&trace, &ReadOptions::default()).unwrap();
    let from_trace: BTreeSet<_> = r
        .tasks
        .iter()
        .map(|t| {
            let lane = &r.lanes[t.lane.unwrap().0 as usize];
            (t.name.clone(), lane.name.clone(), t.error.is_some())
        })
        .collect();
    assert_eq!(from_log.len(), 9);
    assert_eq!(from_trace, from_log);
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "poolscope-sources-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- Dask and GNU parallel -----------------------------------------------------------------

#[test]
fn dask_task_stream_lanes_are_workers_and_errors_fail() {
    let r = read("dask/task_stream.json");
    assert_eq!(r.format, Some(Format::Dask));
    assert_sane(&r);
    assert_eq!(r.lanes.len(), 3);
    assert!(
        r.lanes
            .iter()
            .all(|l| l.host.as_deref() == Some("127.0.0.1"))
    );
    assert!(
        r.lanes
            .iter()
            .all(|l| l.name.starts_with("worker 127.0.0.1:"))
    );
    assert_eq!(r.tasks.len(), 7);
    assert_eq!(r.tasks.iter().filter(|t| t.name == "blocks").count(), 6);
    assert_eq!(failed(&r), [("fails", "ValueError('boom 7')")]);
}

#[test]
fn dask_bad_records_are_counted() {
    let text = r#"[{"worker":"tcp://10.0.0.1:1","thread":1,"key":"inc-0123456789abcdef0123456789abcdef",
          "startstops":[{"action":"transfer","start":1.0,"stop":2.0},{"action":"compute","start":2.0,"stop":3.0}]},
        {"worker":"tcp://10.0.0.1:1","thread":1,"key":"x","startstops":[{"action":"compute","start":5.0,"stop":4.0}]},
        {"thread":1,"startstops":[]},
        {"worker":"tcp://10.0.0.1:1","thread":1,"key":["('sum-aggregate-0123456789abcdef0123456789abcdef', 3)"],
          "startstops":[{"action":"compute","start":4.0,"stop":4.5}]}"#; // cut off: no `]`
    let r = read_text(None, text).unwrap();
    let names: Vec<&str> = r.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["inc", "sum-aggregate"]);
    assert_eq!(
        r.tasks[0].start_ns,
        Some(0),
        "time zero is the first compute"
    );
    assert_eq!((r.stats.bad_times, r.stats.rejected), (1, 1));
}

#[test]
fn joblog_slots_are_rebuilt_as_parallel_hands_them_out() {
    let r = read("joblog/parallel.joblog");
    assert_eq!(r.format, Some(Format::Joblog));
    assert_sane(&r);
    assert_eq!(lane_names(&r), ["slot 1", "slot 2", "slot 3"]);
    assert_eq!(r.tasks.len(), 10);
    // Each command wrote the slot parallel gave it (`{%}`): the rebuilt slot must agree.
    for t in &r.tasks {
        let real = t
            .name
            .split("slot=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let lane = &r.lanes[t.lane.unwrap().0 as usize];
        assert_eq!(lane.name, format!("slot {real}"), "job {}", t.task);
    }
    let mut f: Vec<(String, String)> = r
        .tasks
        .iter()
        .filter_map(|t| t.error.clone().map(|e| (t.task.clone(), e)))
        .collect();
    f.sort();
    assert_eq!(
        f,
        [
            ("5".to_string(), "exit 1".to_string()),
            ("6".to_string(), "killed by SIGTERM".to_string())
        ]
    );
}

#[test]
fn joblog_bad_lines_are_counted() {
    let text = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n\
        1\t:\t100.0\t1.0\t0\t0\t0\t0\techo a\n\
        2\t:\tlater\t1.0\t0\t0\t0\t0\techo b\n\
        3\t:\t100.5\t-1.0\t0\t0\t0\t0\techo c\n\
        4\t:\t100.5\t1.0\t0\t0\n\
        5\t:\t100.5\t1.0\t0\t0\t0\t0\techo\twith\ttabs\n\
        9\t:\t50000000000\t1.0\t0\t0\t0\t0\techo far\n";
    let long = format!("6\t:\t100.5\t1.0\t0\t0\t0\t0\t{}\n", "z".repeat(70_000));
    let r = read_text(
        None,
        &format!("{text}{long}7\t:\t100.6\t1.0\t0\t0\t0\t0\techo d\n8\t:\t10"),
    )
    .unwrap();
    let names: Vec<&str> = r.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["echo a", "echo\twith\ttabs", "echo d"]);
    assert_eq!((r.stats.rejected, r.stats.bad_times), (3, 2));
    assert!(r.stats.cut_off, "the last line was cut");
    assert_eq!(r.lanes.len(), 3, "the jobs overlap");
}

#[test]
fn the_event_fifo_is_private_and_removed_after_use() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let fifo = EventFifo::create(None).unwrap();
    let dir = fifo.probe_dir().to_path_buf();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(fifo.path()), 0o600);
    assert!(
        std::fs::metadata(fifo.path())
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let probe = std::fs::read_to_string(dir.join("sitecustomize.py")).unwrap();
    assert_eq!(probe, poolscope::source::PYTHON_PROBE);
    drop(fifo);
    assert!(!dir.exists());
}

#[test]
fn mangled_recordings_never_panic() {
    let files = [
        "chrome/ray_timeline.json",
        "chrome/tracing_chrome_tokio.json",
        "chrome/pyspy_thread.json",
        "dask/task_stream.json",
        "joblog/parallel.joblog",
        "poolscope/probe_seed_process.jsonl",
        "poolscope/trace_thread.json",
    ];
    let formats = [
        None,
        Some(Format::Poolscope),
        Some(Format::Chrome),
        Some(Format::Dask),
        Some(Format::Joblog),
    ];
    let mut rng = fastrand::Rng::with_seed(12);
    let junk: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"\\",
        b"\n",
        b"-1e999",
        b"99999999999999999999",
        b"\t",
        b"\xff",
    ];
    for file in files {
        let original = std::fs::read(fixture(file)).unwrap();
        for _ in 0..150 {
            let mut bytes = original.clone();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..bytes.len());
                match rng.u8(..3) {
                    0 => bytes.truncate(at.max(1)),
                    1 => bytes[at] = rng.u8(..),
                    _ => {
                        let j = junk[rng.usize(..junk.len())];
                        bytes.splice(at..at, j.iter().copied());
                    }
                }
            }
            let format = formats[rng.usize(..formats.len())];
            let opts = ReadOptions {
                format,
                ..ReadOptions::default()
            };
            // Ok or one error line: either way, no panic.
            if let Err(e) = read_input(&bytes[..], "mangled", &opts) {
                let text = e.to_string();
                assert!(
                    text.starts_with("mangled") && !text.contains('\n'),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn formats_are_detected_from_their_first_bytes() {
    let cases = [
        ("chrome/ray_timeline.json", Format::Chrome),
        ("chrome/viztracer_thread.json", Format::Chrome),
        ("poolscope/trace_thread.json", Format::Chrome),
        ("poolscope/probe_seed_thread.jsonl", Format::Poolscope),
        ("dask/task_stream.json", Format::Dask),
        ("joblog/parallel.joblog", Format::Joblog),
    ];
    for (file, format) in cases {
        let bytes = std::fs::read(fixture(file)).unwrap();
        assert_eq!(
            detect_format(&bytes[..bytes.len().min(8192)]),
            Some(format),
            "{file}"
        );
    }
    assert_eq!(Format::from_name("auto"), Ok(None));
    assert!(
        Format::from_name("csv")
            .unwrap_err()
            .contains("unknown format")
    );
}

// ---- the event protocol --------------------------------------------------------------------

const HEADER: &str = r#"{"poolscope":1,"origin_ns":1000000000}"#;

fn protocol(lines: &[&str]) -> Result<Recording, SourceError> {
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    read_text(None, &text)
}

#[test]
fn protocol_recordings_from_the_probe_replay() {
    let r = read("poolscope/probe_seed_thread.jsonl");
    assert_eq!(r.format, Some(Format::Poolscope));
    assert_sane(&r);
    assert_eq!(r.lanes.len(), 3);
    assert_eq!(r.tasks.len(), 6);
    assert!(
        r.tasks
            .iter()
            .all(|t| t.name == "blocks" && t.queued_ns <= t.start_ns)
    );
    let r = read("poolscope/probe_seed_process.jsonl");
    assert_sane(&r);
    assert!(r.lanes.iter().all(|l| l.tid.is_none() && l.pid.is_some()));
    assert_eq!(r.tasks.len(), 6);
}

#[test]
fn protocol_events_make_lanes_and_tasks() {
    let r = protocol(&[
        HEADER,
        r#"{"ev":"worker_started","t":1000000000,"pid":40,"tid":41,"name":"Thread-1","extra":[1,2]}"#,
        r#"{"ev":"task_queued","t":1000000500,"id":"a","name":"f","args":"3"}"#,
        r#"{"ev":"task_started","s":0.001,"id":"a","name":"f","args":"3","pid":40,"tid":41}"#,
        r#"{"ev":"task_started","s":0.002,"id":"b","name":"g","pid":50,"host":"node-1"}"#,
        r#"{"ev":"task_failed","s":0.003,"id":"b","error":"ValueError: no\nsecond line"}"#,
        r#"{"ev":"task_finished","t":1004000000,"id":"a"}"#,
        r#"{"ev":"task_ran","t":1004000000,"end_t":1004500000,"id":"c","name":"h","pid":40,"tid":41}"#,
        r#"{"ev":"task_ran","s":0.006,"end_s":0.0065,"id":"d","name":"h","pid":40,"tid":41}"#,
        r#"{"ev":"worker_exited","t":1005000000,"pid":50,"host":"node-1","status":"exit 3"}"#,
    ])
    .unwrap();
    assert_eq!(
        r.stats.rejected + r.stats.bad_times + r.stats.unknown_kinds,
        0,
        "{:?}",
        r.stats
    );
    assert_eq!(r.lanes.len(), 2);
    assert_eq!(r.lanes[0].to_string(), "Thread-1 · tid 41");
    assert_eq!(r.lanes[1].to_string(), "node-1 · PID 50");
    let a = &r.tasks[0];
    assert_eq!(a.name, "f(3)");
    assert_eq!(
        (a.queued_ns, a.start_ns, a.end_ns),
        (Some(500), Some(1_000_000), Some(4_000_000))
    );
    assert_eq!(r.tasks[1].error.as_deref(), Some("ValueError: no"));
    let ran: Vec<_> = r.tasks[2..]
        .iter()
        .map(|t| (t.lane, t.start_ns, t.end_ns))
        .collect();
    assert_eq!(
        ran,
        [
            (Some(LaneId(0)), Some(4_000_000), Some(4_500_000)),
            (Some(LaneId(0)), Some(6_000_000), Some(6_500_000))
        ]
    );
    assert_eq!(
        r.lane_exits[1],
        Some((5_000_000, Some("exit 3".to_string())))
    );
}

#[test]
fn protocol_bad_lines_are_counted_and_skipped() {
    let r = protocol(&[
        HEADER,
        "not json",
        "[1,2]",
        r#"{"t":1000000000}"#,
        r#"{"ev":"task_started","t":1000000000,"id":"a","pid":0}"#,
        r#"{"ev":"task_started","t":1000000000,"id":"a","pid":-4}"#,
        r#"{"ev":"task_started","t":1000000000,"id":"a","pid":5,"tid":"x"}"#,
        r#"{"ev":"task_started","t":1000000000,"id":{"x":1},"pid":5}"#,
        r#"{"ev":"task_queued","t":1000000000,"id":"q"}"#,
        r#"{"ev":"task_started","t":1000000000,"id":"ok","name":"f","pid":5}"#,
    ])
    .unwrap();
    assert_eq!(r.stats.rejected, 8, "{:?}", r.stats);
    assert_eq!(
        r.stats.first_problem.as_deref().unwrap().split(':').next(),
        Some("line 2")
    );
    assert_eq!(r.tasks.len(), 1);
}

#[test]
fn protocol_unknown_kinds_are_counted_and_the_drop_count_read() {
    let r = protocol(&[
        HEADER,
        r#"{"ev":"gpu_sample","t":1000000000,"util":0.5}"#,
        r#"{"ev":"task_paused","t":1000000000,"id":"a"}"#,
        r#"{"ev":"dropped","t":1000000000,"count":17,"pid":3}"#,
        r#"{"ev":"dropped","t":1000000000,"count":3,"pid":4}"#,
    ])
    .unwrap();
    assert_eq!(r.stats.unknown_kinds, 2);
    assert_eq!(r.stats.dropped_by_writer, 20);
    assert_eq!(r.stats.rejected, 0);
}

#[test]
fn protocol_lines_over_64_kib_are_refused_unread() {
    let huge = format!(
        r#"{{"ev":"task_queued","t":1000000000,"id":"big","name":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let r = protocol(&[
        HEADER,
        &huge,
        r#"{"ev":"task_queued","t":1000000000,"id":"next","name":"after"}"#,
    ])
    .unwrap();
    assert_eq!(r.stats.rejected, 1);
    assert!(
        r.stats
            .first_problem
            .as_deref()
            .unwrap()
            .contains("over 64 KiB")
    );
    let names: Vec<&str> = r.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["after"], "the line after a huge one is read");
    // a long name under the limit is kept, cut to a display size
    let long = format!(
        r#"{{"ev":"task_queued","t":1000000000,"id":"l","name":"{}"}}"#,
        "y".repeat(10_000)
    );
    let r = protocol(&[HEADER, &long]).unwrap();
    assert!(r.tasks[0].name.len() < 300);
}

#[test]
fn protocol_lying_times_are_refused() {
    let r = protocol(&[
        HEADER,
        r#"{"ev":"task_started","t":-5,"id":"neg","name":"f","pid":5}"#,
        r#"{"ev":"task_started","s":-0.5,"id":"neg2","name":"f","pid":5}"#,
        r#"{"ev":"task_started","t":999999999,"id":"before","name":"f","pid":5}"#,
        r#"{"ev":"task_started","t":1000000000000000000,"id":"future","name":"f","pid":5}"#,
        r#"{"ev":"task_started","s":1e300,"id":"future2","name":"f","pid":5}"#,
        r#"{"ev":"task_started","s":"soon","id":"str","name":"f","pid":5}"#,
        r#"{"ev":"task_started","t":1000000100,"id":"ok","name":"f","pid":5}"#,
        r#"{"ev":"task_finished","t":1000000050,"id":"ok"}"#,
        r#"{"ev":"task_finished","t":1000000200,"id":"ok"}"#,
        r#"{"ev":"task_ran","t":1000000300,"end_t":1000000299,"id":"r","name":"f","pid":5}"#,
        r#"{"ev":"task_ran","t":1000000300,"end_s":1e30,"id":"r2","name":"f","pid":5}"#,
    ])
    .unwrap();
    assert_eq!(r.stats.bad_times, 9, "{:?}", r.stats);
    assert_eq!(r.tasks.len(), 1);
    assert_eq!(
        (r.tasks[0].start_ns, r.tasks[0].end_ns),
        (Some(100), Some(200))
    );
}

/// A `packed` line of records, each given as the seven integers it stands for, laid out as a
/// writer packs them (docs/protocol.md): a kind byte, then the kind's fields at their widths
/// (each integer cut to its field's width, as a writer's would wrap); a kind of neither
/// layout is its byte and the rest as 64-bit integers.
fn packed(pid: u32, records: &[[i64; 7]]) -> String {
    let mut bytes = Vec::new();
    for rec in records {
        // The probe's layout: a head `n << 18 | name << 8 | kind` (kind 3 or 4), then the
        // kind's fields; other kinds as a kind byte and 64-bit words.
        let head =
            |kind: i64, n: i64, name: i64| (n << 18 | (name & 0x3ff) << 8 | kind).to_le_bytes();
        match rec[0] {
            1 => {
                bytes.extend_from_slice(&head(3, rec[2], rec[3]));
                bytes.extend_from_slice(&rec[1].to_le_bytes());
            }
            2 => {
                bytes.extend_from_slice(&head(4, rec[3], rec[4]));
                for word in [rec[1], rec[2], rec[6]] {
                    bytes.extend_from_slice(&word.to_le_bytes());
                }
                bytes.extend_from_slice(&rec[5].to_le_bytes()[..4]);
            }
            kind => {
                bytes.push(kind as u8);
                for word in &rec[1..] {
                    bytes.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
    }
    packed_line(pid, &bytes)
}

/// A `packed` line of records in the probe's earlier layout (kinds 1 and 2: a kind byte, then
/// each field at its own width), which recordings made by it hold.
fn packed_earlier(pid: u32, records: &[[i64; 7]]) -> String {
    let mut bytes = Vec::new();
    for rec in records {
        let widths: &[usize] = if rec[0] == 1 {
            &[8, 8, 2]
        } else {
            &[8, 8, 8, 2, 4, 8]
        };
        bytes.push(rec[0] as u8);
        for (word, &width) in rec[1..].iter().zip(widths) {
            bytes.extend_from_slice(&word.to_le_bytes()[..width]);
        }
    }
    packed_line(pid, &bytes)
}

fn packed_line(pid: u32, bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut hex = String::new();
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
    }
    format!(r#"{{"ev":"packed","pid":{pid},"r":"{hex}"}}"#)
}

#[test]
fn protocol_packed_records_are_the_lines_they_stand_for() {
    let t = 1_000_000_000;
    let lines = [
        HEADER.to_string(),
        r#"{"ev":"name","pid":40,"n":0,"name":"noop"}"#.to_string(),
        r#"{"ev":"name","pid":40,"n":1,"name":"slow"}"#.to_string(),
        packed(
            40,
            &[
                [1, t + 100, 1, 0, 0, 0, 0],
                [1, t + 150, 2, 1, 0, 0, 0],
                [2, t + 200, t + 700, 1, 0, 41, 300],
                [1, t + 250, 3, 0, 0, 0, 0],
            ],
        ),
        // Task 2 ran long: told started in a line, its packed record is its end.
        r#"{"ev":"task_started","t":1000000300,"id":"40-2","name":"slow","pid":40,"tid":42}"#
            .to_string(),
        // A recording of the earlier probe, whose layout is still read.
        packed_earlier(
            40,
            &[
                [2, t + 300, t + 5300, 2, 1, 42, -1],
                [2, t + 800, t + 900, 3, 0, 41, -1],
            ],
        ),
    ];
    let r = protocol(&lines.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    assert_eq!(
        (r.stats.records, r.stats.rejected, r.stats.bad_times),
        (10, 0, 0),
        "{:?}",
        r.stats
    );
    let got: Vec<_> = r
        .tasks
        .iter()
        .map(|t| {
            let lane = &r.lanes[t.lane.unwrap().0 as usize];
            (
                t.task.as_str(),
                t.name.as_str(),
                lane.tid,
                t.queued_ns,
                t.start_ns,
                t.end_ns,
                t.cpu_ns,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "40-1",
                "noop",
                Some(41),
                Some(100),
                Some(200),
                Some(700),
                Some(300)
            ),
            (
                "40-2",
                "slow",
                Some(42),
                Some(150),
                Some(300),
                Some(5300),
                None
            ),
            (
                "40-3",
                "noop",
                Some(41),
                Some(250),
                Some(800),
                Some(900),
                None
            ),
        ]
    );
}

/// Names are bounded over all processes, and a program forking a process per job names anew
/// in each: past the bound the first process's names are forgotten, not the newest ones
/// (refused, they lost the tasks of every later process).
#[test]
fn protocol_names_past_their_bound_forget_the_oldest_process() {
    let t = 1_000_000_000;
    let mut lines = vec![HEADER.to_string()];
    for pid in 1..=70 {
        for n in 0..1000 {
            lines.push(format!(
                r#"{{"ev":"name","pid":{pid},"n":{n},"name":"f{n}"}}"#
            ));
        }
    }
    lines.push(packed(70, &[[2, t, t + 10, 1, 999, 7, -1]]));
    lines.push(packed(1, &[[2, t, t + 10, 2, 999, 7, -1]]));
    let r = protocol(&lines.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    assert_eq!(r.tasks.len(), 1, "{:?}", r.stats);
    assert_eq!(
        (r.tasks[0].task.as_str(), r.tasks[0].name.as_str()),
        ("70-1", "f999")
    );
    assert_eq!(
        r.stats.rejected, 1,
        "process 1's names are forgotten: {:?}",
        r.stats
    );
}

/// Packed records lie as lines can: each bad one is counted and skipped, the line's good ones
/// kept; a bad `packed` or `name` line is one refusal.
#[test]
fn protocol_packed_lies_are_counted_and_skipped() {
    let t = 1_000_000_000;
    let good = [2, t + 200, t + 700, 9, 0, 41, -1];
    let lines = [
        HEADER.to_string(),
        r#"{"ev":"name","pid":40,"n":0,"name":"noop"}"#.to_string(),
        r#"{"ev":"name","pid":40,"name":"no number"}"#.to_string(),
        r#"{"ev":"name","pid":40,"n":1}"#.to_string(),
        r#"{"ev":"packed","pid":40,"r":"zz"}"#.to_string(),
        r#"{"ev":"packed","pid":40,"r":"0100"}"#.to_string(), // a record cut short
        r#"{"ev":"packed","pid":40,"r":"03000400000000"}"#.to_string(), // a head cut short
        r#"{"ev":"packed","pid":40,"r":""}"#.to_string(),
        r#"{"ev":"packed","pid":40}"#.to_string(),
        r#"{"ev":"packed","r":"00"}"#.to_string(),
        // The earlier layout, seven 64-bit integers a record.
        r#"{"ev":"packed","pid":40,"v":"0100000000000000"}"#.to_string(),
        // An unknown kind: nothing after it can be read (a record good before it is taken).
        packed(40, &[good, [9, t, 1, 0, 0, 0, 0], good]),
        packed(
            40,
            &[
                [1, t, 0, 0, 0, 0, 0],               // no task number
                [1, t, 2, 7, 0, 0, 0],               // a name never given
                [1, -5, 4, 0, 0, 0, 0],              // a time before the origin
                [2, t + 700, t + 200, 5, 0, 41, -1], // ends before it starts
                [2, t, t + 10, 6, 0, 41, 5_000_000], // more CPU than time
                [2, t, t + 10, 7, 0, 0, -1],         // no thread
                [2, t, t + 10, 8, 0, 41, -7],        // negative CPU
                good,
            ],
        ),
        packed(41, &[good]), // process 41 named nothing
    ];
    let r = protocol(&lines.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    assert_eq!(r.tasks.len(), 1, "{:?}", r.stats);
    assert_eq!(r.tasks[0].task, "40-9");
    // Two name lines, seven packed lines, the unknown kind, five lies, process 41's record
    // (`good` comes twice: its second end is dropped, as any task's second end).
    assert_eq!(
        (r.stats.rejected, r.stats.bad_times),
        (2 + 7 + 1 + 5 + 1, 2),
        "{:?}",
        r.stats
    );
}

#[test]
fn protocol_header_is_required_and_versioned() {
    let e = protocol(&[r#"{"ev":"task_queued","t":1,"id":"a","name":"f"}"#]);
    // without a header, auto-detection does not take it for the protocol at all
    assert!(e.is_err());
    let e = read_text(Some(Format::Poolscope), "{\"ev\":\"x\"}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("input:1: not a poolscope event stream"),
        "{e}"
    );
    let e = protocol(&[r#"{"poolscope":2}"#]).unwrap_err().to_string();
    assert_eq!(
        e,
        "input:1: protocol version 2; this poolscope reads version 1"
    );
    let e = protocol(&[r#"{"poolscope":1,"origin_ns":"now"}"#])
        .unwrap_err()
        .to_string();
    assert!(e.contains("origin_ns"), "{e}");
}

#[test]
fn a_cut_off_protocol_recording_replays_what_it_holds() {
    let text = std::fs::read_to_string(fixture("poolscope/probe_seed_thread.jsonl")).unwrap();
    let cut = &text[..text.len() - 20];
    let r = read_text(None, cut).unwrap();
    assert!(r.stats.cut_off);
    assert_eq!(r.stats.rejected, 0);
    assert_eq!(r.tasks.len(), 6);
    assert_eq!(r.tasks.iter().filter(|t| t.end_ns.is_none()).count(), 1);
}

// ---- the Python probe, live ----------------------------------------------------------------

/// `python3`, or `None` after saying loudly that the probe tests are skipped.
fn python3() -> Option<&'static str> {
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => Some("python3"),
        _ => {
            eprintln!("SKIPPED: python3 is not installed, so the Python probe is not tested");
            None
        }
    }
}

struct Watched {
    rec: Recording,
    stdout: String,
    stderr: String,
    pid: u32,
}

/// Runs a fixture program under the probe, reading its events from a real FIFO.
fn watch(python: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Watched {
    let mut fifo = EventFifo::create(None).unwrap();
    let reader = fifo.take_reader().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rec = Recording::default();
        let stats = protocol::read(BufReader::new(reader), "fifo", &mut rec.collector());
        let _ = tx.send(stats.map(|s| {
            rec.stats = s;
            rec
        }));
    });
    let child = Command::new(python)
        .arg(fixture(program))
        .args(args)
        .env(EVENTS_ENV, fifo.path())
        .env("PYTHONPATH", fifo.probe_dir())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    fifo.program_exited();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{program} failed: {stderr}");
    let mut rec = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the event stream ended")
        .unwrap_or_else(|e| panic!("{e}"));
    rec.tasks.sort_by_key(|t| t.start_ns);
    Watched {
        rec,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        pid,
    }
}

/// The six-task program's report: its PID, per finished task [n, pid, ppid, tid, gppid].
fn six_task_report(stdout: &str) -> (u32, Vec<[i64; 5]>, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let done = v["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let d: Vec<i64> = d
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            [d[0], d[1], d[2], d[3], d[4]]
        })
        .collect();
    let failed = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    (v["pid"].as_u64().unwrap() as u32, done, failed)
}

fn assert_six_tasks_one_failed(r: &Recording) {
    assert_eq!(r.stats.rejected + r.stats.bad_times, 0, "{:?}", r.stats);
    assert_eq!(r.tasks.len(), 6, "{:?}", r.tasks);
    assert!(
        r.tasks
            .iter()
            .all(|t| t.name == "work" && t.end_ns.is_some())
    );
    assert!(
        r.tasks
            .iter()
            .all(|t| t.queued_ns.unwrap() <= t.start_ns.unwrap())
    );
    assert_eq!(failed(r), [("work", "ValueError: task 4 fails")]);
    assert_eq!(r.lanes.len(), 3);
    assert_sane(r);
}

#[test]
fn probe_thread_pool_three_real_threads_six_tasks_one_failure() {
    probe_thread_pool("thread", "work item");
}

/// A Python whose thread pool work item is not the one the probe's replacements were
/// written for (a newer one's may not be) is watched through `submit`: the same tasks.
#[test]
fn probe_thread_pool_with_a_work_item_it_does_not_know_is_watched_through_submit() {
    probe_thread_pool("thread-other", "submit");
}

/// Six tasks through a three-thread pool (`six_tasks.py MODE`), the probe watching it as
/// `watched_as` (how the program says it was watched).
fn probe_thread_pool(mode: &str, watched_as: &str) {
    let Some(py) = python3() else { return };
    let w = watch(py, "python/six_tasks.py", &[mode], &[]);
    let report: serde_json::Value = serde_json::from_str(w.stdout.trim()).unwrap();
    assert_eq!(report["watched"], watched_as);
    let (pid, done, failures) = six_task_report(&w.stdout);
    assert_eq!(pid, w.pid);
    assert_eq!(failures, ["task 4 fails"]);
    assert_six_tasks_one_failed(&w.rec);
    let tids: HashSet<i64> = done.iter().map(|d| d[3]).collect();
    let lane_tids: HashSet<i64> = w.rec.lanes.iter().map(|l| l.tid.unwrap()).collect();
    assert_eq!(lane_tids, tids, "lanes are the threads that ran the tasks");
    assert!(w.rec.lanes.iter().all(|l| l.pid == Some(pid)));
    assert!(
        w.rec
            .lanes
            .iter()
            .all(|l| l.name.starts_with("ThreadPoolExecutor-"))
    );
    // task n (id `PID-(n+1)`, in submit order) is on the lane of the thread that ran it
    for d in &done {
        let lane = lane_of(&w.rec, &format!("{pid}-{}", d[0] + 1));
        assert_eq!(lane.tid, Some(d[3]), "task {}", d[0]);
    }
}

fn lane_of<'r>(r: &'r Recording, task: &str) -> &'r poolscope::source::LaneInfo {
    let t = r.tasks.iter().find(|t| t.task == task).unwrap();
    &r.lanes[t.lane.unwrap().0 as usize]
}

fn probe_process_pool(method: &str) {
    let Some(py) = python3() else { return };
    let w = watch(py, "python/six_tasks.py", &[method], &[]);
    let (pid, done, failures) = six_task_report(&w.stdout);
    assert_eq!(pid, w.pid);
    assert_eq!(failures, ["task 4 fails"]);
    assert_six_tasks_one_failed(&w.rec);
    let worker_pids: HashSet<u32> = done.iter().map(|d| d[1] as u32).collect();
    let lane_pids: HashSet<u32> = w.rec.lanes.iter().map(|l| l.pid.unwrap()).collect();
    assert_eq!(lane_pids, worker_pids, "lanes are the worker processes");
    assert!(!lane_pids.contains(&pid));
    assert!(w.rec.lanes.iter().all(|l| l.tid.is_none()));
    for d in &done {
        assert_eq!(
            lane_of(&w.rec, &format!("{pid}-{}", d[0] + 1)).pid,
            Some(d[1] as u32)
        );
        // the workers are the program's children (a forkserver's, under forkserver)
        let parent = if method == "forkserver" { d[4] } else { d[2] };
        assert_eq!(parent, i64::from(pid), "worker {} of {method}", d[1]);
    }
}

#[test]
fn probe_process_pool_fork() {
    probe_process_pool("fork");
}

#[test]
fn probe_process_pool_spawn() {
    probe_process_pool("spawn");
}

#[test]
fn probe_process_pool_forkserver() {
    probe_process_pool("forkserver");
}

#[test]
fn probe_watches_the_seed_programs_unchanged() {
    let Some(py) = python3() else { return };
    let w = watch(py, "python/asyncio_executor_thread.py", &[], &[]);
    assert!(
        w.stderr.contains("run_blocking_tasks: results: ["),
        "{}",
        w.stderr
    );
    assert_eq!(w.rec.lanes.len(), 3);
    assert_eq!(w.rec.tasks.len(), 6);
    assert!(
        w.rec
            .tasks
            .iter()
            .all(|t| t.name == "blocks" && t.error.is_none())
    );

    let w = watch(py, "python/asyncio_executor_process.py", &[], &[]);
    // `PID 29895          blocks(0): running`: the worker PIDs the program itself logs
    let logged: HashSet<u32> = w
        .stderr
        .lines()
        .filter(|l| l.contains("blocks("))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    let lane_pids: HashSet<u32> = w.rec.lanes.iter().map(|l| l.pid.unwrap()).collect();
    assert_eq!(lane_pids.len(), 3);
    assert_eq!(lane_pids, logged);
    assert!(!lane_pids.contains(&w.pid));
    assert_eq!(w.rec.tasks.len(), 6);
}

#[test]
fn probe_names_tasks_by_the_users_function_on_every_path() {
    let Some(py) = python3() else { return };
    let w = watch(py, "python/variants.py", &[], &[]);
    assert_eq!(w.stdout.trim(), "[1, 4, 9, 16, 25, 36]");
    let names: Vec<&str> = w.rec.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names, ["square"; 6],
        "to_thread, default executor, map, process map"
    );
    let w = watch(py, "python/variants.py", &[], &[(ARGS_ENV, "1")]);
    let mut names: Vec<&str> = w.rec.tasks.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names[0], "square(1)");
    assert!(names.contains(&"square(2)") && names.contains(&"square(3)"));
}

#[test]
fn probe_never_blocks_a_program_whose_channel_is_full() {
    let Some(py) = python3() else { return };
    let mut fifo = EventFifo::create(None).unwrap();
    let reader = fifo.take_reader().unwrap();
    let mut child = Command::new(py)
        .arg(fixture("python/flood.py"))
        .env(EVENTS_ENV, fifo.path())
        .env("PYTHONPATH", fifo.probe_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads while 60 000 events are written into a 64 KiB FIFO: the program must
    // still get through its tasks.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "done");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rec = Recording::default();
        let stats = protocol::read(BufReader::new(reader), "fifo", &mut rec.collector());
        let _ = tx.send(stats.map(|s| (s, rec)));
    });
    std::thread::sleep(Duration::from_millis(200)); // let the reader drain the FIFO
    drop(child.stdin.take()); // closing stdin ends the program
    assert!(child.wait().unwrap().success());
    fifo.program_exited();
    let (stats, rec) = rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
    // The probe's flusher thread held what the full FIFO could not take (waiting up to a
    // second at a time, then dropping and counting): a task is one line (task_ran carrying
    // its queue time) to three (queued, started, finished), plus a line per worker and a few
    // `dropped` lines: each line was either received or counted as dropped.
    let lines = stats.records - 1 + stats.dropped_by_writer; // less the header
    assert!(
        (20_000 + 3..=3 * 20_000 + 100).contains(&lines),
        "{lines} lines: {stats:?}"
    );
    assert!(!rec.tasks.is_empty());
    assert_eq!(stats.rejected, 0, "no torn lines: {stats:?}");
}

/// A thread-pool work item made before the probe replaced the work item's methods (code in
/// a `.pth` file runs before the probe) runs as the stdlib's: it raised `AttributeError` in the
/// pool's thread, and its future never got a result.
#[test]
fn probe_runs_a_work_item_made_before_it_as_the_stdlib_does() {
    let Some(py) = python3() else { return };
    let fifo = EventFifo::create(None).unwrap();
    let program = "import concurrent.futures as cf, concurrent.futures.thread as t\n\
        future = cf.Future()\n\
        item = t._WorkItem.__new__(t._WorkItem)  # as if made before the probe patched\n\
        item.future, item.fn, item.args, item.kwargs = future, (lambda x: x + 1), (41,), {}\n\
        item.run()\n\
        print(future.result(timeout=5))\n";
    let out = Command::new(py)
        .args(["-c", program])
        .env("PYTHONPATH", fifo.probe_dir())
        .env(EVENTS_ENV, fifo.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{stderr}"
    );
}

#[test]
fn probe_does_nothing_without_the_channel_and_keeps_the_users_sitecustomize() {
    let Some(py) = python3() else { return };
    let fifo = EventFifo::create(None).unwrap();
    let user = tempdir();
    std::fs::write(
        user.join("sitecustomize.py"),
        "import sys\nsys.stderr.write('user sitecustomize ran\\n')\n",
    )
    .unwrap();
    let path = format!("{}:{}", fifo.probe_dir().display(), user.display());
    let check = "import sys, concurrent.futures as cf; \
        cf.ThreadPoolExecutor; \
        print('poolscope_probe' in sys.modules, \
        hasattr(sys.modules['concurrent.futures.thread']._WorkItem.run, '__wrapped__'))";
    let out = Command::new(py)
        .args(["-c", check])
        .env("PYTHONPATH", &path)
        .env_remove(EVENTS_ENV)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "False False");
    assert!(String::from_utf8_lossy(&out.stderr).contains("user sitecustomize ran"));
    // with the channel set, both the probe and the user's file run
    let out = Command::new(py)
        .args(["-c", check])
        .env("PYTHONPATH", &path)
        .env(EVENTS_ENV, user.join("events.jsonl"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True True");
    assert!(String::from_utf8_lossy(&out.stderr).contains("user sitecustomize ran"));
    // and a channel that cannot be opened breaks nothing
    let out = Command::new(py)
        .arg(fixture("python/six_tasks.py"))
        .arg("thread")
        .env("PYTHONPATH", &path)
        .env(EVENTS_ENV, "/nonexistent/dir/events")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"failed\": [\"task 4 fails\"]"));
    let _ = std::fs::remove_dir_all(user);
}
