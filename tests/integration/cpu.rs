//! CPU time per task: the worker's own thread CPU clock read around each task, carried by the
//! built-in pools, the event protocol (`cpu_ns`) and the Python probe to `log`'s `cpu_s`.
//! Truth: the kernel (a task that sleeps uses no CPU), and the programs' own side files.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::exe;

fn poolscope(args: &[&str]) -> Output {
    Command::new(exe())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs")
}

/// The JSON task records on `log --format jsonl`'s stdout.
fn records(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("task").is_some() && v.get("end_s").is_some())
        .collect()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poolscope-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_built_in_pools_measure_each_tasks_cpu_on_its_own_thread() {
    for mode in ["thread", "process"] {
        for (workload, busy) in [("spin", true), ("blocks", false)] {
            let out = poolscope(&[
                "log",
                "--mode",
                mode,
                "--workers",
                "2",
                "--tasks",
                "4",
                "--workload",
                workload,
                "--task-ms",
                "150",
                "--format",
                "jsonl",
            ]);
            assert!(out.status.success(), "{out:?}");
            let recs = records(&out);
            assert_eq!(recs.len(), 4, "{mode} {workload}");
            for r in &recs {
                let wall = f(r, "end_s") - f(r, "start_s");
                let cpu = f(r, "cpu_s");
                // A thread's CPU never exceeds its wall time (clock ticks aside).
                assert!(cpu <= wall + 0.002, "{mode} {workload}: {r}");
                if busy {
                    // A spin holds its core unless the kernel gives it away: on a machine
                    // shared with other work it gets a share (10% seen at load 10 on 2
                    // cores), never nothing.
                    assert!(cpu >= 0.003, "{mode} {workload}: {r}");
                } else {
                    // A sleep uses microseconds.
                    assert!(cpu < 0.003, "{mode} {workload}: {r}");
                }
                assert!(
                    r["result"].is_u64(),
                    "a built-in pool gives its result: {r}"
                );
            }
        }
    }
}

/// A protocol recording: `cpu_ns` where the writer gave it, absent where it did not, a bad one
/// refused; and no task of a recording has a result.
#[test]
fn protocol_cpu_ns_becomes_cpu_s_and_nothing_is_made_up() {
    let file = scratch("cpu.jsonl");
    let lines = [
        r#"{"poolscope":1,"origin_ns":1000}"#,
        r#"{"ev":"task_started","t":1000,"id":"a","name":"spin","pid":10,"tid":11}"#,
        r#"{"ev":"task_finished","t":2000001000,"id":"a","cpu_ns":1500000000}"#,
        r#"{"ev":"task_ran","t":1000,"end_t":1000001000,"id":"b","name":"wait","pid":10,"tid":12}"#,
        r#"{"ev":"task_started","t":1000,"id":"c","name":"boom","pid":10,"tid":13}"#,
        r#"{"ev":"task_failed","t":500001000,"id":"c","error":"E: x","cpu_ns":250000000}"#,
        r#"{"ev":"task_ran","t":1000,"end_t":3000,"id":"d","name":"liar","pid":10,"tid":12,"cpu_ns":-5}"#,
        r#"{"ev":"task_ran","t":1000,"end_t":3000,"id":"e","name":"liar","pid":10,"tid":12,"cpu_ns":"x"}"#,
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = poolscope(&[
        "log",
        "--replay",
        file.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{out:?}");
    let recs = records(&out);
    let by = |name: &str| recs.iter().find(|r| r["task"] == name).unwrap().clone();
    assert_eq!(recs.len(), 3, "the two lying lines are refused: {recs:?}");
    assert_eq!(f(&by("spin"), "cpu_s"), 1.5);
    assert!(
        by("wait").get("cpu_s").is_none(),
        "not given: absent, not 0"
    );
    let boom = by("boom");
    assert_eq!(
        (f(&boom, "cpu_s"), boom["outcome"].as_str()),
        (0.25, Some("failed"))
    );
    for r in &recs {
        assert!(
            r.get("result").is_none(),
            "a recording gives no result: {r}"
        );
    }
    // The same in CSV: an empty cell, not 0.
    let out = poolscope(&["log", "--replay", file.to_str().unwrap(), "--format", "csv"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let wait = text.lines().find(|l| l.starts_with("wait,")).unwrap();
    let cells: Vec<&str> = wait.split(',').collect();
    assert_eq!(
        (cells[6], cells[8]),
        ("", ""),
        "cpu_s and result empty: {wait}"
    );
    let _ = std::fs::remove_file(&file);
}

/// Three threads that spun 3 s each for 1 s of CPU (the GIL let one run at a time), after
/// three processes that took 1.5 s for 1 s each (three on two cores): each bar is filled for
/// the share that ran and dotted for the rest, and the selected lane's detail says the CPU.
#[test]
fn a_bar_shows_the_share_of_its_task_that_ran_on_a_cpu() {
    use poolscope::config::{Mode, RunConfig};
    use poolscope::event::{EventKind, PoolEvent, WorkerId, WorkerLabel};
    use poolscope::model::Model;
    use poolscope::view::{self, ViewState, text::buffer_to_text};
    use poolscope::workload::Workload;
    use ratatui::{Terminal, backend::TestBackend};
    use std::time::Duration;

    let ms = Duration::from_millis;
    let mut model = Model::new();
    for (run, mode, wall) in [(1, Mode::Process, 1500), (2, Mode::Thread, 3000)] {
        let config = RunConfig {
            mode,
            workers: 3,
            tasks: 3,
            workload: Workload::Spin,
            task_ms: 1000,
            ..RunConfig::default()
        };
        let mut evs = vec![EventKind::RunStarted {
            config,
            coordinator_pid: 500,
            origin_ns: 0,
            source: Box::default(),
        }];
        for w in 0..3u32 {
            let label = match mode {
                Mode::Thread => WorkerLabel::Thread {
                    name: format!("Thread-{}", w + 1),
                    tid: 501 + w as i32,
                },
                Mode::Process => WorkerLabel::Process { pid: 601 + w },
            };
            evs.push(EventKind::WorkerSpawned {
                worker: WorkerId(w),
                label,
            });
        }
        evs.push(EventKind::TasksQueued { first: 0, count: 3 });
        let mut events: Vec<PoolEvent> = evs
            .into_iter()
            .map(|kind| PoolEvent {
                run,
                at: ms(0),
                kind,
            })
            .collect();
        for t in 0..3u64 {
            events.push(PoolEvent {
                run,
                at: ms(wall),
                kind: EventKind::TaskRan {
                    task: t,
                    worker: WorkerId(t as u32),
                    started: ms(0),
                    result: Some(t * t),
                    cpu: Some(ms(1000)),
                },
            });
        }
        for ev in &events {
            model.apply(ev);
        }
    }
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal
        .draw(|f| view::draw(f, &model, &ViewState::default(), ms(3100)))
        .unwrap();
    let text = buffer_to_text(terminal.backend().buffer());
    assert!(text.contains("took 3.00 s (cpu 1.00 s, 33%)"), "{text}");
    insta::assert_snapshot!(text);
}
