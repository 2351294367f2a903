//! The child side of the process pool: `poolscope worker`, a loop over framed stdin.

use std::io::{BufReader, BufWriter, Read, Write};

use crate::error::WireError;
use crate::pool::task::{Task, install_panic_filter, run_caught};
use crate::pool::wire::{self, FromWorker, ToWorker};
use crate::sys::{mono_ns, thread_cpu_ns, thread_cpu_since};
use crate::workload::Workload;

/// Ways a worker can be told to break once its first task has arrived: fault drills that
/// show (and test) how the pool copes with workers that crash, lie, stall or flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Misbehave {
    /// Write bytes that are not a frame.
    Garbage,
    /// Write half a frame, then exit.
    Truncate,
    /// Report a task it was never given.
    Lie,
    /// Exit with code 3.
    Exit3,
    /// Die of SIGSEGV.
    Segfault,
    /// Report the first task as finished at the end of time (`u64::MAX`).
    AbsurdTime,
    /// Report the first task as finished before it started.
    BackInTime,
    /// Report the first task as started long before the run began.
    BeforeRun,
    /// Run the first task, then report it twice.
    Duplicate,
    /// Take the first task and never say a word about it.
    Stall,
    /// Write half of the first task's report, then sleep.
    HalfStall,
    /// Write lines full of escape sequences, and one overlong line, to stderr, then work.
    Flood,
}

impl Misbehave {
    /// Drills that announce the first task's start before breaking (the rest break before
    /// saying anything about it).
    fn announces(self) -> bool {
        matches!(
            self,
            Misbehave::Garbage
                | Misbehave::Truncate
                | Misbehave::Lie
                | Misbehave::Exit3
                | Misbehave::Segfault
        )
    }
}

/// What a worker process runs: its settings from the first frame, and any fault drill.
#[derive(Clone, Copy, Debug)]
struct WorkerJob {
    workload: Workload,
    task_ms: u64,
    seed: u64,
    announce_starts: bool,
    misbehave: Option<Misbehave>,
}

/// Reads the settings frame that opens the protocol and answers it with `Ready`.
fn handshake<R: Read, W: Write>(
    input: &mut R,
    output: &mut W,
    misbehave: Option<Misbehave>,
) -> Result<Option<WorkerJob>, WireError> {
    let mut frame = Vec::new();
    if !wire::read_frame(input, &mut frame)? {
        return Ok(None);
    }
    let ToWorker::Settings(config) = wire::decode(&frame)? else {
        return Err(WireError::Unexpected("a task before the settings"));
    };
    let mut scratch = Vec::new();
    wire::write_frame(
        &FromWorker::Ready { at_ns: mono_ns() },
        &mut scratch,
        output,
    )?;
    output.flush()?;
    Ok(Some(WorkerJob {
        workload: config.workload,
        task_ms: config.task_ms,
        seed: config.seed,
        announce_starts: config.announces_starts(),
        misbehave,
    }))
}

/// Serves tasks from `input` until it closes, reporting on `output`. The first frame must
/// be the run's settings; `misbehave` is a fault drill to carry out on the first task.
///
/// Reports are buffered and flushed when the worker is about to wait (for input, or for a
/// task that takes time), so a stream of short tasks costs few syscalls while a long task's
/// start still reaches the dashboard at once.
pub fn serve<R: Read, W: Write>(
    misbehave: Option<Misbehave>,
    input: R,
    output: W,
) -> Result<(), WireError> {
    install_panic_filter();
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
    let Some(job) = handshake(&mut input, &mut output, misbehave)? else {
        return Ok(());
    };
    if misbehave == Some(Misbehave::Flood) {
        flood_stderr();
    }
    let mut frame = Vec::new();
    let mut scratch = Vec::new();
    loop {
        if input.buffer().is_empty() {
            output.flush()?;
        }
        if !wire::read_frame(&mut input, &mut frame)? {
            output.flush()?;
            return Ok(());
        }
        let ToWorker::Task { id, n, panic } = wire::decode(&frame)? else {
            return Err(WireError::Unexpected("settings twice"));
        };
        let started_ns = mono_ns();
        let drill = job.misbehave.filter(|&m| m != Misbehave::Flood);
        // A task long enough to be seen running announces its start at once; a short one
        // reports its start and finish together.
        // A drill decides for itself, so it tells the same lie whatever the task length.
        let announce = drill.map_or(job.announce_starts, Misbehave::announces);
        if announce {
            let started = FromWorker::Started {
                id,
                at_ns: started_ns,
            };
            wire::write_frame(&started, &mut scratch, &mut output)?;
            output.flush()?;
        }
        if let Some(how) = drill {
            return break_down(how, id, &mut output, &mut input);
        }
        let task = Task { id, n, panic };
        // Measured for tasks long enough to be seen, as in the thread pool (pool/thread.rs).
        let cpu_before = if announce { thread_cpu_ns() } else { None };
        let outcome = run_caught(job.workload, task, job.task_ms, job.seed);
        let cpu_ns = thread_cpu_since(cpu_before);
        let at_ns = mono_ns();
        let report = match outcome {
            Ok(result) if announce => FromWorker::Finished {
                id,
                at_ns,
                result,
                cpu_ns,
            },
            Ok(result) => FromWorker::Ran {
                id,
                started_ns,
                at_ns,
                result,
                cpu_ns,
            },
            Err(error) => {
                if !announce {
                    let started = FromWorker::Started {
                        id,
                        at_ns: started_ns,
                    };
                    wire::write_frame(&started, &mut scratch, &mut output)?;
                }
                FromWorker::failed(id, at_ns, &error, cpu_ns)
            }
        };
        wire::write_frame(&report, &mut scratch, &mut output)?;
    }
}

