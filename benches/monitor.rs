//! The monitor's own cost: one sample of 64 worker processes (CPU and memory each).

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

criterion_group!(benches, sample_64_processes);
criterion_main!(benches);
