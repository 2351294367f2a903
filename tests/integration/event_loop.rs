//! The dashboard's loop end to end: the real loop, real pools, an off-screen terminal, and
//! scripted keys and signals.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use poolscope::config::{Mode, RunConfig};
use poolscope::dashboard::{Exit, Input, PoolRuntime, Screen, Session, run_main_loop};
use poolscope::event::{EventKind, PoolEvent, RunId};
use poolscope::trace::TraceWriter;
use poolscope::view::text::buffer_to_text;
use poolscope::workload::Workload;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;

use crate::common::{TEST_LIMIT, exe, exists, spawned_pids};

/// Events the loop took in, with when it did.
type Seen = Arc<Mutex<Vec<(Instant, PoolEvent)>>>;

/// An off-screen terminal that remembers the header of every frame drawn and every
/// suspend and resume.
struct Recorder {
    terminal: Terminal<TestBackend>,
    headers: Arc<Mutex<Vec<String>>>,
    suspends: usize,
    resumes: usize,
    frames_at_resume: Vec<usize>,
}

impl Screen for Recorder {
    type Backend = TestBackend;
    fn terminal(&mut self) -> &mut Terminal<TestBackend> {
        &mut self.terminal
    }
    fn suspend(&mut self) -> std::io::Result<()> {
        self.suspends += 1;
        Ok(())
    }
    fn resume(&mut self) -> std::io::Result<()> {
        self.resumes += 1;
        self.frames_at_resume
            .push(self.headers.lock().unwrap().len());
        Ok(())
    }
    fn drawn(&mut self) {
        let text = buffer_to_text(self.terminal.backend().buffer());
        let header: String = text.lines().take(2).collect::<Vec<_>>().join("\n");
        self.headers.lock().unwrap().push(header);
    }
}

fn recorder() -> Recorder {
    Recorder {
        terminal: Terminal::new(TestBackend::new(120, 40)).unwrap(),
        headers: Arc::default(),
        suspends: 0,
        resumes: 0,
        frames_at_resume: Vec::new(),
    }
}

/// A `Write` the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn session(config: RunConfig, pool: &PoolRuntime, seen: &Seen) -> Session {
    let mut session = Session::new(config, exe(), pool.handle().clone());
    let sink = Arc::clone(seen);
    session.tap = Some(Box::new(move |ev| {
        sink.lock().unwrap().push((Instant::now(), ev.clone()));
    }));
    session
}

fn key(c: char) -> Input {
    Input::Terminal(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )))
}

/// Waits (generously) until the events seen so far satisfy `cond`.
async fn until(seen: &Seen, what: &str, cond: impl Fn(&[(Instant, PoolEvent)]) -> bool) {
    let end = Instant::now() + TEST_LIMIT;
    while !cond(&seen.lock().unwrap()) {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn started_runs(seen: &[(Instant, PoolEvent)]) -> Vec<RunId> {
    seen.iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::RunStarted { .. }))
        .map(|(_, e)| e.run)
        .collect()
}

fn events(seen: &Seen) -> Vec<PoolEvent> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.clone())
        .collect()
}

fn config(mode: Mode, workers: u32, task_ms: u64) -> RunConfig {
    RunConfig {
        mode,
        workers,
        tasks: 100,
        workload: Workload::Blocks,
        task_ms,
        ..RunConfig::default()
    }
}

#[tokio::test]
async fn quit_stops_every_run_and_the_trace_gets_the_final_events() {
    let pool = PoolRuntime::start().unwrap();
    let seen = Seen::default();
    let trace = Shared::default();
    let mut session = session(config(Mode::Process, 3, 20_000), &pool, &seen);
    session.trace =
        Some(TraceWriter::new(Box::new(trace.clone()) as Box<dyn Write + Send>).unwrap());
    let (tx, rx) = mpsc::channel(16);
    let watcher = Arc::clone(&seen);
    let driver = tokio::spawn(async move {
        // Every worker is in its first (twenty-second) task.
        until(&watcher, "three running tasks", |s| {
            s.iter().filter(|(_, e)| e.task_start().is_some()).count() == 3
        })
        .await;
        tx.send(key('q')).await.unwrap();
        // Keep the inputs open: quitting must not depend on them ending.
        tokio::time::sleep(TEST_LIMIT).await;
    });
    let mut screen = recorder();
    let t0 = Instant::now();
    let exit = run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
        .await
        .unwrap();
    driver.abort();
    assert_eq!(exit, Exit::Quit);
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "quit waited for the tasks"
    );
    let events = events(&seen);
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::RunFinished { .. })),
        "the run was ended, and its end seen"
    );
    for pid in spawned_pids(&events) {
        assert!(!exists(pid), "worker {pid} outlived the dashboard");
    }
    // The three running tasks ended with the run: their ends are the trace's last events.
    let text = String::from_utf8(trace.0.lock().unwrap().clone()).unwrap();
    let trace: serde_json::Value = serde_json::from_str(&text).expect("a complete trace");
    let ended = trace
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["error"].is_string())
        .count();
    assert_eq!(ended, 3, "{text}");
}

