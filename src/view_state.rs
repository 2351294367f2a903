//! What the user chose to look at: zoom, follow, the selection, what is open. The app
//! changes it and the view draws by it; both import it from here, so the app does not reach
//! up into the view for it.

use std::time::Duration;

use crate::event::{RunId, WorkerId};
use crate::explore::{Filter, TableState};
use crate::settings::SettingsForm;
use crate::theme::Theme;

/// What the user chose to look at: zoom, follow, pause, the selected lane, the help overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewState {
    /// 0 fits the whole run; each step halves the visible time span.
    pub zoom: u8,
    /// The visible window's right edge follows the present.
    pub follow: bool,
    /// Following a live run, show all of it rather than its last stretch (`f`).
    pub whole: bool,
    /// The right edge of the window when not following.
    pub anchor: Duration,
    /// The display is frozen at this time of the run.
    pub paused_at: Option<Duration>,
    /// Index of the selected lane.
    pub selected: usize,
    /// The help overlay is open.
    pub help: bool,
    /// A one-line notice from the app (a refused key, a failed start).
    pub notice: Option<String>,
    /// The colours to draw with.
    pub theme: Theme,
    /// Draw with ASCII characters only (`--ascii`, or a locale that is not UTF-8).
    pub ascii: bool,
    /// A question waiting for y/n.
    pub confirm: Option<Confirm>,
    /// The settings panel, while open.
    pub settings: Option<SettingsForm>,
    /// Log lines scrolled back from the newest.
    pub log_scroll: usize,
    /// Rows the help overlay is scrolled down by.
    pub help_scroll: usize,
    /// The task table, while open (`T`, or Enter on a lane).
    pub table: Option<TableState>,
    /// The `/` filter over tasks and lanes.
    pub filter: Filter,
    /// A short word in the footer about the last key (an unknown key), until the next key.
    pub key_note: Option<String>,
    /// Which of the filter's matches `n`/`N` last showed.
    pub match_at: Option<usize>,
    /// The task last jumped to, outlined on the timeline.
    pub marked: Option<crate::event::TaskId>,
}

/// A question the dashboard asks before it does something it cannot undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// Kill this worker process.
    Kill {
        /// The run the worker belongs to.
        run: RunId,
        /// The worker.
        worker: WorkerId,
        /// Its PID, as the question names it.
        pid: u32,
    },
    /// Leave poolscope.
    Quit,
}

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            zoom: 0,
            follow: true,
            whole: false,
            anchor: Duration::ZERO,
            paused_at: None,
            selected: 0,
            help: false,
            notice: None,
            theme: Theme::default(),
            ascii: false,
            confirm: None,
            settings: None,
            log_scroll: 0,
            help_scroll: 0,
            table: None,
            filter: Filter::default(),
            key_note: None,
            match_at: None,
            marked: None,
        }
    }
}

/// The deepest zoom: 2^12 times closer than the whole run.
pub const MAX_ZOOM: u8 = 12;
