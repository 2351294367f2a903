//! Keys driven into the app state headless: what each key asks the runtime to do.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use poolscope::app::{Action, App};
use poolscope::config::{Mode, RunConfig};

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, code: KeyCode) -> Option<Action> {
    app.on_key(key(code), Duration::from_millis(500))
}

fn started() -> App {
    let mut app = App::new(RunConfig::default());
    assert_eq!(app.start(), Action::Start(1, RunConfig::default()));
    app
}

#[test]
fn m_and_tab_toggle_the_mode_and_request_a_fresh_run() {
    let mut app = started();
    let Some(Action::Start(2, config)) = press(&mut app, KeyCode::Char('m')) else {
        panic!("m must start run 2");
    };
    assert_eq!(config.mode, Mode::Process);
    assert_eq!(config.workers, 3);
    let Some(Action::Start(3, config)) = press(&mut app, KeyCode::Tab) else {
        panic!("Tab must start run 3");
    };
    assert_eq!(config.mode, Mode::Thread);
}

#[test]
fn t_and_p_pick_a_mode_and_r_reruns() {
    let mut app = started();
    assert!(
        matches!(press(&mut app, KeyCode::Char('p')), Some(Action::Start(2, c)) if c.mode == Mode::Process)
    );
    assert!(
        matches!(press(&mut app, KeyCode::Char('p')), Some(Action::Start(3, c)) if c.mode == Mode::Process)
    );
    assert!(
        matches!(press(&mut app, KeyCode::Char('t')), Some(Action::Start(4, c)) if c.mode == Mode::Thread)
    );
    assert!(
        matches!(press(&mut app, KeyCode::Char('r')), Some(Action::Start(5, c)) if c == RunConfig::default())
    );
}

#[test]
fn plus_and_minus_change_the_workers_within_bounds() {
    let mut app = started();
    let Some(Action::Start(_, config)) = press(&mut app, KeyCode::Char('+')) else {
        panic!("+ must start a run");
    };
    assert_eq!(config.workers, 4);
    for _ in 0..3 {
        press(&mut app, KeyCode::Char('-'));
    }
    assert_eq!(app.config.workers, 1);
    assert_eq!(
        press(&mut app, KeyCode::Char('-')),
        None,
        "no pool of 0 workers"
    );
    assert_eq!(app.config.workers, 1);
    assert!(app.view.notice.is_some());
}

#[test]
fn q_and_ctrl_c_quit_and_esc_quits_only_after_a_yes() {
    let mut app = started();
    assert_eq!(press(&mut app, KeyCode::Char('q')), Some(Action::Quit));
    assert_eq!(press(&mut app, KeyCode::Esc), None, "Esc asks first");
    assert_eq!(
        press(&mut app, KeyCode::Char('n')),
        None,
        "any other key: no"
    );
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert_eq!(press(&mut app, KeyCode::Char('y')), Some(Action::Quit));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.on_key(ctrl_c, Duration::ZERO), Some(Action::Quit));
}

#[test]
fn help_opens_and_esc_closes_it_without_quitting() {
    let mut app = started();
    assert_eq!(press(&mut app, KeyCode::Char('?')), None);
    assert!(app.view.help);
    // Keys other than the help's own do nothing while it is open.
    assert_eq!(press(&mut app, KeyCode::Char('m')), None);
    assert_eq!(press(&mut app, KeyCode::Esc), None);
    assert!(!app.view.help);
}

#[test]
fn space_pauses_the_display_and_zoom_and_follow_change_the_view() {
    let mut app = started();
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(app.view.paused_at, Some(Duration::from_millis(500)));
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(app.view.paused_at, None);
    press(&mut app, KeyCode::Char('z'));
    press(&mut app, KeyCode::Char('z'));
    press(&mut app, KeyCode::Char('Z'));
    assert_eq!(app.view.zoom, 1);
    press(&mut app, KeyCode::Char('f'));
    assert!(!app.view.follow);
    assert_eq!(app.view.anchor, Duration::from_millis(500));
    // A new run follows again.
    press(&mut app, KeyCode::Char('r'));
    assert!(app.view.follow);
}

#[test]
fn a_paused_display_shows_the_model_as_it_was_while_events_keep_coming() {
    use poolscope::event::{EventKind, PoolEvent};
    let mut app = started();
    let ev = |kind| PoolEvent {
        run: 1,
        at: Duration::from_millis(1),
        kind,
    };
    app.on_event(&ev(EventKind::RunStarted {
        config: RunConfig::default(),
        coordinator_pid: 1,
        origin_ns: 0,
        source: Box::default(),
    }));
    press(&mut app, KeyCode::Char(' '));
    app.on_event(&ev(EventKind::TasksQueued { first: 0, count: 1 }));
    assert_eq!(
        app.model.run.as_ref().unwrap().submitted,
        1,
        "live model moves on"
    );
    assert_eq!(
        app.shown().run.as_ref().unwrap().submitted,
        0,
        "display holds still"
    );
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(
        app.shown().run.as_ref().unwrap().submitted,
        1,
        "resume shows it all"
    );
}

#[test]
fn arrows_select_lanes_within_the_run() {
    let mut app = started();
    press(&mut app, KeyCode::Down);
    assert_eq!(app.view.selected, 0, "no lanes yet");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.view.selected, 0);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = started();
    let mut release = key(KeyCode::Char('q'));
    release.kind = KeyEventKind::Release;
    assert_eq!(app.on_key(release, Duration::ZERO), None);
}

#[test]
fn k_asks_to_kill_the_selected_worker_of_its_run_and_ctrl_z_suspends() {
    use poolscope::event::{EventKind, PoolEvent, WorkerId, WorkerLabel};
    let mut app = started();
    let ev = |kind| PoolEvent {
        run: 1,
        at: Duration::from_millis(1),
        kind,
    };
    app.on_event(&ev(EventKind::RunStarted {
        config: RunConfig {
            mode: Mode::Process,
            ..RunConfig::default()
        },
        coordinator_pid: 1,
        origin_ns: 0,
        source: Box::default(),
    }));
    app.on_event(&ev(EventKind::WorkerSpawned {
        worker: WorkerId(0),
        label: WorkerLabel::Process { pid: 4242 },
    }));
    assert_eq!(press(&mut app, KeyCode::Char('K')), None, "K asks first");
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Action::Kill {
            run: 1,
            worker: WorkerId(0)
        })
    );
    let ctrl_z = KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert_eq!(app.on_key(ctrl_z, Duration::ZERO), Some(Action::Suspend));
    assert_eq!(app.latest_run(), 1);
}