#[tokio::test]
async fn a_burst_of_restarts_starts_only_its_last() {
    let pool = PoolRuntime::start().unwrap();
    let seen = Seen::default();
    let session = session(config(Mode::Thread, 1, 300), &pool, &seen);
    let (tx, rx) = mpsc::channel(64);
    let watcher = Arc::clone(&seen);
    let driver = tokio::spawn(async move {
        until(&watcher, "run 1", |s| started_runs(s) == [1]).await;
        for _ in 0..20 {
            tx.send(key('r')).await.unwrap();
        }
        until(&watcher, "run 21", |s| started_runs(s).contains(&21)).await;
        // The inputs end: that quits too.
    });
    let exit = run_main_loop(&mut recorder(), poolscope::term::input_stream(rx), session)
        .await
        .unwrap();
    driver.await.unwrap();
    assert_eq!(exit, Exit::Quit);
    let runs = started_runs(&seen.lock().unwrap());
    assert_eq!(runs.first(), Some(&1));
    assert_eq!(runs.last(), Some(&21));
    assert!(runs.len() <= 3, "twenty keys started {runs:?}");
    // Starts are at least MIN_RESTART apart.
    let times: Vec<Instant> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::RunStarted { .. }))
        .map(|(t, _)| *t)
        .collect();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= poolscope::dashboard::MIN_RESTART - Duration::from_millis(40));
    }
}

#[tokio::test]
async fn a_failed_run_becomes_one_line_on_screen() {
    let pool = PoolRuntime::start().unwrap();
    let seen = Seen::default();
    let mut session = session(config(Mode::Process, 2, 10), &pool, &seen);
    session.worker_exe = "/nonexistent/poolscope".into();
    let (tx, rx) = mpsc::channel(16);
    let mut screen = recorder();
    let headers = Arc::clone(&screen.headers);
    let driver = tokio::spawn(async move {
        let end = Instant::now() + TEST_LIMIT;
        while !headers.lock().unwrap().iter().any(|h| h.contains("failed")) {
            assert!(Instant::now() < end, "no failure shown");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(tx);
    });
    run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
        .await
        .unwrap();
    driver.await.unwrap();
    let headers = screen.headers.lock().unwrap();
    let shown = headers.iter().find(|h| h.contains("failed")).unwrap();
    assert!(
        shown.contains("run 1 failed: cannot start worker process /nonexistent/poolscope"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_signal_stops_the_runs_and_ends_with_its_number() {
    let pool = PoolRuntime::start().unwrap();
    let seen = Seen::default();
    let session = session(config(Mode::Thread, 2, 400), &pool, &seen);
    let (tx, rx) = mpsc::channel(16);
    let watcher = Arc::clone(&seen);
    let mut screen = recorder();
    let headers = Arc::clone(&screen.headers);
    tokio::spawn(async move {
        until(&watcher, "two running tasks", |s| {
            s.iter().filter(|(_, e)| e.task_start().is_some()).count() >= 2
        })
        .await;
        tx.send(Input::Stop(libc::SIGTERM)).await.unwrap();
        tokio::time::sleep(TEST_LIMIT).await;
    });
    let exit = run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
        .await
        .unwrap();
    assert_eq!(exit, Exit::Signal(libc::SIGTERM));
    // The threads were in 400 ms tasks: the screen kept being drawn while they finished.
    let headers = headers.lock().unwrap();
    assert!(
        headers.iter().any(|h| h.contains("stopping 2 workers")),
        "{headers:?}"
    );
    let events = events(&seen);
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::RunFinished { .. }))
    );
}

#[tokio::test]
async fn suspend_and_resume_hand_the_terminal_back_and_redraw() {
    let pool = PoolRuntime::start().unwrap();
    let seen = Seen::default();
    let session = session(config(Mode::Thread, 1, 50), &pool, &seen);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Input::Suspend).await.unwrap();
        tx.send(Input::Resume).await.unwrap();
        let ctrl_z = KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL);
        tx.send(Input::Terminal(Event::Key(ctrl_z))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let mut screen = recorder();
    run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
        .await
        .unwrap();
    assert_eq!(screen.suspends, 2, "SIGTSTP and Ctrl-Z both suspend");
    assert_eq!(screen.resumes, 1);
    let frames = screen.headers.lock().unwrap().len();
    assert!(
        frames > screen.frames_at_resume[0],
        "no frame after the resume"
    );
}

#[tokio::test]
async fn a_thread_run_waits_while_too_many_old_threads_are_busy() {
    let pool = PoolRuntime::start().unwrap();
    let seen = Seen::default();
    let mut session = session(config(Mode::Thread, 4, 1_500), &pool, &seen);
    session.max_leftover_threads = 2;
    let (tx, rx) = mpsc::channel(16);
    let mut screen = recorder();
    let headers = Arc::clone(&screen.headers);
    let watcher = Arc::clone(&seen);
    let driver = tokio::spawn(async move {
        until(&watcher, "four running tasks", |s| {
            s.iter().filter(|(_, e)| e.task_start().is_some()).count() == 4
        })
        .await;
        tx.send(key('r')).await.unwrap();
        until(&watcher, "run 2", |s| started_runs(s).contains(&2)).await;
    });
    run_main_loop(&mut screen, poolscope::term::input_stream(rx), session)
        .await
        .unwrap();
    driver.await.unwrap();
    let headers = headers.lock().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h.contains("threads of earlier runs are still in a task")),
        "{headers:?}"
    );
    // Run 2 started only once run 1's threads had left their 1.5 s tasks: after the last
    // of them exited.
    let seen = seen.lock().unwrap();
    let run2 = seen
        .iter()
        .find(|(_, e)| e.run == 2 && matches!(e.kind, EventKind::RunStarted { .. }))
        .map(|(t, _)| *t)
        .unwrap();
    let exits: Vec<Instant> = seen
        .iter()
        .filter(|(_, e)| e.run == 1 && matches!(e.kind, EventKind::WorkerExited { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        exits.len() >= 3,
        "earlier run's exits are still taken in: {}",
        exits.len()
    );
    assert!(exits.iter().filter(|t| **t <= run2).count() >= 3);
}
