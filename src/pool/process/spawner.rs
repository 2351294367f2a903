//! Where worker children are started: a few long-lived threads of their own.
//!
//! Not the async runtime's thread: a child stopped between fork and exec would stall it, and
//! with it every driver and the signal handling. Not tokio's blocking pool either: the kernel
//! sends a child its parent-death signal when the *thread* that spawned it exits, and
//! blocking-pool threads exit after ten idle seconds, which would kill healthy workers.
//! These threads live as long as poolscope, and several of them start a pool's workers
//! side by side.

use std::io;
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::process::{Child, Command};
use tokio::runtime::Handle;

use super::Shared;
use crate::sys::mono_ns;

/// Spawner threads: enough to start a pool's workers side by side on a small machine.
const SPAWNER_THREADS: usize = 4;
/// The environment variable that tells a worker which process must be its parent.
pub const PARENT_ENV: &str = "POOLSCOPE_PARENT";

type Job = Box<dyn FnOnce() + Send>;

static SPAWNERS: OnceLock<Result<crossbeam_channel::Sender<Job>, String>> = OnceLock::new();

/// The queue of the spawner threads, started on first use.
fn spawners() -> io::Result<&'static crossbeam_channel::Sender<Job>> {
    let queue = SPAWNERS.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..SPAWNER_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("poolscope-spawner-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })
                .map_err(|e| format!("cannot start a spawner thread: {e}"))?;
        }
        Ok(tx)
    });
    queue.as_ref().map_err(|e| io::Error::other(e.clone()))
}

/// Starts one `poolscope worker` child on a spawner thread; returns it with the moment its
/// spawn began. Gives up (and lets `kill_on_drop` end a late child) if the pool shuts down.
pub(super) async fn spawn_worker(shared: &Shared) -> io::Result<(Child, u64)> {
    let exe = shared.spec.worker_exe.clone();
    let handle = Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // Registers the child's pipes with the runtime that will drive them.
        let _runtime = handle.enter();
        let mut cmd = Command::new(&exe);
        cmd.arg("worker")
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches poolscope, which ends its
            // workers itself, and not the workers behind its back.
            .process_group(0)
            .kill_on_drop(true);
        let spawn_ns = mono_ns();
        let _ = tx.send(cmd.spawn().map(|child| (child, spawn_ns)));
    });
    spawners()?
        .send(job)
        .map_err(|_| io::Error::other("the spawner threads are gone"))?;
    tokio::select! {
        got = rx => got.map_err(|_| io::Error::other("a spawner thread failed"))?,
        () = shared.kill.cancelled() => Err(io::Error::other("pool shut down")),
    }
}
