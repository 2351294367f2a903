//! `poolscope bench`: throughput and overhead of the pools, one JSON line per run.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::sync::mpsc;

use crate::cli::BenchArgs;
use crate::cmd::{runtime, worker_exe};
use poolscope::config::{Mode, RunConfig};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::model::Model;
use poolscope::workload::Workload;

/// Runs the benchmark `args.repeat` times, printing a JSON line after each run.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let config = RunConfig {
        mode: args.mode,
        workers: args.workers,
        tasks: args.tasks,
        workload: Workload::Noop,
        task_ms: 0,
        ..RunConfig::default()
    };
    config.validate()?;
    let exe = worker_exe()?;
    let rt = runtime()?;
    for i in 0..args.repeat {
        let opts = RunOptions {
            collect_results: false,
            ..RunOptions::new(i + 1, exe.clone())
        };
        let (wall, events) = rt.block_on(once(&config, &opts, args.model))?;
        let secs = wall.as_secs_f64();
        let tasks = config.tasks as f64;
        let mut line = json!({
            "mode": config.mode.name(),
            "workers": config.workers,
            "tasks": config.tasks,
            "wall_s": round(secs, 4),
            "tasks_per_s": round(tasks / secs, 0),
            "per_task_us": round(secs * 1e6 / tasks, 3),
            "events_per_s": round(events as f64 / secs, 0),
            "peak_rss_kb": peak_rss_kb(),
        });
        if args.model {
            line["consumer"] = json!("model");
        }
        if args.compare {
            let (floor, done) = match config.mode {
                Mode::Thread => poolscope::floor::threads(config.workers, config.tasks),
                Mode::Process => poolscope::floor::processes(&exe, config.workers, config.tasks)
                    .context("the raw process floor failed")?,
            };
            anyhow::ensure!(done == config.tasks, "the floor lost tasks: {done}");
            line["floor_wall_s"] = json!(round(floor.as_secs_f64(), 4));
            line["floor_tasks_per_s"] = json!(round(tasks / floor.as_secs_f64(), 0));
            line["vs_floor"] = json!(round(secs / floor.as_secs_f64(), 2));
        }
        println!("{line}");
    }
    Ok(())
}

/// One run, its events counted (and with `model`, applied to a dashboard model) by the
/// consumer; returns the wall time and the event count.
async fn once(
    config: &RunConfig,
    opts: &RunOptions,
    model: bool,
) -> anyhow::Result<(Duration, u64)> {
    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::channel(16);
    let control = RunControl::new();
    let count = tokio::spawn(async move {
        let mut batches: Vec<poolscope::event::EventBatch> = Vec::with_capacity(64);
        let mut state = model.then(Model::new);
        let mut n = 0u64;
        while rx.recv_many(&mut batches, 64).await > 0 {
            for batch in batches.drain(..) {
                n += batch.len() as u64;
                if let Some(m) = state.as_mut() {
                    batch.iter().for_each(|ev| m.apply(ev));
                }
            }
        }
        n
    });
    let report = run_blocking_tasks(config, opts, &control, tx)
        .await
        .context("run failed")?;
    let wall = t0.elapsed();
    let events = count.await.context("event counter")?;
    anyhow::ensure!(
        report.finished == config.tasks,
        "only {} of {} tasks finished",
        report.finished,
        config.tasks
    );
    Ok((wall, events))
}

/// The process's peak resident memory so far, in KiB.
fn peak_rss_kb() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return -1;
    }
    // SAFETY: getrusage succeeded, so the struct is initialised.
    unsafe { usage.assume_init() }.ru_maxrss
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
