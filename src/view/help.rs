//! Key hints on the bottom row, and the `?` help overlay.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::event::RunSource;
use crate::view::{Theme, ViewState};

/// Every key, as the help overlay lists it.
pub const KEYS: &[(&str, &str)] = &[
    ("m / Tab", "switch thread ⇄ process (cancels the run)"),
    ("t / p", "run in thread / process mode"),
    ("r", "run again"),
    ("+ / -", "one worker more / less, then run again"),
    ("space", "pause / resume the display"),
    ("z / Z", "zoom in / out on the timeline"),
    ("f", "follow the present / hold the view"),
    ("← / →", "move back / forward in time"),
    ("↑ / ↓", "select a lane"),
    ("k", "kill the selected worker process (SIGKILL)"),
    ("x", "make the next task panic"),
    ("e", "export the run on screen as a Chrome trace"),
    ("?", "this help"),
    ("q / Esc / Ctrl-C", "quit"),
];

/// The bottom row: as many key hints as fit, the most needed first, shown in a fixed order.
pub fn footer(frame: &mut Frame, area: Rect, state: &ViewState, source: Option<&RunSource>) {
    // (key, what, priority: lower survives a narrow terminal longer)
    let hints: &[(&str, &str, u8)] = if state.help {
        &[("?", "close help", 0), ("q", "quit", 0)]
    } else if let Some(RunSource::Replay { .. }) = source {
        // A recording: all of it is there to move around in.
        &[
            ("←/→", "time", 2),
            ("z/Z", "zoom", 3),
            ("f", "whole run", 4),
            ("↑↓", "lane", 5),
            ("?", "help", 1),
            ("q", "quit", 0),
        ]
    } else if let Some(RunSource::Program { .. }) = source {
        &[
            ("r", "rerun", 3),
            ("space", "pause", 2),
            ("z/Z", "zoom", 5),
            ("f", "follow", 6),
            ("↑↓", "lane", 7),
            ("?", "help", 1),
            ("q", "quit", 0),
        ]
    } else {
        &[
            ("m", "mode", 2),
            ("r", "rerun", 3),
            ("+/-", "workers", 5),
            ("space", "pause", 4),
            ("z/Z", "zoom", 6),
            ("f", "follow", 7),
            ("↑↓", "lane", 8),
            ("?", "help", 1),
            ("q", "quit", 0),
        ]
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
            "░▒▓█ ·",
            theme.sleep,
            "share of the cell's time in tasks; · idle",
        ),
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

/// The help overlay, centred over `area`: every key, then the legend as far as it fits.
pub fn overlay(frame: &mut Frame, area: Rect, theme: &Theme) {
    let legend = legend(theme);
    let width = 66.min(area.width);
    let wanted = KEYS.len() + legend.len() + 6;
    let height = (wanted as u16).min(area.height);
    let [rect] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(area);
    let [rect] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(rect);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(" keys ")
        .title_bottom(" ? or Esc closes ");
    let inner = block.inner(rect);
    frame.render_widget(Clear, rect);
    frame.render_widget(block, rect);
    let key_style = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from("")];
    lines.extend(KEYS.iter().map(|(k, what)| {
        Line::from(vec![
            Span::styled(format!(" {k:>16}  "), key_style),
            Span::raw(*what),
        ])
    }));
    if lines.len() + 2 < inner.height as usize {
        lines.push(Line::from(""));
        lines.push(Line::styled(" legend", key_style));
        for (sample, style, meaning) in legend {
            let pad = " ".repeat(16usize.saturating_sub(sample.chars().count()));
            lines.push(Line::from(vec![
                Span::raw(format!(" {pad}")),
                Span::styled(sample, style),
                Span::raw(format!("  {meaning}")),
            ]));
        }
    }
    // Whole lines only: what does not fit is left out, not cut.
    lines.truncate(inner.height as usize);
    frame.render_widget(Paragraph::new(lines), inner);
}
