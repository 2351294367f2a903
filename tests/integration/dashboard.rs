//! The dashboard, headless: scripted events into the model, the view drawn into ratatui's
//! `TestBackend` at a fixed size and a fixed `now`, snapshotted as text.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use poolscope::app::App;
use poolscope::config::{Mode, RunConfig};
use poolscope::event::{EventKind, Phase, PoolEvent, RunId, WorkerExit, WorkerId, WorkerLabel};
use poolscope::model::Model;
use poolscope::view::{self, ViewState, text::buffer_to_text};
use poolscope::workload::Workload;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Builds the events of one run, the way the coordinator and pools would send them.
struct Script {
    run: RunId,
    mode: Mode,
    events: Vec<PoolEvent>,
}

impl Script {
    fn start(run: RunId, config: RunConfig) -> Script {
        let mut s = Script {
            run,
            mode: config.mode,
            events: Vec::new(),
        };
        s.at(
            0,
            EventKind::RunStarted {
                config,
                coordinator_pid: 29894,
                origin_ns: 1_000_000_000,
                source: Box::default(),
            },
        );
        s.at(0, EventKind::Phase(Phase::Starting));
        s.at(0, EventKind::Phase(Phase::CreatingTasks));
        s
    }

    fn at(&mut self, at_ms: u64, kind: EventKind) -> &mut Self {
        self.events.push(PoolEvent {
            run: self.run,
            at: ms(at_ms),
            kind,
        });
        self
    }

    fn spawn(&mut self, at_ms: u64, worker: u32) -> &mut Self {
        let label = match self.mode {
            Mode::Thread => WorkerLabel::Thread {
                name: format!("Thread-{}", worker + 1),
                tid: 41234 + worker as i32,
            },
            Mode::Process => WorkerLabel::Process {
                pid: 29895 + worker,
            },
        };
        self.at(
            at_ms,
            EventKind::WorkerSpawned {
                worker: WorkerId(worker),
                label,
            },
        )
    }

    fn queue(&mut self, tasks: u64) -> &mut Self {
        self.at(
            1,
            EventKind::TasksQueued {
                first: 0,
                count: tasks,
            },
        );
        self.at(1, EventKind::Phase(Phase::Waiting))
    }

    fn task(&mut self, worker: u32, task: u64, start: u64, end: Option<u64>) -> &mut Self {
        let w = WorkerId(worker);
        self.at(start, EventKind::TaskStarted { task, worker: w });
        if let Some(end) = end {
            self.at(
                end,
                EventKind::TaskFinished {
                    task,
                    worker: w,
                    result: Some(task * task),
                    cpu: None,
                },
            );
        }
        self
    }

    fn finish(&mut self, at_ms: u64, workers: u32, finished: u64, failed: u64) -> &mut Self {
        for w in 0..workers {
            self.at(
                at_ms,
                EventKind::WorkerExited {
                    worker: WorkerId(w),
                    exit: WorkerExit::Clean,
                },
            );
        }
        self.at(at_ms, EventKind::Phase(Phase::Exiting));
        self.at(
            at_ms,
            EventKind::RunFinished {
                finished,
                failed,
                cancelled: 0,
            },
        )
    }

    fn apply_to(&self, model: &mut Model) {
        for ev in &self.events {
            model.apply(ev);
        }
    }
}

fn render(model: &Model, state: &ViewState, now: Duration, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view::draw(f, model, state, now)).unwrap();
    buffer_to_text(terminal.backend().buffer())
}

fn seed(mode: Mode, tasks: u64) -> RunConfig {
    RunConfig {
        mode,
        tasks,
        ..RunConfig::default()
    }
}

/// Nine 1-second tasks on three workers, 1.5 s in: three done, three running, three queued.
fn midway(mode: Mode) -> Model {
    let mut s = Script::start(1, seed(mode, 9));
    s.spawn(0, 0).spawn(0, 1).spawn(0, 2).queue(9);
    s.task(0, 0, 2, Some(1003))
        .task(1, 1, 3, Some(1004))
        .task(2, 2, 4, Some(1002));
    s.task(2, 3, 1002, None)
        .task(0, 4, 1003, None)
        .task(1, 5, 1004, None);
    let mut model = Model::new();
    s.apply_to(&mut model);
    model
}

/// The example's run, complete: six 1-second tasks on three workers in about 2 s, each worker
/// taking its second task `gap` ms after its first ended.
fn seed_run(model: &mut Model, run: RunId, mode: Mode, startup: u64, gap: u64) {
    let mut s = Script::start(run, seed(mode, 6));
    s.spawn(0, 0).spawn(0, 1).spawn(0, 2).queue(6);
    let t = startup;
    s.task(0, 0, t, Some(t + 1001))
        .task(1, 1, t + 1, Some(t + 1003))
        .task(2, 2, t + 2, Some(t + 1002));
    s.task(0, 3, t + 1001 + gap, Some(t + 2002 + gap))
        .task(2, 4, t + 1002 + gap, Some(t + 2004 + gap))
        .task(1, 5, t + 1003 + gap, Some(t + 2005 + gap));
    s.finish(t + 2006 + gap, 3, 6, 0);
    s.apply_to(model);
}

