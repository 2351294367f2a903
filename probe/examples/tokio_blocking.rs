//! tokio's blocking pool on poolscope: each `spawn_blocking` task on the thread that ran it.
//!
//! tokio reports its blocking tasks to `tracing` only when built with `--cfg tokio_unstable`
//! (and its `tracing` feature); then [`PoolscopeLayer`] turns them into poolscope tasks:
//!
//! ```sh
//! RUSTFLAGS="--cfg tokio_unstable" cargo build --release --features tracing \
//!     --example tokio_blocking --manifest-path probe/Cargo.toml
//! poolscope -- target/release/examples/tokio_blocking
//! ```
//!
//! An optional argument names a file where each task also writes its own truth.

use poolscope_probe::layer::PoolscopeLayer;
use tracing_subscriber::layer::SubscriberExt;

mod truth;

/// Reads a file in small pieces, then sums them: blocking work, part I/O, part CPU.
fn load(i: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(15 + 5 * (i % 3)));
    (0..200_000u64).fold(i, |a, b| std::hint::black_box(a.wrapping_add(b * b)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !cfg!(tokio_unstable) && poolscope_probe::enabled() {
        eprintln!("tokio_blocking: built without --cfg tokio_unstable, tokio reports no tasks");
    }
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(PoolscopeLayer::new()),
    )?;
    let truth = std::sync::Arc::new(truth::Truth::from_args());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(3)
        .enable_all()
        .build()?;
    let total = runtime.block_on(async {
        let tasks: Vec<_> = (0..9u64)
            .map(|i| {
                let truth = std::sync::Arc::clone(&truth);
                tokio::task::spawn_blocking(move || truth.record(|| load(i)))
            })
            .collect();
        let mut total = 0u64;
        for t in tasks {
            total = total.wrapping_add(t.await?);
        }
        Ok::<u64, tokio::task::JoinError>(total)
    })?;
    // The runtime's blocking threads close their tasks' spans as they finish.
    drop(runtime);
    truth.save()?;
    println!("9 loads, total {total:x}");
    Ok(())
}
