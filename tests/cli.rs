//! The binary as a user runs it: the seed's log in both modes, and bad input.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::exe;

fn poolscope(args: &[&str]) -> Output {
    Command::new(exe())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

/// The numbers inside `results: [..]`.
fn results_of(line: &str) -> Vec<u64> {
    let list = line.split("results: [").nth(1).expect("a results line");
    list.trim_end_matches(']')
        .split(", ")
        .map(|n| n.parse().expect("a number"))
        .collect()
}

#[test]
fn log_prints_the_seeds_thread_mode_log() {
    let out = poolscope(&["log", "--task-ms", "100"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 17, "{stdout}");
    assert_eq!(lines[0], "MainThread run_blocking_tasks: starting");
    assert_eq!(
        lines[1],
        "MainThread run_blocking_tasks: creating executor tasks"
    );
    assert_eq!(lines[16], "MainThread run_blocking_tasks: exiting");
    assert!(lines.contains(&"MainThread run_blocking_tasks: waiting for executor tasks"));
    let results = results_of(lines[15]);
    assert_eq!(
        results.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([0, 1, 4, 9, 16, 25])
    );
    let mut threads = BTreeSet::new();
    for n in 0..6 {
        for what in ["running", "done"] {
            let suffix = format!(" {:>18}: {what}", format!("blocks({n})"));
            let line = lines
                .iter()
                .find(|l| l.ends_with(&suffix))
                .unwrap_or_else(|| panic!("no `{suffix}` in\n{stdout}"));
            // `{thread:>10}`: the name right-aligned in ten columns.
            let who = &line[..10];
            assert!(who.trim_start().starts_with("Thread-"), "{line}");
            threads.insert(who.trim_start().to_string());
        }
    }
    assert_eq!(threads.len(), 3, "{threads:?}");
}

#[test]
fn log_prints_the_seeds_process_mode_log_with_real_worker_pids() {
    let child = Command::new(exe())
        .args(["log", "--task-ms", "100", "--mode", "process"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let me = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let coordinator = format!("PID {me:>5} run_blocking_tasks: ");
    let mut worker_pids = HashSet::new();
    for line in stdout.lines() {
        let pid: u32 = line[4..9].trim().parse().expect("`PID {pid:>5}` prefix");
        if line.contains(" run_blocking_tasks: ") {
            assert!(line.starts_with(&coordinator), "{line}");
        } else {
            assert!(line.contains("blocks("), "{line}");
            worker_pids.insert(pid);
        }
    }
    assert_eq!(worker_pids.len(), 3, "{stdout}");
    assert!(!worker_pids.contains(&me));
    let last_two: Vec<&str> = stdout.lines().rev().take(2).collect();
    assert_eq!(last_two[0], format!("{coordinator}exiting"));
    let mut results = results_of(last_two[1]);
    results.sort_unstable();
    assert_eq!(results, vec![0, 1, 4, 9, 16, 25]);
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["log", "--workers", "0"],
        &["log", "--tasks", "0"],
        &["log", "--mode", "fibers"],
        &["log", "--workload", "dance"],
        &["log", "--workers", "100000"],
        &["log", "--task-ms", "-5"],
        &["log", "--tasks", "many"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = poolscope(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("poolscope: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_works_on_every_subcommand() {
    for args in [&["--help"][..], &["log", "--help"]] {
        let out = poolscope(args);
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("--workers"), "{args:?}");
    }
}

#[test]
fn a_worker_fed_garbage_exits_nonzero_with_one_line() {
    let garbage: &[&[u8]] = &[
        b"this is not a frame at all, just text\n",
        &[3, 0, 0, 0, 0xff, 0xfe, 0xfd],
        &[200, 0, 0, 0, 1, 2],
    ];
    for input in garbage {
        let mut child = Command::new(exe())
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{input:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("poolscope: worker: "), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn the_dashboard_without_a_terminal_points_to_log_and_snapshot() {
    let out = poolscope(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("poolscope log") && stderr.contains("poolscope snapshot"));
}

#[test]
fn snapshot_prints_the_final_frame_of_a_real_run() {
    let out = poolscope(&[
        "snapshot",
        "--mode",
        "process",
        "--task-ms",
        "50",
        "--width",
        "100",
        "--height",
        "30",
    ]);
    assert!(out.status.success(), "{out:?}");
    let frame = text(&out.stdout);
    let lines: Vec<&str> = frame.lines().collect();
    assert_eq!(lines.len(), 30);
    assert!(lines.iter().all(|l| l.chars().count() <= 100));
    assert!(
        lines[0].contains("PROCESS pool") && lines[0].contains("finished"),
        "{frame}"
    );
    assert!(lines[1].contains("done 6/6"), "{frame}");
    // Three lanes labelled with real PIDs, each with two finished bars.
    let lanes: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("│▶ PID ") || l.contains("│  PID "))
        .collect();
    assert_eq!(lanes.len(), 3, "{frame}");
    for lane in lanes {
        assert_eq!(lane.matches('├').count(), 2, "{lane}");
    }
}
