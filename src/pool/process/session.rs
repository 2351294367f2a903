//! What the pool knows about one worker child, as a state machine with no I/O and no clock:
//! the driver feeds it what happened (a report read, tasks handed out, the time) and acts on
//! what it answers. Every transition is testable without a process.
//!
//! A child lives through: started (settings sent, no answer yet) → ready (answered its
//! settings; takes tasks) → draining (the queue is done; finishing what it holds) → ended.
//! Everything it reports is checked here, where it enters; a violation is a protocol error.

use std::collections::VecDeque;
use std::time::Duration;

use crate::event::{EventKind, TaskId, WorkerId, since};
use crate::pool::Task;
use crate::pool::wire::{FromWorker, MAX_TEXT_LINE, clean_line};

/// A child stamps its reports before we read them, on the same clock: a stamp later than
/// this past our own reading is a lie.
const FUTURE_SLACK_NS: u64 = 1_000_000_000;
/// Task ids remembered after their end, to tell a repeated report from an invented one.
const RECENT_KEPT: usize = 64;

/// What a session needs to know about the run.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// The run's start on the monotonic clock; nothing happens before it.
    pub(super) run_start_ns: u64,
    /// A task's deadline, counted from when it could first have started.
    pub(super) timeout_ns: Option<u64>,
    /// How long a child may take to answer its settings.
    pub(super) ready_within_ns: u64,
    /// Tasks a child may hold at once.
    pub(super) depth: usize,
    /// Whether children announce a task's start before running it (else the start comes
    /// with the finish, and the oldest task handed out may be running unannounced).
    pub(super) announce_starts: bool,
}

/// What the pool does with a dead child's tasks.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Orphans {
    /// The task it was (or may have been) running: it fails.
    pub(super) failed: Option<TaskId>,
    /// Tasks it held but had not begun: they run elsewhere.
    pub(super) retry: Vec<Task>,
}

/// One child's state as the pool sees it.
#[derive(Debug)]
pub(super) struct Session {
    worker: WorkerId,
    limits: Limits,
    spawn_ns: u64,
    ready: bool,
    queue_done: bool,
    /// Tasks handed to the child and not yet ended, oldest first. A child works through
    /// them in order, so only the oldest can have started.
    held: VecDeque<Task>,
    /// The child's own stamp of the oldest task's start, once it said so.
    front_started_ns: Option<u64>,
    /// When the oldest held task could have begun: its hand-out, or the end of the one
    /// before it. Its deadline counts from here until the child stamps its real start.
    front_since_ns: u64,
    /// The last tasks ended, in a ring (`recent_at` is the next slot to overwrite).
    recent: [Option<TaskId>; RECENT_KEPT],
    recent_at: usize,
    progressed: bool,
}

impl Session {
    /// A child just spawned at `spawn_ns`, its settings on the way.
    pub(super) fn new(worker: WorkerId, limits: Limits, spawn_ns: u64) -> Self {
        Session {
            worker,
            limits,
            spawn_ns,
            ready: false,
            queue_done: false,
            held: VecDeque::new(),
            front_started_ns: None,
            front_since_ns: spawn_ns,
            recent: [None; RECENT_KEPT],
            recent_at: 0,
            progressed: false,
        }
    }

    /// The worker slot this child fills.
    pub(super) fn worker(&self) -> WorkerId {
        self.worker
    }

    /// How many more tasks the child may be given now.
    #[inline]
    pub(super) fn room(&self) -> usize {
        if !self.ready || self.queue_done {
            return 0;
        }
        self.limits.depth.saturating_sub(self.held.len())
    }

    /// The queue has nothing more for this child.
    pub(super) fn queue_done(&mut self) {
        self.queue_done = true;
    }

    /// Its work is over: nothing more will come and it holds nothing.
    pub(super) fn is_finished(&self) -> bool {
        self.queue_done && self.held.is_empty()
    }

