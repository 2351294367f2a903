//! The child side of the process pool: `poolscope worker`, a loop over framed stdin.

use std::io::{BufReader, BufWriter, Read, Write};

use crate::error::WireError;
use crate::pool::task::{Task, install_panic_filter, run_caught};
use crate::pool::wire::{self, FromWorker, ToWorker};
use crate::sys::mono_ns;
use crate::workload::Workload;

/// Ways a worker can be told to break once its first task has started: fault drills that
/// show (and test) how the pool copes with workers that crash or lie.
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
}

/// What a worker process runs, from its command line.
#[derive(Clone, Copy, Debug)]
pub struct WorkerJob {
    /// The work each task does.
    pub workload: Workload,
    /// How long each task works.
    pub task_ms: u64,
    /// Seed of the `mixed` workload.
    pub seed: u64,
    /// Send each task's start in a frame of its own, before running it.
    pub announce_starts: bool,
    /// A fault drill to carry out.
    pub misbehave: Option<Misbehave>,
}

/// Serves tasks from `input` until it closes, reporting on `output`.
///
/// Reports are buffered and flushed when the worker is about to wait (for input, or for a
/// task that takes time), so a stream of short tasks costs few syscalls while a long task's
/// start still reaches the dashboard at once.
pub fn serve<R: Read, W: Write>(job: &WorkerJob, input: R, output: W) -> Result<(), WireError> {
    let WorkerJob {
        workload,
        task_ms,
        seed,
        announce_starts,
        misbehave,
    } = *job;
    install_panic_filter();
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
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
        let ToWorker::Task { id, n, panic } = wire::decode(&frame)?;
        let started_ns = mono_ns();
        // A task long enough to be seen running announces its start at once; a short one
        // reports its start and finish together.
        let announce = announce_starts || misbehave.is_some();
        if announce {
            let started = FromWorker::Started {
                id,
                at_ns: started_ns,
            };
            wire::write_frame(&started, &mut scratch, &mut output)?;
            output.flush()?;
        }
        if let Some(how) = misbehave {
            return break_down(how, id, &mut output, &mut input);
        }
        let outcome = run_caught(workload, Task { id, n, panic }, task_ms, seed);
        let at_ns = mono_ns();
        let report = match outcome {
            Ok(result) if announce => FromWorker::Finished { id, at_ns, result },
            Ok(result) => FromWorker::Ran {
                id,
                started_ns,
                at_ns,
                result,
            },
            Err(error) => {
                if !announce {
                    let started = FromWorker::Started {
                        id,
                        at_ns: started_ns,
                    };
                    wire::write_frame(&started, &mut scratch, &mut output)?;
                }
                FromWorker::failed(id, at_ns, &error)
            }
        };
        wire::write_frame(&report, &mut scratch, &mut output)?;
    }
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
            };
            wire::encode(&lie, &mut frame)?;
            output.write_all(&frame)?;
        }
        Misbehave::Exit3 => {
            output.flush()?;
            std::process::exit(3);
        }
        Misbehave::Segfault => {
            output.flush()?;
            // Rust's own SIGSEGV handler (stack-overflow detection) would return from a
            // raised signal; the default action is what a real segfault ends in.
            // SAFETY: installing SIG_DFL and raising a signal touch no memory of ours.
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
