//! Every key of the key table, pressed on a live process run, does what its help says; the
//! help and the footer show what the table holds; the questions and the settings panel.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use poolscope::app::{Action, App};
use poolscope::config::{Mode, RunConfig};
use poolscope::event::{EventKind, Phase, PoolEvent, RunId, WorkerId, WorkerLabel};
use poolscope::keys::{KEYS, Key, KeyAction};
use poolscope::view::{self, Confirm, help::help_rows, text::buffer_to_text};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const NOW: Duration = Duration::from_millis(500);

fn event(run: RunId, kind: EventKind) -> PoolEvent {
    PoolEvent {
        run,
        at: Duration::from_millis(1),
        kind,
    }
}

/// An app whose run `run` is a process pool of `workers` live workers, PIDs 4000….
fn live(app: &mut App, run: RunId, workers: u32) {
    let config = RunConfig {
        mode: Mode::Process,
        workers,
        ..RunConfig::default()
    };
    app.on_event(&event(
        run,
        EventKind::RunStarted {
            config,
            coordinator_pid: 1,
            origin_ns: 0,
            source: Box::default(),
        },
    ));
    for phase in [Phase::Starting, Phase::CreatingTasks, Phase::Waiting] {
        app.on_event(&event(run, EventKind::Phase(phase)));
    }
    for w in 0..workers {
        app.on_event(&event(
            run,
            EventKind::WorkerSpawned {
                worker: WorkerId(w),
                label: WorkerLabel::Process { pid: 4000 + w },
            },
        ));
    }
    app.on_event(&event(run, EventKind::TasksQueued { first: 0, count: 6 }));
}

fn app_with_lanes(workers: u32) -> App {
    let mut app = App::new(RunConfig {
        mode: Mode::Process,
        workers,
        ..RunConfig::default()
    });
    let Action::Start(run, _) = app.start() else {
        panic!("start must start");
    };
    live(&mut app, run, workers);
    app
}

fn press_key(app: &mut App, key: Key) -> Option<Action> {
    let mods = if key.ctrl {
        KeyModifiers::CONTROL
    } else {
        KeyModifiers::NONE
    };
    app.on_key(KeyEvent::new(key.code, mods), NOW)
}

fn press(app: &mut App, code: KeyCode) -> Option<Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE), NOW)
}

fn started_mode(action: Option<Action>) -> Option<Mode> {
    match action {
        Some(Action::Start(_, c)) => Some(c.mode),
        _ => None,
    }
}

