//! The probe writing to a plain file (the protocol allows it: that makes a recording), in a
//! child process of this test so that `POOLSCOPE_EVENTS` is set before the probe first looks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use serde_json::Value;

/// Run in the child: a finished task, a failed one, a panicking one, on two threads.
fn child_tasks() {
    let n = poolscope_probe::task("sum", || (0..100_000u64).sum::<u64>());
    assert!(n > 0);
    let failed: Result<u8, String> = poolscope_probe::task("lookup", || Err("no such key".into()));
    assert!(failed.is_err());
    let panicked = std::thread::Builder::new()
        .name("worker-1".into())
        .spawn(|| poolscope_probe::task("boom", || -> u8 { panic!("boom\nsecond line") }))
        .unwrap()
        .join();
    assert!(
        panicked.is_err(),
        "the panic reached the program as without the probe"
    );
    poolscope_probe::flush();
}

#[test]
fn tasks_are_written_as_protocol_lines_with_cpu_and_failures() {
    if std::env::var_os("PROBE_TEST_CHILD").is_some() {
        child_tasks();
        return;
    }
    let file =
        std::env::temp_dir().join(format!("poolscope-probe-rec-{}.jsonl", std::process::id()));
    // The probe appends to what is there and never creates a file: the recording starts empty.
    std::fs::write(&file, "").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tasks_are_written_as_protocol_lines_with_cpu_and_failures",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env("PROBE_TEST_CHILD", "1")
        .env("POOLSCOPE_EVENTS", &file)
        .env_remove("_POOLSCOPE_STARTED")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["poolscope"], 1, "the header first: {text}");
    assert_eq!(lines[0]["producer"], "rust-probe");
    let of = |ev: &str| -> Vec<&Value> { lines.iter().filter(|l| l["ev"] == ev).collect() };
    let started = of("task_started");
    assert_eq!(started.len(), 3, "{text}");
    let pid = u64::from(out_pid(&lines));
    for s in &started {
        assert_eq!(s["pid"].as_u64(), Some(pid));
        assert!(s["tid"].as_i64().unwrap() > 0);
    }
    let boom = started.iter().find(|s| s["name"] == "boom").unwrap();
    assert_eq!(
        boom["thread"], "worker-1",
        "the lane is named by its thread"
    );
    let finished = of("task_finished");
    assert_eq!(finished.len(), 1);
    assert!(finished[0]["cpu_ns"].as_u64().unwrap() > 0);
    let failed = of("task_failed");
    let errors: Vec<&str> = failed.iter().filter_map(|f| f["error"].as_str()).collect();
    assert_eq!(
        errors,
        ["no such key", "panicked: boom"],
        "one line each: {text}"
    );
    assert!(failed.iter().all(|f| f["cpu_ns"].is_u64()));
    // Every end names a start, and no time runs backwards within a task.
    for end in finished.iter().chain(&failed) {
        let start = started.iter().find(|s| s["id"] == end["id"]).unwrap();
        assert!(end["t"].as_u64() >= start["t"].as_u64());
    }
    let _ = std::fs::remove_file(&file);
}

fn out_pid(lines: &[Value]) -> u32 {
    lines[0]["pid"].as_u64().unwrap() as u32
}
