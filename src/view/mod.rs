//! Draws the model at a given `now` into a ratatui [`Frame`]. No I/O, no clock.

pub mod ascii;
pub mod dialog;
pub mod header;
pub mod help;
pub mod lanes;
pub mod panels;
pub mod picture;
pub mod svg;
pub mod tasks;
pub mod text;

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use crate::model::Model;
pub use crate::theme::Theme;
pub use crate::view_state::{Confirm, MAX_ZOOM, ViewState};

/// Smallest terminal the dashboard draws in; below it, a message says so.
pub const MIN_WIDTH: u16 = 44;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 12;

/// Rows of the compact thread-vs-process summary shown under the lanes on narrow screens.
const SUMMARY_ROWS: u16 = 3;
/// Rows the results and log panels need to be worth drawing (borders included).
const PANELS_MIN: u16 = 5;

/// Where each part of the screen goes.
struct Areas {
    header: Rect,
    lanes: Rect,
    summary: Option<Rect>,
    panels: Option<Rect>,
    footer: Rect,
}

/// Splits the screen: lanes first, then (narrow screens) the compact summary, then the panels.
/// Lanes get up to three rows each when there is room, so a few workers fill a tall screen.
fn layout(area: Rect, lanes: u16, folded: bool) -> (Areas, u16) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let wide = area.width >= panels::WIDE;
    let summary_rows = if wide { 0 } else { SUMMARY_ROWS };
    let extra = 3 + u16::from(folded); // borders and the axis, the folded-lanes line
    let lanes = lanes.max(1);
    // The tallest lanes that leave room for the summary and useful panels; else one row each.
    let per_lane = [3u16, 2, 1]
        .into_iter()
        .find(|h| lanes * h + extra + summary_rows + PANELS_MIN + 2 <= body.height)
        .unwrap_or(1);
    let wanted = lanes * per_lane + extra;
    let lanes_height = wanted.min(
        body.height
            .saturating_sub(summary_rows)
            .max(4.min(body.height)),
    );
    let [lanes_area, rest] =
        Layout::vertical([Constraint::Length(lanes_height), Constraint::Min(0)]).areas(body);
    let (summary, panels) = if wide {
        (None, (rest.height >= 3).then_some(rest))
    } else {
        let rows = summary_rows.min(rest.height);
        let [s, p] = Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(rest);
        ((s.height >= 2).then_some(s), (p.height >= 3).then_some(p))
    };
    let areas = Areas {
        header,
        lanes: lanes_area,
        summary,
        panels,
        footer,
    };
    (areas, per_lane)
}

/// Draws the whole dashboard at `now` (time since the current run started). Whatever outside
/// text reached a cell, no cell holds anything that would act on a terminal.
pub fn draw(frame: &mut Frame, model: &Model, state: &ViewState, now: Duration) {
    draw_cells(frame, model, state, now);
    crate::outside_text::clean_buffer(frame.buffer_mut());
}

fn draw_cells(frame: &mut Frame, model: &Model, state: &ViewState, now: Duration) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area, &state.theme);
        if state.ascii {
            ascii::asciify(frame.buffer_mut());
        }
        return;
    }
    let now = state.paused_at.map_or(now, |p| p.min(now));
    let run = model.run.as_ref();
    let lanes = run.map_or(1, |r| r.lanes.len()) as u16;
    let folded = run.is_some_and(|r| r.folded.workers > 0);
    let (areas, per_lane) = layout(area, lanes, folded);
    header::draw(frame, areas.header, model, state, now);
    if let (Some(run), Some(_)) = (run, &state.table) {
        let body = Rect::new(
            area.x,
            areas.header.bottom(),
            area.width,
            areas.footer.y.saturating_sub(areas.header.bottom()),
        );
        tasks::draw(frame, body, run, state, now);
    } else {
        lanes::draw(frame, areas.lanes, model, state, now, per_lane);
        if let Some(rect) = areas.summary {
            panels::draw_summary(frame, rect, model, &state.theme);
        }
        if let Some(rect) = areas.panels {
            panels::draw(frame, rect, model, state);
        }
    }
    help::footer(
        frame,
        areas.footer,
        state,
        model.run.as_ref().map(|r| &r.source),
    );
    if state.help {
        help::overlay(frame, area, state);
    }
    if let Some(form) = &state.settings {
        dialog::settings(frame, area, form, &state.theme);
    }
    if let Some(confirm) = state.confirm {
        dialog::confirm(frame, area, confirm, &state.theme);
    }
    if state.ascii {
        ascii::asciify(frame.buffer_mut());
    }
}

/// What is under a mouse pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// A lane, by index.
    Lane(usize),
    /// The log panel.
    Log,
    /// Anything else.
    Nothing,
}

/// What [`draw`] put at column `x`, row `y` of a screen of size `area`.
pub fn hit(area: Rect, model: &Model, state: &ViewState, x: u16, y: u16) -> Hit {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT || state.help || state.table.is_some() {
        return Hit::Nothing;
    }
    let run = model.run.as_ref();
    let lanes = run.map_or(1, |r| r.lanes.len()) as u16;
    let folded = run.is_some_and(|r| r.folded.workers > 0);
    let (areas, per_lane) = layout(area, lanes, folded);
    let pos = ratatui::layout::Position::new(x, y);
    if areas.lanes.contains(pos) {
        return run
            .and_then(|r| lanes::lane_at(areas.lanes, r, state, per_lane, y))
            .map_or(Hit::Nothing, Hit::Lane);
    }
    match areas.panels {
        Some(p) if panels::log_area(p).contains(pos) => Hit::Log,
        _ => Hit::Nothing,
    }
}

/// The message shown instead of a dashboard that cannot fit.
fn too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
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
            .style(theme.warning.add_modifier(Modifier::BOLD)),
        rect,
    );
}

pub use crate::units::{fmt_bytes, fmt_count, fmt_duration, fmt_rate, plural};
