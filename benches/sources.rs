//! Replay speed: a 600 000-event Chrome trace (100 000 tasks on 8 threads, each task with four
//! nested steps and an instant event between tasks, written as spans close, inner first).
//! Prints the events/s and the peak memory of one full read, then lets criterion time it.

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use poolscope::event::RunSource;
use poolscope::source::adapt::replay_events;
use poolscope::source::{ReadOptions, read_file};

const TASKS: u64 = 100_000;
const LANES: u64 = 8;

fn make_trace(path: &Path) -> u64 {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"[\n").unwrap();
    out.write_all(br#"{"ph":"M","name":"process_name","pid":1,"tid":1,"args":{"name":"bench"}}"#)
        .unwrap();
    let mut events = 1;
    for i in 0..TASKS {
        let lane = i % LANES;
        let start = (i / LANES) * 1000;
        for step in 0..4u64 {
            writeln!(
                out,
                r#",{{"ph":"X","name":"step{step}","cat":"fn","pid":1,"tid":{lane},"ts":{},"dur":100,"args":{{"i":{i}}}}}"#,
                start + 10 + step * 200
            )
            .unwrap();
        }
        writeln!(
            out,
            r#",{{"ph":"X","name":"task {}","cat":"fn","pid":1,"tid":{lane},"ts":{start},"dur":900}}"#,
            i % 97
        )
        .unwrap();
        writeln!(
            out,
            r#",{{"ph":"i","name":"tick","s":"t","pid":1,"tid":{lane},"ts":{}}}"#,
            start + 905
        )
        .unwrap();
        events += 6;
    }
    out.write_all(b"]\n").unwrap();
    events
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn replay(c: &mut Criterion) {
    let path: PathBuf =
        std::env::temp_dir().join(format!("poolscope-bench-{}.json", std::process::id()));
    let events = make_trace(&path);
    let size = std::fs::metadata(&path).unwrap().len();
    let before = peak_rss_kib();
    let t0 = Instant::now();
    let rec = read_file(&path, &ReadOptions::default()).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "replay: {events} events ({:.1} MiB) -> {} tasks on {} lanes in {secs:.2} s: {:.0} events/s; \
         peak RSS {} KiB before, {} KiB after",
        size as f64 / 1_048_576.0,
        rec.tasks.len(),
        rec.lanes.len(),
        events as f64 / secs,
        before.unwrap_or(0),
        peak_rss_kib().unwrap_or(0)
    );
    // and on through the adapter into the dashboard's model, as `snapshot --replay` does
    let t1 = Instant::now();
    let mut model = poolscope::model::Model::new();
    let mut applied = 0u64;
    for ev in replay_events(&rec, 1, 0, RunSource::default(), 1) {
        model.apply(&ev);
        applied += 1;
    }
    let model_secs = t1.elapsed().as_secs_f64();
    println!(
        "replay into the model: {applied} pool events in {model_secs:.2} s ({:.0} tasks/s); \
         read + model {:.2} s, peak RSS {} KiB",
        rec.tasks.len() as f64 / model_secs,
        secs + model_secs,
        peak_rss_kib().unwrap_or(0)
    );
    drop(model);
    drop(rec);
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.bench_function("chrome_600k_events", |b| {
        b.iter(|| {
            read_file(&path, &ReadOptions::default())
                .unwrap()
                .tasks
                .len()
        });
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, replay);
criterion_main!(benches);
