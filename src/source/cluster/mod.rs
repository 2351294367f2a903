//! A running Dask scheduler or Ray cluster, watched live (`--dask ADDRESS`, `--ray ADDRESS`).
//!
//! poolscope does not speak Dask's or Ray's wire protocols: an embedded Python watcher
//! (`watch.py`), run with a Python that has `distributed` or `ray`, reads the cluster through
//! their own client libraries and writes poolscope's event protocol on the program channel.
//! It runs as a watched program ([`program::watch`]), so lanes, bounds and clean-up are the
//! program source's; this module builds its command line, puts the cluster's name on the
//! run, and turns the watcher's failure into one line. `docs/cluster.md` says why.

use std::ffi::OsString;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::program::{self, ProgramEnd, ProgramError, ProgramSpec};
use crate::event::{EventBatch, EventKind, RunId, RunSource};

/// The watcher, run as `PYTHON -I -c WATCHER dask|ray ADDRESS [--for SECONDS]`.
pub const WATCHER: &str = include_str!("watch.py");

/// How the watcher's notes begin (other lines on its stderr are Python's own).
const NOTE: &str = "poolscope: ";
/// How the watcher's line that says why it stopped begins.
const FAILED: &str = "poolscope: error: ";
/// Longest address accepted.
const MAX_ADDRESS: usize = 256;
/// How long past `--for` the watcher gets to say its last before it is stopped.
const GRACE: Duration = Duration::from_secs(20);

/// Which kind of cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterKind {
    /// A Dask `distributed` scheduler (`tcp://host:8786`).
    Dask,
    /// A Ray cluster (`host:6379`, or `auto`).
    Ray,
}

impl ClusterKind {
    /// The watcher's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ClusterKind::Dask => "dask",
            ClusterKind::Ray => "ray",
        }
    }
}

/// A cluster to watch, and how.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Dask or Ray.
    pub kind: ClusterKind,
    /// Where its scheduler (Dask) or GCS (Ray) listens.
    pub address: String,
    /// The Python that runs the watcher.
    pub python: OsString,
    /// Stop after this long (`--for`); `None`: until the cluster stops answering or the user
    /// quits.
    pub duration: Option<Duration>,
    /// The poolscope binary that guards the watcher's process tree (see [`ProgramSpec`]).
    pub guard: Option<std::path::PathBuf>,
}

/// Why a cluster could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The address is not one.
    #[error("--{kind} {address:?} is not an address: {why}")]
    Address {
        /// `dask` or `ray`.
        kind: &'static str,
        /// What was given (cut).
        address: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The watcher stopped with its one line (no answer, no package, a version it cannot use).
    #[error("{0}")]
    Watcher(String),
    /// The watcher could not be run.
    #[error(transparent)]
    Program(#[from] ProgramError),
}

impl ClusterSpec {
    /// Checks the address where it enters: short, printable, and shaped like one.
    pub fn check(&self) -> Result<(), ClusterError> {
        let bad = |why| ClusterError::Address {
            kind: self.kind.name(),
            address: super::clip(&self.address, 80),
            why,
        };
        let a = self.address.as_str();
        if a.is_empty() || a.len() > MAX_ADDRESS {
            return Err(bad("empty or too long"));
        }
        if a.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("it holds spaces or control characters"));
        }
        if a.starts_with('-') {
            return Err(bad("it starts with '-'"));
        }
        let rest = a.split_once("://").map_or(a, |(_, r)| r);
        let has_port = rest
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        match self.kind {
            ClusterKind::Ray if a == "auto" => Ok(()),
            _ if has_port => Ok(()),
            ClusterKind::Dask => Err(bad("expected tcp://HOST:PORT")),
            ClusterKind::Ray => Err(bad("expected HOST:PORT or auto")),
        }
    }

    /// `dask tcp://10.0.0.5:8786`: what the run is called.
    pub fn title(&self) -> String {
        format!("{} {}", self.kind.name(), self.address)
    }

    /// The watcher as a program to watch. Its output is captured: its notes become the
    /// run's log lines, and its last line the error when it fails.
    pub fn program(&self) -> ProgramSpec {
        let mut argv: Vec<OsString> = vec![
            self.python.clone(),
            "-I".into(),
            "-c".into(),
            WATCHER.into(),
            self.kind.name().into(),
            self.address.clone().into(),
        ];
        if let Some(d) = self.duration {
            argv.push("--for".into());
            argv.push(format!("{:.3}", d.as_secs_f64()).into());
        }
        ProgramSpec {
            argv,
            show_args: false,
            capture_output: true,
            // The watcher's own threads are not the cluster's workers: no kernel lanes.
            kernel_period: None,
            stdout_to_stderr: false,
            title: Some(self.title()),
            guard: self.guard.clone(),
        }
    }
}

/// How a watch ended.
#[derive(Debug)]
pub struct ClusterEnd {
    /// The watcher's run, as a program's.
    pub program: ProgramEnd,
    /// The watcher's notes (workers joining, leaving, dying), in order; the last few kept.
    pub notes: Vec<String>,
}