/// Checks that pressing `key` (bound to `action`) on a fresh app does what the help says.
fn check(action: KeyAction, key: Key) {
    let mut app = app_with_lanes(3);
    app.view.selected = 1;
    let got = press_key(&mut app, key);
    let what = format!("{key:?} ({action:?}) gave {got:?}");
    match action {
        KeyAction::ToggleMode => assert_eq!(started_mode(got), Some(Mode::Thread), "{what}"),
        KeyAction::Thread => assert_eq!(started_mode(got), Some(Mode::Thread), "{what}"),
        KeyAction::Process => assert_eq!(started_mode(got), Some(Mode::Process), "{what}"),
        KeyAction::Both => {
            assert_eq!(started_mode(got), Some(Mode::Thread), "{what}");
            assert_eq!(app.poll(), None, "the second waits for the first to end");
        }
        KeyAction::Rerun => assert_eq!(started_mode(got), Some(Mode::Process), "{what}"),
        KeyAction::MoreWorkers => {
            assert!(
                matches!(got, Some(Action::Start(_, c)) if c.workers == 4),
                "{what}"
            );
        }
        KeyAction::FewerWorkers => {
            assert!(
                matches!(got, Some(Action::Start(_, c)) if c.workers == 2),
                "{what}"
            );
        }
        KeyAction::Settings => assert!(got.is_none() && app.view.settings.is_some(), "{what}"),
        KeyAction::Pause => assert_eq!(app.view.paused_at, Some(NOW), "{what}"),
        KeyAction::ZoomIn => assert_eq!(app.view.zoom, 1, "{what}"),
        KeyAction::ZoomOut => assert_eq!(app.view.zoom, 0, "{what}"),
        KeyAction::Follow => assert!(app.view.follow && app.view.whole, "{what}"),
        KeyAction::Earlier => {
            assert!(!app.view.follow && app.view.zoom == 1, "{what}");
        }
        KeyAction::Later => assert!(app.view.follow && got.is_none(), "{what}"),
        KeyAction::Up | KeyAction::PageUp | KeyAction::First => {
            assert_eq!(app.view.selected, 0, "{what}");
        }
        KeyAction::Down | KeyAction::PageDown | KeyAction::Last => {
            assert_eq!(app.view.selected, 2, "{what}");
        }
        KeyAction::LogOlder | KeyAction::LogNewer => {
            // The run's few log lines: back by what there is, forward to the newest.
            let back = app.view.log_scroll;
            assert!(got.is_none(), "{what}");
            assert_eq!(back > 0, action == KeyAction::LogOlder, "{what}");
        }
        KeyAction::Kill => assert_eq!(
            app.view.confirm,
            Some(Confirm::Kill {
                run: 1,
                worker: WorkerId(1),
                pid: 4001
            }),
            "{what}"
        ),
        KeyAction::Panic => assert_eq!(got, Some(Action::InjectPanic), "{what}"),
        KeyAction::Export => assert_eq!(got, Some(Action::ExportTrace), "{what}"),
        KeyAction::Help => assert!(app.view.help, "{what}"),
        KeyAction::Quit => assert_eq!(got, Some(Action::Quit), "{what}"),
        KeyAction::Escape => assert_eq!(app.view.confirm, Some(Confirm::Quit), "{what}"),
        KeyAction::Suspend => assert_eq!(got, Some(Action::Suspend), "{what}"),
        KeyAction::Tasks => assert!(
            app.view.table.as_ref().is_some_and(|t| t.lane.is_none()),
            "{what}"
        ),
        KeyAction::Open => assert!(
            app.view.table.as_ref().is_some_and(|t| t.lane == Some(1)),
            "{what}"
        ),
        KeyAction::Filter => assert!(app.view.filter.editing, "{what}"),
        KeyAction::NextMatch | KeyAction::PrevMatch => assert!(
            app.view
                .key_note
                .as_deref()
                .is_some_and(|n| n.contains("/ sets one")),
            "{what}"
        ),
        KeyAction::FailedOnly => assert!(app.view.filter.failed_only, "{what}"),
        KeyAction::SortLeft | KeyAction::SortRight | KeyAction::SortBy => assert!(
            got.is_none()
                && app
                    .view
                    .key_note
                    .as_deref()
                    .is_some_and(|n| n.contains("T opens")),
            "{what}"
        ),
    }
}

#[test]
fn every_key_in_the_table_does_what_its_help_says() {
    for binding in KEYS {
        for key in binding.keys {
            check(binding.action, *key);
        }
    }
}

#[test]
fn the_help_and_the_footer_show_the_key_table() {
    let mut app = app_with_lanes(3);
    press(&mut app, KeyCode::Char('?'));
    let mut terminal = Terminal::new(TestBackend::new(250, 80)).unwrap();
    terminal
        .draw(|f| view::draw(f, &app.model, &app.view, NOW))
        .unwrap();
    let text = buffer_to_text(terminal.backend().buffer());
    for (keys, help) in help_rows() {
        assert!(
            text.contains(&format!("{keys}  {help}")),
            "{keys} missing from the help:\n{text}"
        );
    }
    press(&mut app, KeyCode::Esc);
    terminal
        .draw(|f| view::draw(f, &app.model, &app.view, NOW))
        .unwrap();
    let text = buffer_to_text(terminal.backend().buffer());
    let footer = text.lines().last().unwrap_or_default();
    for (key, what, _) in KEYS.iter().filter_map(|b| b.footer) {
        assert!(footer.contains(&format!(" {key} {what}")), "{footer}");
    }
}

#[test]
fn shift_k_asks_before_it_kills_and_any_other_key_cancels() {
    let mut app = app_with_lanes(3);
    app.view.selected = 2;
    assert_eq!(press(&mut app, KeyCode::Char('K')), None, "K only asks");
    assert!(app.view.confirm.is_some());
    assert_eq!(
        press(&mut app, KeyCode::Char('K')),
        None,
        "a second K cancels"
    );
    assert_eq!(app.view.confirm, None);
    press(&mut app, KeyCode::F(9));
    assert!(app.view.confirm.is_some(), "F9 asks too, as in htop");
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(
        press(&mut app, KeyCode::Char('k')),
        None,
        "k moves up, never kills"
    );
    assert_eq!((app.view.confirm, app.view.selected), (None, 1));
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.view.selected, 2, "j moves down");
    press(&mut app, KeyCode::Char('K'));
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Action::Kill {
            run: 1,
            worker: WorkerId(2)
        })
    );
    assert_eq!(app.view.confirm, None);
}

