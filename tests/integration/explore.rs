//! Exploring a run: the task table (`T`), its sort, Enter on a task and on a lane, the `/`
//! filter with `n`, `j`/`k`, pastes, and `e` pressed many times: headless on the main screen
//! and end to end through the dashboard's loop with a real pool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use poolscope::dashboard::{Exit, Input, PoolRuntime, Screen, Session, run_main_loop};
use poolscope::explore::{Column, State};
use poolscope::view::text::buffer_to_text;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;

use crate::common::{TEST_LIMIT, exe};
use crate::dashboard::{main_app, render_app};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn press(app: &mut poolscope::app::App, code: KeyCode) {
    let mods = if matches!(code, KeyCode::Char(c) if c.is_ascii_uppercase()) {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    app.on_key(KeyEvent::new(code, mods), ms(700));
}

fn typed(app: &mut poolscope::app::App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

#[test]
fn t_opens_the_task_table_sorted_by_any_column_at_80x24_and_120x40() {
    let mut app = main_app(&[KeyCode::Char('T')]);
    let (rows, _) = app.table_rows(ms(700));
    assert!(rows.len() > 10, "{rows:?}");
    let by_start: Vec<_> = rows.iter().map(|r| r.start).collect();
    assert!(by_start.is_sorted(), "by start first");
    press(&mut app, KeyCode::Char('d'));
    let (rows, _) = app.table_rows(ms(700));
    assert!(
        rows.windows(2).all(|w| w[0].duration >= w[1].duration),
        "d sorts by duration, longest first"
    );
    let table = app.view.table.clone().unwrap();
    assert_eq!((table.sort, table.descending), (Column::Duration, true));
    for (w, h) in [(80, 24), (120, 40)] {
        let text = buffer_to_text(&render_app(&app, w, h));
        assert!(text.contains("by duration ↓"), "{text}");
        assert!(text.contains("mixed(9)") || w == 80, "{text}");
        insta::assert_snapshot!(format!("task_table_{w}x{h}"), text);
    }
    press(&mut app, KeyCode::Char('d'));
    let (rows, _) = app.table_rows(ms(700));
    assert!(
        rows.windows(2).all(|w| w[0].duration <= w[1].duration),
        "again: reversed"
    );
    press(&mut app, KeyCode::Char('>'));
    assert_eq!(app.view.table.as_ref().unwrap().sort, Column::Cpu);
    press(&mut app, KeyCode::Char('<'));
    press(&mut app, KeyCode::Char('<'));
    assert_eq!(app.view.table.as_ref().unwrap().sort, Column::Start);
    press(&mut app, KeyCode::Char('o'));
    let (rows, _) = app.table_rows(ms(700));
    assert_eq!(rows[0].state, State::Failed, "failed sort first by outcome");
    assert_eq!(rows[0].error.as_deref(), Some("mixed(9) raised: disk full"));
}

#[test]
fn j_and_k_move_in_the_table_and_enter_shows_the_task_on_the_timeline() {
    let mut app = main_app(&[KeyCode::Char('T'), KeyCode::Char('d')]);
    let (rows, _) = app.table_rows(ms(700));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.view.table.as_ref().unwrap().cursor, 1);
    press(&mut app, KeyCode::Char('k'));
    let longest = rows[0].clone();
    press(&mut app, KeyCode::Enter);
    assert!(app.view.table.is_none(), "Enter closes the table");
    assert_eq!(
        app.view.selected, longest.lane,
        "and selects the task's lane"
    );
    assert!(!app.view.follow, "the view holds on the task");
    let run = app.model.run.as_ref().unwrap();
    let (from, to) = poolscope::view::lanes::window(run, &app.view, ms(700));
    assert!(
        from <= longest.start && longest.start + longest.duration <= to,
        "the task is in the window {from:?}..{to:?}: {longest:?}"
    );
    let notice = app.view.notice.clone().unwrap();
    assert!(notice.contains(&longest.name), "{notice}");
    let buf = render_app(&app, 120, 40);
    let outlined = buf
        .content()
        .iter()
        .filter(|c| c.modifier.contains(ratatui::style::Modifier::UNDERLINED))
        .count();
    assert!(
        outlined >= 2,
        "the task's bar is outlined ({outlined} cells)"
    );
}

#[test]
fn enter_on_a_lane_opens_its_tasks_with_a_duration_histogram() {
    let mut app = main_app(&[KeyCode::Char('j'), KeyCode::Enter]);
    assert_eq!(app.view.selected, 2, "j moved down a lane first");
    let table = app.view.table.clone().unwrap();
    assert_eq!(table.lane, Some(2));
    let (rows, _) = app.table_rows(ms(700));
    assert!(!rows.is_empty() && rows.iter().all(|r| r.lane == 2));
    let text = buffer_to_text(&render_app(&app, 120, 40));
    assert!(
        text.contains("tasks on PID") && text.contains("durations "),
        "{text}"
    );
    insta::assert_snapshot!("lane_tasks_120x40", text);
    press(&mut app, KeyCode::Esc);
    assert!(app.view.table.is_none());
}

#[test]
fn slash_filters_by_text_or_regex_and_n_goes_from_match_to_match() {
    let mut app = main_app(&[KeyCode::Char('/')]);
    assert!(app.view.filter.editing);
    typed(&mut app, r"mixed\(1[0-4]\)");
    press(&mut app, KeyCode::Enter);
    assert!(!app.view.filter.editing);
    assert_eq!(app.view.filter.pattern, r"mixed\(1[0-4]\)");
    press(&mut app, KeyCode::Char('n'));
    let first = (app.view.selected, app.view.anchor, app.view.notice.clone());
    assert!(
        first.2.as_deref().unwrap().contains("match 1 of"),
        "{first:?}"
    );
    assert!(first.2.as_deref().unwrap().contains("mixed(1"), "{first:?}");
    press(&mut app, KeyCode::Char('n'));
    let second = app.view.notice.clone().unwrap();
    assert!(second.contains("match 2 of"), "{second}");
    press(&mut app, KeyCode::Char('N'));
    assert_eq!(
        app.view.notice.as_deref(),
        first.2.as_deref(),
        "N goes back"
    );
    for (w, h) in [(80, 24), (120, 40)] {
        let mut shown = main_app(&[KeyCode::Char('/')]);
        typed(&mut shown, r"mixed\(1[0-4]\)");
        press(&mut shown, KeyCode::Enter);
        press(&mut shown, KeyCode::Char('T'));
        let (rows, _) = shown.table_rows(ms(700));
        assert!(!rows.is_empty() && rows.iter().all(|r| r.name.starts_with("mixed(1")));
        let text = buffer_to_text(&render_app(&shown, w, h));
        insta::assert_snapshot!(format!("filtered_table_{w}x{h}"), text);
    }
    // Esc clears the filter before it asks to quit.
    press(&mut app, KeyCode::Esc);
    assert!(!app.view.filter.is_active() && app.view.confirm.is_none());
    press(&mut app, KeyCode::Char('F'));
    press(&mut app, KeyCode::Char('T'));
    let (rows, _) = app.table_rows(ms(700));
    assert_eq!(rows.len(), 1, "failed only: {rows:?}");
}

#[test]
fn a_filter_hides_the_lanes_without_a_match_and_j_k_move_among_the_rest() {
    let mut app = main_app(&[KeyCode::Char('F')]);
    let all = app.model.run.as_ref().unwrap().lanes.len();
    let run = app.model.run.as_ref().unwrap();
    let shown = poolscope::explore::lanes_shown(run, &app.view.filter);
    // The run's one failed task is on one lane: that lane alone is left.
    assert_eq!(shown.len(), 1, "{shown:?} of {all}");
    let failed_lane = shown[0];
    let text = buffer_to_text(&render_app(&app, 120, 40));
    assert!(text.contains(&format!("1 of {all} lanes match")), "{text}");
    insta::assert_snapshot!("failed_only_lanes_120x40", text);
    for key in ['j', 'k', 'j'] {
        press(&mut app, KeyCode::Char(key));
        assert_eq!(
            app.view.selected, failed_lane,
            "{key} stays among the lanes shown"
        );
    }
    // Enter opens the lane shown, not the hidden one selected before the filter.
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view.table.as_ref().unwrap().lane, Some(failed_lane));
    press(&mut app, KeyCode::Char('T'));
    assert!(app.view.table.is_none());
    // A pattern that nothing matches leaves no lane, and says so.
    press(&mut app, KeyCode::Char('F'));
    press(&mut app, KeyCode::Char('/'));
    typed(&mut app, "no-such-task");
    press(&mut app, KeyCode::Enter);
    let text = buffer_to_text(&render_app(&app, 80, 24));
    assert!(text.contains("no lane holds a task that matches"), "{text}");
    // Esc clears the filter: every lane is back.
    press(&mut app, KeyCode::Esc);
    let run = app.model.run.as_ref().unwrap();
    assert_eq!(
        poolscope::explore::lanes_shown(run, &app.view.filter).len(),
        all
    );
}

