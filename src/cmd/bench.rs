//! `poolscope bench`: throughput and overhead of the pools, one JSON line per run; with
//! `--observer`, what watching a run does to it.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cli::BenchArgs;
use crate::cmd::{local_runtime, runtime, worker_exe};
use poolscope::config::{Mode, RunConfig};
use poolscope::coordinator::{RunControl, RunOptions, run_blocking_tasks};
use poolscope::dashboard::observer::Figures;
use poolscope::dashboard::{Input, PoolRuntime, Session, run_main_loop};
use poolscope::event::PoolEvent;
use poolscope::model::Model;
use poolscope::workload::Workload;

/// Runs the benchmark `args.repeat` times, printing a JSON line after each run.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.observer {
        return observer(args);
    }
    if let Some(path) = &args.replay {
        return replay(path, args.model || args.dashboard, args.dashboard);
    }
    let config = RunConfig {
        mode: args.mode.unwrap_or(Mode::Thread),
        workers: args.workers.unwrap_or(3),
        tasks: args.tasks.unwrap_or(20_000),
        workload: args.workload.unwrap_or(Workload::Noop),
        task_ms: args.task_ms.unwrap_or(0),
        ..RunConfig::default()
    };
    config.validate()?;
    let exe = worker_exe()?;
    let rt = runtime()?;
    let mut out = std::io::stdout().lock();
    let mut lines = Vec::new();
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
                Mode::Thread => poolscope::baseline::threads(config.workers, config.tasks),
                Mode::Process => poolscope::baseline::processes(&exe, config.workers, config.tasks)
                    .context("the raw process floor failed")?,
            };
            anyhow::ensure!(done == config.tasks, "the floor lost tasks: {done}");
            line["floor_wall_s"] = json!(round(floor.as_secs_f64(), 4));
            line["floor_tasks_per_s"] = json!(round(tasks / floor.as_secs_f64(), 0));
            line["vs_floor"] = json!(round(secs / floor.as_secs_f64(), 2));
        }
        // A reader that left (`| head -1`) ends the benchmark quietly.
        writeln!(out, "{line}").context("cannot write to stdout")?;
        lines.push(line);
    }
    let summary = Summary::of(&config, &lines);
    // On stderr, so the JSON lines on stdout stay one object per line.
    eprint!("{}", summary.text());
    if let Some(path) = &args.export_json {
        let doc = json!({ "runs": lines, "summary": summary.json() });
        poolscope::output::write_file(path, format!("{doc:#}\n").as_bytes())
            .context("--export-json")?;
    }
    if let Some(path) = &args.export_markdown {
        poolscope::output::write_file(path, summary.markdown().as_bytes())
            .context("--export-markdown")?;
    }
    Ok(())
}

/// Median, least and most of a figure over the repeats.
#[derive(Clone, Copy, Debug)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The repeats of one benchmark, summed up for people: the wall time's spread, the rate,
/// and how far above the raw floor poolscope's pool is.
struct Summary {
    title: String,
    runs: usize,
    wall: Option<Spread>,
    rate: Option<Spread>,
    per_task_us: Option<Spread>,
    floor_wall: Option<Spread>,
}

impl Summary {
    fn of(config: &RunConfig, lines: &[Value]) -> Summary {
        let field = |name: &str| Spread::of(lines.iter().filter_map(|l| l[name].as_f64()));
        Summary {
            title: format!(
                "{} pool, {}, {} × {}",
                config.mode.name(),
                poolscope::units::plural(u64::from(config.workers), "worker"),
                config.tasks,
                config.workload.call_label(0).replace("(0)", "(n)")
            ),
            runs: lines.len(),
            wall: field("wall_s"),
            rate: field("tasks_per_s"),
            per_task_us: field("per_task_us"),
            floor_wall: field("floor_wall_s"),
        }
    }

    fn vs_floor(&self) -> Option<f64> {
        let (w, f) = (self.wall?, self.floor_wall?);
        (f.median > 0.0).then(|| w.median / f.median)
    }

    fn text(&self) -> String {
        let mut t = format!(
            "{} ({}):\n",
            self.title,
            poolscope::units::plural(self.runs as u64, "run")
        );
        if let Some(w) = self.wall {
            let _ = writeln!(
                t,
                "  wall      {:>10.4} s median   ({:.4} – {:.4} s)",
                w.median, w.min, w.max
            );
        }
        if let Some(r) = self.rate {
            let _ = writeln!(
                t,
                "  tasks/s   {:>10.0}   median   ({:.0} – {:.0})",
                r.median, r.min, r.max
            );
        }
        if let Some(p) = self.per_task_us {
            let _ = writeln!(t, "  per task  {:>10.3} µs median", p.median);
        }
        if let (Some(f), Some(x)) = (self.floor_wall, self.vs_floor()) {
            let _ = writeln!(
                t,
                "  floor     {:>10.4} s median   → the pool takes {x:.2}× the raw floor",
                f.median
            );
        }
        t
    }

