//! Draws the model at a given `now` into a ratatui [`Frame`]. No I/O, no clock.

pub mod header;
pub mod help;
pub mod lanes;
pub mod panels;
pub mod svg;
pub mod text;

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use crate::model::Model;

/// Smallest terminal the dashboard draws in; below it, a message says so.
pub const MIN_WIDTH: u16 = 44;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 12;

/// What the user chose to look at: zoom, follow, pause, the selected lane, the help overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewState {
    /// 0 fits the whole run; each step halves the visible time span.
    pub zoom: u8,
    /// The visible window's right edge follows the present.
    pub follow: bool,
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
}

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            zoom: 0,
            follow: true,
            anchor: Duration::ZERO,
            paused_at: None,
            selected: 0,
            help: false,
            notice: None,
        }
    }
}

/// The deepest zoom: 2^12 times closer than the whole run.
pub const MAX_ZOOM: u8 = 12;

/// Draws the whole dashboard at `now` (time since the current run started).
pub fn draw(frame: &mut Frame, model: &Model, state: &ViewState, now: Duration) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let now = state.paused_at.map_or(now, |p| p.min(now));
    let lanes_wanted = model.run.as_ref().map_or(1, |r| r.lanes.len().max(1)) as u16 + 3;
    let [header_area, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    // Lanes first; panels get what is left if that is enough to be useful.
    let panels_min = 5;
    let lanes_height = if body.height >= lanes_wanted + panels_min {
        lanes_wanted
    } else {
        body.height
            .saturating_sub(panels_min)
            .max(body.height.min(4))
    };
    let [lanes_area, panels_area] =
        Layout::vertical([Constraint::Length(lanes_height), Constraint::Min(0)]).areas(body);

    header::draw(frame, header_area, model, state, now);
    lanes::draw(frame, lanes_area, model, state, now);
    if panels_area.height >= 3 {
        panels::draw(frame, panels_area, model);
    }
    help::footer(frame, footer, state);
    if state.help {
        help::overlay(frame, area);
    }
}

/// The message shown instead of a dashboard that cannot fit.
fn too_small(frame: &mut Frame, area: Rect) {
    let msg = vec![
        Line::from("terminal too small"),
        Line::from(format!(
            "{}×{}, need {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        )),
    ];
    let y = area.height.saturating_sub(2) / 2;
    let rect = Rect::new(
        area.x,
        area.y + y,
        area.width,
        area.height.saturating_sub(y).min(2),
    );
    frame.render_widget(
        Paragraph::new(msg)
            .centered()
            .style(Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)),
        rect,
    );
}

/// A duration the way the dashboard prints it: `850 ms`, `1.25 s`, `2 m 05 s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{} µs", d.as_micros())
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.2} s")
    } else {
        format!("{} m {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A byte count the way the dashboard prints it: `812K`, `12.3M`, `1.1G`.
pub fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1}G", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1}M", b / 1e6)
    } else {
        format!("{:.0}K", b / 1e3)
    }
}

/// A rate the way the dashboard prints it: `2.0/s`, `1.2k/s`, `3.4M/s`.
pub fn fmt_rate(per_s: f64) -> String {
    format!("{}/s", fmt_count(per_s))
}

/// A large number, short: `2.0`, `950`, `1.2k`, `3.4M`.
pub fn fmt_count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else if n >= 100.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}