#[test]
fn empty_start() {
    let model = Model::new();
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(0), 120, 40));
}

#[test]
fn thread_run_midway() {
    let model = midway(Mode::Thread);
    let run = model.run.as_ref().unwrap();
    assert_eq!((run.done(), run.running(), run.queued()), (3, 3, 3));
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(1500), 120, 40));
}

#[test]
fn process_run_midway() {
    let model = midway(Mode::Process);
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(1500), 120, 40));
}

#[test]
fn finished_runs_in_both_modes_side_by_side() {
    let mut model = Model::new();
    seed_run(&mut model, 1, Mode::Process, 45, 2);
    seed_run(&mut model, 2, Mode::Thread, 1, 0);
    let process = model.last_process.as_ref().unwrap();
    // Spawned at 0, first tasks at 45, 46, 47 ms.
    assert_eq!(process.startup, ms(46));
    assert_eq!(process.finished, 6);
    // Three hand-offs, each 2 ms after the previous task ended.
    assert_eq!(process.overhead_mean, Some(ms(2)));
    let p99 = process.overhead_p99.unwrap();
    assert!(p99 >= ms(2) && p99 <= ms(2) * 110 / 100, "{p99:?}");
    // Wall time runs to the last task's end (2052 ms), not to the workers' shutdown.
    assert_eq!(process.wall, ms(2052));
    let thread = model.last_thread.as_ref().unwrap();
    assert_eq!(thread.overhead_mean, Some(Duration::ZERO));
    // Each thread worked 2000-2002 ms of the run's 2007 ms.
    assert!(
        thread.busy_range.0 > 99.6 && thread.busy_range.1 <= 100.0,
        "{:?}",
        thread.busy_range
    );
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(2500), 120, 40));
}

#[test]
fn failed_tasks_and_a_dead_worker_replaced() {
    let config = RunConfig {
        mode: Mode::Process,
        tasks: 8,
        workload: Workload::Fail,
        task_ms: 500,
        ..RunConfig::default()
    };
    let mut s = Script::start(1, config);
    s.spawn(0, 0).spawn(0, 1).spawn(0, 2).queue(8);
    s.task(0, 0, 5, Some(505)).task(1, 1, 5, Some(506));
    s.task(2, 2, 6, None);
    s.at(
        300,
        EventKind::TaskFailed {
            task: 2,
            worker: Some(WorkerId(2)),
            error: "worker PID 29897 killed by SIGKILL".into(),
            cpu: None,
        },
    );
    // As the process pool does: a note of how the worker ended, then its exit.
    s.at(
        301,
        EventKind::PoolNote {
            worker: WorkerId(2),
            line: "worker PID 29897 killed by SIGKILL".into(),
        },
    );
    s.at(
        301,
        EventKind::WorkerExited {
            worker: WorkerId(2),
            exit: WorkerExit::Signal(9),
        },
    );
    s.spawn(302, 3);
    s.task(3, 3, 310, Some(810));
    s.task(0, 4, 505, None);
    s.at(
        1005,
        EventKind::TaskFailed {
            task: 4,
            worker: Some(WorkerId(0)),
            error: "fail(4) raised an error on purpose".into(),
            cpu: None,
        },
    );
    s.task(1, 5, 506, Some(1006));
    s.task(3, 6, 810, None);
    s.at(
        1310,
        EventKind::TaskFailed {
            task: 6,
            worker: Some(WorkerId(3)),
            error: "panicked: fail(6) panicked on purpose".into(),
            cpu: None,
        },
    );
    s.task(0, 7, 1005, None);
    let mut model = Model::new();
    s.apply_to(&mut model);
    let run = model.run.as_ref().unwrap();
    assert_eq!(run.lanes.len(), 4);
    assert_eq!(run.failed, 3);
    let state = ViewState {
        selected: 2,
        ..ViewState::default()
    };
    insta::assert_snapshot!(render(&model, &state, ms(1400), 120, 40));
}

#[test]
fn help_overlay_opened_with_the_question_mark_key() {
    let mut app = App::new(RunConfig::default());
    let mut s = Script::start(1, seed(Mode::Thread, 9));
    s.spawn(0, 0).spawn(0, 1).spawn(0, 2).queue(9);
    for ev in &s.events {
        app.on_event(ev);
    }
    app.on_key(
        KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE),
        ms(10),
    );
    assert!(app.view.help);
    insta::assert_snapshot!(render(&app.model, &app.view, ms(10), 120, 40));
}

#[test]
fn small_terminal_60x15() {
    let model = midway(Mode::Thread);
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(1500), 60, 15));
}

#[test]
fn terminal_too_small() {
    let model = midway(Mode::Thread);
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(1500), 40, 10));
}

#[test]
fn large_terminal_250x80_with_many_workers() {
    let mut s = Script::start(
        1,
        RunConfig {
            workers: 12,
            tasks: 48,
            task_ms: 200,
            ..RunConfig::default()
        },
    );
    for w in 0..12 {
        s.spawn(0, w);
    }
    s.queue(48);
    for round in 0..3u64 {
        for w in 0..12u32 {
            let task = round * 12 + u64::from(w);
            let start = 2 + round * 200 + u64::from(w);
            s.task(w, task, start, Some(start + 200));
        }
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(650), 250, 80));
}

