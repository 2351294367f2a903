//! The dashboard's state machine: keys and pool events in, actions out. No I/O, no clock:
//! the caller passes the time and carries out the actions, so all of it runs headless.

mod explore;
mod export;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::config::{MAX_WORKERS, Mode, RunConfig};
use crate::event::{PoolEvent, RunId, WorkerId, WorkerLabel, since};
use crate::keys::{self, KeyAction};
use crate::model::{Lane, Model};
use crate::settings::SettingsForm;
use crate::view_state::{Confirm, MAX_ZOOM, ViewState};

/// Lanes that PgUp/PgDn move the selection by.
const LANE_PAGE: usize = 10;
/// Log lines that `[`/`]` scroll by.
const LOG_PAGE: usize = 5;

/// What the app asks its runtime to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Cancel the run under way (if any) and start this one.
    Start(RunId, RunConfig),
    /// Kill this worker of this run (fault injection); its driver ends the child it owns.
    Kill {
        /// The run the worker belongs to.
        run: RunId,
        /// The worker.
        worker: WorkerId,
    },
    /// Make the current run's next task panic (fault injection).
    InjectPanic,
    /// Write the run on screen as a Chrome trace file.
    ExportTrace,
    /// Give the terminal back and stop (Ctrl-Z; in raw mode the terminal sends no SIGTSTP).
    Suspend,
    /// Save these settings to the settings file (`w` in the settings panel).
    SaveSettings(RunConfig),
    /// Stop every run and leave.
    Quit,
}

/// The whole interactive state: the model, the view choices, the next run's settings.
#[derive(Debug)]
pub struct App {
    /// What the pool has reported.
    pub model: Model,
    /// What the user chose to look at.
    pub view: ViewState,
    /// Settings of the next run (mode and workers change with keys).
    pub config: RunConfig,
    /// While paused: the model as it was, drawn instead of the live one, which goes on
    /// taking events so nothing is lost.
    frozen: Option<Box<Model>>,
    /// What is watched: the experiment (`None`), a program or a recording.
    pub external: Option<External>,
    next_run: RunId,
    /// The run and its state when `e` last exported it, so repeats write one file.
    last_export: Option<export::ExportMark>,
    /// `b` is under way: once this (thread) run ends, the process run starts.
    both_next: Option<RunId>,
}

impl App {
    /// A new app that will run `config` first.
    pub fn new(config: RunConfig) -> Self {
        App {
            model: Model::new(),
            view: ViewState::default(),
            config,
            frozen: None,
            external: None,
            next_run: 1,
            last_export: None,
            both_next: None,
        }
    }

    /// The model to draw: the frozen one while paused, else the live one.
    pub fn shown(&self) -> &Model {
        self.frozen.as_deref().unwrap_or(&self.model)
    }

    /// The action that starts a run with the current settings.
    pub fn start(&mut self) -> Action {
        let id = self.next_run;
        self.next_run += 1;
        self.view.paused_at = None;
        self.frozen = None;
        self.view.follow = true;
        self.view.notice = None;
        self.view.log_scroll = 0;
        self.view.marked = None;
        self.view.match_at = None;
        // The new run has this many lanes: a selection past them would select nothing.
        let last = self.config.workers.saturating_sub(1) as usize;
        self.view.selected = self.view.selected.min(last);
        Action::Start(id, self.config.clone())
    }

    /// The id of the latest run asked for (started or not).
    pub fn latest_run(&self) -> RunId {
        self.next_run.saturating_sub(1)
    }

    /// Time into the run on screen at monotonic time `mono_ns`.
    pub fn now(&self, mono_ns: u64) -> Duration {
        self.model
            .run
            .as_ref()
            .map_or(Duration::ZERO, |r| since(r.origin_ns, mono_ns))
    }

    /// Whether the screen changes with time alone (a run is under way and not paused).
    pub fn animating(&self) -> bool {
        self.view.paused_at.is_none() && self.model.run.as_ref().is_some_and(|r| !r.is_over())
    }

    /// Applies a pool event.
    pub fn on_event(&mut self, ev: &PoolEvent) {
        self.model.apply(ev);
    }

    /// Shows a one-line notice in the header until the next run starts.
    pub fn notify(&mut self, notice: String) {
        self.view.notice = Some(notice);
    }

