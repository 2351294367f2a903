//! The lanes: one row per worker with its label, its task now, and a timeline of its tasks.
//!
//! Every label on screen is whole or absent: a bar's `blocks(12)` is drawn only where no
//! other bar will cover it, a lane's status only if it fits its column.
//!
//! This module lays out the block and scrolls the lanes; `row` draws one lane, its words
//! come from `status`, `stats` and `labels`, its timeline from `timeline` and `bar`
//! (coloured by `kind`), and `axis` draws the time axis beneath.

mod axis;
mod bar;
mod kind;
mod labels;
mod row;
mod states;
mod stats;
mod status;
mod timeline;

use std::fmt::Write as _;
use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Paragraph};

pub use axis::{LIVE_WINDOW, sliding, window};
pub use kind::shade;
pub use labels::{fit_lane_name, fit_text, lane_label};

use axis::draw_axis;
use labels::whole_or_nothing;
use row::{Columns, LaneRow};
use status::lane_details;

use crate::model::{Model, Run};
use crate::view::{Theme, ViewState, plural};

/// Below this inner width, lanes use compact labels.
const NARROW: u16 = 100;

/// Draws the lanes block, each lane `per_lane` rows tall.
pub fn draw(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    state: &ViewState,
    now: Duration,
    per_lane: u16,
) {
    let theme = &state.theme;
    let visible = model
        .run
        .as_ref()
        .map(|run| crate::explore::lanes_shown(run, &state.filter))
        .unwrap_or_default();
    let selected = visible
        .get(selected_position(&visible, state.selected))
        .copied();
    let block = lanes_block(model, state, selected, area, now);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(run) = &model.run else {
        frame.render_widget(
            Paragraph::new("waiting for the first run…").style(theme.dim),
            inner,
        );
        return;
    };
    if inner.height == 0 || inner.width < 20 {
        return;
    }
    let labels = lane_labels(run, inner.width);
    let cols = Columns::of(inner, run, &labels, model.own.is_some());
    let window = window(run, state, now);
    let t_now = run.ended_at.map_or(now, |e| e.min(now));
    let scroll = Scroll::of(inner, run, &visible, state, per_lane);
    // Only a filter can hide every lane; a run without lanes yet shows an empty panel.
    if visible.is_empty() && state.filter.is_active() {
        let note = "no lane holds a task that matches the filter (Esc clears it)";
        let rect = Rect::new(inner.x + 2, scroll.top, inner.width - 2, 1);
        frame.render_widget(Paragraph::new(Span::styled(note, theme.dim)), rect);
    }
    if scroll.folded {
        draw_folded(
            frame,
            Rect::new(inner.x + 2, inner.y, inner.width - 2, 1),
            run,
            theme,
        );
    }
    let shown = visible.iter().enumerate().skip(scroll.first);
    for (row, (at, &i)) in shown.take(scroll.shown).enumerate() {
        let y = scroll.top + row as u16 * scroll.per_lane;
        let ctx = LaneRow {
            run,
            lane: &run.lanes[i],
            label: &labels[i],
            selected: at == scroll.selected,
            cols: &cols,
            window,
            now: t_now,
            theme,
            marked: state.marked,
        };
        ctx.draw(frame, inner.x, y, scroll.per_lane);
    }
    let counts = (visible.len(), run.lanes.len());
    draw_footer(frame, inner, &cols, &scroll, counts, window, theme);
}

/// The lane drawn at screen row `y` of the lanes' `area`, as [`draw`] lays them out.
pub fn lane_at(area: Rect, run: &Run, state: &ViewState, per_lane: u16, y: u16) -> Option<usize> {
    let inner = Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let visible = crate::explore::lanes_shown(run, &state.filter);
    let scroll = Scroll::of(inner, run, &visible, state, per_lane);
    let row = usize::from(y.checked_sub(scroll.top)? / scroll.per_lane);
    if row >= scroll.shown {
        return None;
    }
    visible.get(scroll.first + row).copied()
}

/// The lane selected, as the timeline shows it: under a filter that hides the chosen lane,
/// the next lane shown; `None` when no lane is shown.
pub fn selected_lane(run: &Run, state: &ViewState) -> Option<usize> {
    let visible = crate::explore::lanes_shown(run, &state.filter);
    visible
        .get(selected_position(&visible, state.selected))
        .copied()
}

/// Where the selected lane stands among the `visible` ones: the selected lane itself, or
/// the next one shown when the filter hides it.
pub fn selected_position(visible: &[usize], selected: usize) -> usize {
    visible
        .partition_point(|&i| i < selected)
        .min(visible.len().saturating_sub(1))
}

