//! The interactive dashboard's loop, generic over the terminal backend and over the stream of
//! inputs (keys, resizes, signals), so it runs against ratatui's `TestBackend` in tests and
//! benchmarks exactly as it runs on a real terminal.
//!
//! Runs live on a [`PoolRuntime`] of their own; the loop only consumes their events, once
//! per frame, so drawing never delays a hand-off.

mod export;
pub mod ingest;
pub mod observer;
mod pool_runtime;
mod runs;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{Event, MouseButton, MouseEvent, MouseEventKind};
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::layout::Rect;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::app::{Action, App};
use crate::config::RunConfig;
use crate::error::DashboardError;
use crate::event::EventBatch;
use crate::monitor::{Monitor, Targets};
use crate::sys::mono_ns;
use crate::view;

pub use export::{create_export, export_run};
pub use ingest::{Ingest, Tap, TraceSink};
pub use pool_runtime::PoolRuntime;
pub use runs::{MAX_LEFTOVER_THREADS, MIN_RESTART};

/// Frames are drawn at most this often (about 30 fps); events are taken in at this pace.
pub const FRAME: Duration = Duration::from_millis(33);
/// How long quitting waits for the runs' workers to be killed and reaped.
pub const QUIT_GRACE: Duration = Duration::from_secs(3);
/// Event batches in flight to the loop: enough for several frames of a busy pool, so a
/// coordinator never waits for the UI to take them.
const EVENT_CAPACITY: usize = 1024;

/// Something from outside the pool that the loop reacts to.
#[derive(Debug)]
pub enum Input {
    /// A terminal event: a key, a resize, a paste.
    Terminal(Event),
    /// The terminal could not be read.
    TerminalFailed(io::Error),
    /// A signal that ends poolscope (SIGINT, SIGTERM, SIGHUP, SIGQUIT), by number.
    Stop(i32),
    /// SIGTSTP: give the terminal back and stop until continued.
    Suspend,
    /// SIGCONT: continued after a stop; take the terminal again and redraw all of it.
    Resume,
}