    fn json(&self) -> Value {
        let spread = |s: Option<Spread>| {
            s.map(|s| json!({ "median": s.median, "min": s.min, "max": s.max }))
        };
        json!({
            "benchmark": self.title,
            "runs": self.runs,
            "wall_s": spread(self.wall),
            "tasks_per_s": spread(self.rate),
            "per_task_us": spread(self.per_task_us),
            "floor_wall_s": spread(self.floor_wall),
            "vs_floor": self.vs_floor().map(|x| round(x, 2)),
        })
    }

    fn markdown(&self) -> String {
        let cell = |s: Option<Spread>, digits: usize| {
            s.map_or_else(|| "–".to_string(), |s| format!("{:.digits$}", s.median))
        };
        let range = |s: Option<Spread>, digits: usize| {
            s.map_or_else(
                || "–".to_string(),
                |s| format!("{:.digits$} – {:.digits$}", s.min, s.max),
            )
        };
        format!(
            "| Benchmark | Runs | Wall median [s] | Min – max [s] | Tasks/s | × floor |\n\
             |:---|---:|---:|---:|---:|---:|\n\
             | {} | {} | {} | {} | {} | {} |\n",
            self.title,
            self.runs,
            cell(self.wall, 4),
            range(self.wall, 4),
            cell(self.rate, 0),
            self.vs_floor()
                .map_or_else(|| "–".into(), |x| format!("{x:.2}")),
        )
    }
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
                    for ev in &batch {
                        m.apply(ev);
                    }
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

/// `--observer`: pairs of runs, watched then headless, and a summary of their medians.
fn observer(args: &BenchArgs) -> anyhow::Result<()> {
    let config = RunConfig {
        mode: args.mode.unwrap_or(Mode::Process),
        workers: args.workers.unwrap_or(3),
        tasks: args.tasks.unwrap_or(120),
        workload: args.workload.unwrap_or(Workload::Mixed),
        task_ms: args.task_ms.unwrap_or(50),
        ..RunConfig::default()
    };
    config.validate()?;
    let exe = worker_exe()?;
    let mut out = std::io::stdout().lock();
    let (mut watched, mut headless) = (Vec::new(), Vec::new());
    for _ in 0..args.repeat {
        let w = watched_run(&config, &exe)?;
        writeln!(out, "{}", figures_line("watched", &config, &w))
            .context("cannot write to stdout")?;
        let h = headless_run(&config, &exe)?;
        writeln!(out, "{}", figures_line("headless", &config, &h))
            .context("cannot write to stdout")?;
        watched.push(w);
        headless.push(h);
    }
    writeln!(out, "{}", summary(&watched, &headless)).context("cannot write to stdout")?;
    Ok(())
}

/// One run under the real dashboard loop, drawing into an off-screen 120×40 terminal.
fn watched_run(config: &RunConfig, exe: &std::path::Path) -> anyhow::Result<Figures> {
    let pool = PoolRuntime::start().context("cannot start the pool's runtime")?;
    let ui = local_runtime()?;
    let seen = Arc::new(Mutex::new(Vec::<PoolEvent>::new()));
    let sink = Arc::clone(&seen);
    let mut session = Session::new(config.clone(), exe.to_path_buf(), pool.handle().clone());
    session.sample = Some(Duration::from_millis(500));
    session.quit_when_done = true;
    session.tap = Some(Box::new(move |ev| {
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ev.clone());
    }));
    let mut terminal =
        Terminal::new(TestBackend::new(120, 40)).context("cannot make an off-screen terminal")?;
    let inputs = futures_util::stream::pending::<Input>();
    ui.block_on(run_main_loop(&mut terminal, inputs, session))
        .context("the dashboard loop failed")?;
    let events = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Figures::of(&events))
}

/// The same run headless, as `snapshot` and `log` run it.
fn headless_run(config: &RunConfig, exe: &std::path::Path) -> anyhow::Result<Figures> {
    let rt = runtime()?;
    let opts = RunOptions {
        collect_results: false,
        ..RunOptions::new(1, exe.to_path_buf())
    };
    let events = rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(16);
        let collect = tokio::spawn(async move {
            let mut events = Vec::new();
            while let Some(batch) = rx.recv().await {
                events.extend(batch);
            }
            events
        });
        run_blocking_tasks(config, &opts, &RunControl::new(), tx)
            .await
            .context("run failed")?;
        collect.await.context("event collector")
    })?;
    rt.shutdown_background();
    Ok(Figures::of(&events))
}

