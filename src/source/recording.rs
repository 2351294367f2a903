//! A whole recording in memory, source-neutral: its lanes and its tasks, ready to replay.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use super::in_order::InOrder;
use super::{
    Format, LaneId, LaneInfo, ReadStats, SourceError, SourceEvent, chrome, dask, describe_head,
    detect_format, joblog, perfetto, protocol, speedscope,
};

/// A task as a recording knows it: where and when it ran, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRecord {
    /// Its id, unique within the recording (trace formats number tasks from 1).
    pub task: String,
    /// Its display name (`blocks`, a command line, a Ray function).
    pub name: String,
    /// The lane it ran on; `None` if it never started.
    pub lane: Option<LaneId>,
    /// When it was queued, if the source says.
    pub queued_ns: Option<u64>,
    /// When it started; `None` if it never did.
    pub start_ns: Option<u64>,
    /// When it ended; `None` if it was still running when the recording ends.
    pub end_ns: Option<u64>,
    /// Why it failed; `None` if it finished (or has not ended).
    pub error: Option<String>,
    /// CPU time its thread spent on it, when the source measured it.
    pub cpu_ns: Option<u64>,
    /// How many inner spans (steps) it contained, for trace formats.
    pub steps: u32,
}

impl TaskRecord {
    /// Takes in the task's end: when, how (`error`), its CPU time, and the lane it ended on
    /// if its start did not say.
    pub fn end(
        &mut self,
        at_ns: u64,
        lane: Option<LaneId>,
        error: Option<String>,
        cpu_ns: Option<u64>,
    ) {
        self.end_ns = Some(at_ns);
        self.error = error;
        self.cpu_ns = cpu_ns;
        self.lane = self.lane.or(lane);
    }
}

/// How to read a recording.
#[derive(Default)]
pub struct ReadOptions<'a> {
    /// The format; `None` detects it from the first bytes.
    pub format: Option<Format>,
    /// For trace formats: the spans whose name this accepts are the tasks (`--task REGEX`).
    pub task_filter: Option<&'a dyn Fn(&str) -> bool>,
    /// Told the format once it is known, before any event (a stream's run names it).
    pub on_format: Option<&'a dyn Fn(Format)>,
}

/// A recording read whole: its lanes (indexed by [`LaneId`]) and tasks (in start order).
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// The format it was read as.
    pub format: Option<Format>,
    /// Who wrote it (`viztracer`, `ray timeline`, `python probe`…), when known.
    pub producer: String,
    /// Its lanes; `lanes[id.0]` is lane `id`.
    pub lanes: Vec<LaneInfo>,
    /// When each lane's worker went away, and how (when not the normal end).
    pub lane_exits: Vec<Option<(u64, Option<String>)>>,
    /// Its tasks, in the order they started (never-started ones last, in queue order).
    pub tasks: Vec<TaskRecord>,
    /// What the reader refused or did not understand.
    pub stats: ReadStats,
    /// The file was gzip-compressed.
    pub gzip: bool,
    /// Its lanes and tasks went to a stream as they were read ([`stream_file`]), not here.
    pub streamed: bool,
}

