//! The one key table: which key does what. The key handler, the `?` help overlay and the
//! footer all read it, so they cannot disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key on the main screen asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAction {
    /// Switch thread ⇄ process and run again.
    ToggleMode,
    /// Run in thread mode.
    Thread,
    /// Run in process mode.
    Process,
    /// Run thread mode, then process mode, to fill the comparison.
    Both,
    /// Run again with the same settings.
    Rerun,
    /// One worker more, then run again.
    MoreWorkers,
    /// One worker fewer, then run again.
    FewerWorkers,
    /// Open the settings panel.
    Settings,
    /// Pause or resume the display.
    Pause,
    /// Zoom in on the timeline.
    ZoomIn,
    /// Zoom out.
    ZoomOut,
    /// Follow the present, or hold the view.
    Follow,
    /// Move the timeline back in time.
    Earlier,
    /// Move it forward (past the end: follow the present again).
    Later,
    /// Select the lane above.
    Up,
    /// Select the lane below.
    Down,
    /// Select the lane a page up.
    PageUp,
    /// Select the lane a page down.
    PageDown,
    /// Select the first lane.
    First,
    /// Select the last lane.
    Last,
    /// Scroll the log panel back.
    LogOlder,
    /// Scroll the log panel forward.
    LogNewer,
    /// Kill the selected worker process (asks first).
    Kill,
    /// Open the task table of the run on screen.
    Tasks,
    /// Open the selected lane's tasks; in the task table, jump to the task.
    Open,
    /// Type a filter over tasks and lanes.
    Filter,
    /// Jump to the next task the filter matches.
    NextMatch,
    /// Jump to the previous one.
    PrevMatch,
    /// Show failed tasks only, or all again.
    FailedOnly,
    /// Sort the task table by the column to the left (again: reverse).
    SortLeft,
    /// Sort it by the column to the right.
    SortRight,
    /// Sort it by the column whose letter is pressed (the table's own keys).
    SortBy,
    /// Make the next task panic.
    Panic,
    /// Export the run on screen as a Chrome trace.
    Export,
    /// Open or close the help.
    Help,
    /// Quit now.
    Quit,
    /// Close what is open; on the main screen, ask to quit.
    Escape,
    /// Give the terminal back and stop (Ctrl-Z).
    Suspend,
}

/// A key: its code, and whether Ctrl is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key's code.
    pub code: KeyCode,
    /// Ctrl must be held.
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn f(n: u8) -> Key {
    code(KeyCode::F(n))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

/// One row of the key table.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// The keys, as the handler matches them.
    pub keys: &'static [Key],
    /// The keys, as the help and the README spell them.
    pub shown: &'static str,
    /// What they do.
    pub action: KeyAction,
    /// The help's line.
    pub help: &'static str,
    /// The footer's hint and its priority (lower survives a narrow terminal longer).
    pub footer: Option<(&'static str, &'static str, u8)>,
    /// The help shows these keys on the row above, whose text covers both.
    pub paired: bool,
}