/// Writes terminal-hostile text to stderr: what a confused worker might print.
fn flood_stderr() {
    let mut err = std::io::stderr().lock();
    for i in 0..2_000 {
        let _ = writeln!(err, "\x1b[2J\x1b]0;owned\x07line {i}\x1b[31m red\x08\x00");
    }
    let _ = writeln!(err, "{}", "x".repeat(100_000));
    let _ = err.flush();
}

/// Carries out a fault drill; returns only where a real worker would go on to exit.
fn break_down<R: Read, W: Write>(
    how: Misbehave,
    id: u64,
    output: &mut W,
    input: &mut R,
) -> Result<(), WireError> {
    let mut frame = Vec::new();
    match how {
        Misbehave::Garbage => output.write_all(b"\xff\xfe this is not a frame")?,
        Misbehave::Truncate => {
            let done = FromWorker::Finished {
                id,
                at_ns: mono_ns(),
                result: 0,
                cpu_ns: None,
            };
            wire::encode(&done, &mut frame)?;
            output.write_all(&frame[..frame.len() / 2])?;
            output.flush()?;
            return Ok(());
        }
        Misbehave::Lie => {
            let lie = FromWorker::Finished {
                id: id + 1_000_000,
                at_ns: mono_ns(),
                result: 42,
                cpu_ns: None,
            };
            wire::encode(&lie, &mut frame)?;
            output.write_all(&frame)?;
        }
        Misbehave::AbsurdTime | Misbehave::BackInTime | Misbehave::BeforeRun => {
            let now = mono_ns();
            let (started_ns, at_ns) = match how {
                Misbehave::AbsurdTime => (now, u64::MAX),
                Misbehave::BackInTime => (now, now - 1_000_000),
                _ => (1, now),
            };
            let lie = FromWorker::Ran {
                id,
                started_ns,
                at_ns,
                result: 42,
                cpu_ns: None,
            };
            wire::encode(&lie, &mut frame)?;
            output.write_all(&frame)?;
        }
        Misbehave::Duplicate => {
            let now = mono_ns();
            let twice = FromWorker::Ran {
                id,
                started_ns: now,
                at_ns: now,
                result: id * id,
                cpu_ns: None,
            };
            wire::encode(&twice, &mut frame)?;
            wire::encode(&twice, &mut frame)?;
            output.write_all(&frame)?;
        }
        Misbehave::Stall | Misbehave::HalfStall => {
            if how == Misbehave::HalfStall {
                let now = mono_ns();
                let done = FromWorker::Ran {
                    id,
                    started_ns: now,
                    at_ns: now,
                    result: 0,
                    cpu_ns: None,
                };
                wire::encode(&done, &mut frame)?;
                output.write_all(&frame[..frame.len() / 2])?;
                output.flush()?;
            }
            // Stuck for good: only the pool's deadline ends this.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Misbehave::Flood => {}
        Misbehave::Exit3 => {
            output.flush()?;
            std::process::exit(3);
        }
        Misbehave::Segfault => {
            output.flush()?;
            // Rust's own SIGSEGV handler (stack-overflow detection) would return from a
            // raised signal; the default action is what a real segfault ends in.
            // SAFETY: installing SIG_DFL and raising a signal touch no memory of ours.
            #[allow(unsafe_code)]
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
        }
    }
    output.flush()?;
    // Linger like a confused worker until the pool gives up on us and closes the pipe.
    let _ = std::io::copy(input, &mut std::io::sink());
    Ok(())
}
