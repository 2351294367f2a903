//! GNU parallel `--joblog` files. The joblog does not record which job slot ran a job, so the
//! slots are rebuilt the way parallel hands them out (`{%}`): parallel keeps a queue of free
//! slots; a job that starts takes the slot at its front, or a new one if it is empty, and a
//! job's slot goes to the back of the queue when parallel reaps it, which is also when it
//! writes the job's line. So the file's line order is the order slots came free, and a slot
//! came free before a start if the job's end is surely before it (parallel writes
//! `Starttime` rounded and `JobRuntime` truncated to the millisecond). Each job is a
//! task named by its command; a non-zero exit value or a signal is a failure.

use std::collections::VecDeque;
use std::io::BufRead;

use super::lines::{Line, LineReader};

use super::{
    LaneId, LaneInfo, MAX_NAME, MAX_TIME_NS, ReadStats, SourceError, SourceEvent, TaskRecord, clip,
};

/// Joblog times are written to the millisecond, `Starttime` rounded and `JobRuntime`
/// truncated: a job's true end lies in [end, end + 1 ms) and a start in [start ± 0.5 ms), so
/// a job was surely reaped before another started only if its end is 2 ms before that start.
/// Closer calls are taken as not yet reaped, which is what parallel's own `{%}` shows.
const SURELY_BEFORE_NS: i64 = 2_000_000;
/// What one millisecond of rounding can hide: a `--keep-order` file (in job order) is told
/// from a plain one by ends out of order by more.
const ROUNDING_NS: i64 = 1_000_000;
/// Most jobs kept; a joblog is read whole to rebuild its slots.
const MAX_JOBS: usize = 4_000_000;
/// How every joblog begins.
const HEADER: &[u8] = b"Seq\tHost\tStarttime\tJobRuntime";

struct Job {
    seq: u64,
    /// Its line's place in the file: the order parallel reaped the jobs.
    line: u32,
    host: Option<String>,
    start: i64,
    end: i64,
    command: String,
    error: Option<String>,
}

/// Reads a joblog, pushing its slots (lanes) and then its jobs (tasks, in start order).
pub fn read(
    input: impl BufRead,
    file: &str,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<ReadStats, SourceError> {
    let mut stats = ReadStats::default();
    let mut jobs: Vec<Job> = Vec::new();
    let mut lines = LineReader::new(input);
    match lines.next_line(file)? {
        Line::Eof => return Err(SourceError::invalid(file, None, "empty file")),
        Line::Whole | Line::Last if lines.text().starts_with(HEADER) => {}
        _ => {
            return Err(SourceError::invalid(
                file,
                Some(1),
                "not a GNU parallel joblog (expected the header Seq, Host, Starttime, \
                 JobRuntime…)",
            ));
        }
    }
    loop {
        let whole = match lines.next_line(file)? {
            Line::Eof => break,
            Line::TooLong => {
                stats.records += 1;
                stats.reject(lines.number(), "line over 64 KiB refused");
                continue;
            }
            Line::Whole => true,
            Line::Last => false,
        };
        let (n, line) = (lines.number(), lines.text());
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        stats.records += 1;
        if jobs.len() >= MAX_JOBS {
            stats.reject(n, "too many jobs");
            continue;
        }
        match parse_job(&String::from_utf8_lossy(line)) {
            Ok(mut job) => {
                job.line = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
                jobs.push(job);
            }
            Err(_) if !whole => stats.cut_off = true, // a log cut inside its last line
            Err(Bad::Time(what)) => stats.bad_time(n, what),
            Err(Bad::Line(what)) => stats.reject(n, what),
        }
    }
    emit(jobs, &mut stats, sink);
    Ok(stats)
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
    // to the microsecond first: an f64 of nanoseconds since 1970 is only good to 256 ns,
    // enough to turn a tie of milliseconds the wrong way
    let start_ns = (start * 1e6).round() as i64 * 1000;
    Ok(Job {
        seq,
        line: 0,
        host: (host != ":" && !host.is_empty()).then(|| clip(host, MAX_NAME)),
        start: start_ns,
        end: start_ns + (runtime * 1e6).round() as i64 * 1000,
        command: clip(cols[8], MAX_NAME),
        error,
    })
}

/// The order parallel reaped `jobs` (indexes into it): their lines' order, unless the file was
/// written in job order (`--keep-order`) while the jobs did not end in that order. Then the
/// order is rebuilt from the times: parallel alternates between starting jobs and reaping in
/// batches every job that has ended, oldest child first (`waitpid(-1)`: in job order), so a
/// reap goes after the last start surely before it and, within its batch, in job order.
/// Reaps of one millisecond cannot be told apart: a wrong guess swaps two slots' names from
/// there on, so these slots agree with `{%}` far less than a plain joblog's (README).
fn reap_order(jobs: &[Job]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| jobs[i].line);
    let in_seq_order = order.windows(2).all(|w| jobs[w[0]].seq < jobs[w[1]].seq);
    let ends_out_of_order = || {
        let mut latest = i64::MIN;
        order.iter().any(|&i| {
            let early = jobs[i].end + ROUNDING_NS < latest;
            latest = latest.max(jobs[i].end);
            early
        })
    };
    if in_seq_order && ends_out_of_order() {
        let mut by_start: Vec<usize> = (0..jobs.len()).collect();
        by_start.sort_by_key(|&i| (jobs[i].start, jobs[i].seq));
        let mut rank = vec![0usize; jobs.len()];
        for (n, &i) in by_start.iter().enumerate() {
            rank[i] = n;
        }
        let starts: Vec<i64> = by_start.iter().map(|&i| jobs[i].start).collect();
        // how many starts came surely before job i's reap (its own start at least)
        let batch = |i: usize| {
            let before = starts.partition_point(|&s| s < jobs[i].end + SURELY_BEFORE_NS);
            before.max(rank[i] + 1)
        };
        order.sort_by_key(|&i| (batch(i), jobs[i].seq));
    }
    order
}

