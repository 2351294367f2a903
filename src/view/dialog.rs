//! Boxes drawn over the dashboard: a y/n question and the settings panel.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::settings::{FIELDS, SettingsForm};
use crate::view::{Confirm, Theme};

/// A `width`×`height` box centred in `area`, cleared, with a border and a title; its inside.
fn centred_box(frame: &mut Frame, area: Rect, width: u16, height: u16, block: Block) -> Rect {
    let [rect] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(area);
    let [rect] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(rect);
    let inner = block.inner(rect);
    frame.render_widget(Clear, rect);
    frame.render_widget(block, rect);
    inner
}

/// The question, e.g. `kill PID 1234? y/n`, over the middle of the screen.
pub fn confirm(frame: &mut Frame, area: Rect, confirm: Confirm, theme: &Theme) {
    let question = match confirm {
        Confirm::Kill { pid, .. } => format!("kill PID {pid}? y/n"),
        Confirm::Quit => "quit poolscope? y/n".to_string(),
    };
    let width = question.chars().count() as u16 + 8;
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.warning)
        .title_bottom(" any other key: no ");
    let inner = centred_box(frame, area, width.max(24), 3, block);
    let line = Line::styled(question, theme.warning.add_modifier(Modifier::BOLD)).centered();
    frame.render_widget(Paragraph::new(line), inner);
}

/// The settings panel: one row per field, the one being edited marked.
pub fn settings(frame: &mut Frame, area: Rect, form: &SettingsForm, theme: &Theme) {
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(" settings of the next run ")
        .title_bottom(" Enter runs · Esc closes ");
    let height = FIELDS.len() as u16 + 5;
    let inner = centred_box(frame, area, 44, height, block);
    let mut lines = vec![Line::from("")];
    for (i, field) in FIELDS.iter().enumerate() {
        let current = i == form.field;
        let marker = if current { "▶" } else { " " };
        let value = form.value(*field);
        let value = if current {
            Span::styled(format!("◀ {value} ▶"), theme.key)
        } else {
            Span::raw(format!("  {value}"))
        };
        let name_style = if current {
            ratatui::style::Style::new().add_modifier(Modifier::BOLD)
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::from(vec![
            Span::raw(format!(" {marker} ")),
            Span::styled(format!("{:<10}", field.name()), name_style),
            value,
        ]));
    }
    lines.push(Line::from(""));
    match &form.error {
        Some(e) => lines.push(Line::styled(format!(" {e}"), theme.failed)),
        None => lines.push(Line::styled(
            " ↑↓ field  ←→ change  0-9 type".to_string(),
            theme.dim,
        )),
    }
    lines.truncate(inner.height as usize);
    frame.render_widget(Paragraph::new(lines), inner);
}
