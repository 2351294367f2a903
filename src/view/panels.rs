//! The panels under the lanes: results, the seed-style log, and thread-versus-process figures.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::model::{Model, Run, RunSummary};
use crate::seed_log::{LogLine, Logger};
use crate::view::lanes::fit_text;
use crate::view::{fmt_duration, fmt_rate};

/// Width from which the comparison panel has room beside the other two.
const WIDE: u16 = 100;

/// Draws the panels into `area`, as many as its width allows.
pub fn draw(frame: &mut Frame, area: Rect, model: &Model) {
    if area.width >= WIDE {
        let [results, log, compare] = Layout::horizontal([
            Constraint::Length(22),
            Constraint::Min(30),
            Constraint::Length(38),
        ])
        .areas(area);
        draw_results(frame, results, model);
        draw_log(frame, log, model);
        draw_compare(frame, compare, model);
    } else {
        let [results, log] =
            Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)])
                .areas(area);
        draw_results(frame, results, model);
        draw_log(frame, log, model);
    }
}

fn panel(title: &str) -> Block<'_> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(title)
}

/// Results in completion order, the newest that fit, and the latest failures.
fn draw_results(frame: &mut Frame, area: Rect, model: &Model) {
    let block = panel(" results ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(run) = &model.run else { return };
    let width = inner.width as usize;
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{}", run.finished), Style::new().fg(Color::Green)),
        Span::raw(" ok"),
        if run.failed > 0 {
            Span::styled(
                format!(" · {} failed", run.failed),
                Style::new().fg(Color::Red),
            )
        } else {
            Span::raw("")
        },
    ])];
    let failure_rows = run.failures.len().min(inner.height as usize / 3);
    let result_rows = (inner.height as usize).saturating_sub(1 + failure_rows);
    lines.extend(
        result_lines(run, width, result_rows)
            .into_iter()
            .map(Line::from),
    );
    for f in run.failures.iter().rev().take(failure_rows).rev() {
        let text = format!("✗ {}: {}", run.config.workload.call_label(f.task), f.error);
        lines.push(Line::styled(
            fit_text(&text, width),
            Style::new().fg(Color::Red),
        ));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The newest results that fit in `rows` lines of `width`, comma-separated, oldest first.
/// When older ones do not fit, the first line says how many are left out.
fn result_lines(run: &Run, width: usize, rows: usize) -> Vec<String> {
    if rows == 0 || width < 4 {
        return Vec::new();
    }
    // Wrap all kept results into lines, remembering how many results each line holds.
    let mut lines: Vec<(String, u64)> = Vec::new();
    let (mut line, mut count) = (String::new(), 0u64);
    let total = run.results.len();
    for (i, r) in run.results.iter().enumerate() {
        let piece = if i + 1 == total {
            r.to_string()
        } else {
            format!("{r},")
        };
        if !line.is_empty() && line.len() + 1 + piece.len() > width {
            lines.push((std::mem::take(&mut line), count));
            count = 0;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&piece);
        count += 1;
    }
    if !line.is_empty() {
        lines.push((line, count));
    }
    let shown_from = |keep: usize| -> u64 { lines[lines.len() - keep..].iter().map(|l| l.1).sum() };
    let mut keep = lines.len().min(rows);
    if shown_from(keep) < run.finished && keep == rows {
        keep -= 1;
    }
    let hidden = run.finished - shown_from(keep);
    let mut out = Vec::with_capacity(rows);
    if hidden > 0 {
        out.push(format!("… {hidden} earlier"));
    }
    out.extend(lines[lines.len() - keep..].iter().map(|l| l.0.clone()));
    out
}

/// The tail of the seed-style log.
fn draw_log(frame: &mut Frame, area: Rect, model: &Model) {
    let block = panel(" log ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = inner.height as usize;
    let skip = model.log.len().saturating_sub(rows);
    let lines: Vec<Line> = model
        .log
        .iter()
        .skip(skip)
        .map(|l| Line::styled(fit_text(&l.to_string(), inner.width as usize), log_style(l)))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn log_style(line: &LogLine) -> Style {
    if line.is_failure() {
        Style::new().fg(Color::Red)
    } else if line.logger == Logger::Stderr {
        Style::new().fg(Color::Yellow)
    } else if line.logger == Logger::Coordinator {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    }
}

/// The last complete thread run beside the last complete process run.
fn draw_compare(frame: &mut Frame, area: Rect, model: &Model) {
    let block = panel(" thread vs process ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (t, p) = (model.last_thread.as_ref(), model.last_process.as_ref());
    if t.is_none() && p.is_none() {
        let hint = vec![
            Line::from("no complete run yet"),
            Line::from(""),
            Line::from("let a run finish, press m,"),
            Line::from("and compare the two here"),
        ];
        frame.render_widget(
            Paragraph::new(hint).style(Style::new().fg(Color::DarkGray)),
            inner,
        );
        return;
    }
    let dur = |d: Option<std::time::Duration>| d.map_or_else(|| "—".to_string(), fmt_duration);
    // Each figure once; the two columns apply it to the thread and the process summary.
    type Figure<'a> = (&'a str, Box<dyn Fn(&RunSummary) -> String + 'a>);
    let figures: Vec<Figure> = vec![
        (
            "run",
            Box::new(|s| format!("{}w × {}", s.config.workers, s.config.tasks)),
        ),
        ("wall", Box::new(|s| fmt_duration(s.wall))),
        ("start-up", Box::new(|s| fmt_duration(s.startup))),
        ("hand-off", Box::new(|s| dur(s.overhead_mean))),
        ("  p99", Box::new(|s| dur(s.overhead_p99))),
        ("tasks", Box::new(|s| fmt_rate(s.tasks_per_s))),
        ("busy", Box::new(|s| format!("{:.0} %", s.busy_pct))),
        (
            "  range",
            Box::new(|s| format!("{:.0}–{:.0} %", s.busy_range.0, s.busy_range.1)),
        ),
    ];
    let cell = |s: Option<&RunSummary>, f: &dyn Fn(&RunSummary) -> String| {
        s.map_or_else(|| "—".to_string(), f)
    };
    let rows: Vec<(&str, String, String)> = figures
        .iter()
        .map(|(name, f)| (*name, cell(t, f.as_ref()), cell(p, f.as_ref())))
        .collect();
    let head = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(vec![
        Span::raw(format!("{:<9}", "")),
        Span::styled(format!("{:>12}", "thread"), head.fg(Color::Green)),
        Span::styled(format!("{:>13}", "process"), head.fg(Color::Magenta)),
    ])];
    for (name, a, b) in rows {
        lines.push(Line::from(format!("{name:<9}{a:>12}{b:>13}")));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
