//! The dashboard's state machine: keys and pool events in, actions out. No I/O, no clock:
//! the caller passes the time and carries out the actions, so all of it runs headless.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::config::{MAX_WORKERS, Mode, RunConfig};
use crate::event::{PoolEvent, RunId, WorkerId, WorkerLabel, since};
use crate::model::{Lane, Model};
use crate::view::{MAX_ZOOM, ViewState};

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
    pub fn on_key(&mut self, key: KeyEvent, now: Duration) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // A notice answers the key before; the next key makes it go.
        self.view.notice = None;
        if self.view.help {
            return match key.code {
                KeyCode::Char('c') if ctrl => Some(Action::Quit),
                KeyCode::Char('q') => Some(Action::Quit),
                KeyCode::Char('?') | KeyCode::Esc => {
                    self.view.help = false;
                    None
                }
                _ => None,
            };
        }
        if !ctrl && let Some(answer) = self.source_key(key.code, now) {
            return answer;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Quit),
            KeyCode::Char('z') if ctrl => Some(Action::Suspend),
            KeyCode::Char('q') | KeyCode::Esc => Some(Action::Quit),
            KeyCode::Char('m') | KeyCode::Tab => {
                self.config.mode = self.config.mode.toggled();
                Some(self.start())
            }
            KeyCode::Char('t') => {
                self.config.mode = Mode::Thread;
                Some(self.start())
            }
            KeyCode::Char('p') => {
                self.config.mode = Mode::Process;
                Some(self.start())
            }
            KeyCode::Char('r') => Some(self.start()),
            KeyCode::Char('+') | KeyCode::Char('=') => {
                if self.config.workers >= MAX_WORKERS {
                    self.notify(format!("{MAX_WORKERS} workers is the most"));
                    return None;
                }
                self.config.workers += 1;
                Some(self.start())
            }
            KeyCode::Char('-') => {
                if self.config.workers <= 1 {
                    self.notify("a pool needs at least one worker".into());
                    return None;
                }
                self.config.workers -= 1;
                Some(self.start())
            }
            KeyCode::Char(' ') => {
                if self.view.paused_at.is_some() {
                    self.view.paused_at = None;
                    self.frozen = None;
                } else {
                    self.view.paused_at = Some(self.visible_end(now));
                    self.frozen = Some(Box::new(self.model.clone()));
                }
                None
            }
            KeyCode::Char('z') => {
                self.view.zoom = (self.view.zoom + 1).min(MAX_ZOOM);
                None
            }
            KeyCode::Char('Z') => {
                self.view.zoom = self.view.zoom.saturating_sub(1);
                None
            }
            KeyCode::Char('f') => {
                self.view.follow = !self.view.follow;
                self.hold_if_not_following(now);
                None
            }
            KeyCode::Up => {
                self.view.selected = self.view.selected.saturating_sub(1);
                None
            }
            KeyCode::Down => {
                let lanes = self.shown().run.as_ref().map_or(0, |r| r.lanes.len());
                self.view.selected = (self.view.selected + 1).min(lanes.saturating_sub(1));
                None
            }
            KeyCode::Char('?') => {
                self.view.help = true;
                None
            }
            KeyCode::Char('k') => self.kill_selected(),
            KeyCode::Char('e') if self.model.run.is_some() => Some(Action::ExportTrace),
            KeyCode::Char('x') => {
                if self.model.run.as_ref().is_some_and(|r| !r.is_over()) {
                    self.notify("the next task will panic".into());
                    Some(Action::InjectPanic)
                } else {
                    self.notify("no run under way to inject a panic into".into());
                    None
                }
            }
            _ => None,
        }
    }

    /// The action that kills the selected lane's worker, if it is a live process.
    fn kill_selected(&mut self) -> Option<Action> {
        let run = self.model.run.as_ref()?;
        let lane = run.lanes.get(self.view.selected)?;
        let (notice, action) = match lane {
            Lane {
                exited: Some(_), ..
            } => ("that worker is already gone".to_string(), None),
            Lane {
                label: WorkerLabel::Process { pid },
                ..
            } => (
                format!("killing PID {pid}"),
                Some(Action::Kill {
                    run: run.id,
                    worker: lane.worker,
                }),
            ),
            _ => (
                "threads cannot be killed safely; x makes a task panic instead".to_string(),
                None,
            ),
        };
        self.notify(notice);
        action
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
    /// Keys that mean something else, or nothing, for a program or a recording, and the
    /// keys that move in time; `None` leaves the key to the experiment's handling.
    fn source_key(&mut self, code: KeyCode, now: Duration) -> Option<Option<Action>> {
        match code {
            KeyCode::Left => return Some(self.move_in_time(now, false)),
            KeyCode::Right => return Some(self.move_in_time(now, true)),
            _ => {}
        }
        let external = self.external?;
        let what = match external {
            External::Program => "an external program",
            External::Replay => "a replay",
        };
        let key = match code {
            KeyCode::Tab => "Tab".to_string(),
            KeyCode::Char(c @ ('m' | 't' | 'p' | '+' | '=' | '-' | 'k' | 'x' | 's')) => {
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
        let step = (to - from) / 4;
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