/// The bordered block, with the selected lane's latest task in detail on its bottom
/// border if that fits whole.
fn lanes_block(
    model: &Model,
    state: &ViewState,
    selected: Option<usize>,
    area: Rect,
    now: Duration,
) -> Block<'static> {
    let mut block = Block::new()
        .borders(Borders::ALL)
        .border_style(state.theme.border)
        .title(" workers ");
    if let Some(run) = &model.run
        && sliding(run, state, now)
    {
        block = block.title(format!(
            " last {} (f: whole run) ",
            crate::view::fmt_duration(LIVE_WINDOW)
        ));
    }
    if let Some(run) = &model.run
        && let Some(lane) = selected.and_then(|i| run.lanes.get(i))
        && let Some(detail) = lane_details(run, lane, now)
            .into_iter()
            .find(|d| d.chars().count() + 4 <= area.width as usize)
    {
        block = block.title_bottom(detail);
    }
    block
}

/// Every lane's name, compact on a narrow screen.
fn lane_labels(run: &Run, width: u16) -> Vec<String> {
    let narrow = width < NARROW;
    let labels: Vec<String> = run.lanes.iter().map(|l| lane_label(l, narrow)).collect();
    // Other programs' names run long (`ThreadPoolExecutor-0_1 · tid 41234`): shorten them
    // all, alike, rather than cut them to nothing.
    let room = usize::from(width / 4);
    if labels.iter().any(|l| l.chars().count() > room) {
        return run.lanes.iter().map(|l| lane_label(l, true)).collect();
    }
    labels
}

/// Which lanes the rows of the block hold, and where.
struct Scroll {
    /// Whether the first row is the line for the workers folded away.
    folded: bool,
    /// The first lane's row.
    top: u16,
    per_lane: u16,
    /// Where the selected lane stands among the lanes shown.
    selected: usize,
    /// The first lane shown, and how many are.
    first: usize,
    shown: usize,
}

impl Scroll {
    /// The `visible` lanes of `run` that fit `inner` with the selected one among them.
    fn of(inner: Rect, run: &Run, visible: &[usize], state: &ViewState, per_lane: u16) -> Scroll {
        let folded = run.folded.workers > 0 && inner.height > 2;
        let top = inner.y + u16::from(folded);
        let rows = inner.bottom().saturating_sub(top + 1); // the last row is the axis
        let per_lane = per_lane.max(1);
        let shown = (rows / per_lane) as usize;
        let selected = selected_position(visible, state.selected);
        let first = scroll_offset(selected, shown, visible.len());
        Scroll {
            folded,
            top,
            per_lane,
            selected,
            first,
            shown,
        }
    }
}

/// First lane shown so that the selected one is visible.
fn scroll_offset(selected: usize, rows: usize, lanes: usize) -> usize {
    if rows == 0 || lanes <= rows {
        0
    } else {
        selected.saturating_sub(rows - 1).min(lanes - rows)
    }
}

/// The line that stands for the exited workers no longer kept as lanes.
fn draw_folded(frame: &mut Frame, rect: Rect, run: &Run, theme: &Theme) {
    let f = &run.folded;
    let mut text = format!("{} replaced", plural(f.workers, "earlier worker"));
    if f.died > 0 {
        let _ = write!(text, " ({} died)", f.died);
    }
    let _ = write!(text, " · {} done", f.finished);
    if f.failed > 0 {
        let _ = write!(text, " · {} failed", f.failed);
    }
    let text = whole_or_nothing(&text, rect.width as usize);
    frame.render_widget(Paragraph::new(Span::styled(text, theme.dim)), rect);
}

/// The bottom row: which lanes are shown when not all fit, and the time axis.
fn draw_footer(
    frame: &mut Frame,
    inner: Rect,
    cols: &Columns,
    scroll: &Scroll,
    (lanes, all): (usize, usize),
    window: (Duration, Duration),
    theme: &Theme,
) {
    let (first, shown) = (scroll.first, scroll.shown);
    let note = match (shown < lanes, lanes < all) {
        (true, false) => format!("{}–{} of {}", first + 1, (first + shown).min(lanes), lanes),
        (true, true) => format!(
            "{}–{} of {lanes} matching ({all} lanes)",
            first + 1,
            (first + shown).min(lanes)
        ),
        (false, true) => format!("{lanes} of {all} lanes match"),
        (false, false) => String::new(),
    };
    if !note.is_empty() && inner.height > 1 {
        let rect = Rect::new(inner.x + 2, inner.bottom() - 1, cols.label + cols.status, 1);
        frame.render_widget(Paragraph::new(Span::styled(note, theme.dim)), rect);
    }
    if cols.timeline_w > 0 && inner.height > 1 {
        let rect = Rect::new(cols.timeline_x, inner.bottom() - 1, cols.timeline_w, 1);
        draw_axis(frame.buffer_mut(), rect, window, theme);
    }
}
