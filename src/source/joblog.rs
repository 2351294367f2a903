//! GNU parallel `--joblog` files. The joblog does not record which job slot ran a job, so the
//! slots are rebuilt the way parallel hands them out (`{%}`): jobs in start order take the slot
//! freed earliest, or a new one. Each job is a task named by its command; a non-zero exit value
//! or a signal is a failure.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read};

use super::{
    LaneId, LaneInfo, MAX_LINE, MAX_NAME, MAX_TIME_NS, ReadStats, SourceError, SourceEvent,
    TaskRecord, clip,
};

/// Joblog times are written to the millisecond: a slot freed within this of a job's start is
/// taken to be free for it.
const ROUNDING_NS: i64 = 1_000_000;
/// Most jobs kept; a joblog is read whole to rebuild its slots.
const MAX_JOBS: usize = 4_000_000;

struct Job {
    seq: u64,
    host: Option<String>,
    start: i64,
    end: i64,
    command: String,
    error: Option<String>,
}

/// Reads a joblog, pushing its slots (lanes) and then its jobs (tasks, in start order).
pub fn read(
    mut input: impl BufRead,
    file: &str,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReadStats, SourceError> {
    let mut stats = ReadStats::default();
    let mut jobs: Vec<Job> = Vec::new();
    let mut line = Vec::new();
    let header = next_line(&mut input, &mut line).map_err(|e| SourceError::io(file, e))?;
    if header.is_none() {
        return Err(SourceError::invalid(file, None, "empty file"));
    }
    if !line.starts_with(b"Seq\tHost\tStarttime\tJobRuntime") {
        return Err(SourceError::invalid(
            file,
            Some(1),
            "not a GNU parallel joblog (expected the header Seq, Host, Starttime, JobRuntime…)",
        ));
    }
    let mut n = 1u64;
    while let Some(whole) =
        next_line(&mut input, &mut line).map_err(|e| SourceError::io(file, e))?
    {
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        stats.records += 1;
        if line.len() > MAX_LINE {
            stats.reject(n, "line over 64 KiB refused");
            continue;
        }
        if jobs.len() >= MAX_JOBS {
            stats.reject(n, "too many jobs");
            continue;
        }
        match parse_job(&String::from_utf8_lossy(&line)) {
            Ok(job) => jobs.push(job),
            Err(_) if !whole => stats.cut_off = true, // a log cut inside its last line
            Err(Bad::Time(what)) => stats.bad_time(n, what),
            Err(Bad::Line(what)) => stats.reject(n, what),
        }
    }
    emit(jobs, &mut stats, sink);
    Ok(stats)
}

/// Reads a line of at most [`MAX_LINE`] bytes into `line` (a longer one is cut there, and
/// then fails to parse); `Some(true)` if it ended with a newline, `None` at the end.
fn next_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    line.clear();
    let n = input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)?;
    if n == 0 {
        return Ok(None);
    }
    let whole = line.last() == Some(&b'\n');
    if whole {
        line.pop();
    } else if line.len() > MAX_LINE {
        // skip the rest of an over-long line
        let mut rest = Vec::new();
        while input.read_until(b'\n', &mut rest)? > 0 && rest.last() != Some(&b'\n') {
            rest.clear();
        }
        return Ok(Some(true));
    }
    Ok(Some(whole))
}

enum Bad {
    Time(&'static str),
    Line(&'static str),
}

fn parse_job(line: &str) -> Result<Job, Bad> {
    let cols: Vec<&str> = line.trim_end_matches('\r').splitn(9, '\t').collect();
    if cols.len() < 9 {
        return Err(Bad::Line("a joblog line has 9 tab-separated columns"));
    }
    let seq = cols[0]
        .trim()
        .parse::<u64>()
        .map_err(|_| Bad::Line("Seq is not a number"))?;
    let start: f64 = cols[2]
        .trim()
        .parse()
        .map_err(|_| Bad::Line("Starttime is not a number"))?;
    let runtime: f64 = cols[3]
        .trim()
        .parse()
        .map_err(|_| Bad::Line("JobRuntime is not a number"))?;
    if !(start.is_finite() && runtime.is_finite()) || start < 0.0 {
        return Err(Bad::Time("Starttime is not a time"));
    }
    if runtime < 0.0 {
        return Err(Bad::Time("negative JobRuntime"));
    }
    // Up to the year 2096 in nanoseconds fits an i64 with room for the runtime.
    if runtime > (MAX_TIME_NS / 1_000_000_000) as f64 || start > 4.0e9 {
        return Err(Bad::Time("time absurdly far in the future"));
    }
    let exit: i64 = cols[6]
        .trim()
        .parse()
        .map_err(|_| Bad::Line("Exitval is not a number"))?;
    let signal: i64 = cols[7]
        .trim()
        .parse()
        .map_err(|_| Bad::Line("Signal is not a number"))?;
    let error = if signal != 0 {
        let sig = i32::try_from(signal).unwrap_or(0);
        Some(format!("killed by {}", crate::sys::signal_name(sig)))
    } else if exit != 0 {
        Some(format!("exit {exit}"))
    } else {
        None
    };
    let host = cols[1].trim();
    let start_ns = (start * 1e9).round() as i64;
    Ok(Job {
        seq,
        host: (host != ":" && !host.is_empty()).then(|| clip(host, MAX_NAME)),
        start: start_ns,
        end: start_ns + (runtime * 1e9).round() as i64,
        command: clip(cols[8], MAX_NAME),
        error,
    })
}

/// Rebuilds the slots and emits them and the jobs.
fn emit(mut jobs: Vec<Job>, stats: &mut ReadStats, sink: &mut dyn FnMut(SourceEvent)) {
    jobs.sort_by_key(|j| (j.start, j.seq));
    let origin = jobs.first().map_or(0, |j| j.start);
    let mut running: BTreeMap<(i64, u64), u32> = BTreeMap::new(); // (end, seq) → slot
    let mut free: VecDeque<u32> = VecDeque::new();
    let mut slots = 0u32;
    for job in jobs {
        while let Some((&(end, seq), &slot)) = running.first_key_value() {
            if end > job.start + ROUNDING_NS {
                break;
            }
            running.remove(&(end, seq));
            free.push_back(slot);
        }
        let slot = free.pop_front().unwrap_or_else(|| {
            slots += 1;
            sink(SourceEvent::Lane {
                lane: LaneId(slots - 1),
                info: LaneInfo {
                    host: None,
                    pid: None,
                    tid: None,
                    name: format!("slot {slots}"),
                },
                at_ns: None,
            });
            slots
        });
        running.insert((job.end, job.seq), slot);
        let start = job.start - origin;
        let end = job.end - origin;
        if end > MAX_TIME_NS as i64 {
            stats.bad_time(0, "job absurdly far from the log's start");
            continue;
        }
        sink(SourceEvent::Task(TaskRecord {
            task: job.seq.to_string(),
            name: match &job.host {
                Some(h) => format!("{h}: {}", job.command),
                None => job.command,
            },
            lane: Some(LaneId(slot - 1)),
            queued_ns: None,
            start_ns: Some(start as u64),
            end_ns: Some(end as u64),
            error: job.error,
            cpu_ns: None,
            steps: 0,
        }));
    }
}
