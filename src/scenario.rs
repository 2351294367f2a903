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

use crate::config::RunConfig;
use crate::error::ConfigError;
use crate::outside_text::{QUOTE_MAX, clip};

/// The largest scenario file read: a scenario is a few lines, and `/dev/zero` never ends.
pub const MAX_SCENARIO_BYTES: usize = 1 << 20;

/// A scenario file that cannot be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("scenario {}: {reason}", path.display())]
pub struct ScenarioError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it, one line.
    pub reason: String,
}

/// Reads (at most [`MAX_SCENARIO_BYTES`]), parses and checks a scenario file: the run it
/// describes, with the defaults for what it leaves out.
pub fn load(path: &Path) -> Result<RunConfig, ScenarioError> {
    let fail = |reason: String| ScenarioError {
        path: path.to_path_buf(),
        reason,
    };
    let text = read_capped(path).map_err(fail)?;
    parse(&text).map_err(fail)
}

/// Parses and checks scenario text; the error is one line naming the field.
pub fn parse(text: &str) -> Result<RunConfig, String> {
    let config: RunConfig = toml::from_str(text).map_err(|e| describe(text, &e))?;
    config.validate().map_err(|e: ConfigError| e.to_string())?;
    Ok(config)
}

/// The scenario that reproduces `config` exactly, as TOML text.
pub fn to_toml(config: &RunConfig) -> String {
    // Every field is a plain scalar, which TOML can always represent.
    toml::to_string(config).unwrap_or_default()
}

/// The file's text, refused if longer than [`MAX_SCENARIO_BYTES`] (reading no more than
/// that) or not UTF-8.
pub(crate) fn read_capped(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SCENARIO_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_SCENARIO_BYTES {
        return Err(format!(
            "larger than {} KiB; a scenario or settings file is a few lines of TOML",
            MAX_SCENARIO_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// One line for a TOML error: where, which key, and what was wrong, quoting no more than
/// [`QUOTE_MAX`] characters of the file.
pub(crate) fn describe(text: &str, e: &toml::de::Error) -> String {
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
    use crate::config::Mode;
    use crate::workload::Workload;

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
        let text = to_toml(&config);
        assert_eq!(parse(&text).unwrap(), config);
    }

    #[test]
    fn missing_keys_keep_their_defaults() {
        let config = parse("workers = 8\n").unwrap();
        assert_eq!(config.workers, 8);
        assert_eq!(config.tasks, RunConfig::default().tasks);
    }

    #[test]
    fn bad_files_name_the_field() {
        let unknown = parse("wrkers = 3\n").unwrap_err();
        assert!(unknown.contains("wrkers"), "{unknown}");
        let wrong_type = parse("mode = \"thread\"\nworkers = \"three\"\n").unwrap_err();
        assert!(
            wrong_type.contains("workers") && wrong_type.contains("line 2"),
            "{wrong_type}"
        );
        let zero = parse("workers = 0\n").unwrap_err();
        assert!(zero.contains("workers"), "{zero}");
        let bad_mode = parse("mode = \"fibers\"\n").unwrap_err();
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
        let e = parse(&text).unwrap_err();
        assert!(e.len() < 1000, "{} bytes", e.len());
        assert!(e.contains("workers") && e.contains("more bytes"), "{e}");
        let key = format!("{} = 1\n", "k".repeat(3_000_000));
        assert!(parse(&key).unwrap_err().len() < 1000);
    }

    #[test]
    fn an_endless_file_is_refused_after_a_mebibyte() {
        let e = load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.reason.contains("larger than 1024 KiB"), "{e}");
    }
}
