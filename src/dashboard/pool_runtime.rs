//! Where runs live while the dashboard watches them: a runtime on a thread of its own, so
//! drawing and keys never delay a hand-off (watching must not change what is watched).

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long the runtime's tasks get to wind down when it is dropped.
const SHUTDOWN: Duration = Duration::from_millis(200);

/// A single-threaded tokio runtime driven by a dedicated `coordinator` thread. The
/// coordinator and the process drivers wake each other on that one thread, as cheaply as
/// before, while the UI runs elsewhere and only consumes their events.
pub struct PoolRuntime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PoolRuntime {
    /// Builds the runtime and starts its thread.
    pub fn start() -> io::Result<Self> {
        let rt = crate::error::without_panicking(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        })?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("coordinator".into())
            .spawn(move || {
                // Either a stop request or its sender being dropped ends the wait.
                let _ = rt.block_on(stopped);
                // Runs still under way are dropped; their children are killed on drop.
                rt.shutdown_timeout(SHUTDOWN);
            })?;
        Ok(PoolRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to spawn runs.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for PoolRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Bounded by SHUTDOWN: the thread only waits for its runtime to wind down.
            let _ = thread.join();
        }
    }
}
