//! CPU time per task: the worker's own thread CPU clock read around each task, carried by the
//! built-in pools, the event protocol (`cpu_ns`) and the Python probe to `log`'s `cpu_s`.
//! Truth: the kernel (a task that sleeps uses no CPU), and the programs' own side files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{self, exe};

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
                    // cores, 0.6% with this suite running beside other builds), never none.
                    assert!(cpu >= 0.0005, "{mode} {workload}: {r}");
                } else {
                    // A sleep uses tens of microseconds.
                    assert!(cpu < 0.0005, "{mode} {workload}: {r}");
                }
                assert!(
                    r["result"].is_u64(),
                    "a built-in pool gives its result: {r}"
                );
            }
        }
    }
}

/// The trace carries each task's `cpu_s` in its args, beside its number and result.
#[test]
fn the_trace_has_each_tasks_cpu_in_its_args() {
    let trace = scratch("cpu-trace.json");
    let out = poolscope(&[
        "log",
        "--mode",
        "process",
        "--workers",
        "2",
        "--tasks",
        "3",
        "--workload",
        "spin",
        "--task-ms",
        "30",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let events: Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = events
        .as_array()
        .or_else(|| events["traceEvents"].as_array())
        .unwrap()
        .clone();
    let tasks: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(tasks.len(), 3, "{events:?}");
    for t in tasks {
        let dur_s = t["dur"].as_f64().unwrap() / 1e6;
        let cpu = t["args"]["cpu_s"].as_f64().unwrap_or_else(|| panic!("{t}"));
        assert!(cpu > 0.0 && cpu <= dur_s + 0.002, "{t}");
        assert!(t["args"]["result"].is_u64(), "{t}");
    }
    let _ = std::fs::remove_file(&trace);
}

/// An instant task (0 ms) is not measured, since reading the clock twice would cost more than
/// the task: its record has no `cpu_s` rather than a made-up 0.
#[test]
fn instant_tasks_of_the_built_in_pools_carry_no_cpu_figure() {
    for mode in ["thread", "process"] {
        let out = poolscope(&[
            "log",
            "--mode",
            mode,
            "--tasks",
            "50",
            "--workload",
            "noop",
            "--task-ms",
            "0",
            "--format",
            "jsonl",
        ]);
        assert!(out.status.success(), "{out:?}");
        let recs = records(&out);
        assert_eq!(recs.len(), 50);
        assert!(
            recs.iter().all(|r| r.get("cpu_s").is_none()),
            "{mode}: {recs:?}"
        );
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

/// One run of the GIL program under `log --format jsonl`: poolscope's records and the
/// program's truth, one JSON object per task.
fn gil_run(py: &Path, mode: &str) -> (Vec<Value>, Vec<Value>) {
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python/gil_spin.py");
    let truth = scratch(&format!("gil_{mode}.jsonl"));
    let out = poolscope(&[
        "log",
        "--format",
        "jsonl",
        "--",
        py.to_str().unwrap(),
        program.to_str().unwrap(),
        mode,
        truth.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let truth: Vec<Value> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (records(&out), truth)
}

/// Σcpu / wall over a set of tasks, with wall from the first start to the last end.
fn parallelism(
    cpu_s: f64,
    starts: impl Iterator<Item = f64>,
    ends: impl Iterator<Item = f64>,
) -> f64 {
    let first = starts.fold(f64::INFINITY, f64::min);
    let last = ends.fold(f64::NEG_INFINITY, f64::max);
    cpu_s / (last - first)
}

#[test]
fn three_python_threads_share_one_core_and_three_processes_two() {
    let Some(py) = common::python_with("three_python_threads_share_one_core", &[]) else {
        return;
    };
    for mode in ["thread", "process"] {
        let (recs, truth) = gil_run(&py, mode);
        assert_eq!(recs.len(), 3, "{mode}: {recs:?}");
        assert_eq!(truth.len(), 3, "{mode}");
        // Each task's cpu_s is what its own thread says it spent (the probe's reading
        // brackets the task's, so it may be a little more).
        let mut seen: Vec<f64> = recs.iter().map(|r| f(r, "cpu_s")).collect();
        let mut real: Vec<f64> = truth.iter().map(|t| f(t, "cpu_ns") / 1e9).collect();
        seen.sort_by(f64::total_cmp);
        real.sort_by(f64::total_cmp);
        for (s, r) in seen.iter().zip(&real) {
            assert!(
                *s >= r - 0.001 && *s <= r + 0.05,
                "{mode}: cpu_s {s} vs truth {r}"
            );
        }
        let sum: f64 = seen.iter().sum();
        let shown = parallelism(
            sum,
            recs.iter().map(|r| f(r, "start_s")),
            recs.iter().map(|r| f(r, "end_s")),
        );
        let real_sum: f64 = real.iter().sum();
        let truth_par = parallelism(
            real_sum,
            truth.iter().map(|t| f(t, "start_ns") / 1e9),
            truth.iter().map(|t| f(t, "end_ns") / 1e9),
        );
        assert!(
            (shown - truth_par).abs() <= 0.1 * truth_par,
            "{mode}: {shown} vs {truth_par}"
        );
        let line = format!("{mode}: Σcpu_s {sum:.3} = {shown:.2} × wall (truth {truth_par:.2})");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
        if mode == "thread" {
            // The GIL: three threads spinning at once get one core between them.
            assert!(shown <= 1.3, "{line}");
        } else if truth_par >= 1.4 {
            assert!(shown >= 1.4, "{line}");
        } else {
            // The machine's other work left the processes less than 1.4 cores: the kernel's
            // truth says so, and poolscope agreed with it above.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!(
                    "NOTE: machine busy, processes got {truth_par:.2} cores; ≥1.4 not checked\n"
                )
                .as_bytes(),
            );
        }
    }
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
