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

/// A started child: its process, poolscope's end of its channel, and when its spawn began.
pub(super) type Started = (Child, tokio::net::UnixStream, u64);

/// Starts one `poolscope worker` child on a spawner thread; returns it with the moment its
/// spawn began. Gives up (and lets `kill_on_drop` end a late child) if the pool shuts down.
///
/// The child's stdin and stdout are the two sides of one socket, so a worker costs
/// poolscope one descriptor for both directions (with its stderr pipe and tokio's pidfd,
/// three), not a pipe each way: 256 workers fit under a hard limit of 1024. The child reads
/// and writes fds 0 and 1 as ever; closing poolscope's write side is its end of input.
pub(super) async fn spawn_worker(shared: &Shared) -> io::Result<Started> {
    let exe = shared.spec.worker_exe.clone();
    let handle = Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // Registers the child's pipes with the runtime that will drive them.
        let _runtime = handle.enter();
        let _ = tx.send(start(&exe));
    });
    spawners()?
        .send(job)
        .map_err(|_| io::Error::other("the spawner threads are gone"))?;
    tokio::select! {
        biased;
        got = rx => got.map_err(|_| io::Error::other("a spawner thread failed"))?,
        () = shared.kill.cancelled() => Err(io::Error::other("pool shut down")),
    }
}

/// Spawns the child with one socket as its stdin and stdout (on a spawner thread, inside
/// the runtime that will drive its channel).
fn start(exe: &std::path::Path) -> io::Result<Started> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let theirs_out = theirs.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches poolscope, which ends its
        // workers itself, and not the workers behind its back.
        .process_group(0)
        .kill_on_drop(true);
    let spawn_ns = mono_ns();
    // The child's ends are closed here as `cmd` is dropped: only the child holds them.
    let child = cmd.spawn()?;
    drop(cmd);
    ours.set_nonblocking(true)?;
    let ours = tokio::net::UnixStream::from_std(ours)?;
    Ok((child, ours, spawn_ns))
}
