//! Sources other than the built-in pools: a program speaking the event protocol
//! (`docs/protocol.md`), and recordings replayed from files (protocol recordings, poolscope's
//! own traces, Chrome trace JSON, Dask task streams, GNU parallel joblogs).
//!
//! Every reader turns its input into the same source-neutral [`SourceEvent`]s, pushed to a sink
//! as they are known: lanes identified by (host?, pid?, tid?, display name), tasks by a string
//! id and a string name, times in nanoseconds since the recording's origin. Everything read is
//! untrusted: sizes are bounded, times and ids checked, and bad records counted in
//! [`ReadStats`] rather than trusted; a file that is not what it claims to be is one
//! [`SourceError`] naming the file, the line and what is wrong.

pub mod adapt;
pub mod channel;
pub mod chrome;
pub mod cluster;
pub mod dask;
mod detect;
pub mod guard;
pub mod in_order;
pub mod joblog;
mod json_array;
pub mod kernel;
mod lanes;
mod lines;
pub mod live;
pub mod perfetto;
pub mod program;
mod program_output;
pub mod protocol;
mod recording;
mod span_tree;
pub mod speedscope;
pub mod stream;

use std::fmt;

pub use detect::{Format, describe_head, detect_format};
pub use recording::{ReadOptions, Recording, TaskRecord, read_file, read_input, stream_file};

/// The Python probe's loader, written as `sitecustomize.py` into a private directory put
/// first on `PYTHONPATH`: it installs the `poolscope_probe` package beside it.
pub const PYTHON_PROBE: &str = include_str!("probe/sitecustomize.py");

/// The probe's native part (`probe/fast.c`, built by `build.rs` for the stable ABI of `CPython`),
/// written as `poolscope_probe/_fast.abi3.so`; empty where it was not built (the probe then
/// does the same in Python).
pub const PYTHON_PROBE_NATIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/_fast.abi3.so"));

/// Every file of the Python probe, by its path in that directory: the loader, and one module
/// per pool kind in `poolscope_probe/` (a new pool kind's module is added here too).
pub const PYTHON_PROBE_FILES: &[(&str, &str)] = &[
    ("sitecustomize.py", PYTHON_PROBE),
    (
        "poolscope_probe/__init__.py",
        include_str!("probe/poolscope_probe/__init__.py"),
    ),
    (
        "poolscope_probe/channel.py",
        include_str!("probe/poolscope_probe/channel.py"),
    ),
    (
        "poolscope_probe/hooks.py",
        include_str!("probe/poolscope_probe/hooks.py"),
    ),
    (
        "poolscope_probe/tasks.py",
        include_str!("probe/poolscope_probe/tasks.py"),
    ),
    (
        "poolscope_probe/lines.py",
        include_str!("probe/poolscope_probe/lines.py"),
    ),
    (
        "poolscope_probe/native.py",
        include_str!("probe/poolscope_probe/native.py"),
    ),
    (
        "poolscope_probe/futures.py",
        include_str!("probe/poolscope_probe/futures.py"),
    ),
    (
        "poolscope_probe/mp.py",
        include_str!("probe/poolscope_probe/mp.py"),
    ),
    (
        "poolscope_probe/joblib.py",
        include_str!("probe/poolscope_probe/joblib.py"),
    ),
    (
        "poolscope_probe/dask.py",
        include_str!("probe/poolscope_probe/dask.py"),
    ),
    (
        "poolscope_probe/ray.py",
        include_str!("probe/poolscope_probe/ray.py"),
    ),
];

/// Longest protocol line the reader accepts; longer ones are refused, not parsed.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest single trace event (one JSON object) a Chrome or Dask reader accepts.
pub const MAX_RECORD: usize = 1024 * 1024;
/// Most lanes one source may declare; more is garbage or an attack, not a pool.
pub const MAX_LANES: usize = 65_536;
/// Latest time accepted, relative to the origin: 30 days. Later is a lying clock.
pub const MAX_TIME_NS: u64 = 30 * 24 * 3600 * 1_000_000_000;
/// Longest task or lane name kept (longer ones are cut at a character boundary).
pub const MAX_NAME: usize = 200;
/// Longest error text kept.
pub const MAX_ERROR: usize = 500;

/// A lane within one source, numbered from 0 in order of first appearance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneId(pub u32);

/// Who a lane is: where it ran and what the OS called it, as far as the source knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LaneInfo {
    /// The host or cluster node, for sources that span machines (Ray, Dask, protocol).
    pub host: Option<String>,
    /// The process id, when the source gives a real one.
    pub pid: Option<u32>,
    /// The kernel thread id; `None` when the lane is a whole process.
    pub tid: Option<i64>,
    /// The display name: a thread name, `PID 1234`, a Dask worker address, a job slot.
    pub name: String,
}

