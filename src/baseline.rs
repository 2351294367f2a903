//! The raw floor that `poolscope bench --compare` measures poolscope against: the same work
//! (`n*n`, start and finish stamped on the shared clock and sent back) with nothing of
//! poolscope's in between: plain channels and threads, plain pipes to child processes.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::mono_ns;

/// One result as the floor reports it: task, start, finish, value.
type Record = (u64, u64, u64, u64);

/// Tasks per hand-out and results per send in the thread floor, as a careful hand-written
/// pool would batch them.
const FLOOR_CHUNK: u64 = 64;

/// Runs `tasks` noop tasks on `workers` threads pulling chunks from one channel and sending
/// back a batch of records per chunk; returns the wall time and the number of results.
pub fn threads(workers: u32, tasks: u64) -> (Duration, u64) {
    let t0 = Instant::now();
    let (task_tx, task_rx) = crossbeam_channel::bounded::<std::ops::Range<u64>>(256);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Vec<Record>>(256);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, tx) = (task_rx.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for chunk in rx {
                    let mut records = Vec::with_capacity(FLOOR_CHUNK as usize);
                    for n in chunk {
                        let start = mono_ns();
                        let result = n.wrapping_mul(n);
                        records.push((n, start, mono_ns(), result));
                    }
                    if tx.send(records).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let feeder = std::thread::spawn(move || {
        let mut n = 0;
        while n < tasks {
            let end = (n + FLOOR_CHUNK).min(tasks);
            if task_tx.send(n..end).is_err() {
                return;
            }
            n = end;
        }
    });
    let collected = done_rx.iter().map(|batch| batch.len() as u64).sum();
    let _ = feeder.join();
    for h in handles {
        let _ = h.join();
    }
    (t0.elapsed(), collected)
}

/// Runs `tasks` noop tasks on `workers` child processes (`exe floor-worker`), each sent its
/// share up front as 8-byte records and answering with 32-byte records.
pub fn processes(exe: &Path, workers: u32, tasks: u64) -> io::Result<(Duration, u64)> {
    let t0 = Instant::now();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    let mut children = Vec::new();
    for w in 0..u64::from(workers) {
        let mut child = Command::new(exe)
            .arg("floor-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let share: Vec<u64> = (w..tasks).step_by(workers as usize).collect();
        writers.push(std::thread::spawn(move || -> io::Result<()> {
            let mut out = BufWriter::with_capacity(64 * 1024, stdin);
            for n in share {
                out.write_all(&n.to_le_bytes())?;
            }
            out.flush()
        }));
        readers.push(std::thread::spawn(move || -> io::Result<u64> {
            let mut input = BufReader::with_capacity(64 * 1024, stdout);
            let mut record = [0u8; 32];
            let mut count = 0;
            while input.read_exact(&mut record).is_ok() {
                count += 1;
            }
            Ok(count)
        }));
        children.push(child);
    }
    for w in writers {
        w.join()
            .map_err(|_| io::Error::other("writer panicked"))??;
    }
    let mut collected = 0;
    for r in readers {
        collected += r
            .join()
            .map_err(|_| io::Error::other("reader panicked"))??;
    }
    for mut c in children {
        c.wait()?;
    }
    Ok((t0.elapsed(), collected))
}

/// The child side of [`processes`]: answers each 8-byte task with a 32-byte result record.
pub fn serve_floor<R: Read, W: Write>(input: R, output: W) -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut output = BufWriter::with_capacity(64 * 1024, output);
    let mut task = [0u8; 8];
    loop {
        if input.buffer().is_empty() {
            output.flush()?;
        }
        if input.read_exact(&mut task).is_err() {
            return output.flush();
        }
        let n = u64::from_le_bytes(task);
        let start = mono_ns();
        let result = n.wrapping_mul(n);
        for v in [n, start, mono_ns(), result] {
            output.write_all(&v.to_le_bytes())?;
        }
    }
}
