//! The monitor's own cost: one sample of 64 worker processes (CPU and memory each); the
//! kernel sampler's pass over a process of 64 threads; and the model's memory after an
//! hour of kernel samples of 64 lanes at the default 50 Hz (printed, from a counting
//! allocator).

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::process::{Child, Command};

use criterion::{Criterion, criterion_group, criterion_main};
use poolscope::event::WorkerId;
use poolscope::monitor::{Sampler, Target};

fn sample_64_processes(c: &mut Criterion) {
    let mut children: Vec<Child> = (0..64)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("spawn sleep")
        })
        .collect();
    let targets: Vec<(WorkerId, Target)> = children
        .iter()
        .enumerate()
        .map(|(i, c)| (WorkerId(i as u32), Target::Process(c.id())))
        .collect();
    let mut sampler = Sampler::new().expect("sysinfo");
    c.bench_function("monitor sample, 64 worker processes", |b| {
        b.iter(|| black_box(sampler.sample(black_box(&targets))));
    });
    let threads: Vec<(WorkerId, Target)> = (0..64)
        .map(|i| (WorkerId(i), Target::Thread(poolscope::sys::gettid())))
        .collect();
    c.bench_function("monitor sample, 64 worker threads", |b| {
        b.iter(|| black_box(sampler.sample(black_box(&threads))));
    });
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Counts the bytes allocated and not yet freed, for the memory figure.
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same layout, handed on.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A process with 64 threads that sleep, killed when the bench ends.
fn sixty_four_threads() -> Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import threading,time,sys\n\
             [threading.Thread(target=time.sleep,args=(600,),daemon=True).start() for _ in range(63)]\n\
             print(1,flush=True)\ntime.sleep(600)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    child
}

fn kernel_pass_64_threads(c: &mut Criterion) {
    use poolscope::source::kernel::{Changes, Tree};
    let mut child = sixty_four_threads();
    let mut tree = Tree::attach(child.id()).unwrap();
    let mut changes = Changes::default();
    tree.discover(true, &mut changes);
    assert_eq!(tree.lanes().count(), 64);
    c.bench_function("kernel sample, 64 threads (every 20 ms)", |b| {
        b.iter(|| {
            let mut changes = Changes::default();
            tree.read(&mut changes);
            black_box(changes);
        });
    });
    c.bench_function("kernel discovery, 64 threads (every 100 ms)", |b| {
        b.iter(|| {
            let mut changes = Changes::default();
            tree.discover(false, &mut changes);
            black_box(changes);
        });
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// The model's heap after `seconds` of 50 Hz samples of 64 lanes.
fn model_bytes_after(seconds: u64) -> usize {
    use poolscope::event::{EventKind, ExternalWorker, PoolEvent, WorkerLabel};
    use poolscope::sample::{KERNEL_WORKER_BASE, KernelReading, KernelSample};
    use std::time::Duration;
    let before = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    let mut model = poolscope::model::Model::new();
    let config = poolscope::source::adapt::external_config(None, 0, false);
    let source = poolscope::event::RunSource::Program {
        command: "bench".into(),
    };
    model.apply(&poolscope::source::adapt::run_started(
        1, config, 1, 0, source,
    ));
    let ev = |at: Duration, kind| PoolEvent { run: 1, at, kind };
    for i in 0..64u32 {
        let label = WorkerLabel::External(Box::new(ExternalWorker {
            host: None,
            pid: Some(1),
            tid: Some(i64::from(i) + 2),
            name: format!("thread-{i}"),
        }));
        let worker = WorkerId(KERNEL_WORKER_BASE + i);
        model.apply(&ev(
            Duration::ZERO,
            EventKind::WorkerSpawned { worker, label },
        ));
    }
    let mut lanes = Vec::with_capacity(64);
    for n in 0..seconds * 50 {
        lanes.clear();
        lanes.extend((0..64u32).map(|i| KernelReading {
            worker: WorkerId(KERNEL_WORKER_BASE + i),
            on_cpu_ns: n * 10_000_000 * u64::from(i % 2),
            wait_ns: n * 1_000_000,
            born_after: None,
            state: Some(b'R'),
        }));
        let sample = KernelSample {
            lanes: lanes.clone(),
            untracked: 0,
        };
        model.apply(&ev(
            Duration::from_millis(20 * n),
            EventKind::KernelSample(sample),
        ));
    }
    let after = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    black_box(&model);
    after.saturating_sub(before)
}

fn model_memory_over_an_hour(c: &mut Criterion) {
    let minute = model_bytes_after(60);
    let hour = model_bytes_after(3600);
    eprintln!(
        "{{\"bench\":\"kernel model memory\",\"lanes\":64,\"hz\":50,\"after_1min_bytes\":{minute},\"after_1h_bytes\":{hour}}}"
    );
    c.bench_function("model: 1 s of kernel samples, 64 lanes (50 passes)", |b| {
        b.iter(|| black_box(model_bytes_after(1)));
    });
}

criterion_group!(
    benches,
    sample_64_processes,
    kernel_pass_64_threads,
    model_memory_over_an_hour
);
criterion_main!(benches);