#[test]
fn a_filter_being_typed_shows_in_the_footer_and_takes_a_paste_bounded() {
    let mut app = main_app(&[KeyCode::Char('/')]);
    typed(&mut app, "disk");
    let text = buffer_to_text(&render_app(&app, 80, 24));
    assert!(text.lines().last().unwrap().contains("/disk"), "{text}");
    app.on_paste(&"x".repeat(2 << 20));
    assert_eq!(
        app.view.filter.pattern.chars().count(),
        poolscope::explore::FILTER_MAX
    );
    press(&mut app, KeyCode::Esc);
    assert!(app.view.filter.pattern.is_empty());
    app.on_paste(&"e".repeat(2 << 20));
    assert!(app.view.key_note.as_deref().unwrap().contains("ignored"));
    assert_eq!(app.view.table, None);
}

#[test]
fn an_unknown_key_says_so_in_the_footer() {
    let app = main_app(&[KeyCode::Char('y')]);
    let text = buffer_to_text(&render_app(&app, 80, 24));
    assert!(
        text.lines().last().unwrap().contains("y: no such key"),
        "{text}"
    );
}

#[test]
fn e_pressed_many_times_asks_for_one_export_per_state() {
    let mut app = main_app(&[]);
    let exports = (0..200)
        .filter(|_| {
            app.on_key(
                KeyEvent::new(KeyCode::Char('e'), KeyModifiers::NONE),
                ms(700),
            )
            .is_some()
        })
        .count();
    assert_eq!(exports, 1);
}

