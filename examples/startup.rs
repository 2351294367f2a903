//! Measures process-pool start-up as the dashboard defines it: per worker, spawn → ready
//! (the child answered its settings). Prints the median over workers and runs for each
//! pool size, and the time until the last worker of a pool was ready.
//!
//! `cargo run --release --example startup -- target/release/poolscope [runs]`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use poolscope::config::{Mode, RunConfig};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::event::EventKind;
use poolscope::workload::Workload;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn once(exe: &Path, workers: u32) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let config = RunConfig {
        mode: Mode::Process,
        workers,
        tasks: u64::from(workers),
        workload: Workload::Noop,
        task_ms: 0,
        ..RunConfig::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<poolscope::event::EventBatch>(64);
    let collect = tokio::spawn(async move {
        let mut spawned = HashMap::new();
        let mut startups = Vec::new();
        let mut last = Duration::ZERO;
        while let Some(batch) = rx.recv().await {
            for ev in batch {
                match ev.kind {
                    EventKind::WorkerSpawned { worker, .. } => {
                        spawned.insert(worker, ev.at);
                    }
                    EventKind::WorkerReady { worker } => {
                        if let Some(s) = spawned.get(&worker) {
                            startups.push(ev.at.saturating_sub(*s));
                            last = last.max(ev.at);
                        }
                    }
                    _ => {}
                }
            }
        }
        (startups, last)
    });
    let opts = RunOptions::new(1, exe.to_path_buf());
    run_blocking_tasks(&config, &opts, &RunControl::new(), tx).await?;
    Ok(collect.await?)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let exe = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/poolscope".into()),
    );
    let runs: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for workers in [1, 2, 3, 8, 16] {
        let mut per_worker = Vec::new();
        let mut all_ready = Vec::new();
        for _ in 0..runs {
            let (startups, last) = rt.block_on(once(&exe, workers))?;
            per_worker.extend(startups);
            all_ready.push(last);
        }
        println!(
            "{{\"workers\":{workers},\"startup_median_ms\":{:.2},\"all_ready_median_ms\":{:.2}}}",
            median(per_worker).as_secs_f64() * 1e3,
            median(all_ready).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
