//! Key hints on the bottom row, and the `?` help overlay.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::event::RunSource;
use crate::keys::{KEYS, KeyAction};
use crate::view::{Theme, ViewState};

/// The footer's hints when the help is open.
const HELP_HINTS: &[(&str, &str, u8)] = &[("?/Esc", "close help", 0), ("q", "quit", 0)];

/// The footer's hints while the task table is open.
const TABLE_HINTS: &[(&str, &str, u8)] = &[
    ("j/k", "row", 1),
    ("Enter", "show", 0),
    (
        "alwsdcoe",
        "sort by name lane wait start duration cpu outcome error",
        2,
    ),
    ("</>", "sort", 4),
    ("/", "filter", 1),
    ("F", "failed only", 3),
    ("T/Esc", "close", 0),
    ("q", "quit", 0),
];

/// The footer when it says one thing instead of hints: the filter being typed, or a word
/// about the last key.
fn footer_line(state: &ViewState) -> Option<Line<'static>> {
    let f = &state.filter;
    if f.editing {
        let pattern = crate::outside_text::printable(&f.pattern).into_owned();
        return Some(Line::from(vec![
            Span::styled(" /", state.theme.key),
            Span::raw(pattern),
            Span::styled("█", state.theme.dim),
            Span::styled("  Enter keep · Esc clear · text or regex", state.theme.dim),
        ]));
    }
    let note = state.key_note.as_ref()?;
    Some(Line::styled(format!(" {note}"), state.theme.warning))
}

/// Whether a key does anything for this source: a recording cannot be re-run, resized or
/// paused; a program cannot change mode or size, or be faulted from here.
pub fn applies(action: KeyAction, source: Option<&RunSource>) -> bool {
    use KeyAction::{
        Both, FewerWorkers, Kill, MoreWorkers, Panic, Pause, Process, Rerun, Settings, Thread,
        ToggleMode,
    };
    let experiment_only = matches!(
        action,
        ToggleMode | Thread | Process | Both | MoreWorkers | FewerWorkers | Settings | Kill | Panic
    );
    match source {
        Some(RunSource::Replay { .. }) => !experiment_only && !matches!(action, Rerun | Pause),
        Some(RunSource::Program { .. }) => !experiment_only,
        _ => true,
    }
}

