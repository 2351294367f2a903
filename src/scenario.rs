//! Scenario files: a run's settings in TOML, so an experiment can be saved, shared and rerun.
//!
//! ```toml
//! mode = "process"
//! workers = 3
//! tasks = 6
//! workload = "blocks"
//! task-ms = 1000
//! seed = 1
//! ```
//! Every key is optional; what a file leaves out keeps its default, and options given on the
//! command line win over the file.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Mode, RunConfig};
use crate::error::ConfigError;
use crate::term::{QUOTE_MAX, clip};
use crate::workload::Workload;

/// The largest scenario file read: a scenario is a few lines, and `/dev/zero` never ends.
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// The settings a scenario file may carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// `"thread"` or `"process"`.
    pub mode: Option<Mode>,
    /// Pool size.
    pub workers: Option<u32>,
    /// Number of tasks.
    pub tasks: Option<u64>,
    /// `"blocks"`, `"spin"`, `"noop"`, `"fail"` or `"mixed"`.
    pub workload: Option<Workload>,
    /// Milliseconds of work per task.
    pub task_ms: Option<u64>,
    /// Seed of the `mixed` workload.
    pub seed: Option<u64>,
    /// Overdue limit per task, in milliseconds.
    pub task_timeout_ms: Option<u64>,
}

/// A scenario file that cannot be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("scenario {}: {reason}", path.display())]
pub struct ScenarioError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it, one line.
    pub reason: String,
}

impl Scenario {
    /// Reads (at most [`MAX_SCENARIO_BYTES`]), parses and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let fail = |reason: String| ScenarioError {
            path: path.to_path_buf(),
            reason,
        };
        let text = read_capped(path).map_err(fail)?;
        Scenario::parse(&text).map_err(fail)
    }

    /// Parses and checks scenario text; the error is one line naming the field.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| describe(text, &e))?;
        scenario
            .apply(RunConfig::default())
            .validate()
            .map_err(|e: ConfigError| e.to_string())?;
        Ok(scenario)
    }

    /// `base` with this scenario's settings laid over it.
    pub fn apply(&self, base: RunConfig) -> RunConfig {
        RunConfig {
            mode: self.mode.unwrap_or(base.mode),
            workers: self.workers.unwrap_or(base.workers),
            tasks: self.tasks.unwrap_or(base.tasks),
            workload: self.workload.unwrap_or(base.workload),
            task_ms: self.task_ms.unwrap_or(base.task_ms),
            seed: self.seed.unwrap_or(base.seed),
            task_timeout_ms: self.task_timeout_ms.or(base.task_timeout_ms),
        }
    }

    /// The scenario that reproduces `config` exactly.
    pub fn of(config: &RunConfig) -> Scenario {
        Scenario {
            mode: Some(config.mode),
            workers: Some(config.workers),
            tasks: Some(config.tasks),
            workload: Some(config.workload),
            task_ms: Some(config.task_ms),
            seed: Some(config.seed),
            task_timeout_ms: config.task_timeout_ms,
        }
    }

    /// The scenario as TOML text.
    pub fn to_toml(&self) -> String {
        // Every field is a plain scalar, which TOML can always represent.
        toml::to_string(self).unwrap_or_default()
    }
}

/// The file's text, refused if longer than [`MAX_SCENARIO_BYTES`] (reading no more than
/// that) or not UTF-8.
fn read_capped(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SCENARIO_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_SCENARIO_BYTES {
        return Err(format!(
            "larger than {} KiB; a scenario is a few lines of TOML",
            MAX_SCENARIO_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// One line for a TOML error: where, which key, and what was wrong, quoting no more than
/// [`QUOTE_MAX`] characters of the file.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = clip(
        e.message().lines().next().unwrap_or("invalid TOML"),
        QUOTE_MAX,
    )
    .into_owned();
    let Some(span) = e.span() else {
        return message;
    };
    let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !message.contains(key.trim()) => {
            format!(
                "line {line_no}, field `{}`: {message}",
                clip(key.trim(), QUOTE_MAX)
            )
        }
        _ => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_round_trips_through_toml() {
        let config = RunConfig {
            mode: Mode::Process,
            workers: 5,
            tasks: 40,
            workload: Workload::Mixed,
            task_ms: 250,
            seed: 7,
            task_timeout_ms: Some(900),
        };
        let text = Scenario::of(&config).to_toml();
        let back = Scenario::parse(&text).unwrap();
        assert_eq!(back.apply(RunConfig::default()), config);
    }

    #[test]
    fn missing_keys_keep_their_defaults() {
        let s = Scenario::parse("workers = 8\n").unwrap();
        let config = s.apply(RunConfig::default());
        assert_eq!(config.workers, 8);
        assert_eq!(config.tasks, RunConfig::default().tasks);
    }

    #[test]
    fn bad_files_name_the_field() {
        let unknown = Scenario::parse("wrkers = 3\n").unwrap_err();
        assert!(unknown.contains("wrkers"), "{unknown}");
        let wrong_type = Scenario::parse("mode = \"thread\"\nworkers = \"three\"\n").unwrap_err();
        assert!(
            wrong_type.contains("workers") && wrong_type.contains("line 2"),
            "{wrong_type}"
        );
        let zero = Scenario::parse("workers = 0\n").unwrap_err();
        assert!(zero.contains("workers"), "{zero}");
        let bad_mode = Scenario::parse("mode = \"fibers\"\n").unwrap_err();
        assert!(
            bad_mode.contains("mode") || bad_mode.contains("fibers"),
            "{bad_mode}"
        );
        for e in [unknown, wrong_type, zero, bad_mode] {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn a_huge_value_is_quoted_cut() {
        let text = format!("workers = \"{}\"\n", "x".repeat(3_000_000));
        let e = Scenario::parse(&text).unwrap_err();
        assert!(e.len() < 1000, "{} bytes", e.len());
        assert!(e.contains("workers") && e.contains("more bytes"), "{e}");
        let key = format!("{} = 1\n", "k".repeat(3_000_000));
        assert!(Scenario::parse(&key).unwrap_err().len() < 1000);
    }

    #[test]
    fn an_endless_file_is_refused_after_a_mebibyte() {
        let e = Scenario::load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.reason.contains("larger than 1024 KiB"), "{e}");
    }
}