/// Every key of the main screen, in the order the help lists them.
pub const KEYS: &[Binding] = &[
    Binding {
        keys: &[ch('m'), code(KeyCode::Tab)],
        shown: "m / Tab",
        action: KeyAction::ToggleMode,
        help: "switch thread ⇄ process (cancels the run)",
        footer: Some(("m", "mode", 2)),
        paired: false,
    },
    Binding {
        keys: &[ch('t')],
        shown: "t",
        action: KeyAction::Thread,
        help: "run in thread / process mode",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('p')],
        shown: "p",
        action: KeyAction::Process,
        help: "run in process mode",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[ch('b')],
        shown: "b",
        action: KeyAction::Both,
        help: "run both modes, one after the other",
        footer: Some(("b", "both", 9)),
        paired: false,
    },
    Binding {
        keys: &[ch('r')],
        shown: "r",
        action: KeyAction::Rerun,
        help: "run again",
        footer: Some(("r", "rerun", 3)),
        paired: false,
    },
    Binding {
        keys: &[ch('+'), ch('=')],
        shown: "+",
        action: KeyAction::MoreWorkers,
        help: "one worker more / fewer, then run again",
        footer: Some(("+/-", "workers", 5)),
        paired: false,
    },
    Binding {
        keys: &[ch('-')],
        shown: "-",
        action: KeyAction::FewerWorkers,
        help: "one worker fewer, then run again",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[ch('s')],
        shown: "s",
        action: KeyAction::Settings,
        help: "settings: mode, workers, tasks, workload…",
        footer: Some(("s", "settings", 4)),
        paired: false,
    },
    Binding {
        keys: &[ch(' ')],
        shown: "space",
        action: KeyAction::Pause,
        help: "pause / resume the display",
        footer: Some(("space", "pause", 6)),
        paired: false,
    },
    Binding {
        keys: &[ch('z')],
        shown: "z",
        action: KeyAction::ZoomIn,
        help: "zoom in / out on the timeline",
        footer: Some(("z/Z", "zoom", 7)),
        paired: false,
    },
    Binding {
        keys: &[ch('Z')],
        shown: "Z",
        action: KeyAction::ZoomOut,
        help: "zoom out",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[ch('f')],
        shown: "f",
        action: KeyAction::Follow,
        help: "follow the present / hold the view",
        footer: Some(("f", "follow", 10)),
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::Left)],
        shown: "←",
        action: KeyAction::Earlier,
        help: "move back / forward in time",
        footer: Some(("←/→", "time", 11)),
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::Right)],
        shown: "→",
        action: KeyAction::Later,
        help: "move forward in time",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[code(KeyCode::Up), ch('k')],
        shown: "↑ k",
        action: KeyAction::Up,
        help: "select a lane or a row (mouse: click, wheel)",
        footer: Some(("↑↓", "lane", 8)),
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::Down), ch('j')],
        shown: "↓ j",
        action: KeyAction::Down,
        help: "select the lane below",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[code(KeyCode::PageUp)],
        shown: "PgUp",
        action: KeyAction::PageUp,
        help: "select a lane a page up / down",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::PageDown)],
        shown: "PgDn",
        action: KeyAction::PageDown,
        help: "select the lane a page down",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[code(KeyCode::Home)],
        shown: "Home",
        action: KeyAction::First,
        help: "select the first / last lane",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::End)],
        shown: "End",
        action: KeyAction::Last,
        help: "select the last lane",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[ch('[')],
        shown: "[",
        action: KeyAction::LogOlder,
        help: "scroll the log back / forward",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch(']')],
        shown: "]",
        action: KeyAction::LogNewer,
        help: "scroll the log forward, to the newest",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[ch('K'), f(9)],
        shown: "K / F9",
        action: KeyAction::Kill,
        help: "kill the selected worker process (asks first)",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('T')],
        shown: "T",
        action: KeyAction::Tasks,
        help: "the run's tasks in a table: sort, filter, jump",
        footer: Some(("T", "tasks", 3)),
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::Enter)],
        shown: "Enter",
        action: KeyAction::Open,
        help: "a lane's tasks; in the table: show the task",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('<')],
        shown: "<",
        action: KeyAction::SortLeft,
        help: "table: sort by the column left / right",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('>')],
        shown: ">",
        action: KeyAction::SortRight,
        help: "sort by the column to the right",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[],
        shown: "a l w s d c o e",
        action: KeyAction::SortBy,
        help: "table: sort by that column (again: reverse)",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('/')],
        shown: "/",
        action: KeyAction::Filter,
        help: "filter by text or regex: name, args, lane, error",
        footer: Some(("/", "filter", 3)),
        paired: false,
    },
    Binding {
        keys: &[ch('n')],
        shown: "n",
        action: KeyAction::NextMatch,
        help: "next / previous task that matches",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('N')],
        shown: "N",
        action: KeyAction::PrevMatch,
        help: "previous task that matches",
        footer: None,
        paired: true,
    },
    Binding {
        keys: &[ch('F')],
        shown: "F",
        action: KeyAction::FailedOnly,
        help: "failed tasks only / all tasks",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('x')],
        shown: "x",
        action: KeyAction::Panic,
        help: "make the next task panic",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('e')],
        shown: "e",
        action: KeyAction::Export,
        help: "export the run on screen as a Chrome trace",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ch('?'), f(1)],
        shown: "? / F1",
        action: KeyAction::Help,
        help: "this help, with the legend",
        footer: Some(("?", "help", 1)),
        paired: false,
    },
    Binding {
        keys: &[ch('q'), ctrl('c')],
        shown: "q / Ctrl-C",
        action: KeyAction::Quit,
        help: "quit",
        footer: Some(("q", "quit", 0)),
        paired: false,
    },
    Binding {
        keys: &[code(KeyCode::Esc)],
        shown: "Esc",
        action: KeyAction::Escape,
        help: "close, clear the filter; else quit, after a y",
        footer: None,
        paired: false,
    },
    Binding {
        keys: &[ctrl('z')],
        shown: "Ctrl-Z",
        action: KeyAction::Suspend,
        help: "suspend (fg resumes)",
        footer: None,
        paired: false,
    },
];

/// The action `key` asks for on the main screen, per [`KEYS`].
pub fn action_for(key: &KeyEvent) -> Option<KeyAction> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    KEYS.iter()
        .find(|b| b.keys.iter().any(|k| k.code == key.code && k.ctrl == ctrl))
        .map(|b| b.action)
}

/// The key table's row for `action`.
pub fn binding(action: KeyAction) -> Option<&'static Binding> {
    KEYS.iter().find(|b| b.action == action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_bound_once() {
        let all: Vec<Key> = KEYS.iter().flat_map(|b| b.keys.iter().copied()).collect();
        for (i, k) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(k), "{k:?} is bound twice");
        }
        let actions: Vec<KeyAction> = KEYS.iter().map(|b| b.action).collect();
        for (i, a) in actions.iter().enumerate() {
            assert!(!actions[i + 1..].contains(a), "{a:?} has two rows");
        }
    }

    #[test]
    fn ctrl_c_is_not_c_and_shift_k_is_kill() {
        let plain = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(action_for(&plain), None);
        let c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_for(&c), Some(KeyAction::Quit));
        let k = KeyEvent::new(KeyCode::Char('k'), KeyModifiers::NONE);
        assert_eq!(
            action_for(&k),
            Some(KeyAction::Up),
            "k moves, as in vim and k9s"
        );
        let big_k = KeyEvent::new(KeyCode::Char('K'), KeyModifiers::SHIFT);
        assert_eq!(action_for(&big_k), Some(KeyAction::Kill));
    }
}