/// Where the loop draws, and how it hands the terminal back for a job-control stop.
pub trait Screen {
    /// The ratatui backend drawn into.
    type Backend: Backend;
    /// The terminal to draw on.
    fn terminal(&mut self) -> &mut Terminal<Self::Backend>;
    /// Restores the terminal, stops the process, and takes the terminal again once
    /// continued. An off-screen terminal has nothing to give back.
    fn suspend(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Takes the terminal again after someone else had it, and forces a full redraw.
    fn resume(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called after each frame is drawn (a test records what was on screen).
    fn drawn(&mut self) {}
}

impl<B: Backend> Screen for Terminal<B> {
    type Backend = B;
    fn terminal(&mut self) -> &mut Terminal<B> {
        self
    }
}

/// How the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The user quit (or the inputs ended, or the only run finished where that was asked).
    Quit,
    /// A signal ended it; the process should exit with 128 + its number.
    Signal(i32),
}

/// Everything a dashboard session needs besides its screen and inputs.
pub struct Session {
    /// The first run's settings.
    pub config: RunConfig,
    /// The binary re-executed as `poolscope worker`.
    pub worker_exe: PathBuf,
    /// Where runs are spawned (a [`PoolRuntime`]'s handle).
    pub pool: tokio::runtime::Handle,
    /// Sample the workers' CPU and memory this often; `None` for no sampling.
    pub sample: Option<Duration>,
    /// A trace of every run, if asked for.
    pub trace: Option<TraceSink>,
    /// Sees every event (the observer benchmark).
    pub tap: Option<Tap>,
    /// Leave once the first run has finished (the observer benchmark).
    pub quit_when_done: bool,
    /// Where `e` writes its files.
    pub export_dir: PathBuf,
    /// Thread runs wait while more threads of earlier runs than this are alive.
    pub max_leftover_threads: usize,
    /// This machine's raw pipe round trip, shown beside the hand-off figures for scale.
    pub pipe_round_trip: Option<Duration>,
    /// The colours to draw with.
    pub theme: view::Theme,
    /// Draw with ASCII characters only.
    pub ascii: bool,
    /// Gets the summary of the last runs ([`view::text::exit_summary`]) once the loop ends.
    pub summary: Option<tokio::sync::oneshot::Sender<String>>,
    /// What to watch: the experiment (the default), a program, or a recording.
    pub source: SessionSource,
    /// The settings file `w` in the settings panel saves to (none: `--no-config`).
    pub config_file: Option<PathBuf>,
}

/// What a dashboard session watches.
#[derive(Default)]
pub enum SessionSource {
    /// poolscope's own pools running the experiment.
    #[default]
    Experiment,
    /// A program, started afresh by each run (`r` runs it again).
    Program(crate::source::program::ProgramSpec),
    /// A running process (`--pid`), watched from `/proc`.
    Attach(crate::source::kernel::attach::AttachSpec),
    /// A recording, already taken in as run 1 (keeping every span, to zoom into any part).
    Replay(Box<crate::model::Model>),
}

impl Session {
    /// A session of `config` with the usual choices: sampling every `sample`, exports in the
    /// current directory, no trace.
    pub fn new(config: RunConfig, worker_exe: PathBuf, pool: tokio::runtime::Handle) -> Self {
        Session {
            config,
            worker_exe,
            pool,
            sample: None,
            trace: None,
            tap: None,
            quit_when_done: false,
            export_dir: PathBuf::from("."),
            max_leftover_threads: MAX_LEFTOVER_THREADS,
            source: SessionSource::Experiment,
            pipe_round_trip: None,
            theme: view::Theme::default(),
            ascii: false,
            summary: None,
            config_file: None,
        }
    }
}

/// Runs the dashboard until it is quit or a signal ends it. Whatever ends it, every run is
/// stopped before this returns and the trace gets the runs' final events.
pub async fn run_main_loop<S, I>(
    screen: &mut S,
    inputs: I,
    session: Session,
) -> Result<Exit, DashboardError>
where
    S: Screen,
    <S::Backend as Backend>::Error: Send + Sync + 'static,
    I: Stream<Item = Input> + Unpin,
{
    let mut dash = Dashboard::new(screen, session);
    let mut inputs = inputs.fuse();
    let mut inputs_open = true;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let outcome = loop {
        let step = tokio::select! {
            input = inputs.next(), if inputs_open => {
                inputs_open = input.is_some();
                dash.on_input(input)
            }
            _ = tick.tick() => dash.on_tick(),
        };
        match step {
            Ok(None) => {}
            Ok(Some(exit)) => break Ok(exit),
            Err(e) => break Err(e),
        }
    };
    // On an error the runs were not stopped yet; quitting normally already waited for them.
    dash.runs.stop(QUIT_GRACE).await;
    let summary = dash.summary.take();
    let model = dash.close()?;
    if let Some(tx) = summary
        && let Some(text) = view::text::exit_summary(&model)
    {
        // Nobody waiting for it is fine.
        let _ = tx.send(text);
    }
    outcome
}

/// Quitting under way: what to exit with, and since when.
struct Stopping {
    exit: Exit,
    since: Instant,
}

/// The loop's state; one method per thing that can happen.
struct Dashboard<'s, S: Screen> {
    screen: &'s mut S,
    app: App,
    ingest: Ingest,
    runs: runs::Runs,
    events: mpsc::Receiver<EventBatch>,
    batches: Vec<EventBatch>,
    dirty: bool,
    stopping: Option<Stopping>,
    quit_when_done: bool,
    export_dir: PathBuf,
    config_file: Option<PathBuf>,
    summary: Option<tokio::sync::oneshot::Sender<String>>,
    _monitor: Option<Monitor>,
}