#[test]
fn every_size_from_tiny_to_huge_draws_a_whole_screen_or_says_it_is_too_small() {
    let model = main_screen();
    for (w, h) in [
        (1, 1),
        (10, 3),
        (43, 11),
        (44, 12),
        (60, 15),
        (80, 24),
        (100, 30),
        (160, 50),
        (250, 80),
    ] {
        let text = render(&model, &ViewState::default(), ms(700), w, h);
        if w < view::MIN_WIDTH || h < view::MIN_HEIGHT {
            assert!(w < 20 || text.contains("too small"), "{w}×{h}:\n{text}");
            continue;
        }
        // The lanes come first: the selected worker and the header are always there.
        assert!(text.contains("PID 29895"), "{w}×{h}:\n{text}");
        assert!(text.contains("PROCESS"), "{w}×{h}:\n{text}");
        if let Err(e) = labels_are_whole(&text, "mixed") {
            panic!("{w}×{h}: {e}\n{text}");
        }
    }
}

#[test]
fn live_cpu_and_memory_per_lane_with_sparklines() {
    use poolscope::monitor::{Sample, WorkerStat};
    let mut s = Script::start(
        1,
        RunConfig {
            mode: Mode::Process,
            workload: Workload::Spin,
            workers: 2,
            tasks: 4,
            task_ms: 2000,
            ..RunConfig::default()
        },
    );
    s.spawn(0, 0).spawn(0, 1).queue(4);
    s.task(0, 0, 3, None).task(1, 1, 4, None);
    for (i, (a, b)) in [
        (None, None),
        (Some(48.0), Some(51.0)),
        (Some(97.5), Some(99.0)),
        (Some(99.0), Some(98.0)),
        (Some(100.0), Some(64.0)),
    ]
    .into_iter()
    .enumerate()
    {
        s.at(
            250 * (i as u64 + 1),
            EventKind::WorkerStats(Sample {
                own_cpu_pct: 1.5,
                own_rss: 6_200_000,
                workers: vec![
                    WorkerStat {
                        worker: WorkerId(0),
                        cpu_pct: a,
                        rss: Some(3_900_000),
                    },
                    WorkerStat {
                        worker: WorkerId(1),
                        cpu_pct: b,
                        rss: Some(4_100_000),
                    },
                ],
                ..Sample::default()
            }),
        );
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    let lane = &model.run.as_ref().unwrap().lanes[1];
    assert_eq!(lane.cpu_pct, Some(64.0));
    assert_eq!(lane.rss, Some(4_100_000));
    assert_eq!(
        lane.cpu_history.len(),
        4,
        "a first reading measures nothing"
    );
    assert_eq!(model.own, Some((1.5, 6_200_000)));
    insta::assert_snapshot!(render(&model, &ViewState::default(), ms(1300), 120, 14));
}

#[test]
fn the_model_stays_bounded_through_a_long_run() {
    use poolscope::model::{LOG_KEPT, RESULTS_KEPT, lane::SPANS_KEPT};
    let tasks = 300_000u64;
    let mut s = Script::start(
        1,
        RunConfig {
            tasks,
            task_ms: 0,
            workload: Workload::Noop,
            ..RunConfig::default()
        },
    );
    s.spawn(0, 0).spawn(0, 1).spawn(0, 2);
    let mut model = Model::new();
    s.apply_to(&mut model);
    for task in 0..tasks {
        let worker = WorkerId((task % 3) as u32);
        let at = Duration::from_micros(task);
        let ev = |kind| PoolEvent { run: 1, at, kind };
        if task % 256 == 0 {
            model.apply(&ev(EventKind::TasksQueued {
                first: task,
                count: 256,
            }));
        }
        model.apply(&ev(EventKind::TaskStarted { task, worker }));
        model.apply(&ev(EventKind::TaskFinished {
            task,
            worker,
            result: Some(task),
            cpu: None,
        }));
    }
    let mut end = Script::start(1, seed(Mode::Thread, 1));
    end.events.clear();
    end.finish(400, 3, tasks, 0);
    end.apply_to(&mut model);
    let run = model.run.as_ref().unwrap();
    assert_eq!(run.finished, tasks);
    assert!(run.lanes.iter().all(|l| l.spans.len() <= SPANS_KEPT));
    assert_eq!(run.lanes.iter().map(|l| l.finished).sum::<u64>(), tasks);
    assert!(run.results.len() <= RESULTS_KEPT);
    assert!(model.log.len() <= LOG_KEPT);
    // The log's results line lists a few and counts the rest rather than hold them all.
    let results = model
        .log
        .iter()
        .map(|(_, l)| l.to_string())
        .find(|l| l.contains("results: "))
        .expect("a results line");
    assert!(
        results.ends_with(&format!("and {} more", tasks - 64)),
        "{results}"
    );
    assert_eq!(
        run.overhead.count(),
        tasks - 3,
        "every hand-off but the first per lane"
    );
}

#[test]
fn short_tasks_show_their_busy_share_and_latest_task_not_a_binary_busy() {
    // Instant tasks (task_ms 0) report start and finish together: nothing is ever
    // "current". Issue 11.3: the old rule called a lane busy for 100 ms after any finish,
    // hiding every idle gap.
    let mut s = Script::start(
        1,
        RunConfig {
            tasks: 30,
            task_ms: 0,
            workers: 2,
            ..RunConfig::default()
        },
    );
    s.spawn(0, 0).spawn(0, 1).queue(30);
    for t in 0..10u64 {
        s.task(0, 2 * t, 3 * t, Some(3 * t + 3));
        if t < 5 {
            s.task(1, 2 * t + 1, 3 * t, Some(3 * t + 3));
        }
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    let run = model.run.as_ref().unwrap();
    assert_eq!(run.running(), 0, "no task is known to be running now");
    // Over [0, 40 ms): lane 0 worked 30 ms, lane 1 15 ms.
    let (l0, l1) = (&run.lanes[0], &run.lanes[1]);
    assert!((run.busy_share(l0, ms(40)) - 0.75).abs() < 1e-6);
    assert!((run.busy_share(l1, ms(40)) - 0.375).abs() < 1e-6);
    // 80 ms after its last task, lane 0 is mostly idle, and says so.
    assert!((run.busy_share(l0, ms(110)) - 30.0 / 110.0).abs() < 1e-6);
    assert_eq!(run.busy_share(l0, ms(1100)), 0.0);
    let text = render(&model, &ViewState::default(), ms(40), 80, 24);
    assert!(text.contains("busy 1.1/2"), "{text}");
    // The lane names its latest task, with a shade for its share of the last second.
    assert!(
        text.contains("▓ blocks(18)") && text.contains("▒ blocks(9)"),
        "{text}"
    );
    let later = render(&model, &ViewState::default(), ms(1200), 80, 24);
    assert!(
        later.contains("idle") && !later.contains("blocks(18)  "),
        "{later}"
    );
}

/// Runs `f` on a thread and fails, rather than hangs, if it does not return in time.
fn finishes_in_time(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the model or the view hung or panicked on an absurd time"
    );
}

#[test]
fn a_finish_stamped_at_the_end_of_time_neither_hangs_nor_panics() {
    // Issue 10.2: a worker reported a finish at u64::MAX ns and the lane's bucket loop spun
    // forever. The pool checks times at entry, but the model must survive any Duration.
    finishes_in_time(|| {
        let huge = Duration::from_nanos(u64::MAX);
        let mut s = Script::start(1, seed(Mode::Process, 6));
        s.spawn(0, 0).spawn(0, 1).queue(6);
        s.task(0, 0, 2, None);
        s.events.push(PoolEvent {
            run: 1,
            at: huge,
            kind: EventKind::TaskFinished {
                task: 0,
                worker: WorkerId(0),
                result: Some(0),
                cpu: None,
            },
        });
        s.events.push(PoolEvent {
            run: 1,
            at: Duration::MAX,
            kind: EventKind::TaskRan {
                task: 1,
                worker: WorkerId(1),
                started: Duration::MAX,
                result: Some(1),
                cpu: None,
            },
        });
        s.task(0, 2, 5, Some(6));
        s.finish(7, 2, 3, 0);
        let mut model = Model::new();
        s.apply_to(&mut model);
        for (w, h) in [(80, 24), (120, 40), (250, 80)] {
            for now in [ms(10), huge, Duration::MAX] {
                let text = render(&model, &ViewState::default(), now, w, h);
                assert!(text.contains("PID 29895"), "{text}");
            }
        }
    });
}

/// The main screen as a user sees it mid-session: a finished thread run in the comparison,
/// and a process run of the `mixed` workload under way, with CPU samples, a failure and
/// this machine's pipe round trip.
fn main_screen() -> Model {
    use poolscope::monitor::{Sample, WorkerStat};
    use poolscope::workload::mixed_draw;
    let mut model = Model::new();
    model.set_pipe_round_trip(Duration::from_micros(9));
    seed_run(&mut model, 1, Mode::Thread, 1, 0);
    let config = RunConfig {
        mode: Mode::Process,
        workers: 4,
        tasks: 40,
        workload: Workload::Mixed,
        task_ms: 100,
        ..RunConfig::default()
    };
    let mut s = Script::start(2, config.clone());
    for w in 0..4 {
        s.spawn(0, w);
        s.at(
            2 + u64::from(w),
            EventKind::WorkerReady {
                worker: WorkerId(w),
            },
        );
    }
    s.queue(40);
    let now = 700;
    let mut free = [3u64, 4, 5, 6];
    for task in 0..40u64 {
        let (w, start) = free
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .map(|(w, t)| (w, *t))
            .unwrap();
        if start >= now {
            break;
        }
        let (len, _) = mixed_draw(config.seed, task, config.task_ms);
        let end = start + len;
        if task == 9 {
            s.task(w as u32, task, start, None);
            s.at(
                end.min(now - 1),
                EventKind::TaskFailed {
                    task,
                    worker: Some(WorkerId(w as u32)),
                    error: "mixed(9) raised: disk full".into(),
                    cpu: None,
                },
            );
        } else {
            s.task(w as u32, task, start, (end < now).then_some(end));
        }
        free[w] = end + 1;
    }
    for (i, cpu) in [None, Some(55.0), Some(48.5), Some(97.0)]
        .into_iter()
        .enumerate()
    {
        let workers = (0..4)
            .map(|w| WorkerStat {
                worker: WorkerId(w),
                cpu_pct: cpu.map(|c: f32| (c + 11.0 * w as f32) % 101.0),
                rss: Some(4_000_000 + 150_000 * u64::from(w)),
            })
            .collect();
        s.at(
            250 * i as u64 + 100,
            EventKind::WorkerStats(Sample {
                own_cpu_pct: 4.3,
                own_rss: 9_800_000,
                workers,
                ..Sample::default()
            }),
        );
    }
    s.apply_to(&mut model);
    model
}

#[test]
fn main_screen_80x24() {
    let text = render(&main_screen(), &ViewState::default(), ms(700), 80, 24);
    // What 80×24 must keep, in order: lanes with bars and CPU %, the header, the summary.
    assert!(text.contains("PID 29895") && text.contains('%'), "{text}");
    assert!(
        text.contains("PROCESS pool") && text.contains("done "),
        "{text}"
    );
    assert!(text.contains("thread ") && text.contains("process ") && text.contains("start-up"));
    insta::assert_snapshot!(text);
}

#[test]
fn main_screen_120x40() {
    insta::assert_snapshot!(render(
        &main_screen(),
        &ViewState::default(),
        ms(700),
        120,
        40
    ));
}

#[test]
fn main_screen_250x80() {
    insta::assert_snapshot!(render(
        &main_screen(),
        &ViewState::default(),
        ms(700),
        250,
        80
    ));
}

#[test]
fn dead_lanes_are_folded_so_churn_keeps_the_model_bounded() {
    use poolscope::model::DEAD_KEPT;
    // Issue 10.8: with `--task-timeout-ms 1` every task killed its worker and the model
    // kept all 13 404 lanes. Here 20 000 workers each run one task and are replaced.
    let config = RunConfig {
        mode: Mode::Process,
        workers: 3,
        tasks: 20_000,
        task_ms: 0,
        ..RunConfig::default()
    };
    let mut model = Model::new();
    let mut s = Script::start(1, config);
    s.queue(20_000).apply_to(&mut model);
    let mut most_lanes = 0;
    for w in 0..20_000u32 {
        let t = u64::from(w);
        let ev = |at, kind| PoolEvent {
            run: 1,
            at: ms(at),
            kind,
        };
        let label = WorkerLabel::Process { pid: 10_000 + w };
        model.apply(&ev(
            t,
            EventKind::WorkerSpawned {
                worker: WorkerId(w),
                label,
            },
        ));
        model.apply(&ev(
            t,
            EventKind::TaskStarted {
                task: t,
                worker: WorkerId(w),
            },
        ));
        let error = "timed out after 1 ms".to_string();
        let failed = EventKind::TaskFailed {
            task: t,
            worker: Some(WorkerId(w)),
            error,
            cpu: None,
        };
        model.apply(&ev(t + 1, failed));
        let exit = WorkerExit::Signal(9);
        model.apply(&ev(
            t + 1,
            EventKind::WorkerExited {
                worker: WorkerId(w),
                exit,
            },
        ));
        most_lanes = most_lanes.max(model.run.as_ref().unwrap().lanes.len());
    }
    let run = model.run.as_ref().unwrap();
    assert!(most_lanes <= 3 + DEAD_KEPT, "{most_lanes} lanes kept");
    assert_eq!(run.folded.workers as usize + run.lanes.len(), 20_000);
    assert_eq!(run.folded.died as usize + run.lanes.len(), 20_000);
    assert_eq!(run.failed, 20_000);
    let text = render(&model, &ViewState::default(), ms(20_001), 80, 24);
    let folded = format!("{} earlier workers replaced", run.folded.workers);
    assert!(text.contains(&folded), "{text}");
    // One worker at a time was in a task all along: folded lanes still count.
    assert!(text.contains("busy 1.0/3"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn workers_of_an_earlier_run_still_finishing_a_task_are_shown() {
    use poolscope::monitor::Sample;
    // Issue 11.3: threads of a cancelled thread run kept running (30–41 % CPU in `ps -L`)
    // while the screen showed only the new run.
    let mut model = Model::new();
    let mut s = Script::start(1, seed(Mode::Thread, 9));
    s.spawn(0, 0).spawn(0, 1).queue(9);
    s.task(0, 0, 1, None).task(1, 1, 1, None);
    s.apply_to(&mut model);
    let mut next = Script::start(2, seed(Mode::Process, 6));
    next.spawn(0, 0).queue(6);
    next.apply_to(&mut model);
    assert_eq!(model.leftovers.len(), 2);
    // The earlier run's first thread finishes and leaves; the other is still in its task.
    for kind in [
        EventKind::TaskFinished {
            task: 0,
            worker: WorkerId(0),
            result: Some(0),
            cpu: None,
        },
        EventKind::WorkerExited {
            worker: WorkerId(0),
            exit: WorkerExit::Clean,
        },
    ] {
        model.apply(&PoolEvent {
            run: 1,
            at: ms(900),
            kind,
        });
    }
    assert_eq!(model.leftovers.len(), 1);
    assert_eq!(model.leftovers[0].task, Some(1));
    let sample = Sample {
        leftover_threads: 1,
        leftover_cpu_pct: 35.0,
        ..Sample::default()
    };
    model.apply(&PoolEvent {
        run: 2,
        at: ms(300),
        kind: EventKind::WorkerStats(sample),
    });
    let text = render(&model, &ViewState::default(), ms(400), 120, 40);
    assert!(text.contains("earlier run: 1 worker 35%"), "{text}");
    // The new run itself is undisturbed by the old run's events.
    assert_eq!(model.run.as_ref().unwrap().lanes.len(), 1);
    // Once /proc finds no pool thread left, none is shown, even without its exit event.
    let none_left = Sample::default();
    model.apply(&PoolEvent {
        run: 2,
        at: ms(600),
        kind: EventKind::WorkerStats(none_left),
    });
    assert!(model.leftovers.is_empty());
    let text = render(&model, &ViewState::default(), ms(700), 120, 40);
    assert!(!text.contains("earlier run"), "{text}");
}

/// Every `name(` in `text` is followed by digits (or the header's `n`) and `)`: no label
/// drawn in part.
fn labels_are_whole(text: &str, name: &str) -> Result<(), String> {
    let open = format!("{name}(");
    for (i, _) in text.match_indices(&open) {
        let rest = &text[i + open.len()..];
        if rest.starts_with("n)") {
            continue;
        }
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(')') {
            let line = text[..i].lines().count();
            return Err(format!("half a label on line {line}: {}", &text[i..]));
        }
    }
    Ok(())
}

#[test]
fn a_label_is_drawn_whole_or_not_at_all_at_every_width() {
    // Issue 13: `├fail(2✗fail(4)` and `fail(1` for `fail(12)`, where a later bar covered
    // the end of a label. Tasks 8..20 of varying length make every kind of neighbour.
    let config = RunConfig {
        mode: Mode::Process,
        workers: 2,
        tasks: 40,
        workload: Workload::Fail,
        task_ms: 50,
        ..RunConfig::default()
    };
    let mut s = Script::start(1, config);
    s.spawn(0, 0).spawn(0, 1).queue(40);
    let mut t = [0u64, 3];
    for task in 8..30u64 {
        let w = (task % 2) as usize;
        let len = 30 + (task * 7) % 40;
        if task % 5 == 4 {
            s.task(w as u32, task, t[w], None);
            let error = format!("fail({task}) raised an error on purpose");
            let worker = Some(WorkerId(w as u32));
            s.at(
                t[w] + len,
                EventKind::TaskFailed {
                    task,
                    worker,
                    error,
                    cpu: None,
                },
            );
        } else {
            s.task(w as u32, task, t[w], Some(t[w] + len));
        }
        t[w] += len;
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    for width in (60..=250).step_by(3) {
        let text = render(&model, &ViewState::default(), ms(1200), width, 30);
        let lanes: String = text.lines().skip(3).take(8).collect::<Vec<_>>().join("\n");
        if let Err(e) = labels_are_whole(&lanes, "fail") {
            panic!("at width {width}: {e}\n{text}");
        }
    }
}

#[test]
fn the_failures_list_says_how_many_it_does_not_show_and_counts_are_singular_when_one() {
    let config = RunConfig {
        mode: Mode::Thread,
        workers: 1,
        tasks: 10,
        workload: Workload::Fail,
        ..RunConfig::default()
    };
    let mut s = Script::start(1, config);
    s.spawn(0, 0).queue(10);
    for task in 0..10 {
        let error = format!("fail({task}) raised an error on purpose");
        s.at(
            10 + task,
            EventKind::TaskFailed {
                task,
                worker: None,
                error,
                cpu: None,
            },
        );
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    let text = render(&model, &ViewState::default(), ms(100), 120, 40);
    let listed = text.matches("✗ fail(").count();
    assert!(listed > 0 && listed < 10, "{text}");
    assert!(
        text.contains(&format!("✗ {} more failed", 10 - listed)),
        "{text}"
    );
    assert!(
        text.contains(" 1 worker ") && !text.contains("1 workers"),
        "{text}"
    );
}

#[test]
fn ascii_mode_draws_the_same_screen_in_plain_characters() {
    let state = ViewState {
        ascii: true,
        ..ViewState::default()
    };
    let text = render(&main_screen(), &state, ms(700), 80, 24);
    assert!(text.is_ascii(), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn light_theme_has_no_yellow_or_green_text_and_mono_no_colour() {
    use ratatui::style::Color;
    for (theme, banned) in [
        (
            poolscope::view::Theme::light(),
            vec![
                Color::Yellow,
                Color::Green,
                Color::LightYellow,
                Color::LightGreen,
                Color::DarkGray,
            ],
        ),
        (
            poolscope::view::Theme::mono(),
            vec![
                Color::Yellow,
                Color::Green,
                Color::Red,
                Color::Blue,
                Color::Magenta,
                Color::Cyan,
            ],
        ),
    ] {
        let state = ViewState {
            theme,
            ..ViewState::default()
        };
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal
            .draw(|f| view::draw(f, &main_screen(), &state, ms(700)))
            .unwrap();
        let buf = terminal.backend().buffer();
        for cell in &buf.content {
            assert!(
                !banned.contains(&cell.fg) && !banned.contains(&cell.bg),
                "{}: {:?} in {cell:?}",
                theme.name,
                cell.fg
            );
        }
    }
}

// ---- issue 13: the screens a user opens, at the three sizes ----

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (250, 80)];

/// The main screen's app, with `keys` pressed.
pub(crate) fn main_app(keys: &[KeyCode]) -> App {
    let mut app = App::new(RunConfig::default());
    app.model = main_screen();
    app.view.selected = 1;
    for k in keys {
        app.on_key(KeyEvent::new(*k, KeyModifiers::NONE), ms(700));
    }
    app
}

/// Each cell's role in the theme as a letter under its row: s sleep, c cpu, t task,
/// f failed, w warning, o ok, d dim, b border, T title, K key, · default, ? other;
/// a filled cell (a coloured background) is shown by its role's letter in upper case.
fn roles(buf: &ratatui::buffer::Buffer, theme: &poolscope::view::Theme) -> String {
    let named = [
        ('s', theme.sleep),
        ('c', theme.cpu),
        ('t', theme.task),
        ('f', theme.failed),
        ('w', theme.warning),
        ('o', theme.ok),
        ('d', theme.dim),
        ('b', theme.border),
    ];
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        for x in 0..area.width {
            let cell = &buf[(x, y)];
            let role = |c: ratatui::style::Color| {
                named.iter().find(|(_, s)| s.fg == Some(c)).map(|(l, _)| *l)
            };
            let letter = match (cell.fg, cell.bg) {
                (_, bg) if Some(bg) == theme.title.bg => 'T',
                (_, bg) if Some(bg) == theme.key.bg => 'K',
                (_, ratatui::style::Color::Reset) => match cell.fg {
                    ratatui::style::Color::Reset => '·',
                    fg => role(fg).unwrap_or('?'),
                },
                (_, bg) => role(bg).map_or('?', |l| l.to_ascii_uppercase()),
            };
            out.push(letter);
        }
        out.push('\n');
    }
    out
}

pub(crate) fn render_app(app: &App, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| view::draw(f, &app.model, &app.view, ms(700)))
        .unwrap();
    terminal.backend().buffer().clone()
}

#[test]
fn help_with_its_legend_at_every_size() {
    for (w, h) in SIZES {
        let app = main_app(&[KeyCode::Char('?')]);
        let text = buffer_to_text(&render_app(&app, w, h));
        assert!(text.contains("legend") || h < 40, "{text}");
        insta::assert_snapshot!(format!("help_{w}x{h}"), text);
    }
}

#[test]
fn settings_panel_at_every_size() {
    for (w, h) in SIZES {
        let app = main_app(&[KeyCode::Char('s'), KeyCode::Down, KeyCode::Char('8')]);
        let text = buffer_to_text(&render_app(&app, w, h));
        assert!(text.contains("workers") && text.contains("8_"), "{text}");
        insta::assert_snapshot!(format!("settings_{w}x{h}"), text);
    }
}

#[test]
fn kill_confirmation_at_every_size() {
    for (w, h) in SIZES {
        let app = main_app(&[KeyCode::Char('K')]);
        let text = buffer_to_text(&render_app(&app, w, h));
        assert!(text.contains("kill PID 29896? y/n"), "{text}");
        insta::assert_snapshot!(format!("kill_confirmation_{w}x{h}"), text);
    }
}

#[test]
fn light_theme_at_every_size_with_its_colour_roles() {
    for (w, h) in SIZES {
        let mut app = main_app(&[]);
        app.view.theme = poolscope::view::Theme::light();
        let buf = render_app(&app, w, h);
        let shown = format!("{}\n{}", buffer_to_text(&buf), roles(&buf, &app.view.theme));
        insta::assert_snapshot!(format!("light_{w}x{h}"), shown);
    }
}

#[test]
fn ascii_theme_at_every_size() {
    for (w, h) in SIZES {
        let mut app = main_app(&[KeyCode::Char('?')]);
        app.view.ascii = true;
        let text = buffer_to_text(&render_app(&app, w, h));
        assert!(text.is_ascii(), "{text}");
        insta::assert_snapshot!(format!("ascii_help_{w}x{h}"), text);
    }
}

#[test]
fn a_long_run_shows_a_gauge_with_its_eta_in_the_header() {
    let mut s = Script::start(1, seed(Mode::Thread, 12));
    s.spawn(0, 0).spawn(0, 1).spawn(0, 2).queue(12);
    for t in 0..6u64 {
        let (w, k) = ((t % 3) as u32, t / 3);
        s.task(w, t, 1000 * k + 1, Some(1000 * k + 1000));
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    let text = render(&model, &ViewState::default(), ms(2100), 120, 40);
    let header = text.lines().nth(1).unwrap_or_default();
    // Half done in 2.1 s: as long again to go.
    assert!(header.contains("▕█████     ▏50% ETA 2.10 s"), "{header}");
    let short = render(&model, &ViewState::default(), ms(1500), 120, 40);
    assert!(!short.contains("ETA"), "no gauge in the first seconds");
}

#[test]
fn the_exit_summary_has_the_last_run_of_each_mode() {
    let mut model = Model::new();
    assert_eq!(view::text::exit_summary(&model), None);
    seed_run(&mut model, 1, Mode::Thread, 1, 0);
    seed_run(&mut model, 2, Mode::Process, 8, 1);
    let text = view::text::exit_summary(&model).unwrap();
    insta::assert_snapshot!(text);
}

/// Back-to-back tasks each about a cell wide: neighbours alternate shades, so the lane is
/// never one unbroken band.
#[test]
fn back_to_back_short_tasks_alternate_shades() {
    let config = RunConfig {
        workers: 1,
        tasks: 90,
        task_ms: 100,
        ..RunConfig::default()
    };
    let mut s = Script::start(1, config);
    s.spawn(0, 0).queue(90);
    for t in 0..90 {
        s.task(0, t, 2 + t * 100, Some(2 + t * 100 + 99));
    }
    s.finish(9_100, 1, 90, 0);
    let mut model = Model::new();
    s.apply_to(&mut model);
    let text = render(&model, &ViewState::default(), ms(9_200), 120, 40);
    let lane = text
        .lines()
        .find(|l| l.contains("Thread-1"))
        .unwrap_or_else(|| panic!("{text}"));
    let timeline: String = lane.chars().skip(40).collect();
    assert!(
        timeline.contains("█▓") && timeline.contains("▓█"),
        "neighbours alternate: {lane}"
    );
}

#[test]
fn long_thread_names_keep_their_ids_in_the_lane_column() {
    // Dask's worker threads, as a LocalCluster names them: each name alone fills the column,
    // and cut at a word they all showed as `…`, three lanes alike.
    let names = [
        ("0-Dask-Default-Threads-19830-0", 19866),
        ("1-Dask-Default-Threads-19832-0", 19868),
        ("1-Dask-Default-Threads-19832-1", 19869),
    ];
    let mut s = Script::start(1, seed(Mode::Thread, 3));
    for (i, (name, tid)) in names.iter().enumerate() {
        s.at(
            0,
            EventKind::WorkerSpawned {
                worker: WorkerId(i as u32),
                label: WorkerLabel::Thread {
                    name: (*name).to_string(),
                    tid: *tid,
                },
            },
        );
    }
    s.queue(3);
    s.task(0, 0, 10, Some(110))
        .task(1, 1, 11, Some(111))
        .task(2, 2, 12, Some(112));
    let mut model = Model::new();
    s.apply_to(&mut model);
    for (w, h) in [(120, 30), (80, 24)] {
        let frame = render(&model, &ViewState::default(), ms(200), w, h);
        for (name, tid) in names {
            let row = frame
                .lines()
                .find(|l| l.contains(&format!(" {tid} ")))
                .unwrap_or_else(|| panic!("no lane row shows tid {tid} at {w}x{h}:\n{frame}"));
            let label: String = row.chars().skip(3).take_while(|c| *c != ' ').collect();
            assert!(
                label.starts_with(&name[..2]) && label.ends_with(&name[name.len() - 2..]),
                "{name} shown as {label:?} at {w}x{h}:\n{frame}"
            );
        }
    }
}

#[test]
fn a_worker_killed_after_its_tasks_says_how_in_the_selected_lanes_line() {
    // As loky ends its workers at shutdown: tasks done, then SIGKILL. The words after the
    // lane's timeline do not fit at 80 or 120 columns: the lane said `✗ dead`, never how.
    let config = RunConfig {
        mode: Mode::Process,
        tasks: 2,
        ..RunConfig::default()
    };
    let mut s = Script::start(1, config);
    s.spawn(0, 0).spawn(0, 1).queue(2);
    s.task(0, 0, 5, Some(105)).task(0, 1, 105, Some(205));
    for w in [0, 1] {
        s.at(
            300,
            EventKind::WorkerExited {
                worker: WorkerId(w),
                exit: WorkerExit::Signal(9),
            },
        );
    }
    let mut model = Model::new();
    s.apply_to(&mut model);
    for (selected, (w, h), want) in [
        (
            0,
            (120, 30),
            "└ PID 29895: blocks(1) at 105 ms took 100 ms → 1 · killed by SIGKILL ",
        ),
        (
            0,
            (80, 24),
            "└ PID 29895: blocks(1) at 105 ms took 100 ms → 1 · killed by SIGKILL ",
        ),
        (1, (80, 24), "└ PID 29896: killed by SIGKILL "),
    ] {
        let state = ViewState {
            selected,
            ..ViewState::default()
        };
        let frame = render(&model, &state, ms(400), w, h);
        assert!(frame.contains(want), "{want:?} at {w}x{h}:\n{frame}");
    }
    // Where the whole line does not fit, the task's words alone, as before.
    let state = ViewState::default();
    let frame = render(&model, &state, ms(400), 60, 24);
    assert!(
        frame.contains("└ PID 29895: blocks(1) at 105 ms took 100 ms → 1 ─"),
        "{frame}"
    );
}