impl Recording {
    /// Gathers a stream of events into a recording.
    pub fn collector(&mut self) -> impl FnMut(SourceEvent) + '_ {
        // Every task by id, ended ones too: a late `queued` still finds its task.
        let mut open: HashMap<String, usize> = HashMap::new();
        move |ev| self.apply(ev, &mut open)
    }

    fn apply(&mut self, ev: SourceEvent, open: &mut HashMap<String, usize>) {
        match ev {
            SourceEvent::Lane { lane, info, .. } => {
                let i = lane.0 as usize;
                if self.lanes.len() <= i {
                    self.lanes.resize_with(i + 1, LaneInfo::default);
                    self.lane_exits.resize(i + 1, None);
                }
                self.lanes[i] = info;
            }
            SourceEvent::LaneExited {
                lane,
                at_ns,
                status,
            } => {
                if let Some(slot) = self.lane_exits.get_mut(lane.0 as usize) {
                    *slot = Some((at_ns, status));
                }
            }
            SourceEvent::TaskQueued { task, name, at_ns } => {
                let i = self.task_index(task, name, open);
                self.tasks[i].queued_ns = Some(at_ns);
            }
            SourceEvent::TaskStarted {
                task,
                name,
                lane,
                at_ns,
            } => {
                let i = self.task_index(task, name, open);
                let t = &mut self.tasks[i];
                t.lane = Some(lane);
                t.start_ns = Some(at_ns);
            }
            SourceEvent::TaskEnded {
                task,
                lane,
                at_ns,
                error,
                cpu_ns,
            } => {
                if let Some(&i) = open.get(&task) {
                    self.tasks[i].end(at_ns, lane, error, cpu_ns);
                }
            }
            SourceEvent::Task(t) => self.tasks.push(t),
            // counted in the reader's stats; the producer comes with them
            SourceEvent::Dropped { .. } | SourceEvent::Begin { .. } => {}
        }
    }

    /// The index of task `id`, adding it if new; a non-empty `name` names it. Events of
    /// several processes may arrive out of order: a start can come before its queueing.
    fn task_index(&mut self, id: String, name: String, open: &mut HashMap<String, usize>) -> usize {
        if let Some(&i) = open.get(&id) {
            if !name.is_empty() {
                self.tasks[i].name = name;
            }
            return i;
        }
        open.insert(id.clone(), self.tasks.len());
        self.tasks.push(TaskRecord {
            task: id,
            name,
            lane: None,
            queued_ns: None,
            start_ns: None,
            end_ns: None,
            error: None,
            cpu_ns: None,
            steps: 0,
        });
        self.tasks.len() - 1
    }

    /// Puts the tasks in start order (never-started ones last, by queue time).
    fn sort(&mut self) {
        self.tasks
            .sort_by_key(|t| (t.start_ns.is_none(), t.start_ns, t.queued_ns));
    }
}

/// Reads `path` whole, detecting its format unless `opts` names one.
pub fn read_file(path: &Path, opts: &ReadOptions<'_>) -> Result<Recording, SourceError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| SourceError::io(&name, e))?;
    read_input(BufReader::with_capacity(64 * 1024, file), &name, opts)
}

/// Reads `path` as [`read_file`] does, except that a format read as a stream (Chrome trace
/// JSON) hands its events to `stream` as they are found, in start order after a
/// [`SourceEvent::Begin`], and the recording returned holds none of them (`streamed`).
pub fn stream_file(
    path: &Path,
    opts: &ReadOptions<'_>,
    stream: &mut dyn FnMut(SourceEvent),
) -> Result<Recording, SourceError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| SourceError::io(&name, e))?;
    read_any(
        BufReader::with_capacity(64 * 1024, file),
        &name,
        opts,
        Some(stream),
    )
}

/// Reads a recording from `input` (named `name` in errors), detecting its format unless
/// `opts` names one. A gzip-compressed recording (`trace.json.gz`) is read through
/// decompression, whatever its format inside.
pub fn read_input(
    input: impl BufRead,
    name: &str,
    opts: &ReadOptions<'_>,
) -> Result<Recording, SourceError> {
    read_any(input, name, opts, None)
}

fn read_any(
    mut input: impl BufRead,
    name: &str,
    opts: &ReadOptions<'_>,
    stream: Option<&mut dyn FnMut(SourceEvent)>,
) -> Result<Recording, SourceError> {
    let head = input.fill_buf().map_err(|e| SourceError::io(name, e))?;
    if head.starts_with(&GZIP_MAGIC) {
        let cut = std::cell::Cell::new(false);
        let gz = CutTolerant {
            inner: MultiGzDecoder::new(input),
            cut: &cut,
        };
        let mut inner = BufReader::with_capacity(64 * 1024, gz);
        let mut rec = read_decoded(&mut inner, name, opts, stream)?;
        rec.gzip = true;
        rec.stats.cut_off |= cut.get();
        return Ok(rec);
    }
    read_decoded(&mut input, name, opts, stream)
}

/// A decompressor whose input ends mid-stream ends there too, noting it: a cut-off `.gz`
/// replays what it holds, as a cut-off plain file does.
struct CutTolerant<'c, R> {
    inner: R,
    cut: &'c std::cell::Cell<bool>,
}

