//! The settings file, `$XDG_CONFIG_HOME/poolscope/config.toml` (else
//! `~/.config/poolscope/config.toml`): TOML whose keys are the long option names (`theme`,
//! `sample-ms`, `mode`, `workers`, `task-ms`, …). Every command reads it; options given on
//! the command line win. It is read bounded, like a scenario file, and a bad one is refused
//! in one line naming the file, the line and the field.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("config {}: {reason}", path.display())]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, one line.
    pub reason: String,
}

/// Where the settings file is, given the environment: `$XDG_CONFIG_HOME` when set to an
/// absolute path (as the XDG spec asks), else `$HOME/.config`.
pub fn default_path(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let base = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            var("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".config"))
        })?;
    Some(base.join("poolscope").join("config.toml"))
}

/// The settings of a file, in file order: (key, value as typed on a command line, line).
pub type Settings = Vec<(String, Option<String>, usize)>;

/// Reads and parses the file at `path` (bounded); `None` if it does not exist and
/// `must_exist` is false.
pub fn read(path: &Path, must_exist: bool) -> Result<Option<Settings>, ConfigFileError> {
    let fail = |reason: String| ConfigFileError {
        path: path.to_path_buf(),
        reason,
    };
    if !must_exist && !path.exists() {
        return Ok(None);
    }
    let text = crate::scenario::read_capped(path).map_err(fail)?;
    parse(&text).map(Some).map_err(fail)
}

/// Parses settings text: each key a long option name, each value a string, a number or a
/// boolean (`true` is the flag given, `false` is it left out).
pub fn parse(text: &str) -> Result<Settings, String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| crate::scenario::describe(text, &e))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let line = line_of(text, &key);
        let value = match value {
            toml::Value::String(s) => Some(s),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(true) => None,
            toml::Value::Boolean(false) => continue,
            _ => {
                return Err(format!(
                    "line {line}, field `{}`: a setting is a string, a number or true/false",
                    crate::outside_text::clip(&key, crate::outside_text::QUOTE_MAX)
                ));
            }
        };
        out.push((key, value, line));
    }
    Ok(out)
}

/// The line `key` is set on (1 when it cannot be found).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('"');
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches('"').trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// The command-line words for `settings`: `--key=value` or `--key`.
pub fn to_args(settings: &Settings) -> Vec<OsString> {
    settings
        .iter()
        .map(|(k, v, _)| match v {
            Some(v) => OsString::from(format!("--{k}={v}")),
            None => OsString::from(format!("--{k}")),
        })
        .collect()
}

/// Writes `settings` over the file at `path`, keeping its other keys: through a new file in
/// the same directory renamed over it, never through a symlink.
pub fn save(path: &Path, settings: &[(&str, toml::Value)]) -> Result<(), ConfigFileError> {
    let fail = |reason: String| ConfigFileError {
        path: path.to_path_buf(),
        reason,
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(fail("is a symbolic link; not written through it".into()));
    }
    let mut table: toml::Table = match read_table(path) {
        Ok(t) => t,
        Err(e) if path.exists() => return Err(fail(e)),
        Err(_) => toml::Table::new(),
    };
    for (k, v) in settings {
        table.insert((*k).to_string(), v.clone());
    }
    let text = toml::to_string(&table).map_err(|e| fail(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!(".config.toml.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    Ok(())
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text = crate::scenario::read_capped(path)?;
    toml::from_str(&text).map_err(|e| crate::scenario::describe(&text, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_config_home_wins_over_home_and_must_be_absolute() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            default_path(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/poolscope/config.toml"))
        );
        assert_eq!(
            default_path(env(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/poolscope/config.toml"))
        );
        assert_eq!(default_path(env(&[])), None);
    }

    #[test]
    fn settings_become_options_and_bad_values_name_the_line() {
        let s = parse("theme = \"light\"\n\nworkers = 4\nascii = true\nbench = false\n").unwrap();
        let mut args = to_args(&s);
        args.sort();
        assert_eq!(
            args,
            ["--ascii", "--theme=light", "--workers=4"].map(OsString::from)
        );
        let workers = s.iter().find(|(k, _, _)| k == "workers").unwrap();
        assert_eq!(workers.2, 3, "workers is on line 3");
        let e = parse("mode = \"thread\"\nworkers = [1]\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("workers"), "{e}");
        assert_eq!(parse("workers = \n").unwrap_err().lines().count(), 1);
    }
}
