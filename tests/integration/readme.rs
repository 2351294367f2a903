//! The README tells the truth: its key table is the key table, and every `poolscope …` line
//! of its `sh` blocks runs and succeeds.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use poolscope::view::help::help_rows;

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(path).expect("README.md")
}

#[test]
fn the_readme_key_table_is_the_key_table() {
    let text = readme();
    let start = text.find("| key | what it does |").expect("a key table");
    let rows: Vec<(String, String)> = text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].replace('`', ""), cells[1].to_string())
        })
        .collect();
    let table: Vec<(String, String)> = help_rows()
        .into_iter()
        .map(|(k, h)| (k, h.to_string()))
        .collect();
    assert_eq!(rows, table);
}

/// Whether a README line is a command to run as it stands: a headless subcommand, with no
/// placeholder (`FILE`, `[--trace OUT.json]`) and no program of the reader's (`-- app.py`).
/// The dashboard needs a terminal, so its lines are left to the pty tests.
fn runnable(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let headless = ["log", "snapshot", "bench", "completions", "man"];
    let placeholder = |w: &&str| {
        w.starts_with('[') || (w.len() >= 3 && w.chars().all(|c| c.is_ascii_uppercase()))
    };
    words.get(1).is_some_and(|w| headless.contains(w))
        && !words.contains(&"--")
        && !words.iter().any(placeholder)
}

/// The runnable `poolscope …` lines of the README's ` ```sh ` blocks (comments cut).
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        let line = line.split(" #").next().unwrap_or_default().trim_end();
        if in_sh && line.starts_with("poolscope ") && runnable(line) {
            out.push(line.to_string());
        }
    }
    out
}

#[test]
fn every_readme_command_runs_and_succeeds() {
    let text = readme();
    let lines = commands(&text);
    assert!(lines.len() >= 5, "{lines:?}");
    let dir = std::env::temp_dir().join(format!("poolscope-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let out = Command::new(env!("CARGO_BIN_EXE_poolscope"))
            .args(&words[1..])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("poolscope runs");
        assert!(
            out.status.success(),
            "`{line}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // With --svg FILE the picture is the output; everything else prints.
        let writes_file = words.windows(2).any(|w| w[0] == "--svg" && w[1] != "-");
        assert_eq!(out.stdout.is_empty(), writes_file, "`{line}` output");
    }
    let svg = std::fs::read_to_string(dir.join("light.svg")).expect("the light SVG");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{svg:.80}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's install lines (the ` ```setup ` block) work on a fresh machine: run with an
/// empty `HOME`, `cargo install` replaced by the binary just built, every line succeeds and
/// leaves the files it names.
#[test]
fn the_readme_set_up_lines_work_with_a_fresh_home() {
    let text = readme();
    let start = text.find("```setup\n").expect("a setup block") + "```setup\n".len();
    let block = &text[start..start + text[start..].find("```").unwrap()];
    let home = std::env::temp_dir().join(format!("poolscope-fresh-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_poolscope"), bin.join("poolscope")).unwrap();
    let mut ran = 0;
    for line in block.lines() {
        let line = line.split(" #").next().unwrap().trim();
        if line.is_empty() || line.starts_with("cargo install") {
            assert!(line.is_empty() || line.contains("--locked"), "{line}");
            continue;
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(line)
            .env("HOME", &home)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 4, "{block}");
    for f in [
        ".local/share/bash-completion/completions/poolscope",
        ".zfunc/_poolscope",
        ".local/share/man/man1/poolscope.1",
    ] {
        let len = std::fs::metadata(home.join(f)).map_or(0, |m| m.len());
        assert!(len > 100, "{f} written ({len} bytes)");
    }
    std::fs::remove_dir_all(&home).unwrap();
}
