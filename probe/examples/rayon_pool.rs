//! A rayon pool's tasks on poolscope: one lane per pool thread, each task with its CPU time.
//!
//! ```sh
//! cargo build --release --example rayon_pool --manifest-path probe/Cargo.toml
//! poolscope -- target/release/examples/rayon_pool
//! ```
//!
//! An optional argument names a file where each task also writes its own truth (thread id,
//! start and duration), which poolscope's end-to-end test compares with what it saw.

use rayon::prelude::*;

mod truth;

/// About `ms` milliseconds of arithmetic: CPU-bound work.
fn checksum(seed: u64, ms: u64) -> u64 {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut x = seed;
    while std::time::Instant::now() < end {
        for _ in 0..1_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let truth = truth::Truth::from_args();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .thread_name(|i| format!("rayon-{i}"))
        .build()?;
    let sums: Vec<u64> = pool.install(|| {
        (0..12u64)
            .into_par_iter()
            .map(|i| {
                // The one line that makes a task visible: name it and wrap the work.
                poolscope_probe::task(&format!("checksum({i})"), || {
                    truth.record(|| checksum(i, 20 + 5 * (i % 4)))
                })
            })
            .collect()
    });
    truth.save()?;
    println!(
        "{} checksums, xor {:x}",
        sums.len(),
        sums.iter().fold(0, |a, b| a ^ b)
    );
    Ok(())
}