/// The bottom row: as many key hints as fit, the most needed first, shown in the key
/// table's order, only those that apply to the source. A question or the settings panel
/// say their own keys.
pub fn footer(frame: &mut Frame, area: Rect, state: &ViewState, source: Option<&RunSource>) {
    // (key, what, priority: lower survives a narrow terminal longer)
    if let Some(line) = footer_line(state) {
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let hints: Vec<(&str, &str, u8)> = if state.confirm.is_some() {
        vec![("y", "yes", 0), ("any other key", "no", 0)]
    } else if state.settings.is_some() {
        vec![
            ("↑↓ jk", "field", 1),
            ("←→", "change", 1),
            ("0-9", "type", 2),
            ("Enter", "run", 0),
            ("w", "save", 1),
            ("Esc", "close", 0),
        ]
    } else if state.help {
        HELP_HINTS.to_vec()
    } else if state.table.is_some() {
        TABLE_HINTS.to_vec()
    } else {
        let replay = matches!(source, Some(RunSource::Replay { .. }));
        KEYS.iter()
            .filter(|b| applies(b.action, source))
            .filter_map(|b| {
                let (key, what, priority) = b.footer?;
                // A recording is all there: moving in time is what matters, and following
                // the present means showing the whole run.
                Some(match (replay, b.action) {
                    (true, KeyAction::Earlier) => (key, what, 2),
                    (true, KeyAction::Follow) => (key, "whole run", 4),
                    _ => (key, what, priority),
                })
            })
            .collect()
    };
    let width = |(k, what, _): &(&str, &str, u8)| k.chars().count() + what.len() + 3;
    let mut by_priority: Vec<_> = hints.iter().collect();
    by_priority.sort_by_key(|h| h.2);
    let mut budget = area.width as usize;
    let mut shown = Vec::new();
    for h in by_priority {
        if width(h) <= budget {
            budget -= width(h);
            shown.push(h.0);
        }
    }
    let key = state.theme.key;
    let spans: Vec<Span> = hints
        .iter()
        .filter(|h| shown.contains(&h.0))
        .flat_map(|(k, what, _)| {
            [
                Span::styled(format!(" {k} "), key),
                Span::raw(format!("{what} ")),
            ]
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// What each glyph and colour on screen means, for the help overlay: (sample, its role in
/// the theme, the meaning).
fn legend(theme: &Theme) -> Vec<(&'static str, Style, &'static str)> {
    vec![
        (
            "├blocks(3)┤",
            theme.filled(theme.sleep),
            "a task that sleeps or waits (I/O-like)",
        ),
        (
            "├spin(3)──┤",
            theme.filled(theme.cpu),
            "a CPU-bound task; high CPU % alike",
        ),
        (
            "├noop(3)──┤",
            theme.filled(theme.task),
            "a task of unknown kind",
        ),
        (
            "✗fail(4)──┤",
            theme.filled(theme.failed),
            "a failed task; ✗ dead: a worker died",
        ),
        (
            "├blocks(5)▶",
            theme.filled(theme.warning),
            "running past its timeout (▶: running)",
        ),
        (
            "┄┄┄┄┄┤",
            theme.task.patch(theme.off_cpu),
            "its time off a CPU: GIL, lock, core, I/O",
        ),
        (
            "░▒▓█ ·",
            theme.sleep,
            "share of the cell's time in tasks; · idle",
        ),
        (
            "███",
            theme.state_running,
            "kernel: the thread ran on a CPU",
        ),
        (
            "▒▒▒",
            theme.state_waiting,
            "kernel: runnable, waiting for a CPU",
        ),
        ("▁▁▁", theme.state_sleeping, "kernel: sleeping or blocked"),
        (
            "▓ blocks(9)",
            theme.sleep,
            "lane status: latest short task, shade =",
        ),
        ("", Style::new(), "  its busy share over the last second"),
        (
            "⚠ blocks(5)",
            theme.warning,
            "lane status: its task is overdue",
        ),
        (
            "▶ PID 4242",
            Style::new().add_modifier(Modifier::REVERSED),
            "the selected lane (k, detail below it)",
        ),
        (
            "busy 2.7/3",
            Style::new(),
            "workers' worth of task time, last second",
        ),
        (
            "self+dispatch",
            theme.dim,
            "poolscope's CPU minus the pool's threads",
        ),
        (
            "earlier run",
            theme.warning,
            "workers of an older run still finishing",
        ),
    ]
}

/// Width of one column of the help.
const COLUMN: u16 = 68;

/// The help overlay, centred over `area`: every key, then the legend. Side by side when the
/// terminal is wide enough, else one below the other, scrolled with ↑/↓ when it overflows.
pub fn overlay(frame: &mut Frame, area: Rect, state: &ViewState) {
    let theme = &state.theme;
    let keys = key_lines();
    let legend = legend_lines(theme);
    let side_by_side = area.width >= 2 * COLUMN + 2;
    let (width, wanted) = if side_by_side {
        (2 * COLUMN + 2, keys.len().max(legend.len()) + 2)
    } else {
        (COLUMN.min(area.width), keys.len() + legend.len() + 2)
    };
    let height = (wanted as u16).min(area.height);
    let [rect] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(area);
    let [rect] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(rect);
    let inner_rows = height.saturating_sub(2) as usize;
    let overflow = wanted.saturating_sub(2).saturating_sub(inner_rows);
    let scroll = state.help_scroll.min(overflow);
    let bottom = if overflow > 0 {
        " ↑↓ scroll · ? or Esc closes "
    } else {
        " ? or Esc closes "
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(" keys ")
        .title_bottom(bottom);
    let inner = block.inner(rect);
    frame.render_widget(Clear, rect);
    frame.render_widget(block, rect);
    if side_by_side {
        let [left, right] =
            Layout::horizontal([Constraint::Length(COLUMN), Constraint::Min(0)]).areas(inner);
        let cut = |mut l: Vec<Line<'static>>| {
            l.drain(..scroll.min(l.len()));
            l.truncate(inner_rows);
            l
        };
        frame.render_widget(Paragraph::new(cut(keys)), left);
        frame.render_widget(Paragraph::new(cut(legend)), right);
    } else {
        // Whole lines only: what does not fit is scrolled to, not cut.
        let lines: Vec<Line> = keys
            .into_iter()
            .chain(legend)
            .skip(scroll)
            .take(inner_rows)
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// Rows of the help in one column, for scrolling: its keys, a gap, the legend.
pub fn overlay_rows(theme: &Theme) -> usize {
    key_lines().len() + legend_lines(theme).len()
}

/// The help's rows: the keys of each row of the key table, with those paired to the row
/// above (`t / p`), and what they do.
pub fn help_rows() -> Vec<(String, &'static str)> {
    let mut rows: Vec<(String, &'static str)> = Vec::new();
    for b in KEYS {
        match rows.last_mut() {
            Some((keys, _)) if b.paired => {
                keys.push_str(" / ");
                keys.push_str(b.shown);
            }
            _ => rows.push((b.shown.to_string(), b.help)),
        }
    }
    rows
}

fn key_lines() -> Vec<Line<'static>> {
    let key_style = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from("")];
    lines.extend(help_rows().into_iter().map(|(keys, help)| {
        Line::from(vec![
            Span::styled(format!(" {keys:>15}  "), key_style),
            Span::raw(help),
        ])
    }));
    lines
}

fn legend_lines(theme: &Theme) -> Vec<Line<'static>> {
    let key_style = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(""), Line::styled(" legend", key_style)];
    for (sample, style, meaning) in legend(theme) {
        let pad = " ".repeat(17usize.saturating_sub(sample.chars().count()));
        lines.push(Line::from(vec![
            Span::raw(format!(" {pad}")),
            Span::styled(sample, style),
            Span::raw(format!("  {meaning}")),
        ]));
    }
    lines
}