/// Most notes kept for the caller.
const NOTES_KEPT: usize = 64;

/// Watches the cluster until `--for` has passed, the watcher stops, or `cancel` fires,
/// sending run `run`'s events to `out`. With `echo`, the watcher's notes go to stderr as
/// they come (for `log`, whose stdout is the records).
pub async fn watch(
    spec: &ClusterSpec,
    run: RunId,
    cancel: CancellationToken,
    out: mpsc::Sender<EventBatch>,
    echo: bool,
) -> Result<ClusterEnd, ClusterError> {
    spec.check()?;
    let program = spec.program();
    let (tx, mut rx) = mpsc::channel::<EventBatch>(64);
    let inner = cancel.child_token();
    let watch = tokio::spawn({
        let inner = inner.clone();
        async move { program::watch(&program, run, inner, tx).await }
    });
    let mut deadline = spec
        .duration
        .map(|d| tokio::time::Instant::now() + d + GRACE);
    let mut notes: Vec<String> = Vec::new();
    let title = spec.title();
    loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            }
        };
        let Some(batch) = next.await else {
            inner.cancel(); // the watcher overstayed --for: stop it, keep what it said
            deadline = None;
            continue;
        };
        let Some(mut batch) = batch else { break };
        for ev in &mut batch {
            match &mut ev.kind {
                EventKind::RunStarted { source, .. } => {
                    **source = RunSource::Program {
                        command: title.clone(),
                    };
                }
                EventKind::ProgramOutput { line, stderr: true } => {
                    if line.strip_prefix(NOTE) == Some(program::NO_TASKS) {
                        // Said of programs; of a cluster, only that it ran nothing meanwhile.
                        *line = format!("{NOTE}no task ended on the cluster while it was watched");
                        continue;
                    }
                    if echo && line.starts_with(NOTE) && !line.starts_with(FAILED) {
                        eprintln!("{line}");
                    }
                    if notes.len() == NOTES_KEPT {
                        notes.remove(0);
                    }
                    notes.push(line.clone());
                }
                _ => {}
            }
        }
        if out.send(batch).await.is_err() {
            inner.cancel();
        }
    }
    let end = match watch.await {
        Ok(Ok(end)) => end,
        Ok(Err(ProgramError::Stream(_))) => {
            // Not one line of the protocol: whatever ran was not the watcher.
            let said = notes.last().map_or("", String::as_str);
            return Err(ClusterError::Watcher(format!(
                "{} did not run poolscope's cluster watcher (is it Python 3.8 or later?): {said}",
                spec.python.to_string_lossy()
            )));
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(ClusterError::Watcher(format!("the watch failed: {e}"))),
    };
    if let Some(status) = end.exit
        && !program::exit_of(status).is_clean()
    {
        let last = notes
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(FAILED))
            .map_or_else(
                || {
                    // The watcher always says why it stops: whatever ran was not it.
                    let said = notes.last().map_or("", String::as_str);
                    format!(
                        "{} did not run poolscope's cluster watcher (is it Python 3.8 or \
                         later?): {status}: {said}",
                        spec.python.to_string_lossy()
                    )
                },
                ToString::to_string,
            );
        return Err(ClusterError::Watcher(last));
    }
    Ok(ClusterEnd {
        program: end,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ClusterKind, address: &str) -> ClusterSpec {
        ClusterSpec {
            kind,
            address: address.into(),
            python: "python3".into(),
            duration: None,
            guard: None,
        }
    }

    #[test]
    fn addresses_are_checked_where_they_enter() {
        assert!(
            spec(ClusterKind::Dask, "tcp://127.0.0.1:8786")
                .check()
                .is_ok()
        );
        assert!(spec(ClusterKind::Dask, "10.0.0.5:8786").check().is_ok());
        assert!(spec(ClusterKind::Ray, "auto").check().is_ok());
        assert!(spec(ClusterKind::Ray, "head:6379").check().is_ok());
        for bad in [
            "",
            "tcp://host",
            "host:0",
            "host:99999",
            "-x:1",
            "a b:1",
            "a\n:1",
        ] {
            assert!(spec(ClusterKind::Dask, bad).check().is_err(), "{bad:?}");
        }
        assert!(spec(ClusterKind::Dask, "auto").check().is_err());
        let long = format!("tcp://{}:1", "h".repeat(300));
        assert!(spec(ClusterKind::Ray, &long).check().is_err());
    }

    #[test]
    fn the_watcher_runs_isolated_from_the_probe_with_its_deadline() {
        let mut s = spec(ClusterKind::Ray, "auto");
        s.duration = Some(Duration::from_millis(2500));
        let p = s.program();
        let argv: Vec<String> = p
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(argv[1..3], ["-I", "-c"]);
        assert_eq!(argv[4..], ["ray", "auto", "--for", "2.500"]);
        assert!(p.capture_output && !p.show_args);
        assert_eq!(s.title(), "ray auto");
    }
}
