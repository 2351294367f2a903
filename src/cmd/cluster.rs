//! `log` and `snapshot` of a running Dask or Ray cluster (`--dask`, `--ray`); the dashboard
//! runs the same watcher as a program. The cluster runs on: `--for SECONDS` ends the watch.

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::fold::{STOP_LIMIT, fold_watch};
use crate::cmd::{TraceFile, Usage};
use crate::signals::{Interrupted, Signals};
use poolscope::event::EventBatch;
use poolscope::model::Model;
use poolscope::source::cluster::{self, ClusterEnd, ClusterSpec};

/// `log --dask/--ray`: a record (or log line) per task as the cluster runs them; the
/// watcher's notes (workers joining, leaving, dying) on stderr.
pub(super) fn log(
    spec: &ClusterSpec,
    trace: Option<TraceFile>,
    printer: super::log::Printer,
) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let mut signals = Signals::new().context("cannot install signal handlers")?;
        let (tx, rx) = mpsc::channel(64);
        let output = super::log::Output::spawn().context("cannot start the stdout writer")?;
        let discard = CancellationToken::new();
        let printer = tokio::spawn(super::log::print_log(
            rx,
            trace,
            output,
            printer,
            discard.clone(),
        ));
        let cancel = CancellationToken::new();
        let watch = cluster::watch(spec, 1, cancel.clone(), tx, true);
        tokio::pin!(watch);
        let end = tokio::select! {
            end = &mut watch => end,
            sig = signals.recv() => {
                discard.cancel();
                cancel.cancel();
                let _ = tokio::time::timeout(STOP_LIMIT, &mut watch).await;
                return Err(Interrupted(sig).into());
            }
        };
        tokio::select! {
            printed = printer => printed.context("log printer")??,
            sig = signals.recv() => return Err(Interrupted(sig).into()),
        }
        end.map(|_| ()).map_err(anyhow::Error::from)
    });
    rt.shutdown_background();
    result
}

/// `snapshot --dask/--ray --for SECONDS`: the model once the watch has run its time.
pub fn snapshot(spec: &ClusterSpec, trace: &mut Option<TraceFile>) -> anyhow::Result<Model> {
    if spec.duration.is_none() {
        return Err(Usage("snapshot of a cluster needs --for SECONDS".into()).into());
    }
    let mut model = Model::new();
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let mut signals = Signals::new().context("cannot install signal handlers")?;
        let (tx, mut rx) = mpsc::channel::<EventBatch>(64);
        let cancel = CancellationToken::new();
        let watch = {
            let (spec, cancel) = (spec.clone(), cancel.clone());
            tokio::spawn(async move { cluster::watch(&spec, 1, cancel, tx, false).await })
        };
        let folded = fold_watch(&mut rx, &mut signals, &cancel, &mut model, trace).await?;
        if let Some(sig) = folded {
            let _ = tokio::time::timeout(STOP_LIMIT, watch).await;
            return Err(Interrupted(sig).into());
        }
        let end: ClusterEnd = watch.await.context("cluster watch")??;
        Ok(end)
    });
    rt.shutdown_background();
    result.map(|_| model)
}