    /// Whether it finished at least one task (a slot whose children never do gives up).
    pub(super) fn progressed(&self) -> bool {
        self.progressed
    }

    /// Tasks were written to the child at `now_ns`.
    #[inline]
    pub(super) fn handed_out(&mut self, tasks: &[Task], now_ns: u64) {
        if self.held.is_empty() {
            self.front_since_ns = now_ns;
        }
        self.held.extend(tasks.iter().copied());
    }

    /// When the child is in breach if nothing changes: its settings unanswered, or the
    /// oldest task it holds past the timeout (from the child's own start stamp if it sent
    /// one, else from when the task could have begun).
    pub(super) fn deadline_ns(&self) -> Option<u64> {
        if !self.ready {
            return Some(self.spawn_ns.saturating_add(self.limits.ready_within_ns));
        }
        let limit = self.limits.timeout_ns?;
        self.held.front()?;
        let since = self.front_started_ns.unwrap_or(self.front_since_ns);
        Some(since.saturating_add(limit))
    }

    /// Checked at the deadline (after every report already written was read): the breach,
    /// if there still is one.
    pub(super) fn breach(&self, now_ns: u64) -> Option<Breach> {
        let deadline = self.deadline_ns()?;
        if now_ns < deadline {
            return None;
        }
        if !self.ready {
            let secs = self.limits.ready_within_ns / 1_000_000_000;
            return Some(Breach::Broken(format!(
                "no answer to its settings within {secs} s"
            )));
        }
        self.held.front().map(|f| Breach::Overdue(f.id))
    }

    /// Checks one report and turns it into the event to pass on, stamped at the returned
    /// time; an error is a protocol violation, described in one line.
    #[inline]
    pub(super) fn on_report(
        &mut self,
        msg: FromWorker,
        now_ns: u64,
    ) -> Result<(u64, EventKind), String> {
        let worker = self.worker;
        let (at_ns, kind) = match msg {
            FromWorker::Ready { at_ns } => {
                if self.ready {
                    return Err("protocol error: ready twice".into());
                }
                self.check_time(at_ns, now_ns)?;
                self.ready = true;
                (at_ns, EventKind::WorkerReady { worker })
            }
            FromWorker::Started { id, at_ns } => {
                self.check_time(at_ns, now_ns)?;
                self.front(id)?;
                if self.front_started_ns.is_some() {
                    return Err(format!("protocol error: task {id} started twice"));
                }
                self.front_started_ns = Some(at_ns);
                (at_ns, EventKind::TaskStarted { task: id, worker })
            }
            FromWorker::Ran {
                id,
                started_ns,
                at_ns,
                result,
                cpu_ns,
            } => {
                self.check_span(id, started_ns, at_ns, now_ns)?;
                self.front(id)?;
                if self.front_started_ns.is_some() {
                    return Err(format!("protocol error: task {id} started twice"));
                }
                self.end_front(at_ns);
                let started = since(self.limits.run_start_ns, started_ns);
                let kind = EventKind::TaskRan {
                    task: id,
                    worker,
                    started,
                    result: Some(result),
                    cpu: cpu_ns.map(Duration::from_nanos),
                };
                (at_ns, kind)
            }
            FromWorker::Finished {
                id,
                at_ns,
                result,
                cpu_ns,
            } => {
                self.end_started(id, at_ns, now_ns)?;
                let kind = EventKind::TaskFinished {
                    task: id,
                    worker,
                    result: Some(result),
                    cpu: cpu_ns.map(Duration::from_nanos),
                };
                (at_ns, kind)
            }
            FromWorker::Failed {
                id,
                at_ns,
                error,
                cpu_ns,
            } => {
                self.end_started(id, at_ns, now_ns)?;
                let error = clean_line(&error, MAX_TEXT_LINE);
                let kind = EventKind::TaskFailed {
                    task: id,
                    worker: Some(worker),
                    error,
                    cpu: cpu_ns.map(Duration::from_nanos),
                };
                (at_ns, kind)
            }
        };
        Ok((at_ns, kind))
    }