fn figures_line(observer: &str, config: &RunConfig, f: &Figures) -> Value {
    json!({
        "observer": observer,
        "mode": config.mode.name(),
        "workers": config.workers,
        "tasks": f.tasks,
        "workload": format!("{:?}", config.workload).to_lowercase(),
        "task_ms": config.task_ms,
        "busy_pct": round(f.busy_pct, 2),
        "handoff_mean_ms": round(ms(f.handoff_mean), 3),
        "handoff_p99_ms": round(ms(f.handoff_p99), 3),
        "handoffs": f.handoffs,
        "span_s": round(f.span.as_secs_f64(), 3),
    })
}

/// Medians of each side and how the watched side compares (the targets: busy within 2
/// points, hand-off within 1.5×).
fn summary(watched: &[Figures], headless: &[Figures]) -> Value {
    let med = |runs: &[Figures], f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let busy = |f: &Figures| f.busy_pct;
    let mean = |f: &Figures| ms(f.handoff_mean);
    let p99 = |f: &Figures| ms(f.handoff_p99);
    let ratio = |a: f64, b: f64| if b > 0.0 { round(a / b, 2) } else { 0.0 };
    json!({
        "summary": "observer",
        "runs": watched.len(),
        "watched_busy_pct": round(med(watched, busy), 2),
        "headless_busy_pct": round(med(headless, busy), 2),
        "busy_gap_points": round(med(headless, busy) - med(watched, busy), 2),
        "watched_handoff_mean_ms": round(med(watched, mean), 3),
        "headless_handoff_mean_ms": round(med(headless, mean), 3),
        "handoff_mean_ratio": ratio(med(watched, mean), med(headless, mean)),
        "watched_handoff_p99_ms": round(med(watched, p99), 3),
        "headless_handoff_p99_ms": round(med(headless, p99), 3),
        "handoff_p99_ratio": ratio(med(watched, p99), med(headless, p99)),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The process's peak resident memory so far, in KiB (-1 if it cannot be read).
/// `bench --replay FILE`: one JSON line of the replay's events, time, rate and peak RSS,
/// and the time to merely read the file (the floor any replay stands on). With `model`,
/// into the dashboard's model instead of jsonl, keeping every span when `whole`.
fn replay(path: &std::path::Path, model: bool, whole: bool) -> anyhow::Result<()> {
    use poolscope::task_log::{RecordFormat, TaskRecords};
    let read = Instant::now();
    let mut file = std::io::BufReader::with_capacity(
        64 * 1024,
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let bytes = std::io::copy(&mut file, &mut std::io::sink())
        .with_context(|| format!("cannot read {}", path.display()))?;
    let read_s = read.elapsed().as_secs_f64();
    drop(file);
    let args = crate::cmd::source::SourceArgs {
        replay: Some(path.to_path_buf()),
        ..Default::default()
    };
    let cpu = poolscope::sys::thread_cpu_ns();
    let wall = Instant::now();
    let mut the_model = Model::new();
    if whole {
        the_model.keep_every_span();
    }
    let mut records = TaskRecords::new(RecordFormat::Jsonl);
    let mut text = String::new();
    let (mut lines, mut out_bytes) = (0u64, 0u64);
    let done = crate::cmd::source::replay_each(path, &args, &mut |ev| {
        if model {
            the_model.apply(ev);
        } else {
            records.apply(ev, &mut text);
            lines += text.lines().count() as u64;
            out_bytes += text.len() as u64;
            text.clear();
        }
        Ok(())
    })?;
    let secs = wall.elapsed().as_secs_f64();
    let cpu_s = poolscope::sys::thread_cpu_since(cpu).map(|ns| ns as f64 / 1e9);
    let line = json!({
        "replay": path.display().to_string(),
        "consumer": match (model, whole) {
            (_, true) => "dashboard",
            (true, false) => "model",
            (false, false) => "jsonl",
        },
        "spans_kept": the_model.run.as_ref().and_then(|r| r.archive.as_ref()).map(|a| a.len()),
        "bytes": bytes,
        "events": done.records,
        "pool_events": done.events,
        "records_out": (!model).then_some(lines),
        "bytes_out": (!model).then_some(out_bytes),
        "wall_s": round(secs, 3),
        "cpu_s": cpu_s.map(|c| round(c, 3)),
        "events_per_s": round(done.records as f64 / secs, 0),
        "events_per_cpu_s": cpu_s.map(|c| round(done.records as f64 / c, 0)),
        "read_s": round(read_s, 3),
        "peak_rss_kb": peak_rss_kb(),
    });
    println!("{line}");
    Ok(())
}

fn peak_rss_kb() -> i64 {
    poolscope::sys::peak_rss_kib().unwrap_or(-1)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