/// An off-screen terminal that keeps the text of the last frame.
struct LastFrame {
    terminal: Terminal<TestBackend>,
    text: Arc<Mutex<String>>,
}

impl Screen for LastFrame {
    type Backend = TestBackend;
    fn terminal(&mut self) -> &mut Terminal<TestBackend> {
        &mut self.terminal
    }
    fn drawn(&mut self) {
        *self.text.lock().unwrap() = buffer_to_text(self.terminal.backend().buffer());
    }
}

fn key(c: char) -> Input {
    let mods = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Input::Terminal(Event::Key(KeyEvent::new(KeyCode::Char(c), mods)))
}

fn code(code: KeyCode) -> Input {
    Input::Terminal(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

async fn until_shown(text: &Arc<Mutex<String>>, what: &str) -> String {
    let end = std::time::Instant::now() + TEST_LIMIT / 2;
    loop {
        let now = text.lock().unwrap().clone();
        if now.contains(what) {
            return now;
        }
        assert!(
            std::time::Instant::now() < end,
            "never shown: {what}\n{now}"
        );
        tokio::time::sleep(ms(20)).await;
    }
}

#[tokio::test]
async fn the_loop_explores_a_real_run_and_a_big_paste_writes_nothing() {
    let pool = PoolRuntime::start().unwrap();
    let dir = tempdir("loop");
    let config = poolscope::config::RunConfig {
        workers: 3,
        tasks: 24,
        task_ms: 20,
        workload: poolscope::workload::Workload::Mixed,
        ..poolscope::config::RunConfig::default()
    };
    let mut session = Session::new(config, exe(), pool.handle().clone());
    session.export_dir = dir.clone();
    let settings_file = dir.join("settings").join("config.toml");
    session.config_file = Some(settings_file.clone());
    let text = Arc::new(Mutex::new(String::new()));
    let mut screen = LastFrame {
        terminal: Terminal::new(TestBackend::new(120, 40)).unwrap(),
        text: Arc::clone(&text),
    };
    let (tx, rx) = mpsc::channel(64);
    let inputs = poolscope::term::input_stream(rx);
    let driver = async {
        until_shown(&text, "finished").await;
        tx.send(key('T')).await.unwrap();
        until_shown(&text, "tasks of run 1: 24").await;
        tx.send(key('d')).await.unwrap();
        until_shown(&text, "by duration ↓").await;
        tx.send(code(KeyCode::Enter)).await.unwrap();
        until_shown(&text, "workers").await;
        tx.send(key('/')).await.unwrap();
        for c in "mixed(7)".chars() {
            tx.send(key(c)).await.unwrap();
        }
        tx.send(code(KeyCode::Enter)).await.unwrap();
        tx.send(key('n')).await.unwrap();
        until_shown(&text, "match 1 of 1").await;
        // 2 MB pasted: text, never 2 million presses of e, r and q.
        let paste = "erq".repeat(700_000);
        tx.send(Input::Terminal(Event::Paste(paste))).await.unwrap();
        until_shown(&text, "paste of 2100000 characters ignored").await;
        tx.send(key('K')).await.unwrap();
        until_shown(&text, "that worker is already gone").await;
        for _ in 0..50 {
            tx.send(key('e')).await.unwrap();
        }
        until_shown(&text, "already exported").await;
        // The settings panel saves to the settings file, and says so.
        tx.send(key('s')).await.unwrap();
        tx.send(key('w')).await.unwrap();
        until_shown(&text, "settings saved to").await;
        tx.send(code(KeyCode::Esc)).await.unwrap();
        tx.send(key('q')).await.unwrap();
    };
    let run = run_main_loop(&mut screen, inputs, session);
    let (exit, ()) = tokio::time::timeout(TEST_LIMIT, async { tokio::join!(run, driver) })
        .await
        .expect("the loop ends");
    assert_eq!(exit.unwrap(), Exit::Quit);
    let saved = std::fs::read_to_string(&settings_file).unwrap();
    assert!(
        saved.contains("workers = 3") && saved.contains("workload = \"mixed\""),
        "{saved}"
    );
    let exports = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(exports, 1, "50 presses of e wrote one export");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("poolscope-explore-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn w_in_the_settings_panel_asks_to_save_them_and_the_file_keeps_other_keys() {
    let mut app = main_app(&[KeyCode::Char('s'), KeyCode::Down, KeyCode::Char('7')]);
    let action = app.on_key(
        KeyEvent::new(KeyCode::Char('w'), KeyModifiers::NONE),
        ms(700),
    );
    let Some(poolscope::app::Action::SaveSettings(config)) = action else {
        panic!("w must save: {action:?}");
    };
    assert_eq!(config.workers, 7);
    assert!(app.view.settings.is_some(), "the panel stays open");
    let dir = tempdir("save");
    let path = dir.join("poolscope").join("config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "theme = \"light\"\nworkers = 2\n").unwrap();
    let table = toml::Value::try_from(&config).unwrap();
    let pairs: Vec<(&str, toml::Value)> = table
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    poolscope::config_file::save(&path, &pairs).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("theme = \"light\"") && text.contains("workers = 7"),
        "{text}"
    );
    // Never through a symlink.
    let link = dir.join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(poolscope::config_file::save(&link, &pairs).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `poolscope` with `XDG_CONFIG_HOME` pointing at `dir`.
fn with_config(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(exe())
        .args(args)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("POOLSCOPE_EVENTS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_settings_file_is_read_by_every_command_and_options_win() {
    let dir = tempdir("config");
    std::fs::create_dir_all(dir.join("poolscope")).unwrap();
    let file = dir.join("poolscope/config.toml");
    std::fs::write(
        &file,
        "tasks = 3\ntask-ms = 1\nsample-ms = 1000\ntheme = \"mono\"\n",
    )
    .unwrap();
    let out = with_config(&dir, &["log"]);
    let log = String::from_utf8_lossy(&out.stdout);
    let results = |log: &str| {
        let line = log
            .lines()
            .find(|l| l.contains("results: ["))
            .unwrap_or_default()
            .to_string();
        line.matches(',').count() + 1
    };
    assert_eq!(results(&log), 3, "tasks = 3 from the file: {log}");
    let out = with_config(&dir, &["log", "-n", "2"]);
    assert_eq!(
        results(&String::from_utf8_lossy(&out.stdout)),
        2,
        "-n 2 wins"
    );
    let shown = with_config(&dir, &["config", "-w", "4"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(&file.display().to_string()), "{shown}");
    for line in [
        "tasks = 3",
        "workers = 4",
        "sample-ms = 1000",
        "theme = \"mono\"",
    ] {
        assert!(shown.contains(line), "{line} in {shown}");
    }
    let none = with_config(&dir, &["config", "--no-config"]);
    assert!(String::from_utf8_lossy(&none.stdout).contains("tasks = 6"));
    std::fs::write(&file, "tasks = 3\nworkers = \"many\"\n").unwrap();
    let bad = with_config(&dir, &["log"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("config.toml") && err.contains("line 2") && err.contains("workers"),
        "{err}"
    );
    std::fs::write(&file, "wrkers = 3\n").unwrap();
    let err = with_config(&dir, &["snapshot"]);
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("`wrkers`: no such setting"));
    let ok = with_config(&dir, &["log", "--no-config", "-n", "1", "--task-ms", "1"]);
    assert!(ok.status.success(), "--no-config reads nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_long_live_run_slides_over_its_last_30_s_and_f_shows_all_of_it() {
    use poolscope::event::{EventKind, PoolEvent, WorkerId, WorkerLabel};
    let config = poolscope::config::RunConfig {
        workers: 2,
        tasks: 200,
        task_ms: 1000,
        ..poolscope::config::RunConfig::default()
    };
    let mut app = poolscope::app::App::new(config.clone());
    let ev = |at: u64, kind| PoolEvent {
        run: 1,
        at: Duration::from_secs(at),
        kind,
    };
    app.on_event(&ev(
        0,
        EventKind::RunStarted {
            config,
            coordinator_pid: 1,
            origin_ns: 0,
            source: Box::default(),
        },
    ));
    app.on_event(&ev(
        0,
        EventKind::WorkerSpawned {
            worker: WorkerId(0),
            label: WorkerLabel::Process { pid: 7 },
        },
    ));
    let now = Duration::from_secs(40);
    let run = app.model.run.as_ref().unwrap();
    let window = poolscope::view::lanes::window(run, &app.view, now);
    assert_eq!(window, (Duration::from_secs(10), now), "the last 30 s");
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|f| poolscope::view::draw(f, &app.model, &app.view, now))
        .unwrap();
    let text = buffer_to_text(terminal.backend().buffer());
    assert!(text.contains("last 30.00 s (f: whole run)"), "{text}");
    app.on_key(KeyEvent::new(KeyCode::Char('f'), KeyModifiers::NONE), now);
    let run = app.model.run.as_ref().unwrap();
    let (from, to) = poolscope::view::lanes::window(run, &app.view, now);
    assert_eq!(from, Duration::ZERO, "f: the whole run");
    assert!(to >= Duration::from_secs(100), "{to:?}");
}

#[test]
fn snapshot_title_makes_a_picture_with_a_legend_and_no_key_hints() {
    let dir = tempdir("picture");
    let args = [
        "snapshot",
        "--no-config",
        "-n",
        "4",
        "--task-ms",
        "5",
        "--title",
        "my pool",
        "--color",
        "never",
    ];
    let out = with_config(&dir, &args);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 41, "one row taller: {text}");
    assert!(lines[0].contains("my pool") && lines[1].contains("poolscope"));
    assert!(
        lines[40].contains("sleep / I/O") && !text.contains("q quit"),
        "{text}"
    );
    let mut svg_args = args.to_vec();
    svg_args.extend(["--svg", "-"]);
    let svg = with_config(&dir, &svg_args);
    let svg = String::from_utf8_lossy(&svg.stdout);
    assert!(svg.starts_with("<svg") && svg.contains("my pool") && svg.contains("failed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn j_and_k_move_in_the_settings_panel_and_the_help() {
    let mut app = main_app(&[KeyCode::Char('s')]);
    let field =
        |app: &poolscope::app::App| format!("{:?}", app.view.settings.as_ref().unwrap().current());
    let first = field(&app);
    press(&mut app, KeyCode::Char('j'));
    assert_ne!(field(&app), first);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(field(&app), first);
    press(&mut app, KeyCode::Esc);
    let mut app = main_app(&[KeyCode::F(1)]);
    assert!(app.view.help, "F1 opens the help");
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.view.help_scroll, 1);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.view.help_scroll, 0);
}