    /// What becomes of the tasks a child held when it ended; `culprit` when the child was
    /// ended for the oldest one (it timed out, or the child broke the protocol over it).
    pub(super) fn orphans(self, culprit: bool) -> Orphans {
        let started = self.front_started_ns.is_some();
        let mut held = self.held.into_iter();
        let Some(front) = held.next() else {
            return Orphans::default();
        };
        // Unannounced, the oldest task may have been running; announced, it had not begun
        // unless it said so. A culprit fails either way: retrying it would only break or
        // hang another worker.
        let running = started || !self.limits.announce_starts || culprit;
        let mut retry: Vec<Task> = held.collect();
        let failed = if running {
            Some(front.id)
        } else {
            retry.insert(0, front);
            None
        };
        Orphans { failed, retry }
    }

    /// A time the child stamped: not before the run, not in the future.
    #[inline]
    fn check_time(&self, at_ns: u64, now_ns: u64) -> Result<(), String> {
        if at_ns < self.limits.run_start_ns {
            let early = (self.limits.run_start_ns - at_ns) / 1_000_000;
            return Err(format!(
                "protocol error: a time {early} ms before the run started"
            ));
        }
        if at_ns > now_ns.saturating_add(FUTURE_SLACK_NS) {
            let ahead = (at_ns - now_ns) / 1_000_000;
            return Err(format!("protocol error: a time {ahead} ms in the future"));
        }
        Ok(())
    }

    /// A task's start and end as the child stamped them.
    #[inline]
    fn check_span(&self, id: TaskId, start: u64, end: u64, now_ns: u64) -> Result<(), String> {
        self.check_time(start, now_ns)?;
        self.check_time(end, now_ns)?;
        if end < start {
            return Err(format!("protocol error: task {id} ended before it started"));
        }
        Ok(())
    }

    /// Checks that a report is about the oldest held task, as every report must be.
    #[inline]
    fn front(&self, id: TaskId) -> Result<(), String> {
        match self.held.front() {
            Some(f) if f.id == id => Ok(()),
            _ => Err(self.misreport(id)),
        }
    }

    /// Ends the oldest task, started earlier with its own frame, at `at_ns`.
    #[inline]
    fn end_started(&mut self, id: TaskId, at_ns: u64, now_ns: u64) -> Result<(), String> {
        self.front(id)?;
        let Some(started_ns) = self.front_started_ns else {
            return Err(format!("protocol error: task {id} ended but never started"));
        };
        self.check_span(id, started_ns, at_ns, now_ns)?;
        self.end_front(at_ns);
        Ok(())
    }

    #[inline]
    fn end_front(&mut self, at_ns: u64) {
        self.front_started_ns = None;
        if let Some(done) = self.held.pop_front() {
            self.recent[self.recent_at] = Some(done.id);
            self.recent_at = (self.recent_at + 1) % RECENT_KEPT;
        }
        // The next task could begin once this one ended (or once it arrived, if later).
        self.front_since_ns = self.front_since_ns.max(at_ns);
        self.progressed = true;
    }

    /// Why a report about `id` is not believed.
    #[cold]
    fn misreport(&self, id: TaskId) -> String {
        if self.recent.contains(&Some(id)) {
            format!("protocol error: task {id} reported twice")
        } else if self.held.iter().any(|h| h.id == id) {
            format!("protocol error: report for task {id} out of turn")
        } else {
            format!("protocol error: report for task {id}, which it was never given")
        }
    }
}

/// A child in breach of its deadline.
#[derive(Debug, PartialEq)]
pub(super) enum Breach {
    /// It never answered its settings.
    Broken(String),
    /// The task it holds ran past the timeout.
    Overdue(TaskId),
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_000 * MS;

