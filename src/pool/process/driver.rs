//! Drives one worker child: sends its settings, feeds it tasks, reads its reports, watches
//! its deadline and kill requests, and reaps it, turning whatever happened into events.
//!
//! The I/O lives here; every decision is the [`Session`]'s. One method per thing that can
//! happen (bytes read, work received, deadline, kill request), each setting `stop` when the
//! child's time is up.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::session::{Breach, Limits, Session};
use super::{Shared, SlotEnd, Spawned, emit, forward_stderr, note, worker_settings};
use crate::config::RunConfig;
use crate::event::{EventBatch, EventKind, WorkerExit, WorkerLabel};
use crate::pool::Task;
use crate::pool::wire::{self, FrameReader, FromWorker, ToWorker};
use crate::sys::{mono_ns, signal_process};

/// How long a child may take to exit after its stdin closes before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long a child asked to stop with SIGTERM gets before SIGKILL.
const ABORT_GRACE: Duration = Duration::from_millis(500);
/// How long a child may take to answer its settings (exec and start-up on a loaded machine),
/// unless the task timeout is shorter (see [`ready_within`]).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// The least a child is given to answer its settings, however short the task timeout.
const READY_AT_LEAST: Duration = Duration::from_secs(1);
/// Reads tried at a deadline before judging it, so reports already written count first.
const DEADLINE_READS: usize = 16;
/// How long a read the kernel says is ready may take to arrive through tokio's reactor.
const READY_READ_WAIT: Duration = Duration::from_millis(200);

/// Why the driver stopped feeding its child.
#[derive(Debug)]
enum Stop {
    /// Its work is done and it closed its output.
    Gone,
    /// It broke the protocol.
    Broken(String),
    /// Its task ran past the timeout.
    Overdue,
    /// Someone asked for it to be killed.
    Killed,
    /// The pool is shutting down.
    Aborted,
    /// Nobody listens to events any more.
    ConsumerGone,
}

/// One child being driven.
struct Driver<'a> {
    shared: &'a Shared,
    session: Session,
    child: Child,
    pid: u32,
    /// The writing side of the child's channel (its stdin); dropped, the child sees EOF.
    stdin: Option<OwnedWriteHalf>,
    frames: FrameReader<OwnedReadHalf>,
    /// The child's report pipe, owned by `frames`, for asking the kernel what is waiting.
    reports_fd: std::os::fd::RawFd,
    kills: watch::Receiver<u64>,
    kills_open: bool,
    scratch: Vec<u8>,
    stop: Option<Stop>,
    /// The start-up slot this child holds until it is ready.
    starting: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Feeds one child until its work is over or it dies, then reaps it.
pub(super) async fn drive(worker: Spawned, shared: &Shared) -> SlotEnd {
    let Spawned {
        id,
        mut child,
        channel,
        pid,
        spawn_ns,
        starting,
    } = worker;
    let label = WorkerLabel::Process { pid };
    let spawned = EventKind::WorkerSpawned { worker: id, label };
    // Subscribed before the lane exists, so no request for it can slip by; marked changed so
    // the first turn looks.
    let mut kills = shared.spec.faults.kill_requests();
    kills.mark_changed();
    let Some(stderr) = child.stderr.take() else {
        let _ = child.start_kill();
        return SlotEnd::Done;
    };
    let reports_fd = std::os::fd::AsRawFd::as_raw_fd(&channel);
    let (stdout, stdin) = channel.into_split();
    if !emit(shared, spawn_ns, spawned).await {
        let _ = child.start_kill();
        return SlotEnd::Done;
    }
    let stderr_task = tokio::spawn(forward_stderr(
        stderr,
        id,
        shared.spec.clone(),
        shared.events.clone(),
    ));
    let spec = &shared.spec;
    let settings = worker_settings(spec);
    let limits = Limits {
        run_start_ns: spec.run_start_ns,
        timeout_ns: spec.task_timeout.map(duration_ns),
        ready_within_ns: duration_ns(ready_within(spec.task_timeout)),
        depth: spec.pipeline.max(1),
        announce_starts: settings.announces_starts(),
    };
    let mut driver = Driver {
        shared,
        session: Session::new(id, limits, spawn_ns),
        child,
        pid,
        stdin: Some(stdin),
        frames: FrameReader::new(stdout),
        reports_fd,
        kills,
        kills_open: true,
        scratch: Vec::new(),
        stop: None,
        starting,
    };
    driver.send_settings(settings).await;
    let stop = driver.run().await;
    driver.end(stop, stderr_task).await
}

