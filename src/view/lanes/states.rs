//! A lane's state strip: per cell of the timeline, what the kernel says the thread or
//! process mostly did then: ran (`█`), waited for a CPU (`▒`) or slept (`▁`); blank where
//! it was not sampled. Glyphs differ as well as colours, so `mono` and `--ascii` (`#`, `:`,
//! `_`) still tell them apart.

use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use crate::model::states::{LaneStates, Shares};
use crate::view::Theme;

/// Below this share of a cell covered by samples, the cell says nothing.
const MIN_COVERED: f64 = 0.05;

/// The three states a cell can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Running,
    Waiting,
    Sleeping,
}

/// The state that took most of a cell's sampled time (running wins ties), if sampled.
pub(super) fn dominant(s: Shares) -> Option<State> {
    if s.covered < MIN_COVERED {
        return None;
    }
    let running = s.running.min(1.0);
    let sleeping = s.sleeping();
    Some(if running >= s.waiting && running >= sleeping {
        State::Running
    } else if s.waiting >= sleeping {
        State::Waiting
    } else {
        State::Sleeping
    })
}

/// Draws `states` over `window` into the one-row `rect`.
pub(super) fn draw(
    buf: &mut Buffer,
    rect: Rect,
    states: &LaneStates,
    window: (Duration, Duration),
    theme: &Theme,
) {
    let (from, to) = window;
    let width = u32::from(rect.width);
    if width == 0 || to <= from {
        return;
    }
    let span = to.saturating_sub(from);
    for c in 0..width {
        let t0 = from + span * c / width;
        let t1 = from + span * (c + 1) / width;
        let (glyph, style) = match dominant(states.timeline.shares(t0, t1)) {
            Some(State::Running) => ('█', theme.state_running),
            Some(State::Waiting) => ('▒', theme.state_waiting),
            Some(State::Sleeping) => ('▁', theme.state_sleeping),
            None => continue,
        };
        let x = rect.x + u16::try_from(c).unwrap_or(u16::MAX);
        buf[(x, rect.y)].set_char(glyph).set_style(style);
    }
}

/// A task-less lane's status: what it did over the latest sample, with its running share.
pub(super) fn status(states: &LaneStates, theme: &Theme) -> (String, ratatui::style::Style) {
    let r = states.recent;
    let pct = (r.running * 100.0).round();
    match dominant(r) {
        Some(State::Running) => (format!("run {pct:.0}%"), theme.state_running),
        Some(State::Waiting) => ("wait CPU".to_string(), theme.state_waiting),
        Some(State::Sleeping) => ("sleeping".to_string(), theme.dim),
        None => (String::new(), theme.dim),
    }
}

/// A kernel lane's totals for its second row: `cpu 1.23 s · wait 0.40 s`.
pub(super) fn totals(states: &LaneStates, width: usize) -> String {
    let text = format!(
        "cpu {:.2} s · wait {:.2} s",
        states.on_cpu_ns as f64 / 1e9,
        states.wait_ns as f64 / 1e9
    );
    super::labels::fit_text(&text, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biggest_share_wins_and_unsampled_says_nothing() {
        let s = |running, waiting, covered| Shares {
            running,
            waiting,
            covered,
        };
        assert_eq!(dominant(s(0.9, 0.05, 1.0)), Some(State::Running));
        assert_eq!(dominant(s(0.2, 0.6, 1.0)), Some(State::Waiting));
        assert_eq!(dominant(s(0.01, 0.0, 1.0)), Some(State::Sleeping));
        // A process on two cores at once still ran.
        assert_eq!(dominant(s(1.8, 0.1, 1.0)), Some(State::Running));
        assert_eq!(dominant(s(0.0, 0.0, 0.0)), None);
    }
}