    fn limits(timeout_ms: Option<u64>, announce: bool) -> Limits {
        Limits {
            run_start_ns: T0,
            timeout_ns: timeout_ms.map(|ms| ms * MS),
            ready_within_ns: 10_000 * MS,
            depth: 4,
            announce_starts: announce,
        }
    }

    /// A ready session holding tasks 0..n, handed out at `T0 + 10 ms`.
    fn ready(limits: Limits, n: u64) -> Session {
        let mut s = Session::new(WorkerId(0), limits, T0);
        s.on_report(FromWorker::Ready { at_ns: T0 + MS }, T0 + 2 * MS)
            .unwrap();
        let tasks: Vec<Task> = (0..n).map(Task::new).collect();
        s.handed_out(&tasks, T0 + 10 * MS);
        s
    }

    fn ran(id: TaskId, started_ns: u64, at_ns: u64) -> FromWorker {
        FromWorker::Ran {
            id,
            started_ns,
            at_ns,
            result: id * id,
            cpu_ns: None,
        }
    }

    #[test]
    fn no_task_is_handed_out_before_the_child_is_ready() {
        let mut s = Session::new(WorkerId(3), limits(None, false), T0);
        assert_eq!(s.room(), 0);
        let (at, kind) = s
            .on_report(FromWorker::Ready { at_ns: T0 + 5 * MS }, T0 + 6 * MS)
            .unwrap();
        assert_eq!(
            (at, kind),
            (
                T0 + 5 * MS,
                EventKind::WorkerReady {
                    worker: WorkerId(3)
                }
            )
        );
        assert_eq!(s.room(), 4);
        s.queue_done();
        assert_eq!(s.room(), 0);
        assert!(s.is_finished());
    }

    #[test]
    fn a_silent_child_breaches_its_settings_deadline() {
        let s = Session::new(WorkerId(0), limits(None, false), T0);
        assert_eq!(s.deadline_ns(), Some(T0 + 10_000 * MS));
        assert_eq!(s.breach(T0 + 9_999 * MS), None);
        assert!(matches!(
            s.breach(T0 + 10_000 * MS),
            Some(Breach::Broken(_))
        ));
    }

    #[test]
    fn times_and_ids_from_a_child_are_checked_where_they_enter() {
        let now = T0 + 100 * MS;
        let cases = [
            (ran(0, T0 + 20 * MS, u64::MAX), "in the future"),
            (
                ran(0, T0 + 30 * MS, T0 + 20 * MS),
                "ended before it started",
            ),
            (ran(0, 1, T0 + 20 * MS), "before the run started"),
            (ran(7, T0 + 20 * MS, T0 + 30 * MS), "never given"),
            (ran(1, T0 + 20 * MS, T0 + 30 * MS), "out of turn"),
            (
                FromWorker::Finished {
                    id: 0,
                    at_ns: T0 + 30 * MS,
                    result: 0,
                    cpu_ns: None,
                },
                "never started",
            ),
            (FromWorker::Ready { at_ns: T0 }, "ready twice"),
        ];
        for (msg, why) in cases {
            let mut s = ready(limits(None, false), 2);
            let err = s.on_report(msg.clone(), now).unwrap_err();
            assert!(err.contains(why), "{msg:?}: {err}");
            assert!(err.starts_with("protocol error: "), "{err}");
        }
    }

    #[test]
    fn a_task_reported_twice_is_a_protocol_error() {
        let mut s = ready(limits(None, false), 2);
        let now = T0 + 100 * MS;
        s.on_report(ran(0, T0 + 20 * MS, T0 + 30 * MS), now)
            .unwrap();
        let err = s.on_report(ran(0, T0 + 20 * MS, T0 + 30 * MS), now);
        assert_eq!(err.unwrap_err(), "protocol error: task 0 reported twice");
    }

