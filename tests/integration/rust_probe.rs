//! The Rust probe (`probe/`, crate `poolscope-probe`) end to end: a rayon program and a tokio
//! `spawn_blocking` program, the probe crate's own examples, built here and run under
//! `poolscope log --format jsonl`. Truth: each task writes the kernel thread id that ran it,
//! its start and its duration to a side file; poolscope's records must equal it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::exe;

/// How long building the examples may take (a cold build of rayon, tokio and tracing on a
/// busy machine); past it the build is killed and the test fails.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Builds the probe's examples once for every test here, in a target directory of their own
/// (the outer `cargo test` holds the lock of the usual one), with tokio's task spans on.
fn examples() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/probe-e2e");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut child = Command::new(cargo)
            .args(["build", "--locked", "--examples", "--features", "tracing"])
            .arg("--manifest-path")
            .arg(root.join("probe/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .env("RUSTFLAGS", "--cfg tokio_unstable")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let end = Instant::now() + BUILD_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("building the probe's examples took over {BUILD_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = log.join().unwrap();
        assert!(
            status.success(),
            "building the probe's examples failed:\n{log}"
        );
        target.join("debug/examples")
    })
}

/// Runs `program` under `poolscope log --format jsonl`: the task records and the truth.
fn watch(program: &str) -> (Vec<Value>, Vec<(i64, u64, u64)>) {
    let dir = std::env::temp_dir().join(format!("poolscope-rust-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truth = dir.join(format!("{program}.truth"));
    let out = Command::new(exe())
        .args(["log", "--format", "jsonl", "--"])
        .arg(examples().join(program))
        .arg(&truth)
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs");
    assert!(out.status.success(), "{out:?}");
    let records = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("task").is_some())
        .collect();
    let truth = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<u64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
            (f[0] as i64, f[1], f[2])
        })
        .collect();
    (records, truth)
}

/// Checks the records against the truth: one lane per thread that ran tasks, and on each
/// lane the same tasks in the same order, each lasting as long, with a CPU time no longer
/// than it. The probe's clock reads bracket the task's own by a few microseconds (50 µs
/// seen); on a machine shared by many builds a thread can lose its core inside that gap for
/// a time slice, so the median task must agree within 2 ms and every one within 25 ms.
fn agree(program: &str, records: &[Value], truth: &[(i64, u64, u64)]) {
    assert_eq!(records.len(), truth.len(), "{program}: {records:?}");
    let mut seen: BTreeMap<i64, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for r in records {
        assert_eq!(r["outcome"], "ok", "{program}: {r}");
        assert!(r.get("result").is_none(), "a program gives no result: {r}");
        let tid = r["tid"].as_i64().unwrap_or_else(|| panic!("no tid: {r}"));
        let (start, end) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
        let cpu = r["cpu_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("no cpu_s: {r}"));
        seen.entry(tid).or_default().push((start, end - start, cpu));
    }
    let mut real: BTreeMap<i64, Vec<(u64, u64)>> = BTreeMap::new();
    for &(tid, start_us, dur_us) in truth {
        real.entry(tid).or_default().push((start_us, dur_us));
    }
    assert_eq!(
        seen.keys().collect::<BTreeSet<_>>(),
        real.keys().collect::<BTreeSet<_>>(),
        "{program}: one lane per thread that ran tasks"
    );
    let mut diffs = Vec::new();
    for (tid, tasks) in &mut seen {
        tasks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let lane = real.get_mut(tid).unwrap();
        lane.sort_unstable();
        for (&(_, dur, cpu), &(_, real_us)) in tasks.iter().zip(lane.iter()) {
            let real = real_us as f64 / 1e6;
            let diff = (dur - real).abs();
            assert!(diff <= 0.025, "{program} tid {tid}: {dur} s vs {real} s");
            assert!(
                cpu > 0.0 && cpu <= dur + 0.002,
                "{program} tid {tid}: cpu {cpu} of {dur}"
            );
            diffs.push(diff);
        }
    }
    diffs.sort_by(f64::total_cmp);
    let median = diffs[diffs.len() / 2];
    assert!(
        median <= 0.002,
        "{program}: durations differ by {median} s at the median"
    );
}

#[test]
fn a_rayon_program_shows_each_pool_thread_and_every_task_with_its_cpu() {
    let (records, truth) = watch("rayon_pool");
    agree("rayon_pool", &records, &truth);
    let names: BTreeSet<&str> = records.iter().filter_map(|r| r["task"].as_str()).collect();
    let want: BTreeSet<String> = (0..12).map(|i| format!("checksum({i})")).collect();
    assert_eq!(names, want.iter().map(String::as_str).collect());
    let lanes: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r["worker"].as_str())
        .collect();
    assert!(
        !lanes.is_empty() && lanes.len() <= 3 && lanes.iter().all(|w| w.starts_with("rayon-")),
        "the pool's named threads: {lanes:?}"
    );
}

#[test]
fn a_tokio_program_shows_its_blocking_threads_and_every_spawn_blocking_task() {
    let (records, truth) = watch("tokio_blocking");
    agree("tokio_blocking", &records, &truth);
    assert!(records.iter().all(|r| r["task"] == "spawn_blocking"));
    let lanes: BTreeSet<i64> = records.iter().filter_map(|r| r["tid"].as_i64()).collect();
    assert!(lanes.len() <= 3, "max_blocking_threads(3): {lanes:?}");
    // Each task sleeps 15–25 ms first: off-CPU for most of it.
    for r in &records {
        let wall = r["end_s"].as_f64().unwrap() - r["start_s"].as_f64().unwrap();
        assert!(r["cpu_s"].as_f64().unwrap() < wall - 0.010, "{r}");
    }
}
