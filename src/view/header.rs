//! The two header rows: what is running, and how far along it is.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::config::Mode;
use crate::model::Model;
use crate::view::{ViewState, fmt_count, fmt_duration};

/// Draws the title row and the counters row.
pub fn draw(frame: &mut Frame, area: Rect, model: &Model, state: &ViewState, now: Duration) {
    let bar = Style::new().fg(Color::Black).bg(Color::Cyan);
    let mut title = vec![Span::styled(
        " poolscope ",
        bar.add_modifier(Modifier::BOLD),
    )];
    let mut counters = Vec::new();
    match &model.run {
        None => title.push(Span::styled(" starting… ", bar)),
        Some(run) => {
            let c = &run.config;
            let mode = match c.mode {
                Mode::Thread => " THREAD pool ",
                Mode::Process => " PROCESS pool ",
            };
            let mode_style = match c.mode {
                Mode::Thread => Style::new().fg(Color::Black).bg(Color::Green),
                Mode::Process => Style::new().fg(Color::Black).bg(Color::Magenta),
            };
            title.push(Span::styled(mode, mode_style.add_modifier(Modifier::BOLD)));
            title.push(Span::styled(
                format!(
                    " {} workers · {}(n) × {} · {} ms ",
                    c.workers,
                    c.workload.name(),
                    c.tasks,
                    c.task_ms
                ),
                bar,
            ));
            let elapsed = run.ended_at.map_or(now, |e| e.min(now));
            let done = run.done();
            let rate = if elapsed.as_secs_f64() > 0.0 {
                done as f64 / elapsed.as_secs_f64()
            } else {
                0.0
            };
            let strong = Style::new().add_modifier(Modifier::BOLD);
            counters.extend([
                Span::raw(" done "),
                Span::styled(format!("{done}/{}", c.tasks), strong),
                Span::raw("  running "),
                Span::styled(run.running(now).to_string(), strong.fg(Color::Green)),
                Span::raw("  queued "),
                Span::styled(run.queued().to_string(), strong),
            ]);
            if run.failed > 0 {
                counters.push(Span::raw("  failed "));
                counters.push(Span::styled(run.failed.to_string(), strong.fg(Color::Red)));
            }
            if run.cancelled > 0 {
                counters.push(Span::raw(format!("  cancelled {}", run.cancelled)));
            }
            counters.push(Span::raw(format!(
                "  │ {} │ {} tasks/s",
                fmt_duration(elapsed),
                fmt_count(rate)
            )));
            if let Some((cpu, rss)) = model.own {
                counters.push(Span::styled(
                    format!("  │ self {cpu:.1}% {}", crate::view::fmt_bytes(rss)),
                    Style::new().fg(Color::DarkGray),
                ));
            }
        }
    }
    let status = match &model.run {
        _ if state.paused_at.is_some() => Span::styled(
            " ‖ PAUSED ",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ),
        Some(run) if run.cancelled > 0 && run.is_over() => Span::styled(
            " cancelled ",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ),
        Some(run) if run.is_over() => Span::styled(
            " ✓ finished ",
            Style::new().fg(Color::Black).bg(Color::Cyan),
        ),
        Some(_) => Span::styled(
            " ● running ",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Green)
                .add_modifier(Modifier::BOLD),
        ),
        None => Span::raw(""),
    };
    if !state.follow {
        counters.push(Span::styled(
            "  not following",
            Style::new().fg(Color::Yellow),
        ));
    }
    if state.zoom > 0 {
        counters.push(Span::raw(format!("  zoom ×{}", 1u32 << state.zoom)));
    }
    let [top, bottom] = ratatui::layout::Layout::vertical([
        ratatui::layout::Constraint::Length(1),
        ratatui::layout::Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(Line::from(title)).style(bar), top);
    frame.render_widget(Paragraph::new(Line::from(status)).right_aligned(), top);
    frame.render_widget(Paragraph::new(Line::from(counters)), bottom);
    if let Some(notice) = &state.notice {
        let notice = Span::styled(
            format!(" {notice} "),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        );
        frame.render_widget(Paragraph::new(Line::from(notice)).right_aligned(), bottom);
    }
}
