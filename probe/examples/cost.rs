//! What the probe costs per task: 200 000 empty tasks on one thread, timed.
//!
//! ```sh
//! cargo build --release --example cost --manifest-path probe/Cargo.toml
//! target/release/examples/cost                            # probe off: one check per task
//! POOLSCOPE_EVENTS=/dev/null target/release/examples/cost # probe on, a reader that keeps up
//! poolscope log --format jsonl -- target/release/examples/cost >/dev/null
//! ```

fn main() {
    let n = 200_000u64;
    let t0 = std::time::Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        sum = sum.wrapping_add(poolscope_probe::task("empty", || std::hint::black_box(i)));
    }
    let per_task_ns = t0.elapsed().as_nanos() / u128::from(n);
    poolscope_probe::flush();
    eprintln!(
        "{per_task_ns} ns per task (probe {}), {} lines dropped (sum {sum})",
        if poolscope_probe::enabled() {
            "on"
        } else {
            "off"
        },
        poolscope_probe::dropped()
    );
}
