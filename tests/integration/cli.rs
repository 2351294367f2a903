//! The binary as a user runs it: the example's log in both modes, and bad input.

use crate::common;
use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::exe;

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

/// Reads a child's output on a thread of its own, so the test can watch it grow.
fn collect(
    mut from: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&out);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    out
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill() touches no memory; the pid is our own child, not yet reaped.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0);
}

/// Waits for `child` to exit, at most `limit`; None if it did not.
fn wait_at_most(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The children of `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
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

#[test]
fn sigterm_ends_log_even_when_nobody_reads_its_output() {
    let mut child = Command::new(exe())
        .args([
            "log",
            "--mode",
            "process",
            "--workload",
            "noop",
            "--task-ms",
            "0",
        ])
        .args(["--tasks", "10000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open and never read: the pipe fills within milliseconds and stays full.
    let _unread = child.stdout.take().unwrap();
    let pid = child.id();
    assert!(common::eventually(
        std::time::Duration::from_secs(20),
        || children_of(pid).len() >= 3
    ));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let workers = children_of(pid);
    signal(pid, libc::SIGTERM);
    let status = wait_at_most(&mut child, std::time::Duration::from_secs(15))
        .expect("log did not end within 15 s of SIGTERM with its stdout blocked");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    for w in workers {
        assert!(
            common::eventually(std::time::Duration::from_secs(5), || !common::exists(w)),
            "worker {w} outlived poolscope"
        );
    }
}

#[test]
fn a_reader_that_leaves_early_ends_bench_and_snapshot_quietly() {
    use std::io::{BufRead, BufReader};
    let mut bench = Command::new(exe())
        .args(["bench", "--tasks", "1000", "--repeat", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(bench.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone now (`| head -1`).
    let out = bench.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let mut snapshot = Command::new(exe())
        .args(["snapshot", "--task-ms", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(snapshot.stdout.take()); // `| true`
    let out = snapshot.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn an_endless_or_huge_scenario_is_refused_in_one_short_line() {
    let out = poolscope(&["log", "--scenario", "/dev/zero"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("larger than 1024 KiB"), "{stderr}");

    let path = std::env::temp_dir().join(format!("poolscope-huge-{}.toml", std::process::id()));
    std::fs::write(&path, format!("workers = \"{}\"\n", "x".repeat(3_000_000))).unwrap();
    let out = poolscope(&["log", "--scenario", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.len() < 1000, "{} bytes of error", stderr.len());
}

#[test]
fn an_error_shows_its_cause_once() {
    let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
    let out = Command::new(exe())
        .arg("worker")
        .stdin(dir)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
}

#[test]
fn too_few_file_descriptors_give_one_line_and_exit_1() {
    for limit in [6, 12, 20] {
        for args in [
            "log --task-ms 1",
            "log --mode process --task-ms 1",
            "snapshot --task-ms 1",
        ] {
            let out = Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "ulimit -n {limit}; exec {} {args}",
                    exe().display()
                ))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = text(&out.stderr);
            let what = format!("ulimit -n {limit}, {args}: {stderr}");
            if out.status.success() {
                continue; // Enough for this run after all.
            }
            assert_eq!(out.status.code(), Some(1), "{what}");
            assert_eq!(stderr.lines().count(), 1, "{what}");
            assert!(stderr.starts_with("poolscope: "), "{what}");
            assert!(
                !stderr.contains("panicked") && !stderr.contains("internal error"),
                "{what}"
            );
        }
    }
}

/// Kills a dashboard left running by a failed test.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill() touches no memory; at worst the pid is gone (ESRCH).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.0 as i32, libc::SIGKILL);
        }
    }
}

/// Runs the dashboard on a pseudo-terminal (util-linux `script`), so signals can be tried
/// on it as a user would.
fn dashboard_on_a_pty(
    args: &str,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    u32,
) {
    let mut script = Command::new("script")
        .args([
            "-qefc",
            &format!("exec {} {args}", exe().display()),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    let screen = collect(script.stdout.take().unwrap());
    let me = script.id();
    let mut dashboard = None;
    assert!(common::eventually(
        std::time::Duration::from_secs(20),
        || {
            dashboard = children_of(me).first().copied();
            dashboard.is_some()
        }
    ));
    (script, screen, dashboard.unwrap())
}

fn state_of(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|r| r.trim_start().chars().next())
        .unwrap_or('?')
}

#[test]
fn the_dashboard_exits_128_plus_n_after_a_signal_and_restores_the_terminal() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        let (mut script, screen, dashboard) =
            dashboard_on_a_pty("--mode process --task-ms 5000 --tasks 6");
        let _cleanup = KillOnDrop(dashboard);
        // The run is under way once its three workers are.
        assert!(common::eventually(
            std::time::Duration::from_secs(20),
            || { children_of(dashboard).len() >= 3 }
        ));
        let workers = children_of(dashboard);
        signal(dashboard, sig);
        let status = wait_at_most(&mut script, std::time::Duration::from_secs(15))
            .expect("the dashboard did not end after the signal");
        assert_eq!(status.code(), Some(128 + sig), "signal {sig}");
        let shown = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
        assert!(
            shown.contains("\x1b[?1049l"),
            "alternate screen left after signal {sig}"
        );
        for w in workers {
            assert!(common::eventually(
                std::time::Duration::from_secs(5),
                || !common::exists(w)
            ));
        }
    }
}

#[test]
fn sigtstp_gives_the_terminal_back_and_sigcont_takes_it_again() {
    let (mut script, screen, dashboard) = dashboard_on_a_pty("--task-ms 200 --tasks 1000");
    let _cleanup = KillOnDrop(dashboard);
    let entered = || {
        String::from_utf8_lossy(&screen.lock().unwrap())
            .matches("\x1b[?1049h")
            .count()
    };
    let left = || {
        String::from_utf8_lossy(&screen.lock().unwrap())
            .matches("\x1b[?1049l")
            .count()
    };
    assert!(common::eventually(
        std::time::Duration::from_secs(20),
        || entered() == 1
    ));
    signal(dashboard, libc::SIGTSTP);
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || state_of(dashboard)
            == 'T'),
        "SIGTSTP must stop the dashboard"
    );
    // `script` stops itself when its child stops, as a shell's job would, and continues it
    // when it is continued itself, as `fg` does. Continued before it stopped, it would stop
    // for good.
    assert!(common::eventually(
        std::time::Duration::from_secs(10),
        || { state_of(script.id()) == 'T' }
    ));
    signal(script.id(), libc::SIGCONT);
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || left() == 1),
        "the terminal is given back before stopping"
    );
    assert!(
        common::eventually(std::time::Duration::from_secs(10), || entered() >= 2),
        "SIGCONT must take the terminal again"
    );
    assert!(common::eventually(
        std::time::Duration::from_secs(10),
        || state_of(dashboard) != 'T'
    ));
    signal(dashboard, libc::SIGTERM);
    let status = wait_at_most(&mut script, std::time::Duration::from_secs(15)).expect("ended");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn bench_observer_compares_a_watched_run_with_a_headless_one() {
    let help = poolscope(&["bench", "--help"]);
    assert!(text(&help.stdout).contains("--observer"));
    let out = poolscope(&[
        "bench",
        "--observer",
        "--mode",
        "thread",
        "--tasks",
        "12",
        "--task-ms",
        "5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["observer"], "watched");
    assert_eq!(lines[1]["observer"], "headless");
    for run in &lines[..2] {
        assert_eq!(run["tasks"], 12, "every task ran and was seen: {run}");
        assert!(run["busy_pct"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(lines[2]["summary"], "observer");
    assert!(lines[2]["handoff_mean_ratio"].is_number());
}

// Here rather than in the library's unit tests, where another test swaps the global panic
// hook and would see this panic.
#[test]
fn a_panic_the_os_provokes_in_a_library_becomes_an_error() {
    use poolscope::error::{panic_expected, without_panicking};
    let e = without_panicking::<()>(|| panic!("OS can't spawn worker thread")).unwrap_err();
    assert_eq!(e.to_string(), "OS can't spawn worker thread");
    assert!(!panic_expected());
    let e = without_panicking::<()>(|| panic!("failed: Too many open files")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
}
