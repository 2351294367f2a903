//! `log --pid` and `snapshot --pid`: a running process watched from `/proc` until it
//! exits, `--for` elapses, or a signal comes; then its lanes' totals or the last frame.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::LogFormat;
use crate::cmd::TraceFile;
use crate::cmd::fold::fold_watch;
use poolscope::event::EventBatch;
use poolscope::model::Model;
use poolscope::model::states::{LaneTotals, lane_totals};
use poolscope::source::kernel::attach::{self, AttachEnd, AttachSpec, EXITED_UNKNOWN};

/// Watches the process to its end, applying its events to a model (and the trace).
pub fn watch_model(spec: &AttachSpec, trace: &mut Option<TraceFile>) -> anyhow::Result<Model> {
    // A PID that cannot be watched is one line before anything starts.
    let tree = attach::open(spec.pid)?;
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let mut signals = crate::signals::Signals::new()?;
        let (tx, mut rx) = mpsc::channel::<EventBatch>(64);
        let cancel = CancellationToken::new();
        let spec2 = spec.clone();
        let cancel2 = cancel.clone();
        let watch = tokio::spawn(async move { attach::watch(tree, &spec2, 1, cancel2, tx).await });
        let mut model = Model::new();
        let interrupted = fold_watch(&mut rx, &mut signals, &cancel, &mut model, trace).await?;
        let end = watch.await.context("the watch")??;
        if end == AttachEnd::Exited {
            eprintln!("poolscope: PID {} {EXITED_UNKNOWN}", spec.pid);
        }
        match interrupted {
            Some(sig) => Err(crate::signals::Interrupted(sig).into()),
            None => Ok(model),
        }
    });
    rt.shutdown_background();
    result
}

/// `log --pid`: one record per lane with its totals (jsonl, csv) or one line each (text).
pub fn log(
    spec: &AttachSpec,
    mut trace: Option<TraceFile>,
    format: LogFormat,
) -> anyhow::Result<()> {
    let model = watch_model(spec, &mut trace)?;
    super::close_trace(trace)?;
    let totals = model.run.as_ref().map(lane_totals).unwrap_or_default();
    let mut lines = Vec::with_capacity(totals.len() + 1);
    match format {
        LogFormat::Jsonl => {
            for t in &totals {
                lines.push(serde_json::to_string(t).context("lane record")?);
            }
        }
        LogFormat::Csv => {
            lines.push(CSV_HEADER.to_string());
            lines.extend(totals.iter().map(csv_row));
        }
        LogFormat::Text => lines.extend(totals.iter().map(text_line)),
    }
    let mut text = String::new();
    for line in &lines {
        // A thread names itself: its name may hold anything, which must not act on a terminal.
        let _ = writeln!(text, "{}", super::printable(line));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

const CSV_HEADER: &str =
    "record,lane,pid,tid,cpu_s,wait_s,running,waiting,first_seen_s,last_seen_s,exited";

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_row(t: &LaneTotals) -> String {
    let name = t.lane.replace('"', "\"\"");
    format!(
        "{},\"{name}\",{},{},{},{},{},{},{},{},{}",
        t.record,
        opt(t.pid),
        opt(t.tid),
        t.cpu_s,
        t.wait_s,
        opt(t.running),
        opt(t.waiting),
        t.first_seen_s,
        t.last_seen_s,
        t.exited
    )
}

fn text_line(t: &LaneTotals) -> String {
    let who = match (t.tid, t.pid) {
        (Some(tid), _) => format!("{} · tid {tid}", t.lane),
        (None, Some(pid)) => format!("{} · PID {pid}", t.lane),
        (None, None) => t.lane.clone(),
    };
    let pct = |x: Option<f64>| x.map_or_else(|| "–".to_string(), |x| format!("{:.0} %", x * 100.0));
    format!(
        "{who:>28}: on CPU {:.3} s, waited {:.3} s; while watched running {}, waiting {}, \
         seen {:.2}–{:.2} s{}",
        t.cpu_s,
        t.wait_s,
        pct(t.running),
        pct(t.waiting),
        t.first_seen_s,
        t.last_seen_s,
        if t.exited { ", exited" } else { "" }
    )
}
