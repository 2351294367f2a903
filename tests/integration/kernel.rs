//! Lanes from the kernel: a program that speaks no protocol (its threads and child
//! processes are the lanes, its exit code is poolscope's), and `--pid` on a process started
//! outside poolscope, checked against what the programs themselves record (a side file of
//! their pids, tids and names) and against `/proc` read by the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kernel")
        .join(name)
}

fn poolscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poolscope"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs")
}

/// Lines of `pid tid name` a program wrote about itself.
fn side_file(path: &Path) -> Vec<(u32, u32, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
                w.next()?.to_string(),
            ))
        })
        .collect()
}

/// The lanes a trace names: (pid, tid) → name, from its `thread_name` records.
fn trace_lanes(path: &Path) -> BTreeMap<(u64, u64), String> {
    let text = std::fs::read_to_string(path).expect("trace written");
    let text = text.trim_end().trim_end_matches(',');
    let text = if text.ends_with(']') {
        text.to_string()
    } else {
        format!("{text}]")
    };
    let events: Vec<Value> = serde_json::from_str(&text).expect("trace is JSON");
    events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .filter_map(|e| {
            let key = (e["pid"].as_u64()?, e["tid"].as_u64()?);
            Some((key, e["args"]["name"].as_str()?.to_string()))
        })
        .collect()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poolscope-kernel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_program_without_the_protocol_has_a_lane_per_thread_and_passes_its_exit_code_on() {
    let Some(py) = common::python_with("kernel_named_threads", &[]) else {
        return;
    };
    let dir = tempdir("threads");
    let (side, trace) = (dir.join("side"), dir.join("trace.json"));
    let out = poolscope(&[
        "snapshot",
        "--width",
        "160",
        "--trace",
        trace.to_str().unwrap(),
        "--",
        py.to_str().unwrap(),
        "-I",
        fixture("named_threads.py").to_str().unwrap(),
        side.to_str().unwrap(),
        "3",
    ]);
    let frame = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{frame}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        frame.contains("exit 3"),
        "the header tells how it ended:\n{frame}"
    );
    assert!(
        !frame.contains("● running"),
        "never still running:\n{frame}"
    );
    let truth = side_file(&side);
    assert_eq!(truth.len(), 4, "the program wrote {truth:?}");
    let pid = truth[0].0;
    let lanes = trace_lanes(&trace);
    let threads: BTreeSet<u64> = lanes
        .keys()
        .filter(|(p, t)| *p == u64::from(pid) && *t != u64::from(pid) || *p == u64::from(pid))
        .map(|(_, t)| *t)
        .collect();
    let expected: BTreeSet<u64> = truth.iter().map(|(_, t, _)| u64::from(*t)).collect();
    assert_eq!(threads, expected, "one lane per thread: {lanes:?}");
    // Each worker's lane carries the name it gave itself.
    for (p, tid, name) in truth.iter().filter(|t| t.2 != "main") {
        let lane = &lanes[&(u64::from(*p), u64::from(*tid))];
        assert_eq!(lane, name, "{lanes:?}");
        assert!(frame.contains(&format!("{name} · tid {tid}")), "{frame}");
    }
    // The trace has a running / waiting counter track per thread lane.
    let counters = trace_counters(&trace);
    for (_, _, name) in truth.iter().filter(|t| t.2 != "main") {
        assert!(
            counters.contains(&format!("{name} running / waiting %")),
            "{counters:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The names of a trace's counter tracks.
fn trace_counters(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("trace written");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim_end_matches(',')).ok())
        .filter(|e| e["ph"] == "C")
        .filter_map(|e| Some(e["name"].as_str()?.to_string()))
        .collect()
}

#[test]
fn a_shell_that_starts_children_has_a_lane_per_child_and_its_exit_code() {
    let dir = tempdir("children");
    let (side, trace) = (dir.join("side"), dir.join("trace.json"));
    let out = poolscope(&[
        "log",
        "--trace",
        trace.to_str().unwrap(),
        "--",
        "sh",
        fixture("children.sh").to_str().unwrap(),
        side.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let children: BTreeSet<u64> = std::fs::read_to_string(&side)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(children.len(), 3);
    let lanes = trace_lanes(&trace);
    // A child process is one lane: its trace thread is the process itself.
    let processes: BTreeSet<u64> = lanes
        .iter()
        .filter(|((p, t), name)| p == t && name.as_str() == "sleep")
        .map(|((p, _), _)| *p)
        .collect();
    assert_eq!(processes, children, "{lanes:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn programs_that_write_no_events_end_with_their_own_code() {
    for (args, code) in [(&["sh", "-c", "exit 5"][..], 5), (&["true"][..], 0)] {
        for cmd in ["log", "snapshot"] {
            let mut all = vec![cmd, "--"];
            all.extend_from_slice(args);
            let out = poolscope(&all);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{all:?}: {err}");
            assert!(!err.contains("empty event stream"), "{all:?}: {err}");
        }
    }
}

/// A target process, killed when dropped.
struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn schedstat(pid: u32, tid: u64) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
    let mut w = text.split_whitespace();
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

fn tasks_of(pid: u32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn lane_records(out: &Output) -> BTreeMap<u64, Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("jsonl"))
        .map(|v| (v["tid"].as_u64().expect("a thread lane"), v))
        .collect()
}

#[test]
fn attaching_to_a_running_process_shows_its_threads_what_they_did_and_the_kernels_totals() {
    let Some(py) = common::python_with("kernel_attach", &[]) else {
        return;
    };
    let dir = tempdir("attach");
    let (side, stop) = (dir.join("side"), dir.join("stop"));
    let target = Target(
        Command::new(&py)
            .args(["-I", fixture("attach_target.py").to_str().unwrap()])
            .args([side.to_str().unwrap(), stop.to_str().unwrap()])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(common::eventually(Duration::from_secs(20), || side_file(
        &side
    )
    .len()
        == 3));
    let truth = side_file(&side);
    let pid = target.0.id();
    let tid_of = |name: &str| u64::from(truth.iter().find(|t| t.2 == name).unwrap().1);
    let (spinner, sleeper) = (tid_of("spinner"), tid_of("sleeper"));
    let pid_s = pid.to_string();

    // While the spinner spins: it is runnable nearly all the time, the sleeper never.
    let lanes = lane_records(&poolscope(&[
        "log", "--pid", &pid_s, "--for", "1.5", "--format", "jsonl",
    ]));
    assert_eq!(
        lanes.keys().copied().collect::<BTreeSet<_>>(),
        tasks_of(pid)
    );
    let share = |tid: u64, key: &str| lanes[&tid][key].as_f64().unwrap();
    let runnable = share(spinner, "running") + share(spinner, "waiting");
    assert!(
        runnable > 0.8,
        "a spinning thread ran or waited to: {:?}",
        lanes[&spinner]
    );
    assert!(share(spinner, "running") > 0.05, "{:?}", lanes[&spinner]);
    assert!(share(sleeper, "running") < 0.02, "{:?}", lanes[&sleeper]);
    assert!(share(sleeper, "waiting") < 0.02, "{:?}", lanes[&sleeper]);
    assert_eq!(lanes[&spinner]["lane"], "spinner");

    // Once it stopped, the figures hold still: poolscope's totals are the kernel's.
    std::fs::write(&stop, "").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let lanes = lane_records(&poolscope(&[
        "log", "--pid", &pid_s, "--for", "0.5", "--format", "jsonl",
    ]));
    let kernel: BTreeMap<u64, (u64, u64)> = tasks_of(pid)
        .into_iter()
        .filter_map(|t| Some((t, schedstat(pid, t)?)))
        .collect();
    assert_eq!(
        lanes.keys().copied().collect::<BTreeSet<_>>(),
        kernel.keys().copied().collect()
    );
    let ours: f64 = lanes.values().map(|v| v["cpu_s"].as_f64().unwrap()).sum();
    let theirs: f64 = kernel.values().map(|(c, _)| *c as f64 / 1e9).sum();
    assert!(
        (ours - theirs).abs() <= 0.05 * theirs,
        "poolscope {ours} s, kernel {theirs} s"
    );
    let spin_ours = lanes[&spinner]["cpu_s"].as_f64().unwrap();
    let spin_kernel = kernel[&spinner].0 as f64 / 1e9;
    assert!(
        (spin_ours - spin_kernel).abs() <= 0.05 * spin_kernel,
        "{spin_ours} vs {spin_kernel}"
    );
    // The target was observed, never stopped: it is still there, sleeping as it was.
    assert!(common::exists(pid));
    drop(target);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_pid_that_cannot_be_watched_is_one_line_and_exit_1() {
    // A PID that was just used and reaped: nobody has it (or, rarely, a new process).
    let mut child = Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    for args in [
        vec!["log", "--pid", "4194304", "--for", "1"],
        vec!["snapshot", "--pid", "4194304", "--for", "1"],
    ] {
        let out = poolscope(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("cannot watch PID 4194304"), "{err}");
    }
    if !common::exists(gone) {
        let out = poolscope(&["log", "--pid", &gone.to_string(), "--for", "1"]);
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn a_watched_process_that_exits_ends_the_watch_and_its_status_is_not_claimed() {
    let mut sleeper = Target(Command::new("sleep").arg("0.7").spawn().unwrap());
    let pid = sleeper.0.id().to_string();
    let started = std::time::Instant::now();
    let out = poolscope(&["log", "--pid", &pid, "--format", "jsonl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        err.contains("exit status is known only to its parent"),
        "{err}"
    );
    let lanes = lane_records(&out);
    assert_eq!(lanes.len(), 1, "{lanes:?}");
    let _ = sleeper.0.wait();
}