impl fmt::Display for LaneInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = self
            .host
            .as_ref()
            .filter(|h| !self.name.contains(h.as_str()))
        {
            write!(f, "{host} · ")?;
        }
        match (self.tid, self.pid) {
            (Some(tid), _) => write!(f, "{} · tid {tid}", self.name),
            (None, Some(pid)) if self.name == format!("PID {pid}") => f.write_str(&self.name),
            (None, Some(pid)) => write!(f, "{} · PID {pid}", self.name),
            (None, None) => f.write_str(&self.name),
        }
    }
}

/// One thing a source reports. Times are nanoseconds since the recording's origin.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceEvent {
    /// A lane appeared, or its identity became better known (repeat: replace the old info).
    Lane {
        /// The lane.
        lane: LaneId,
        /// Who it is.
        info: LaneInfo,
        /// When it started, if the source says.
        at_ns: Option<u64>,
    },
    /// A lane's worker went away.
    LaneExited {
        /// The lane.
        lane: LaneId,
        /// When.
        at_ns: u64,
        /// How, when not the normal end (`exit 3`, `killed by SIGKILL`).
        status: Option<String>,
    },
    /// A task was handed to the pool's queue.
    TaskQueued {
        /// Its id, unique within the source.
        task: String,
        /// Its display name.
        name: String,
        /// When.
        at_ns: u64,
    },
    /// A worker began a task.
    TaskStarted {
        /// Its id.
        task: String,
        /// Its display name.
        name: String,
        /// The lane running it.
        lane: LaneId,
        /// When.
        at_ns: u64,
    },
    /// A task ended: finished when `error` is `None`, failed otherwise.
    TaskEnded {
        /// Its id.
        task: String,
        /// The lane it ran on, if it had started.
        lane: Option<LaneId>,
        /// When.
        at_ns: u64,
        /// What went wrong, one line.
        error: Option<String>,
        /// CPU time its thread spent on it, when the writer measured it.
        cpu_ns: Option<u64>,
    },
    /// A task known only whole (trace formats): its start, end and outcome at once.
    Task(TaskRecord),
    /// A streaming reader's first word, before its first lane: who wrote the recording,
    /// and, when it was read to its end first, how many lanes and tasks it holds.
    Begin {
        /// Who wrote it (`viztracer`…).
        producer: String,
        /// Lanes that ran tasks, if known.
        lanes: Option<u32>,
        /// Tasks, if known.
        tasks: Option<u64>,
        /// Every lane known so far is a process.
        processes: bool,
    },
    /// The writer dropped `count` events (its channel was full).
    Dropped {
        /// How many.
        count: u64,
        /// When the writer told it, if it said.
        at_ns: Option<u64>,
    },
}

/// What a reader saw besides the events: counts of what it refused or did not understand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines or records read.
    pub records: u64,
    /// Records refused: malformed, oversized, or with impossible ids.
    pub rejected: u64,
    /// Records whose times could not be true (negative, before the origin, ending before
    /// they start, or absurdly far in the future).
    pub bad_times: u64,
    /// Protocol records of a kind this reader does not know (a newer writer).
    pub unknown_kinds: u64,
    /// Events the writer itself dropped because the channel was full (it reports the count).
    pub dropped_by_writer: u64,
    /// Spans inside tasks (their inner steps), not tasks themselves.
    pub inner_steps: u64,
    /// Spans that were neither tasks nor inside one (the main thread's work, filtered out).
    pub not_tasks: u64,
    /// The input ended in the middle of a record: it was cut off, and what it held is kept.
    pub cut_off: bool,
    /// The first problem met, `line N: what`, to show the user one concrete example.
    pub first_problem: Option<String>,
}

impl ReadStats {
    /// Counts a refused record and remembers it if it is the first problem.
    pub(crate) fn reject(&mut self, line: u64, what: impl fmt::Display) {
        self.rejected += 1;
        self.note(line, what);
    }

    /// Counts a record with impossible times.
    pub(crate) fn bad_time(&mut self, line: u64, what: impl fmt::Display) {
        self.bad_times += 1;
        self.note(line, what);
    }

    /// Keeps the first problem; `line` 0 is one found after reading (no line to blame).
    fn note(&mut self, line: u64, what: impl fmt::Display) {
        if self.first_problem.is_none() {
            self.first_problem = Some(match line {
                0 => what.to_string(),
                _ => format!("line {line}: {what}"),
            });
        }
    }
}

/// A source that cannot be read: one line naming the file, the line and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file or channel could not be opened or read.
    #[error("{file}: {cause}")]
    Io {
        /// The file (or channel) name.
        file: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// The input is not what its format requires.
    #[error("{file}{}: {what}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file name.
        file: String,
        /// The line, when one is to blame.
        line: Option<u64>,
        /// What is wrong.
        what: String,
    },
}

impl SourceError {
    pub(crate) fn invalid(file: &str, line: Option<u64>, what: impl Into<String>) -> Self {
        SourceError::Invalid {
            file: file.to_string(),
            line,
            what: what.into(),
        }
    }

    pub(crate) fn io(file: &str, cause: std::io::Error) -> Self {
        SourceError::Io {
            file: file.to_string(),
            cause,
        }
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary, and to its first line.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}