    /// Handles a key pressed at `now` into the run; returns what the runtime must do.
    /// What is open answers first: a question, the settings panel, the help; else the key
    /// table ([`keys::KEYS`]) says what the key does on the main screen.
    pub fn on_key(&mut self, key: KeyEvent, now: Duration) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        // A notice answers the key before; the next key makes it go.
        self.view.notice = None;
        self.view.key_note = None;
        let action = keys::action_for(&key);
        if action == Some(KeyAction::Quit) && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Some(Action::Quit);
        }
        if let Some(confirm) = self.view.confirm.take() {
            return Self::answer(confirm, key);
        }
        if self.view.settings.is_some() {
            return self.settings_key(key);
        }
        if self.view.filter.editing {
            self.filter_key(key);
            return None;
        }
        if self.view.help {
            return self.help_key(action);
        }
        if self.view.table.is_some() && self.table_key(key, action, now) {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if !ctrl && let Some(answer) = self.source_key(key.code) {
            return answer;
        }
        let Some(action) = action else {
            self.unknown_key(key);
            return None;
        };
        self.perform(action, now)
    }

    /// A key while the help is open: it scrolls, closes, or quits.
    fn help_key(&mut self, action: Option<KeyAction>) -> Option<Action> {
        let most = crate::view::help::overlay_rows(&self.view.theme);
        let scroll = &mut self.view.help_scroll;
        match action? {
            KeyAction::Help | KeyAction::Escape => {
                self.view.help = false;
                *scroll = 0;
            }
            KeyAction::Quit => return Some(Action::Quit),
            KeyAction::Up => *scroll = scroll.saturating_sub(1),
            KeyAction::Down => *scroll = (*scroll + 1).min(most),
            KeyAction::PageUp => *scroll = scroll.saturating_sub(LANE_PAGE),
            KeyAction::PageDown => *scroll = (*scroll + LANE_PAGE).min(most),
            KeyAction::First => *scroll = 0,
            KeyAction::Last => *scroll = most,
            _ => {}
        }
        None
    }

    /// The answer to a question: `y` does it, any other key cancels.
    fn answer(confirm: Confirm, key: KeyEvent) -> Option<Action> {
        if !matches!(key.code, KeyCode::Char('y' | 'Y')) {
            return None;
        }
        match confirm {
            Confirm::Kill { run, worker, .. } => Some(Action::Kill { run, worker }),
            Confirm::Quit => Some(Action::Quit),
        }
    }

    /// A key while the settings panel is open: ↑/↓ pick a field, ←/→ (or -/+) change it,
    /// digits type a number, Enter runs, Esc closes without running.
    fn settings_key(&mut self, key: KeyEvent) -> Option<Action> {
        let form = self.view.settings.as_mut()?;
        match key.code {
            KeyCode::Esc => self.view.settings = None,
            KeyCode::Up | KeyCode::BackTab | KeyCode::Char('k') => form.move_field(-1),
            KeyCode::Down | KeyCode::Tab | KeyCode::Char('j') => form.move_field(1),
            KeyCode::Left | KeyCode::Char('-') => form.step(false),
            KeyCode::Right | KeyCode::Char('+' | '=' | ' ') => form.step(true),
            KeyCode::Char(d) if d.is_ascii_digit() => form.type_digit(d),
            KeyCode::Backspace => form.backspace(),
            KeyCode::Char('w') => {
                let config = form.finish()?;
                self.view.settings = Some(SettingsForm::new(config.clone()));
                return Some(Action::SaveSettings(config));
            }
            KeyCode::Enter => {
                let config = form.finish()?;
                self.view.settings = None;
                self.config = config;
                self.both_next = None;
                return Some(self.start());
            }
            _ => {}
        }
        None
    }

    /// Carries out a main-screen key's action.
    fn perform(&mut self, action: KeyAction, now: Duration) -> Option<Action> {
        match action {
            KeyAction::Quit => return Some(Action::Quit),
            KeyAction::Suspend => return Some(Action::Suspend),
            KeyAction::Escape if self.view.filter.is_active() => {
                self.view.filter = crate::explore::Filter::default();
                self.view.match_at = None;
            }
            KeyAction::Escape => self.view.confirm = Some(Confirm::Quit),
            KeyAction::ToggleMode => return Some(self.run_in(self.config.mode.toggled())),
            KeyAction::Thread => return Some(self.run_in(Mode::Thread)),
            KeyAction::Process => return Some(self.run_in(Mode::Process)),
            KeyAction::Both => {
                self.config.mode = Mode::Thread;
                let action = self.start();
                self.both_next = Some(self.latest_run());
                self.notify("thread mode first, then process mode".into());
                return Some(action);
            }
            KeyAction::Rerun => return Some(self.start()),
            KeyAction::MoreWorkers | KeyAction::FewerWorkers => {
                return self.resize_pool(action == KeyAction::MoreWorkers);
            }
            KeyAction::Settings => {
                self.view.settings = Some(SettingsForm::new(self.config.clone()));
            }
            KeyAction::Pause => self.toggle_pause(now),
            KeyAction::ZoomIn => self.view.zoom = (self.view.zoom + 1).min(MAX_ZOOM),
            KeyAction::ZoomOut => self.view.zoom = self.view.zoom.saturating_sub(1),
            KeyAction::Follow => self.follow_key(now),
            KeyAction::Up => self.select_by(-1),
            KeyAction::Down => self.select_by(1),
            KeyAction::PageUp => self.select_by(-(LANE_PAGE as isize)),
            KeyAction::PageDown => self.select_by(LANE_PAGE as isize),
            KeyAction::First => self.select_by(isize::MIN),
            KeyAction::Last => self.select_by(isize::MAX),
            KeyAction::LogOlder => {
                let most = self.shown().log.len().saturating_sub(1);
                self.view.log_scroll = (self.view.log_scroll + LOG_PAGE).min(most);
            }
            KeyAction::LogNewer => {
                self.view.log_scroll = self.view.log_scroll.saturating_sub(LOG_PAGE);
            }
            KeyAction::Earlier => return self.move_in_time(now, false),
            KeyAction::Later => return self.move_in_time(now, true),
            KeyAction::Help => self.view.help = true,
            KeyAction::Kill => self.ask_kill(),
            KeyAction::Export => return self.export(now),
            KeyAction::Panic => return self.inject_panic(),
            _ => self.perform_explore(action, now),
        }
        None
    }

    /// Called once per frame: starts the second half of `b` once the first has ended.
    pub fn poll(&mut self) -> Option<Action> {
        let first = self.both_next?;
        if first != self.latest_run() {
            self.both_next = None;
            return None;
        }
        let over = self
            .model
            .run
            .as_ref()
            .is_some_and(|r| r.id == first && r.is_over());
        if !over {
            return None;
        }
        self.both_next = None;
        self.config.mode = Mode::Process;
        Some(self.start())
    }

    fn run_in(&mut self, mode: Mode) -> Action {
        self.config.mode = mode;
        self.start()
    }

    fn resize_pool(&mut self, more: bool) -> Option<Action> {
        if more && self.config.workers >= MAX_WORKERS {
            self.notify(format!("{MAX_WORKERS} workers is the most"));
            return None;
        }
        if !more && self.config.workers <= 1 {
            self.notify("a pool needs at least one worker".into());
            return None;
        }
        if more {
            self.config.workers += 1;
        } else {
            self.config.workers -= 1;
        }
        Some(self.start())
    }

    fn toggle_pause(&mut self, now: Duration) {
        if self.view.paused_at.is_some() {
            self.view.paused_at = None;
            self.frozen = None;
        } else {
            self.view.paused_at = Some(self.visible_end(now));
            self.frozen = Some(Box::new(self.model.clone()));
        }
    }

    fn inject_panic(&mut self) -> Option<Action> {
        if self.model.run.as_ref().is_some_and(|r| !r.is_over()) {
            self.notify("the next task will panic".into());
            Some(Action::InjectPanic)
        } else {
            self.notify("no run under way to inject a panic into".into());
            None
        }
    }

    /// Lanes on screen.
    fn lane_count(&self) -> usize {
        self.shown().run.as_ref().map_or(0, |r| r.lanes.len())
    }

    /// Moves the selection by `delta` of the lanes shown (those the filter leaves), kept on
    /// a lane that exists.
    fn select_by(&mut self, delta: isize) {
        let Some(run) = self.shown().run.as_ref() else {
            return;
        };
        let visible = crate::explore::lanes_shown(run, &self.view.filter);
        let Some(last) = visible.len().checked_sub(1) else {
            return;
        };
        let from = crate::view::lanes::selected_position(&visible, self.view.selected);
        self.view.selected = visible[from.saturating_add_signed(delta).min(last)];
    }

    /// The selected lane as the timeline shows it (see [`crate::view::lanes::selected_lane`]).
    pub(super) fn selected_lane(&self) -> Option<usize> {
        let run = self.shown().run.as_ref()?;
        crate::view::lanes::selected_lane(run, &self.view)
    }

    /// Selects lane `index` (a mouse click), if there is one.
    pub fn select_lane(&mut self, index: usize) {
        if index < self.lane_count() {
            self.view.selected = index;
        }
    }

    /// The mouse wheel: over the log it scrolls the log, elsewhere it moves the selection.
    pub fn on_wheel(&mut self, down: bool, over_log: bool) {
        if self.view.help || self.view.settings.is_some() || self.view.confirm.is_some() {
            return;
        }
        if over_log {
            let most = self.shown().log.len().saturating_sub(1);
            self.view.log_scroll = if down {
                self.view.log_scroll.saturating_sub(1)
            } else {
                (self.view.log_scroll + 1).min(most)
            };
        } else {
            self.select_by(if down { 1 } else { -1 });
        }
    }

    /// Asks before killing the selected lane's worker, if it is a live process.
    fn ask_kill(&mut self) {
        let Some(selected) = self.selected_lane() else {
            return;
        };
        let Some(run) = self.model.run.as_ref() else {
            return;
        };
        let Some(lane) = run.lanes.get(selected) else {
            return;
        };
        let notice = match lane {
            Lane {
                exited: Some(_), ..
            } => "that worker is already gone",
            Lane {
                label: WorkerLabel::Process { pid },
                ..
            } => {
                self.view.confirm = Some(Confirm::Kill {
                    run: run.id,
                    worker: lane.worker,
                    pid: *pid,
                });
                return;
            }
            _ => "threads cannot be killed safely; x makes a task panic instead",
        };
        self.notify(notice.to_string());
    }

    /// The last moment the display shows: the run's end, the pause, or `now`.
    fn visible_end(&self, now: Duration) -> Duration {
        let end = self
            .model
            .run
            .as_ref()
            .and_then(|r| r.ended_at)
            .map_or(now, |e| e.min(now));
        self.view.paused_at.map_or(end, |p| p.min(end))
    }

    /// `f`: back to following the present; when following already, switch between the last
    /// stretch and the whole run of a live run, or hold the view.
    fn follow_key(&mut self, now: Duration) {
        let live = self.shown().run.as_ref().is_some_and(|r| !r.is_over());
        if !self.view.follow {
            self.view.follow = true;
        } else if live && self.view.zoom == 0 {
            self.view.whole = !self.view.whole;
        } else {
            self.view.follow = false;
            self.hold_if_not_following(now);
        }
    }

    fn hold_if_not_following(&mut self, now: Duration) {
        if !self.view.follow {
            self.view.anchor = self.visible_end(now);
        }
    }
}