    #[test]
    fn a_failure_text_is_cleaned_before_it_goes_anywhere() {
        let mut s = ready(limits(None, true), 1);
        let now = T0 + 100 * MS;
        let start = FromWorker::Started {
            id: 0,
            at_ns: T0 + 20 * MS,
        };
        s.on_report(start, now).unwrap();
        let failed = FromWorker::Failed {
            id: 0,
            at_ns: T0 + 30 * MS,
            error: "\x1b[2Jboom\nsecond line".into(),
            cpu_ns: None,
        };
        let (_, kind) = s.on_report(failed, now).unwrap();
        let EventKind::TaskFailed { error, .. } = kind else {
            panic!("{kind:?}")
        };
        assert_eq!(error, "boom");
    }

    #[test]
    fn a_timeout_counts_from_hand_out_when_the_child_never_says_it_started() {
        let s = ready(limits(Some(300), true), 1);
        assert_eq!(s.deadline_ns(), Some(T0 + 310 * MS));
        assert_eq!(s.breach(T0 + 309 * MS), None);
        assert_eq!(s.breach(T0 + 310 * MS), Some(Breach::Overdue(0)));
        // Never announced, but overdue: it fails rather than hang another worker.
        assert_eq!(
            s.orphans(true),
            Orphans {
                failed: Some(0),
                retry: vec![]
            }
        );
    }

    #[test]
    fn a_timeout_counts_from_the_childs_own_start_stamp_not_from_our_reading() {
        let mut s = ready(limits(Some(1_000), true), 2);
        // The child started task 0 at +20 ms; we read that 2.9 s later (descheduled).
        let start = FromWorker::Started {
            id: 0,
            at_ns: T0 + 20 * MS,
        };
        s.on_report(start, T0 + 2_920 * MS).unwrap();
        assert_eq!(s.deadline_ns(), Some(T0 + 1_020 * MS));
        // Its finish at +500 ms, read in the same late wake-up before any deadline check,
        // ends it in time; the next task's deadline counts from that finish.
        let done = FromWorker::Finished {
            id: 0,
            at_ns: T0 + 500 * MS,
            result: 0,
            cpu_ns: None,
        };
        s.on_report(done, T0 + 2_920 * MS).unwrap();
        assert_eq!(s.deadline_ns(), Some(T0 + 1_500 * MS));
    }

    #[test]
    fn the_next_tasks_deadline_starts_when_it_could_begin() {
        let mut s = ready(limits(Some(100), false), 3);
        s.on_report(ran(0, T0 + 10 * MS, T0 + 50 * MS), T0 + 60 * MS)
            .unwrap();
        assert_eq!(s.deadline_ns(), Some(T0 + 150 * MS));
        s.handed_out(&[Task::new(3)], T0 + 70 * MS);
        assert_eq!(
            s.deadline_ns(),
            Some(T0 + 150 * MS),
            "a later hand-out is queued"
        );
    }

    #[test]
    fn a_dead_childs_unannounced_tasks_go_back_and_its_running_one_fails() {
        let announced = ready(limits(None, true), 3);
        assert_eq!(
            announced.orphans(false),
            Orphans {
                failed: None,
                retry: vec![Task::new(0), Task::new(1), Task::new(2)]
            }
        );
        let mut started = ready(limits(None, true), 3);
        let start = FromWorker::Started {
            id: 0,
            at_ns: T0 + 20 * MS,
        };
        started.on_report(start, T0 + 30 * MS).unwrap();
        assert_eq!(
            started.orphans(false),
            Orphans {
                failed: Some(0),
                retry: vec![Task::new(1), Task::new(2)]
            }
        );
        // Short tasks never announce: the oldest one may have been running.
        let quiet = ready(limits(None, false), 3);
        assert_eq!(quiet.orphans(false).failed, Some(0));
        assert!(
            Session::new(WorkerId(0), limits(None, false), T0)
                .orphans(false)
                .retry
                .is_empty()
        );
    }
}