#[test]
fn after_minus_shrinks_the_pool_the_selection_is_on_a_lane_of_the_new_run() {
    let mut app = app_with_lanes(3);
    press(&mut app, KeyCode::End);
    assert_eq!(app.view.selected, 2);
    let Some(Action::Start(run, config)) = press(&mut app, KeyCode::Char('-')) else {
        panic!("- must start a run");
    };
    assert_eq!(config.workers, 2);
    assert_eq!(app.view.selected, 1, "clamped to the new pool");
    live(&mut app, run, 2);
    // K then asks about a real worker, and one ↑ moves up one lane.
    press(&mut app, KeyCode::Char('K'));
    assert!(matches!(
        app.view.confirm,
        Some(Confirm::Kill { pid: 4001, .. })
    ));
    press(&mut app, KeyCode::Char('n'));
    press(&mut app, KeyCode::Up);
    assert_eq!(app.view.selected, 0);
}

#[test]
fn esc_closes_what_is_open_and_quits_only_from_the_main_screen_after_a_yes() {
    let mut app = app_with_lanes(3);
    press(&mut app, KeyCode::Char('?'));
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert!(!app.view.help && app.view.confirm.is_none());
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert!(app.view.settings.is_none() && app.view.confirm.is_none());
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert_eq!(app.view.confirm, Some(Confirm::Quit));
    assert_eq!(press(&mut app, KeyCode::Char('y')), Some(Action::Quit));
}

#[test]
fn the_settings_panel_edits_every_field_then_runs() {
    let mut app = app_with_lanes(3);
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Right); // mode: process → thread
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('5')); // workers
    press(&mut app, KeyCode::Down);
    for d in ['1', '2'] {
        press(&mut app, KeyCode::Char(d)); // tasks
    }
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Right); // workload: blocks → spin
    press(&mut app, KeyCode::Down);
    for d in ['2', '5', '9'] {
        press(&mut app, KeyCode::Char(d));
    }
    press(&mut app, KeyCode::Backspace); // task-ms 25
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('7')); // seed
    let Some(Action::Start(_, c)) = press(&mut app, KeyCode::Enter) else {
        panic!("Enter must run");
    };
    assert_eq!(
        (
            c.mode,
            c.workers,
            c.tasks,
            c.workload.name(),
            c.task_ms,
            c.seed
        ),
        (Mode::Thread, 5, 12, "spin", 25, 7)
    );
    assert!(app.view.settings.is_none());
}

#[test]
fn b_runs_thread_mode_then_process_mode() {
    let mut app = app_with_lanes(2);
    let Some(Action::Start(first, c)) = press(&mut app, KeyCode::Char('b')) else {
        panic!("b must start a run");
    };
    assert_eq!(c.mode, Mode::Thread);
    app.on_event(&event(
        first,
        EventKind::RunStarted {
            config: c,
            coordinator_pid: 1,
            origin_ns: 0,
            source: Box::default(),
        },
    ));
    assert_eq!(app.poll(), None);
    app.on_event(&event(
        first,
        EventKind::RunFinished {
            finished: 6,
            failed: 0,
            cancelled: 0,
        },
    ));
    assert!(matches!(app.poll(), Some(Action::Start(_, c)) if c.mode == Mode::Process));
    assert_eq!(app.poll(), None, "only once");
}

#[test]
fn the_mouse_selects_the_lane_under_it_and_the_wheel_moves() {
    let mut app = app_with_lanes(3);
    let area = ratatui::layout::Rect::new(0, 0, 120, 40);
    let lanes: Vec<_> = (0..40)
        .filter_map(|y| match view::hit(area, &app.model, &app.view, 10, y) {
            view::Hit::Lane(i) => Some((y, i)),
            _ => None,
        })
        .collect();
    let (y, _) = lanes
        .iter()
        .find(|(_, i)| *i == 2)
        .expect("lane 2 on screen");
    // The row the lane's label is drawn on.
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|f| view::draw(f, &app.model, &app.view, NOW))
        .unwrap();
    let text = buffer_to_text(terminal.backend().buffer());
    let row = text.lines().nth(usize::from(*y)).unwrap_or_default();
    assert!(row.contains("PID 4002"), "{row}");
    app.select_lane(2);
    assert_eq!(app.view.selected, 2);
    app.on_wheel(false, false);
    assert_eq!(app.view.selected, 1);
}
