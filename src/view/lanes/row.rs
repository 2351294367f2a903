//! One lane's row: its columns (name, status, figures, timeline) and how they are drawn.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::labels::fit_lane_name;
use super::stats::stats_of;
use super::status::{status_of, totals_of};
use super::timeline::Timeline;
use crate::model::{Lane, Run};
use crate::view::Theme;

/// From this inner width on, lanes show memory and a CPU sparkline beside CPU %.
const WIDE: u16 = 110;
/// Width of the CPU % column.
const CPU_WIDTH: u16 = 4;
/// Width of memory plus sparkline columns: ` 12.3 MiB ▁▂▃▄▅▆▇█`.
const MEM_SPARK_WIDTH: u16 = 9 + 1 + 8;

/// Column positions shared by every lane row.
pub(super) struct Columns {
    pub(super) label: u16,
    pub(super) status: u16,
    pub(super) stats: u16,
    pub(super) wide_stats: bool,
    pub(super) timeline_x: u16,
    pub(super) timeline_w: u16,
}

impl Columns {
    /// Lays out the columns of `inner` for lanes named `labels`; `monitored` shows figures.
    pub(super) fn of(inner: Rect, run: &Run, labels: &[String], monitored: bool) -> Columns {
        let label = labels
            .iter()
            .map(|l| l.chars().count() as u16)
            .max()
            .unwrap_or(8)
            .min(inner.width / 4);
        // Room for the longest task label plus a busy shade, within reason.
        let longest_task = run.longest_task_label() as u16;
        let status = (longest_task + 2).clamp(9, 16).min(inner.width / 5);
        let (stats, wide_stats) = match inner.width {
            _ if !monitored => (0, false),
            w if w >= WIDE => (CPU_WIDTH + 1 + MEM_SPARK_WIDTH + 1, true),
            w if w >= 44 => (CPU_WIDTH + 1, false),
            _ => (0, false),
        };
        let timeline_x = inner.x + 2 + label + 1 + status + 1 + stats;
        Columns {
            label,
            status,
            stats,
            wide_stats,
            timeline_x,
            timeline_w: inner.right().saturating_sub(timeline_x),
        }
    }
}

/// Everything needed to draw one lane.
pub(super) struct LaneRow<'a> {
    pub(super) run: &'a Run,
    pub(super) lane: &'a Lane,
    pub(super) label: &'a str,
    pub(super) selected: bool,
    pub(super) cols: &'a Columns,
    pub(super) window: (Duration, Duration),
    pub(super) now: Duration,
    pub(super) theme: &'a Theme,
    /// The task last jumped to, outlined.
    pub(super) marked: Option<u64>,
}

impl LaneRow<'_> {
    /// Draws the lane at column `x`, row `y`, `height` rows tall (a second row has totals).
    pub(super) fn draw(&self, frame: &mut Frame, x: u16, y: u16, height: u16) {
        let (cols, theme) = (self.cols, self.theme);
        self.draw_label(frame, x, y);
        let status_x = x + 2 + cols.label + 1;
        let (status, style) = match self.lane.states.as_deref() {
            // A lane that runs no tasks: what the kernel saw it do last is its status.
            Some(s) if self.lane.first_start.is_none() && !self.lane.has_exited() => {
                super::states::status(s, theme)
            }
            _ => status_of(self.run, self.lane, self.now, cols.status, theme),
        };
        frame.render_widget(
            Paragraph::new(Span::styled(status, style)),
            Rect::new(status_x, y, cols.status, 1),
        );
        if cols.stats > 0 {
            let stats = stats_of(self.lane, cols.wide_stats, theme);
            let rect = Rect::new(status_x + cols.status + 1, y, cols.stats, 1);
            frame.render_widget(Paragraph::new(stats), rect);
        }
        if cols.timeline_w == 0 {
            return;
        }
        let rect = Rect::new(cols.timeline_x, y, cols.timeline_w, 1);
        let timeline = Timeline::new(
            self.run,
            self.lane,
            self.window,
            self.now,
            rect.width,
            theme,
        );
        timeline.draw_bars(frame.buffer_mut(), rect);
        if let Some(task) = self.marked {
            timeline.mark(frame.buffer_mut(), rect, task);
        }
        // The kernel's strip: on the bars' row for a lane that never ran a task, else
        // under its bars (in place of the shades) when the lane has a second row.
        let strip_row = match &self.lane.states {
            Some(_) if self.lane.first_start.is_none() => Some(y),
            Some(_) if height >= 2 => Some(y + 1),
            _ => None,
        };
        if height >= 2 {
            let width = (cols.label + cols.status) as usize;
            let text = match self.lane.states.as_deref() {
                // A lane that never ran a task: the kernel's totals say more than `0 done`.
                Some(s) if self.lane.first_start.is_none() => super::states::totals(s, width),
                _ => totals_of(self.run, self.lane, self.now, width),
            };
            let rect2 = Rect::new(x + 2, y + 1, cols.label + 1 + cols.status, 1);
            frame.render_widget(Paragraph::new(Span::styled(text, theme.dim)), rect2);
            let rect = Rect::new(cols.timeline_x, y + 1, cols.timeline_w, 1);
            if strip_row != Some(y) {
                timeline.draw_density(frame.buffer_mut(), rect);
            }
        }
        if let (Some(states), Some(row)) = (self.lane.states.as_deref(), strip_row) {
            let rect = Rect::new(cols.timeline_x, row, cols.timeline_w, 1);
            super::states::draw(frame.buffer_mut(), rect, states, self.window, theme);
        }
    }

    /// The lane's name behind the selection marker, greyed once its worker has gone.
    fn draw_label(&self, frame: &mut Frame, x: u16, y: u16) {
        let dead = self
            .lane
            .exited
            .as_ref()
            .is_some_and(|(_, e)| !e.is_clean());
        let mut label_style = if dead || self.lane.has_exited() {
            self.theme.dim
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        if self.selected {
            label_style = label_style.add_modifier(Modifier::REVERSED);
        }
        let marker = if self.selected { "▶ " } else { "  " };
        let label = Line::from(vec![
            Span::raw(marker),
            Span::styled(
                fit_lane_name(self.label, self.cols.label as usize),
                label_style,
            ),
        ]);
        let width = 2 + self.cols.label;
        frame.render_widget(Paragraph::new(label), Rect::new(x, y, width, 1));
    }
}
