//! The one loop that takes a live watch's events into a model, for `snapshot` and `log --pid`
//! of a program, a process or a cluster.

use std::time::Duration;

use poolscope::event::EventBatch;
use poolscope::model::Model;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::{TraceFile, trace_events};
use crate::signals::Signals;

/// How long a cancelled watch may go on sending its last events before the fold stops
/// waiting for it: a stuck source must not hold poolscope after a signal.
pub const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Applies the watch's batches to `model` (and the trace) until it closes its channel.
///
/// A signal cancels the watch; its last events (a program's end, its lanes' exits) are still
/// taken in, for up to [`STOP_LIMIT`]. Returns the signal, if one came, so the caller ends as
/// interrupted once it has what the watch sent.
pub async fn fold_watch(
    rx: &mut mpsc::Receiver<EventBatch>,
    signals: &mut Signals,
    cancel: &CancellationToken,
    model: &mut Model,
    trace: &mut Option<TraceFile>,
) -> anyhow::Result<Option<i32>> {
    let mut interrupted = None;
    let stop = tokio::time::sleep(Duration::MAX);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                trace_events(trace, batch.iter())?;
                for ev in &batch {
                    model.apply(ev);
                }
            }
            sig = signals.recv(), if interrupted.is_none() => {
                interrupted = Some(sig);
                cancel.cancel();
                stop.as_mut().reset(tokio::time::Instant::now() + STOP_LIMIT);
            }
            () = &mut stop => break,
        }
    }
    Ok(interrupted)
}