impl Driver<'_> {
    /// Waits for whatever happens next until the child's time is up.
    async fn run(&mut self) -> Stop {
        loop {
            if let Some(stop) = self.stop.take() {
                return stop;
            }
            if self.session.is_finished() {
                // EOF on its stdin is the child's signal to exit cleanly.
                self.stdin = None;
            }
            let room = if self.stdin.is_some() {
                self.session.room()
            } else {
                0
            };
            let deadline = self.session.deadline_ns().map(instant_of);
            // Biased: a report already written is read before a deadline is judged, so a
            // coordinator that was descheduled does not time out a task that ended in time.
            tokio::select! {
                biased;
                () = self.shared.kill.cancelled() => self.stop = Some(Stop::Aborted),
                changed = self.kills.changed(), if self.kills_open => self.on_kill_request(changed.is_ok()),
                filled = self.frames.fill() => self.on_read(filled).await,
                () = sleep_until(deadline), if deadline.is_some() => self.on_deadline().await,
                work = super::next_work(self.shared, room), if room > 0 => self.on_work(work).await,
            }
        }
    }

    /// A kill request came for some worker; serve it if it is ours.
    fn on_kill_request(&mut self, open: bool) {
        if !open {
            // The faults were dropped: no more requests can come.
            self.kills_open = false;
            return;
        }
        if self.shared.spec.faults.take_kill(self.session.worker()) {
            // Our own handle on a child we have not reaped: the PID cannot have been reused.
            let _ = self.child.start_kill();
            self.stop = Some(Stop::Killed);
        }
    }

    /// Bytes came (or the pipe ended): every complete report, checked, goes on as one batch.
    async fn on_read(&mut self, filled: Result<bool, crate::error::WireError>) {
        match filled {
            Ok(true) => {}
            Ok(false) => self.stop = Some(Stop::Gone),
            Err(e) => self.stop = Some(Stop::Broken(format!("protocol error: {e}"))),
        }
        let mut batch: EventBatch = Vec::new();
        let now = mono_ns();
        loop {
            let report = match self.frames.next_frame::<FromWorker>() {
                Ok(Some(msg)) => self.session.on_report(msg, now),
                Ok(None) => break,
                Err(e) => Err(format!("protocol error: {e}")),
            };
            match report {
                Ok((at_ns, kind)) => {
                    if matches!(kind, EventKind::WorkerReady { .. }) {
                        self.starting = None;
                    }
                    batch.push(self.shared.spec.event(at_ns, kind));
                }
                Err(why) => {
                    self.stop = Some(Stop::Broken(why));
                    break;
                }
            }
        }
        if !batch.is_empty() && self.shared.events.send(batch).await.is_err() {
            self.stop = Some(Stop::ConsumerGone);
        }
    }

    /// The deadline passed: read everything the child already wrote, then judge by its
    /// own stamps. tokio reads a pipe only once its reactor has seen it readable, and after
    /// poolscope was stalled (SIGSTOP, a loaded machine) the timer can fire first: so the
    /// kernel is asked whether reports wait, and they are read before anything is judged.
    async fn on_deadline(&mut self) {
        for _ in 0..DEADLINE_READS {
            let filled = match self.frames.fill().now_or_never() {
                Some(filled) => filled,
                None if readable_now(self.reports_fd) => {
                    match tokio::time::timeout(READY_READ_WAIT, self.frames.fill()).await {
                        Ok(filled) => filled,
                        Err(_) => break,
                    }
                }
                None => break,
            };
            self.on_read(filled).await;
            if self.stop.is_some() {
                return;
            }
        }
        match self.session.breach(mono_ns()) {
            None => {}
            Some(Breach::Broken(why)) => self.stop = Some(Stop::Broken(why)),
            Some(Breach::Overdue(task)) => {
                let worker = self.session.worker();
                emit(
                    self.shared,
                    mono_ns(),
                    EventKind::TaskOverdue { task, worker },
                )
                .await;
                self.stop = Some(Stop::Overdue);
            }
        }
    }

    /// Tasks to hand out, or `None` once the queue is done.
    async fn on_work(&mut self, work: Option<Vec<Task>>) {
        let Some(mut tasks) = work else {
            self.session.queue_done();
            return;
        };
        self.scratch.clear();
        for t in &mut tasks {
            *t = self.shared.spec.faults.arm(*t);
            let msg = ToWorker::Task {
                id: t.id,
                n: t.n,
                panic: t.panic,
            };
            if let Err(e) = wire::encode(&msg, &mut self.scratch) {
                self.stop = Some(Stop::Broken(format!("cannot encode a task: {e}")));
                return;
            }
        }
        self.session.handed_out(&tasks, mono_ns());
        self.write_scratch().await;
    }

    /// Sends the settings, the protocol's first frame.
    async fn send_settings(&mut self, settings: RunConfig) {
        self.scratch.clear();
        if let Err(e) = wire::encode(&ToWorker::Settings(settings), &mut self.scratch) {
            self.stop = Some(Stop::Broken(format!("cannot encode the settings: {e}")));
            return;
        }
        self.write_scratch().await;
    }

    /// Writes the encoded frames to the child. At most `pipeline` small tasks are in flight,
    /// far below a pipe's capacity, so this never waits on a child that stopped reading.
    async fn write_scratch(&mut self) {
        if let Some(pipe) = self.stdin.as_mut() {
            // A write error means the child is gone: reading its output says how.
            if pipe.write_all(&self.scratch).await.is_err() {
                self.stdin = None;
            }
        }
    }

    /// Ends the child as `stop` says, settles its tasks and reports its exit.
    async fn end(mut self, stop: Stop, stderr_task: JoinHandle<()>) -> SlotEnd {
        self.stdin = None;
        let status = match &stop {
            Stop::Gone => reap(&mut self.child, EXIT_GRACE).await,
            Stop::Aborted => {
                // Graceful first: SIGTERM ends the worker as any process is asked to end.
                // The child is ours and not reaped yet, so its PID is still its own.
                let _ = signal_process(self.pid, libc::SIGTERM);
                reap(&mut self.child, ABORT_GRACE).await
            }
            Stop::Broken(_) | Stop::Overdue | Stop::Killed | Stop::ConsumerGone => {
                let _ = self.child.start_kill();
                reap(&mut self.child, EXIT_GRACE).await
            }
        };
        let exit = match &stop {
            Stop::Broken(why) => WorkerExit::Broken(why.clone()),
            _ => exit_of(status),
        };
        let (shared, pid, worker) = (self.shared, self.pid, self.session.worker());
        if matches!(stop, Stop::Aborted | Stop::ConsumerGone) {
            // The coordinator settles every task still open when it aborts: one end each.
            stderr_done(shared, worker, stderr_task).await;
            emit(shared, mono_ns(), EventKind::WorkerExited { worker, exit }).await;
            return SlotEnd::Done;
        }
        if !exit.is_clean() {
            let asked = if matches!(stop, Stop::Killed) {
                " (on request)"
            } else {
                ""
            };
            note(shared, worker, format!("worker PID {pid} {exit}{asked}")).await;
        }
        let expected = self.session.is_finished() && exit.is_clean();
        let progressed = self.session.progressed() || !matches!(stop, Stop::Gone | Stop::Broken(_));
        settle(
            self.session,
            shared,
            &stop,
            &format!("worker PID {pid} {exit}"),
        )
        .await;
        stderr_done(shared, worker, stderr_task).await;
        emit(shared, mono_ns(), EventKind::WorkerExited { worker, exit }).await;
        if expected {
            SlotEnd::Done
        } else {
            // A timeout or a kill is not the worker's fault: it does not count against the slot.
            SlotEnd::Died { progressed }
        }
    }
}