/// Gives each job its slot (1-based) as parallel did: see the module's comment.
fn slots(jobs: &[Job]) -> Vec<u32> {
    let reaps = reap_order(jobs);
    let mut starts: Vec<usize> = (0..jobs.len()).collect();
    starts.sort_by_key(|&i| (jobs[i].start, jobs[i].seq));
    let mut slot = vec![0u32; jobs.len()];
    let mut free: VecDeque<u32> = VecDeque::new();
    let mut next_reap = 0;
    let mut made = 0u32;
    for &k in &starts {
        // reaps happen in their order; one can only be of a job already started
        while let Some(&r) = reaps.get(next_reap) {
            if slot[r] == 0 || jobs[r].end + SURELY_BEFORE_NS > jobs[k].start {
                break;
            }
            free.push_back(slot[r]);
            next_reap += 1;
        }
        slot[k] = free.pop_front().unwrap_or_else(|| {
            made += 1;
            made
        });
    }
    slot
}

/// Rebuilds the slots and emits them and the jobs, in start order.
fn emit(mut jobs: Vec<Job>, stats: &mut ReadStats, sink: &mut dyn FnMut(SourceEvent)) {
    let slot_of = slots(&jobs);
    // In start order by index, each job's text taken as it goes: no second copy of the jobs.
    let mut order: Vec<u32> = (0..u32::try_from(jobs.len()).unwrap_or(u32::MAX)).collect();
    order.sort_by_key(|&i| (jobs[i as usize].start, jobs[i as usize].seq));
    let origin = order.first().map_or(0, |&i| jobs[i as usize].start);
    // slots are made 1, 2, 3… in start order, so each is new when it passes the last seen
    let mut slots_seen = 0u32;
    for i in order {
        let slot = slot_of[i as usize];
        let job = &mut jobs[i as usize];
        let job = Job {
            command: std::mem::take(&mut job.command),
            host: job.host.take(),
            error: job.error.take(),
            ..*job
        };
        if slot > slots_seen {
            slots_seen = slot;
            sink(SourceEvent::Lane {
                lane: LaneId(slot - 1),
                info: LaneInfo {
                    host: None,
                    pid: None,
                    tid: None,
                    name: format!("slot {slot}"),
                },
                at_ns: None,
            });
        }
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
