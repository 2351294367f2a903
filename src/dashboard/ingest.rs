//! The one step from pool events to everything that consumes them: the model, the trace
//! file, the monitor's targets and an optional tap. The dashboard and `snapshot` share it.

use std::io::{self, Write};

use tokio::sync::watch;

use crate::event::{EventBatch, PoolEvent};
use crate::model::Model;
use crate::monitor::{Targets, changes_targets, follow};
use crate::trace::TraceWriter;

/// A trace being written, wherever it goes.
pub type TraceSink = TraceWriter<Box<dyn Write + Send>>;

/// Sees every event after the model did (the observer benchmark collects them).
pub type Tap = Box<dyn FnMut(&PoolEvent) + Send>;

/// Where events go once they leave the pool.
pub struct Ingest {
    trace: Option<TraceSink>,
    targets: Option<watch::Sender<Targets>>,
    tap: Option<Tap>,
}

impl Ingest {
    /// Events go to the model, and to `trace` and the monitor's `targets` when given.
    pub fn new(trace: Option<TraceSink>, targets: Option<watch::Sender<Targets>>) -> Self {
        Ingest {
            trace,
            targets,
            tap: None,
        }
    }

    /// Also hands every event to `tap`.
    #[must_use]
    pub fn with_tap(mut self, tap: Option<Tap>) -> Self {
        self.tap = tap;
        self
    }

    /// Takes every event out of `batches`: writes it to the trace (flushed once at the end,
    /// so a killed run keeps whole events), applies it to `model`, and points the monitor at
    /// the workers when a run started or a worker came or went. A trace that cannot be
    /// written is an error; the events are applied all the same.
    pub fn apply(&mut self, batches: &mut Vec<EventBatch>, model: &mut Model) -> io::Result<()> {
        let written = self.write_trace(batches);
        let mut workers_changed = false;
        for ev in batches.drain(..).flatten() {
            workers_changed |= changes_targets(&ev);
            model.apply(&ev);
            if let Some(tap) = self.tap.as_mut() {
                tap(&ev);
            }
        }
        if workers_changed && let Some(targets) = &self.targets {
            follow(targets, model);
        }
        written
    }

    fn write_trace(&mut self, batches: &[EventBatch]) -> io::Result<()> {
        let Some(trace) = self.trace.as_mut() else {
            return Ok(());
        };
        for ev in batches.iter().flatten() {
            trace.apply(ev)?;
        }
        trace.flush()
    }

    /// Ends the trace file, if there is one.
    pub fn finish(self) -> io::Result<()> {
        match self.trace {
            Some(trace) => trace.finish().map(drop),
            None => Ok(()),
        }
    }
}