impl<'s, S: Screen> Dashboard<'s, S>
where
    <S::Backend as Backend>::Error: Send + Sync + 'static,
{
    fn new(screen: &'s mut S, session: Session) -> Self {
        let (tx, events) = mpsc::channel::<EventBatch>(EVENT_CAPACITY);
        let mut app = App::new(session.config);
        app.view.theme = session.theme;
        app.view.ascii = session.ascii;
        if let Some(rtt) = session.pipe_round_trip {
            app.model.set_pipe_round_trip(rtt);
        }
        let (targets_tx, targets_rx) = watch::channel(Targets::default());
        let monitor = session
            .sample
            .and_then(|period| Monitor::spawn(period, targets_rx, tx.clone()));
        if session.sample.is_some() && monitor.is_none() {
            app.notify("CPU and memory sampling is not available here".into());
        }
        let mut runs = runs::Runs::new(
            session.pool,
            session.worker_exe,
            tx,
            session.max_leftover_threads,
        );
        let mut replayed = false;
        match session.source {
            SessionSource::Experiment => {}
            SessionSource::Program(spec) => {
                runs.watched = Some(std::sync::Arc::new(spec));
                app.external = Some(crate::app::External::Program);
            }
            SessionSource::Attach(spec) => {
                runs.watched = Some(std::sync::Arc::new(spec));
                app.external = Some(crate::app::External::Program);
            }
            SessionSource::Replay(model) => {
                app.external = Some(crate::app::External::Replay);
                let rtt = app.model.pipe_round_trip;
                app.model = *model;
                app.model.pipe_round_trip = rtt;
                // However long the reading took, the whole recording is in the past.
                if let Some(run) = app.model.run.as_mut() {
                    run.place_before(mono_ns());
                }
                replayed = true;
            }
        }
        // The replay's run is the model's run 1: it asks the pools for nothing.
        if let (Action::Start(id, config), false) = (app.start(), replayed) {
            runs.request(id, config);
        }
        Dashboard {
            screen,
            app,
            ingest: Ingest::new(session.trace, Some(targets_tx)).with_tap(session.tap),
            runs,
            events,
            batches: Vec::with_capacity(64),
            dirty: true,
            stopping: None,
            quit_when_done: session.quit_when_done,
            export_dir: session.export_dir,
            config_file: session.config_file,
            summary: session.summary,
            _monitor: monitor,
        }
    }

    /// An input arrived (`None`: the inputs ended, which quits).
    fn on_input(&mut self, input: Option<Input>) -> Result<Option<Exit>, DashboardError> {
        let Some(input) = input else {
            self.begin_stop(Exit::Quit);
            return Ok(None);
        };
        match input {
            Input::Terminal(Event::Key(key)) if self.stopping.is_none() => {
                let now = self.app.now(mono_ns());
                let action = self.app.on_key(key, now);
                self.on_action(action)?;
                self.dirty = true;
            }
            Input::Terminal(Event::Resize(..)) => self.dirty = true,
            Input::Terminal(Event::Mouse(mouse)) if self.stopping.is_none() => {
                self.on_mouse(mouse);
            }
            // A paste is text, never keys: the filter takes it, elsewhere it is ignored.
            Input::Terminal(Event::Paste(text)) if self.stopping.is_none() => {
                self.app.on_paste(&text);
                self.dirty = true;
            }
            // Focus events carry nothing for us; keys while stopping wait for nothing either.
            Input::Terminal(_) => {}
            Input::TerminalFailed(e) if self.stopping.is_none() => {
                return Err(DashboardError::Input(e));
            }
            Input::TerminalFailed(_) => {}
            // A second signal while stopping: leave now.
            Input::Stop(sig) if self.stopping.is_some() => return Ok(Some(Exit::Signal(sig))),
            Input::Stop(sig) => self.begin_stop(Exit::Signal(sig)),
            Input::Suspend => {
                self.screen.suspend().map_err(DashboardError::Terminal)?;
                self.dirty = true;
            }
            Input::Resume => {
                self.screen.resume().map_err(DashboardError::Terminal)?;
                self.dirty = true;
            }
        }
        Ok(None)
    }

    /// A click selects the lane under it; the wheel scrolls the log or moves the selection.
    fn on_mouse(&mut self, mouse: MouseEvent) {
        let Ok(size) = self.screen.terminal().size() else {
            return;
        };
        let area = Rect::new(0, 0, size.width, size.height);
        let hit = view::hit(
            area,
            self.app.shown(),
            &self.app.view,
            mouse.column,
            mouse.row,
        );
        match (mouse.kind, hit) {
            (MouseEventKind::Down(MouseButton::Left), view::Hit::Lane(i)) => {
                self.app.select_lane(i);
            }
            (MouseEventKind::ScrollDown, hit) => self.app.on_wheel(true, hit == view::Hit::Log),
            (MouseEventKind::ScrollUp, hit) => self.app.on_wheel(false, hit == view::Hit::Log),
            _ => return,
        }
        self.dirty = true;
    }

    /// Kills a worker, or says why there is nothing to kill.
    fn kill(&mut self, run: crate::event::RunId, worker: crate::event::WorkerId) {
        if !self.runs.kill(run, worker) {
            self.app.notify("that run is over; nothing to kill".into());
        }
    }

    /// Carries out what a key asked for.
    fn on_action(&mut self, action: Option<Action>) -> Result<(), DashboardError> {
        match action {
            Some(Action::Quit) => self.begin_stop(Exit::Quit),
            Some(Action::Kill { run, worker }) => self.kill(run, worker),
            Some(Action::InjectPanic) => self.runs.inject_panic(),
            Some(Action::ExportTrace) => {
                if let Some(run) = &self.app.model.run {
                    let notice = export_run(&self.export_dir, run);
                    self.app.notify(notice);
                }
            }
            Some(Action::Start(id, config)) => self.runs.request(id, config),
            Some(Action::Suspend) => {
                self.screen.suspend().map_err(DashboardError::Terminal)?;
            }
            Some(Action::SaveSettings(config)) => {
                let notice = match &self.config_file {
                    Some(path) => save_settings(path, &config),
                    None => "no settings file (--no-config)".into(),
                };
                self.app.notify(notice);
            }
            None => {}
        }
        Ok(())
    }

    /// A frame: take in the events, start or reap runs, finish stopping, draw.
    fn on_tick(&mut self) -> Result<Option<Exit>, DashboardError> {
        if self.take_events()? {
            self.dirty = true;
        }
        if self.stopping.is_none() {
            if let Some(action) = self.app.poll() {
                self.on_action(Some(action))?;
            }
            if let Some(wait) = self.runs.start_due(Instant::now()) {
                self.app.notify(wait);
                self.dirty = true;
            }
        }
        let (ended, notice) = self.runs.reap(self.app.latest_run());
        if let Some(notice) = notice {
            self.app.notify(notice);
        }
        self.dirty |= ended;
        if self.quit_when_done && !self.runs.has_pending() && self.runs.all_ended() {
            self.begin_stop(Exit::Quit);
        }
        if let Some(stopping) = &self.stopping {
            if self.runs.all_ended() || stopping.since.elapsed() >= QUIT_GRACE {
                return Ok(Some(stopping.exit));
            }
            let alive = self
                .app
                .model
                .run
                .as_ref()
                .map_or(0, |r| r.lanes.iter().filter(|l| !l.has_exited()).count());
            self.app.notify(format!("stopping {alive} workers…"));
            self.dirty = true;
        }
        self.draw()?;
        Ok(None)
    }

    /// Applies every event that arrived since the last frame; returns whether there were any.
    fn take_events(&mut self) -> Result<bool, DashboardError> {
        // Bounded, so a pool producing as fast as we consume cannot hold the frame forever.
        while self.batches.len() < EVENT_CAPACITY {
            match self.events.try_recv() {
                Ok(batch) => self.batches.push(batch),
                Err(_) => break,
            }
        }
        if self.batches.is_empty() {
            return Ok(false);
        }
        self.ingest
            .apply(&mut self.batches, &mut self.app.model)
            .map_err(DashboardError::Trace)?;
        Ok(true)
    }

    fn draw(&mut self) -> Result<(), DashboardError> {
        if !(self.dirty || self.app.animating()) {
            return Ok(());
        }
        let now = self.app.now(mono_ns());
        let app = &self.app;
        let drawn = self
            .screen
            .terminal()
            .draw(|frame| view::draw(frame, app.shown(), &app.view, now));
        self.dirty = false;
        match drawn {
            Ok(_) => {
                self.screen.drawn();
                Ok(())
            }
            // A signal may have taken the terminal away (SIGHUP); stopping goes on.
            Err(_)
                if matches!(
                    self.stopping,
                    Some(Stopping {
                        exit: Exit::Signal(_),
                        ..
                    })
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(DashboardError::Draw(Box::new(e))),
        }
    }

    /// Starts quitting: every run is aborted, and the loop goes on drawing until they end.
    fn begin_stop(&mut self, exit: Exit) {
        if self.stopping.is_none() {
            self.runs.abort_all();
            self.stopping = Some(Stopping {
                exit,
                since: Instant::now(),
            });
        }
    }

    /// Takes the runs' last events (their workers' exits) into the trace and closes it;
    /// the final model.
    fn close(mut self) -> Result<crate::model::Model, DashboardError> {
        self.events.close();
        while let Ok(batch) = self.events.try_recv() {
            self.batches.push(batch);
        }
        self.ingest
            .apply(&mut self.batches, &mut self.app.model)
            .map_err(DashboardError::Trace)?;
        self.ingest.finish().map_err(DashboardError::Trace)?;
        Ok(self.app.model)
    }
}

/// Writes a run's settings into the settings file (keeping its other keys); what happened, in
/// a few words.
fn save_settings(path: &std::path::Path, config: &RunConfig) -> String {
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(config) else {
        return "these settings cannot be written".into();
    };
    let pairs: Vec<(&str, toml::Value)> =
        table.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    match crate::config_file::save(path, &pairs) {
        Ok(()) => format!("settings saved to {}", path.display()),
        Err(e) => crate::outside_text::printable(&e.to_string()).into_owned(),
    }
}