impl<R: std::io::Read> std::io::Read for CutTolerant<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.cut.set(true);
                Ok(0)
            }
            other => other,
        }
    }
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn read_decoded(
    input: &mut dyn BufRead,
    name: &str,
    opts: &ReadOptions<'_>,
    mut stream: Option<&mut dyn FnMut(SourceEvent)>,
) -> Result<Recording, SourceError> {
    let head = input.fill_buf().map_err(|e| SourceError::io(name, e))?;
    if head.is_empty() {
        return Err(SourceError::invalid(name, None, "empty file"));
    }
    let detected = detect_format(head);
    let format = match (opts.format, detected) {
        // poolscope's own files: a `--trace` (a JSON array) or a protocol recording
        (Some(Format::Poolscope), _) if head.trim_ascii_start().starts_with(b"[") => Format::Chrome,
        (Some(f), _) => f,
        (None, Some(f)) => f,
        (None, None) => {
            return Err(SourceError::invalid(
                name,
                Some(1),
                format!(
                    "not a recording poolscope knows: it begins with {}; poolscope reads {}",
                    describe_head(head),
                    super::detect::KNOWN
                ),
            ));
        }
    };
    if let Some(tell) = opts.on_format {
        tell(format);
    }
    let mut rec = Recording {
        format: Some(format),
        ..Recording::default()
    };
    if let (Format::Chrome, Some(stream)) = (format, &mut stream) {
        let (stats, p) = chrome::read(&mut *input, name, opts.task_filter, *stream)?;
        rec.stats = stats;
        rec.producer = p.name().to_string();
        rec.streamed = true;
        return Ok(rec);
    }
    if let (Format::Perfetto, Some(stream)) = (format, &mut stream) {
        // The run is named as a whole recording's is: `Chrome trace (perfetto)`.
        let mut renamed = |ev: SourceEvent| match ev {
            SourceEvent::Begin {
                producer,
                lanes,
                tasks,
                processes,
            } => stream(SourceEvent::Begin {
                producer: producer_of(format, Some(&producer)),
                lanes,
                tasks,
                processes,
            }),
            other => stream(other),
        };
        let (stats, p) = perfetto::read(&mut *input, name, opts.task_filter, &mut renamed)?;
        rec.stats = stats;
        rec.producer = format!("{} (perfetto)", p.name());
        rec.streamed = true;
        return Ok(rec);
    }
    if let Some(stream) = stream {
        // The other formats through a window that puts their tasks in start order.
        let name_of = |found: Option<&str>| producer_of(format, found);
        let mut order = InOrder::new(&name_of, stream);
        let (stats, p) = read_format(input, name, opts, format, &mut |ev| order.push(ev))?;
        let refused = order.finish();
        rec.stats = stats;
        if refused > 0 {
            rec.stats.rejected += refused;
            let why = "too many tasks waiting to start or end at once";
            rec.stats.first_problem.get_or_insert_with(|| why.into());
        }
        rec.producer = producer_of(format, p.map(chrome::Producer::name));
        rec.streamed = true;
        return Ok(rec);
    }
    let (stats, p) = read_format(input, name, opts, format, &mut rec.collector())?;
    rec.stats = stats;
    rec.producer = producer_of(format, p.map(chrome::Producer::name));
    rec.sort();
    Ok(rec)
}

/// Who wrote a recording of `format`, as its reader found (`found`) or as the format says.
fn producer_of(format: Format, found: Option<&str>) -> String {
    match (format, found) {
        (Format::Speedscope, Some(p)) => format!("{p} (speedscope)"),
        (Format::Perfetto, Some(p)) => format!("{p} (perfetto)"),
        (_, Some(p)) => p.to_string(),
        (Format::Poolscope, None) => "poolscope protocol".to_string(),
        (Format::Dask, None) => "dask".to_string(),
        (Format::Joblog, None) => "GNU parallel".to_string(),
        (Format::Speedscope, None) => "speedscope".to_string(),
        (Format::Perfetto, None) => "perfetto".to_string(),
        (Format::Chrome, None) => "chrome".to_string(),
    }
}

/// Reads `input` as `format`, pushing its events to `sink`.
fn read_format(
    input: &mut dyn BufRead,
    name: &str,
    opts: &ReadOptions<'_>,
    format: Format,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Option<chrome::Producer>), SourceError> {
    Ok(match format {
        Format::Poolscope => (protocol::read(&mut *input, name, sink)?, None),
        Format::Chrome => {
            let (stats, p) = chrome::read(&mut *input, name, opts.task_filter, sink)?;
            (stats, Some(p))
        }
        Format::Speedscope => {
            let (stats, p) = speedscope::read(&mut *input, name, opts.task_filter, sink)?;
            (stats, Some(p))
        }
        Format::Perfetto => {
            let (stats, p) = perfetto::read(&mut *input, name, opts.task_filter, sink)?;
            (stats, Some(p))
        }
        Format::Dask => (dask::read(&mut *input, name, sink)?, None),
        Format::Joblog => (joblog::read(&mut *input, name, sink)?, None),
    })
}