/// Fails the task a dead child was (or may have been) running, with `why` it died, and
/// puts back the ones it never began.
async fn settle(session: Session, shared: &Shared, stop: &Stop, why: &str) {
    let worker = session.worker();
    let error = match (stop, shared.spec.task_timeout) {
        (Stop::Overdue, Some(limit)) => format!("timed out after {} ms; {why}", limit.as_millis()),
        _ => why.to_string(),
    };
    let culprit = matches!(stop, Stop::Overdue | Stop::Broken(_));
    let orphans = session.orphans(culprit);
    for task in orphans.retry {
        // Unbounded and never closed while the pool lives: this cannot wait or fail.
        let _ = shared.retry.0.try_send(task);
    }
    if let Some(task) = orphans.failed {
        let worker = Some(worker);
        emit(
            shared,
            mono_ns(),
            EventKind::TaskFailed {
                task,
                worker,
                error,
                cpu: None,
            },
        )
        .await;
    }
}

/// Waits for the stderr forwarder: stderr closes when the child is gone, but a stray holder
/// of the pipe must not stall the slot.
async fn stderr_done(shared: &Shared, worker: crate::event::WorkerId, task: JoinHandle<()>) {
    if tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .is_err()
    {
        note(shared, worker, "stderr still open after exit".into()).await;
    }
}

/// How long a child may take to answer its settings: [`READY_WITHIN`], or the task timeout
/// when that is shorter (but at least [`READY_AT_LEAST`]), so a silent worker costs no more
/// than a task that never ends would.
fn ready_within(task_timeout: Option<Duration>) -> Duration {
    task_timeout.map_or(READY_WITHIN, |t| t.clamp(READY_AT_LEAST, READY_WITHIN))
}

/// Whether the kernel holds bytes (or the end) to read on `fd`, without waiting.
fn readable_now(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes one valid pollfd; a zero timeout never blocks. The fd
    // is the open report pipe owned by the driver's frame reader.
    #[allow(unsafe_code)]
    let n = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The tokio instant of a monotonic-clock time.
fn instant_of(at_ns: u64) -> tokio::time::Instant {
    let now = mono_ns();
    let now_i = tokio::time::Instant::now();
    match at_ns.checked_sub(now) {
        Some(ahead) => {
            now_i + Duration::from_nanos(ahead.min(duration_ns(Duration::from_secs(86_400))))
        }
        None => now_i,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits `grace` for the child to exit, then kills it; `None` if it could not be reaped.
async fn reap(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Ok(status)) = tokio::time::timeout(grace, child.wait()).await {
        return Some(status);
    }
    let _ = child.start_kill();
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => None,
    }
}

/// Describes an exit status the way the lanes show it.
fn exit_of(status: Option<ExitStatus>) -> WorkerExit {
    match status {
        Some(s) if s.success() => WorkerExit::Clean,
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => WorkerExit::Code(code),
            (None, Some(sig)) => WorkerExit::Signal(sig),
            (None, None) => WorkerExit::Broken(format!("unknown exit status {s}")),
        },
        None => WorkerExit::Broken("could not be reaped".into()),
    }
}
