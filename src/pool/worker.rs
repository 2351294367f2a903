//! The child side of the process pool: `poolscope worker`, a loop over framed stdin.

use std::io::{BufReader, BufWriter, Read, Write};

use crate::error::WireError;
use crate::pool::task::{Task, install_panic_filter, run_caught};
use crate::pool::wire::{self, FromWorker, ToWorker};
use crate::sys::mono_ns;
use crate::workload::Workload;

/// Serves tasks from `input` until it closes, reporting on `output`.
///
/// Reports are buffered and flushed when the worker is about to wait (for input, or for a
/// task that takes time), so a stream of short tasks costs few syscalls while a long task's
/// start still reaches the dashboard at once.
pub fn serve<R: Read, W: Write>(
    workload: Workload,
    task_ms: u64,
    input: R,
    output: W,
) -> Result<(), WireError> {
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
        let ToWorker::Task { id, n } = wire::decode(&frame)?;
        let started = FromWorker::Started {
            id,
            at_ns: mono_ns(),
        };
        wire::write_frame(&started, &mut scratch, &mut output)?;
        if task_ms > 0 {
            output.flush()?;
        }
        let report = match run_caught(workload, Task { id, n }, task_ms) {
            Ok(result) => FromWorker::Finished {
                id,
                at_ns: mono_ns(),
                result,
            },
            Err(error) => FromWorker::failed(id, mono_ns(), &error),
        };
        wire::write_frame(&report, &mut scratch, &mut output)?;
    }
}
