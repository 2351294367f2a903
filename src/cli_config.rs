//! The settings file on the command line: its settings become options placed before the
//! user's own (which win), for whichever command is run; `--config FILE` and `--no-config`;
//! `poolscope config` shows what applies.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use poolscope::config_file::{self, ConfigFileError};

use crate::cli::Cli;

/// Commands that read no settings: internal ones, and those that print a fixed text.
const NO_SETTINGS: &[&str] = &["worker", "floor-worker", "completions", "man", "help"];

/// Which settings file applies to `argv`, and whether it must exist.
fn which(argv: &[OsString]) -> Option<(PathBuf, bool)> {
    let mut words = argv.iter().skip(1).map(|w| w.to_string_lossy());
    let mut explicit = None;
    while let Some(w) = words.next() {
        match w.as_ref() {
            "--" => break,
            "--no-config" => return None,
            "--config" => explicit = words.next().map(|p| PathBuf::from(p.as_ref())),
            w if w.starts_with("--config=") => explicit = Some(PathBuf::from(&w[9..])),
            _ => {}
        }
    }
    match explicit {
        Some(p) => Some((p, true)),
        None => config_file::default_path(|k| std::env::var_os(k)).map(|p| (p, false)),
    }
}

/// The file `argv` reads its settings from, if any (for `poolscope config`).
pub fn path(argv: &[OsString]) -> Option<PathBuf> {
    which(argv).map(|(p, _)| p)
}

/// `argv` with the settings file's settings put in as options, where the command has them
/// and the user did not give them.
pub fn with_settings(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    let Some((path, must_exist)) = which(&argv) else {
        return Ok(argv);
    };
    let sub = argv.get(1).map(|w| w.to_string_lossy().into_owned());
    let top = Cli::command();
    let (target, at) = match top.find_subcommand(sub.as_deref().unwrap_or("")) {
        Some(_) if NO_SETTINGS.contains(&sub.as_deref().unwrap_or("")) => return Ok(argv),
        Some(cmd) => (cmd.clone(), 2),
        None => (top.clone(), 1),
    };
    let Some(settings) = config_file::read(&path, must_exist)? else {
        return Ok(argv);
    };
    let fail = |line: usize, key: &str, what: String| ConfigFileError {
        path: path.clone(),
        reason: format!(
            "line {line}, field `{}`: {what}",
            poolscope::outside_text::clip(key, poolscope::outside_text::QUOTE_MAX)
        ),
    };
    let mut extra = Vec::new();
    for setting @ (key, _, line) in &settings {
        if matches!(key.as_str(), "config" | "no-config") || !known(&top, key) {
            return Err(fail(
                *line,
                key,
                "no such setting (settings are the long option names)".into(),
            ));
        }
        let Some(arg) = target.get_arguments().find(|a| a.get_long() == Some(key)) else {
            continue;
        };
        if given(&argv[at.min(argv.len())..], key, arg.get_short()) {
            continue;
        }
        let words = config_file::to_args(&vec![setting.clone()]);
        let mut trial = vec![OsString::from("poolscope")];
        trial.extend(words.iter().cloned());
        if let Err(e) = target.clone().try_get_matches_from(trial) {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid value");
            return Err(fail(
                *line,
                key,
                first.trim_start_matches("error: ").to_string(),
            ));
        }
        extra.extend(words);
    }
    let at = at.min(argv.len());
    let mut out: Vec<OsString> = argv[..at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&argv[at..]);
    Ok(out)
}

/// Whether any command has the long option `key` (hidden ones are not settings).
fn known(top: &clap::Command, key: &str) -> bool {
    let has = |c: &clap::Command| {
        c.get_arguments()
            .any(|a| !a.is_hide_set() && a.get_long() == Some(key))
    };
    has(top) || top.get_subcommands().any(has)
}

/// Whether the user's words give the option (`--key`, `--key=…`, `-k`, `-k…`).
fn given(words: &[OsString], key: &str, short: Option<char>) -> bool {
    words
        .iter()
        .map(|w| w.to_string_lossy())
        .take_while(|w| w != "--")
        .any(|w| {
            w == format!("--{key}")
                || w.starts_with(&format!("--{key}="))
                || short.is_some_and(|s| !w.starts_with("--") && w.starts_with(&format!("-{s}")))
        })
}

/// `poolscope config`: where the settings file is, and the dashboard's settings in effect
/// (the file's over the defaults), as a settings file would hold them.
pub fn show(argv: &[OsString]) -> anyhow::Result<()> {
    // The dashboard's command line: `poolscope config -w 2` shows what `poolscope -w 2` runs.
    let mut words = vec![OsString::from("poolscope")];
    words.extend(argv.iter().skip(2).cloned());
    let cli = Cli::try_parse_from(with_settings(words)?)?;
    let file = match path(argv) {
        Some(p) if p.exists() => format!("{} (read)", p.display()),
        Some(p) => format!("{} (not present: defaults apply)", p.display()),
        None => "none (--no-config, or neither XDG_CONFIG_HOME nor HOME is set)".into(),
    };
    let config = cli.run.config()?;
    let mut text = format!("# settings file: {file}\n");
    text.push_str(&poolscope::scenario::to_toml(&config));
    let theme = format!("{:?}", cli.display.theme).to_lowercase();
    let color = format!("{:?}", cli.display.color).to_lowercase();
    let _ = write!(
        text,
        "theme = \"{theme}\"\ncolor = \"{color}\"\nascii = {}\nsample-ms = {}\n",
        cli.display.ascii, cli.sample_ms
    );
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
    Ok(())
}