/// A source other than the experiment, as far as keys are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum External {
    /// A program watched live: `r` runs it again, `space` pauses the display.
    Program,
    /// A recording: all of it is there; `←`/`→` move in time.
    Replay,
}

impl App {
    /// Keys that mean something else, or nothing, for a program or a recording; `None`
    /// leaves the key to the key table (where ←/→ move in time for every source).
    // `None`: not a key sources treat apart; `Some(None)`: handled, with nothing to do.
    #[allow(clippy::option_option)]
    fn source_key(&mut self, code: KeyCode) -> Option<Option<Action>> {
        let external = self.external?;
        let what = match external {
            External::Program => "an external program",
            External::Replay => "a replay",
        };
        let key = match code {
            KeyCode::Tab => "Tab".to_string(),
            KeyCode::Char(c @ ('m' | 't' | 'p' | 'b' | '+' | '=' | '-' | 'K' | 'x' | 's')) => {
                c.to_string()
            }
            KeyCode::Char(c @ ('r' | ' ')) if external == External::Replay => {
                let c = if c == ' ' {
                    "space".into()
                } else {
                    c.to_string()
                };
                self.notify(format!("{c} does not apply to a replay: ←/→ move in time"));
                return Some(None);
            }
            _ => return None,
        };
        self.notify(format!("{key} does not apply to {what}"));
        Some(None)
    }

    /// Moves the visible window a quarter of its width back or forward in time; moving
    /// forward past the end follows the present again.
    fn move_in_time(&mut self, now: Duration, forward: bool) -> Option<Action> {
        let run = self.shown().run.as_ref()?;
        let (from, to) = crate::view::lanes::window(run, &self.view, now);
        let step = to.saturating_sub(from) / 4;
        let end = run.ended_at.map_or(now, |e| e.min(now));
        if forward {
            let right = to + step;
            self.view.follow = right >= end && self.view.zoom == 0;
            self.view.anchor = right.min(end);
        } else {
            self.view.follow = false;
            // Zoomed out fully, the window is the whole run: zoom in a step to have room.
            if self.view.zoom == 0 {
                self.view.zoom = 1;
            }
            self.view.anchor = to.saturating_sub(step);
        }
        None
    }
}
