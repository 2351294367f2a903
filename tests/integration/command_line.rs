//! The command line of issue 13: exit codes, machine formats, suggestions, completions, man.

use std::process::{Command, Output, Stdio};

use crate::common::exe;

fn poolscope(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(exe())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("poolscope runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_dashboard_refuses_term_dumb_and_points_to_log_and_snapshot() {
    let out = poolscope(&[], &[("TERM", "dumb")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("TERM=dumb") && err.contains("poolscope log"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn usage_errors_keep_clap_s_suggestion_on_their_one_line() {
    let out = poolscope(&["log", "--worker", "3"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("'--workers'"), "{err}");
    let out = poolscope(&["--theme", "sepia"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("dark, light, mono"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn log_fails_on_failed_tasks_only_when_asked() {
    let args = [
        "log",
        "--workload",
        "fail",
        "--tasks",
        "6",
        "--task-ms",
        "5",
    ];
    let out = poolscope(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut strict = args.to_vec();
    strict.push("--fail-on-error");
    let out = poolscope(&strict, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("1 of 6 tasks failed"),
        "{}",
        stderr(&out)
    );
    let help = poolscope(&["log", "--help"], &[]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--fail-on-error"));
}

#[test]
fn log_jsonl_and_csv_have_one_record_per_task_of_a_real_run() {
    for mode in ["thread", "process"] {
        let out = poolscope(
            &[
                "log",
                "--mode",
                mode,
                "--workload",
                "fail",
                "--tasks",
                "8",
                "--task-ms",
                "5",
                "--format",
                "jsonl",
            ],
            &[],
        );
        assert!(out.status.success(), "{out:?}");
        let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(records.len(), 8, "{mode}");
        for r in &records {
            assert!(r["pid"].as_u64().is_some(), "{r}");
            assert_eq!(r["tid"].is_number(), mode == "thread", "{r}");
            let (start, end) = (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap());
            assert!(start <= end, "{r}");
            match r["outcome"].as_str() {
                Some("ok") => assert!(r["result"].is_u64(), "{r}"),
                Some("failed") => assert!(r["error"].is_string(), "{r}"),
                other => panic!("outcome {other:?}"),
            }
        }
        // The 5th task (fail(4)) errs and the 7th (fail(6)) panics.
        let mut failed: Vec<&str> = records
            .iter()
            .filter(|r| r["outcome"] == "failed")
            .filter_map(|r| r["task"].as_str())
            .collect();
        failed.sort_unstable();
        assert_eq!(failed, ["fail(4)", "fail(6)"], "{mode}");
        let out = poolscope(
            &[
                "log",
                "--mode",
                mode,
                "--tasks",
                "4",
                "--task-ms",
                "5",
                "--format",
                "csv",
            ],
            &[],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "task,worker,pid,tid,start_s,end_s,cpu_s,outcome,result,error"
        );
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[1..].iter().all(|l| l.split(',').count() == 10),
            "{text}"
        );
    }
}

#[test]
fn completions_and_man_page_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let out = poolscope(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("workers"),
            "{shell}"
        );
    }
    let out = poolscope(&["man"], &[]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        page.contains(".TH poolscope 1") && page.contains("completions"),
        "{page:.300}"
    );
    for section in [
        "KEYS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "COMMANDS",
    ] {
        assert!(page.contains(&format!(".SH {section}")), "{section}");
    }
    for word in [
        "NO_COLOR",
        "POOLSCOPE_EVENTS",
        "XDG_CONFIG_HOME",
        "LC_CTYPE",
        "config.toml",
    ] {
        assert!(page.contains(word), "{word}");
    }
    // Every key of the key table, and no page that poolscope does not install.
    for (keys, _) in poolscope::view::help::help_rows() {
        assert!(page.contains(&keys.replace('-', "\\-")), "{keys}");
    }
    assert!(
        !page.contains("poolscope-log(1)") && !page.contains("(1)"),
        "a missing page"
    );
}

#[test]
fn bench_prints_a_summary_and_exports_json_and_markdown() {
    let dir = std::env::temp_dir().join(format!("poolscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, md) = (dir.join("b.json"), dir.join("b.md"));
    let out = poolscope(
        &[
            "bench",
            "--tasks",
            "500",
            "--repeat",
            "3",
            "--compare",
            "--export-json",
            json.to_str().unwrap(),
            "--export-markdown",
            md.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let err = stderr(&out);
    assert!(err.contains("median") && err.contains("raw floor"), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["runs"].as_array().map(Vec::len), Some(3));
    let wall = &doc["summary"]["wall_s"];
    assert!(wall["min"].as_f64() <= wall["median"].as_f64());
    assert!(wall["median"].as_f64() <= wall["max"].as_f64());
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(
        table.starts_with("| Benchmark |") && table.lines().count() == 3,
        "{table}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshot_both_fills_the_comparison_and_writes_a_matching_svg() {
    let svg = std::env::temp_dir().join(format!("poolscope-both-{}.svg", std::process::id()));
    let out = poolscope(
        &[
            "snapshot",
            "--both",
            "--tasks",
            "6",
            "--task-ms",
            "5",
            "--svg",
            svg.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "--svg FILE prints no text frame too");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"),
        "{picture:.200}"
    );
    // The picture is the same frame: its text cells hold the frame's words, and both
    // columns of the comparison carry a figure once both runs are done.
    assert!(picture.contains("poolscope") && picture.contains("process"));
    assert!(picture.matches("3w × 6").count() >= 2, "{picture}");
    // `-` is stdout, and then stdout is the picture and nothing else.
    let args = ["snapshot", "--tasks", "2", "--task-ms", "1", "--svg", "-"];
    let out = poolscope(&args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !std::path::Path::new("-").exists());
    assert!(
        stdout.starts_with("<svg") && stdout.trim_end().ends_with("</svg>"),
        "{stdout:.300}"
    );
    std::fs::remove_file(&svg).unwrap();
}
