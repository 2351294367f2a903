//! The task table (`T`): every kept task of the run on screen, sorted and filtered; opened
//! on a lane, that lane's tasks under a small histogram of their durations.

use std::fmt::Write as _;
use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::explore::{self, Column, State, TableState, TaskRow};
use crate::model::Run;
use crate::view::lanes::{fit_lane_name, fit_text, lane_label};
use crate::view::{Theme, ViewState, fmt_duration, plural};

/// Eighths of a cell, for the histogram's bars.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Draws the table of `run`'s tasks into `area`.
pub fn draw(frame: &mut Frame, area: Rect, run: &Run, state: &ViewState, now: Duration) {
    let Some(table) = &state.table else {
        return;
    };
    let theme = &state.theme;
    let (rows, dropped) = explore::rows(run, now, table, &state.filter);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(
            title(run, table, &rows, dropped, state),
            theme.title,
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 || inner.width < 20 {
        return;
    }
    let mut y = inner.y;
    if table.lane.is_some() && inner.height >= 6 {
        let line = histogram_line(&rows, inner.width as usize, theme);
        frame.render_widget(Paragraph::new(line), Rect::new(inner.x, y, inner.width, 1));
        y += 2;
    }
    let with_cpu = rows.iter().any(|r| r.cpu.is_some());
    // Lanes by their short names (`TPE-0_1 3339`), as on a narrow timeline.
    let rows: Vec<TaskRow> = rows
        .into_iter()
        .map(|mut r| {
            if let Some(lane) = run.lanes.get(r.lane) {
                r.lane_name = lane_label(lane, true);
            }
            r
        })
        .collect();
    let widths = widths(inner.width, &rows, with_cpu);
    let heading = heading_line(&widths, table, theme);
    frame.render_widget(
        Paragraph::new(heading),
        Rect::new(inner.x, y, inner.width, 1),
    );
    y += 1;
    let room = (inner.y + inner.height).saturating_sub(y) as usize;
    if rows.is_empty() {
        let what = if state.filter.is_active() {
            "no task matches the filter (Esc clears it)"
        } else {
            "no task has started yet"
        };
        frame.render_widget(
            Paragraph::new(what).style(theme.dim),
            Rect::new(inner.x, y, inner.width, 1),
        );
        return;
    }
    let cursor = table.cursor.min(rows.len() - 1);
    let first = cursor.saturating_sub(room.saturating_sub(1));
    for (i, row) in rows.iter().enumerate().skip(first).take(room) {
        let line = row_line(row, &widths, theme, i == cursor);
        let rect = Rect::new(inner.x, y + (i - first) as u16, inner.width, 1);
        frame.render_widget(Paragraph::new(line), rect);
    }
}

/// The block's title: what is shown, of how many, what is no longer kept, the sort.
fn title(
    run: &Run,
    table: &TableState,
    rows: &[TaskRow],
    dropped: u64,
    state: &ViewState,
) -> String {
    let whose = table.lane.and_then(|l| run.lanes.get(l)).map_or_else(
        || format!("tasks of run {}", run.id),
        |lane| format!("tasks on {}", lane.label),
    );
    let mut t = format!(" {whose}: {}", rows.len());
    if dropped > 0 {
        let _ = write!(t, ", {dropped} older no longer kept");
    }
    let f = &state.filter;
    if !f.pattern.is_empty() {
        let _ = write!(t, " · /{}", crate::outside_text::printable(&f.pattern));
    }
    if f.failed_only {
        t.push_str(" · failed only");
    }
    let arrow = if table.descending { '↓' } else { '↑' };
    let _ = write!(t, " · by {} {arrow} ", table.sort.heading().0);
    t
}

/// Column widths, in [`Column::ALL`] order (0: not shown). The name takes what its longest
/// needs (bounded), the error whatever is left.
fn widths(width: u16, rows: &[TaskRow], with_cpu: bool) -> [usize; 8] {
    let width = width as usize;
    let longest = |f: &dyn Fn(&TaskRow) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let name = longest(&|r| r.name.chars().count()).clamp(6, 28);
    let lane = longest(&|r| r.lane_name.chars().count()).clamp(4, 22);
    let cpu = if with_cpu { 8 } else { 0 };
    let mut w = [name, lane, 7, 8, 9, cpu, 8, 0];
    let used: usize = w.iter().filter(|x| **x > 0).map(|x| x + 1).sum();
    if used < width {
        w[7] = width - used;
    }
    // A narrow screen: the name and the lane give way before anything is cut.
    let mut over = used.saturating_sub(width);
    for i in [0, 1] {
        let give = over.min(w[i].saturating_sub(6));
        w[i] -= give;
        over -= give;
    }
    if w[7] < 6 {
        w[7] = 0;
    }
    w
}

fn heading_line(widths: &[usize; 8], table: &TableState, theme: &Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (col, w) in Column::ALL.iter().zip(widths) {
        if *w == 0 {
            continue;
        }
        let (name, _) = col.heading();
        let mark = match (table.sort == *col, table.descending) {
            (true, true) => "↓",
            (true, false) => "↑",
            _ => "",
        };
        let text = format!("{name}{mark}");
        let right = matches!(
            col,
            Column::Wait | Column::Start | Column::Duration | Column::Cpu
        );
        let style = if table.sort == *col {
            theme.key.add_modifier(Modifier::BOLD)
        } else {
            theme.dim
        };
        spans.push(Span::styled(pad(&text, *w, right), style));
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

fn row_line(row: &TaskRow, widths: &[usize; 8], theme: &Theme, selected: bool) -> Line<'static> {
    let opt = |d: Option<Duration>| d.map_or_else(|| "—".to_string(), fmt_duration);
    let cells = [
        crate::outside_text::printable(&row.name).into_owned(),
        row.lane_name.clone(),
        opt(row.wait),
        fmt_duration(row.start),
        fmt_duration(row.duration),
        opt(row.cpu),
        row.state.word().to_string(),
        row.error
            .as_deref()
            .map(crate::outside_text::printable)
            .unwrap_or_default()
            .into_owned(),
    ];
    let base = if selected {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new()
    };
    let mut spans = Vec::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if *w == 0 {
            continue;
        }
        let right = (2..=5).contains(&i);
        let style = match (i, row.state) {
            (6 | 7, State::Failed) => theme.failed,
            (6, State::Running) => theme.task,
            _ => Style::new(),
        };
        let text = if i == 1 {
            fit_lane_name(cell, *w) // its id kept whole, as in the lanes' column
        } else {
            pad(cell, *w, right)
        };
        spans.push(Span::styled(text, base.patch(style)));
        spans.push(Span::styled(" ", base));
    }
    Line::from(spans)
}

/// `text` in `w` cells: cut with `…` when longer, padded left or right.
fn pad(text: &str, w: usize, right: bool) -> String {
    let text = if text.chars().count() > w {
        fit_text(text, w)
    } else {
        text.to_string()
    };
    if right {
        format!("{text:>w$}")
    } else {
        format!("{text:<w$}")
    }
}

/// `durations 12 ms ▁▃█▅▂▁ 340 ms · 42 tasks`: how a lane's task durations spread.
fn histogram_line(rows: &[TaskRow], width: usize, theme: &Theme) -> Line<'static> {
    let Some((lo, step, counts)) = explore::histogram(rows) else {
        return Line::styled("no durations yet", theme.dim);
    };
    let most = counts.iter().copied().max().unwrap_or(1).max(1);
    let bars: String = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                BARS[((c * 7).div_ceil(most)) as usize]
            }
        })
        .collect();
    let hi = lo + step * explore::HISTOGRAM_BUCKETS as u32;
    let text = format!(
        " durations {} [{bars}] {} · {}",
        fmt_duration(lo),
        fmt_duration(hi),
        plural(rows.len() as u64, "task")
    );
    Line::styled(fit_text(&text, width), theme.task)
}
