//! The dashboard's own costs: applying events to the model, and drawing a frame of a large
//! model (64 lanes, 100 000 finished spans), and of a replay kept whole (8 lanes, 600 000
//! spans, all of them drawn when zoomed out).

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poolscope::config::{Mode, RunConfig};
use poolscope::event::{EventKind, PoolEvent, WorkerId, WorkerLabel};
use poolscope::model::Model;
use poolscope::view::{self, ViewState};
use poolscope::workload::Workload;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const LANES: u32 = 64;

/// The events of a run of `tasks` 1 ms tasks spread over `lanes` process workers.
fn run_events(tasks: u64, lanes: u32) -> Vec<PoolEvent> {
    let ev = |at_us: u64, kind| PoolEvent {
        run: 1,
        at: Duration::from_micros(at_us),
        kind,
    };
    let mut events = vec![ev(
        0,
        EventKind::RunStarted {
            config: RunConfig {
                mode: Mode::Process,
                workers: lanes,
                tasks,
                workload: Workload::Blocks,
                task_ms: 1,
                ..RunConfig::default()
            },
            coordinator_pid: 1,
            origin_ns: 0,
            source: Box::default(),
        },
    )];
    for w in 0..lanes {
        events.push(ev(
            0,
            EventKind::WorkerSpawned {
                worker: WorkerId(w),
                label: WorkerLabel::Process { pid: 1000 + w },
            },
        ));
    }
    for chunk in 0..tasks.div_ceil(256) {
        let first = chunk * 256;
        events.push(ev(
            0,
            EventKind::TasksQueued {
                first,
                count: 256.min(tasks - first),
            },
        ));
    }
    for task in 0..tasks {
        let worker = WorkerId((task % u64::from(lanes)) as u32);
        let start = (task / u64::from(lanes)) * 1_010;
        events.push(ev(start, EventKind::TaskStarted { task, worker }));
        events.push(ev(
            start + 1_000,
            EventKind::TaskFinished {
                task,
                worker,
                result: Some(task * task),
                cpu: None,
            },
        ));
    }
    events
}

fn apply(c: &mut Criterion) {
    let events = run_events(100_000, LANES);
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("apply 200k task events", |b| {
        b.iter(|| {
            let mut model = Model::new();
            for ev in &events {
                model.apply(black_box(ev));
            }
            black_box(model)
        });
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    let events = run_events(100_000, LANES);
    let mut model = Model::new();
    for ev in &events {
        model.apply(ev);
    }
    let now = events.last().map(|e| e.at).unwrap_or_default();
    let state = ViewState::default();
    let mut group = c.benchmark_group("view");
    for (w, h) in [(120u16, 40u16), (250, 80)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        group.bench_function(format!("frame {w}x{h}, 64 lanes, 100k spans"), |b| {
            b.iter(|| {
                terminal
                    .draw(|f| view::draw(f, black_box(&model), &state, now))
                    .expect("draw");
            });
        });
    }
    // The task table and the `/` filter rebuild their rows from the model on each frame.
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let table = ViewState {
        table: Some(poolscope::explore::TableState::default()),
        ..ViewState::default()
    };
    let mut filtered = ViewState::default();
    filtered.filter.pattern = "blocks\\(1".into();
    for (name, state) in [("task table", &table), ("/ filter", &filtered)] {
        group.bench_function(format!("frame 120x40 with the {name}, 100k spans"), |b| {
            b.iter(|| {
                terminal
                    .draw(|f| view::draw(f, black_box(&model), state, now))
                    .expect("draw");
            });
        });
    }
    group.finish();
}

/// A replay on the dashboard keeps every span: zoomed out, a frame lays out all of them.
fn render_whole(c: &mut Criterion) {
    let events = run_events(600_000, 8);
    let mut model = Model::new();
    model.keep_every_span();
    for ev in &events {
        model.apply(ev);
    }
    let now = events.last().map(|e| e.at).unwrap_or_default();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let middle = ViewState {
        zoom: 11,
        follow: false,
        anchor: now / 2,
        ..ViewState::default()
    };
    let mut group = c.benchmark_group("view");
    for (name, state) in [
        ("whole run", ViewState::default()),
        ("×2048 in the middle", middle),
    ] {
        group.bench_function(
            format!("frame 120x40 of a replay kept whole, 600k spans, {name}"),
            |b| {
                b.iter(|| {
                    terminal
                        .draw(|f| view::draw(f, black_box(&model), &state, now))
                        .expect("draw");
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, apply, render, render_whole);
criterion_main!(benches);
