//! The panels under the lanes: results, the example-style log, and thread-versus-process figures
//! (a table on wide screens, two summary lines on narrow ones).

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::config::Mode;
use crate::example_log::{LogLine, Logger};
use crate::model::{Model, Run, RunSummary};
use crate::view::lanes::fit_text;
use crate::view::{Theme, ViewState, fmt_duration, fmt_rate};

/// Width from which the comparison table has room beside the other two panels.
pub const WIDE: u16 = 100;

/// What the comparison's figures mean, for the table's foot (each line whole or absent).
const MEANING: &[&str] = &[
    "start-up: spawn → ready to work",
    "hand-off: idle gap before a task",
    "  that waited: poolscope's own",
    "  dispatch round trip",
    "pipe: this machine's raw pipe",
    "  round trip, for scale",
    "busy: time in tasks / time alive",
];

/// Draws the panels into `area`, as many as its width allows.
pub fn draw(frame: &mut Frame, area: Rect, model: &Model, state: &ViewState) {
    let theme = &state.theme;
    let log = log_area(area);
    if area.width >= WIDE {
        let [results, _, compare] = Layout::horizontal([
            Constraint::Length(22),
            Constraint::Min(30),
            Constraint::Length(38),
        ])
        .areas(area);
        draw_results(frame, results, model, theme);
        draw_compare(frame, compare, model, theme);
    } else {
        let [results, _] = split_narrow(area);
        draw_results(frame, results, model, theme);
    }
    draw_log(frame, log, model, theme, state.log_scroll);
}

fn split_narrow(area: Rect) -> [Rect; 2] {
    Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(area)
}

/// Where the log panel goes inside the panels' `area`.
pub fn log_area(area: Rect) -> Rect {
    if area.width >= WIDE {
        let [_, log, _] = Layout::horizontal([
            Constraint::Length(22),
            Constraint::Min(30),
            Constraint::Length(38),
        ])
        .areas(area);
        log
    } else {
        split_narrow(area)[1]
    }
}

fn panel<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(title)
}

/// Results in the order their workers finished them, the newest that fit, and the latest
/// failures, always saying how many are not shown.
fn draw_results(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme) {
    let block = panel(" results ", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(run) = &model.run else { return };
    let width = inner.width as usize;
    let height = inner.height as usize;
    let mut head = vec![
        Span::styled(run.finished.to_string(), theme.ok),
        Span::raw(" ok"),
    ];
    if run.failed > 0 {
        head.push(Span::styled(
            format!(" · {} failed", run.failed),
            theme.failed,
        ));
    }
    let mut lines = vec![Line::from(head)];
    let failure_lines = failure_lines(run, width, height / 3);
    let result_rows = height.saturating_sub(1 + failure_lines.len());
    let results = if run.is_experiment() {
        result_lines(run, width, result_rows)
    } else {
        name_lines(run, width, result_rows)
    };
    lines.extend(results.into_iter().map(Line::from));
    lines.extend(
        failure_lines
            .into_iter()
            .map(|l| Line::styled(l, theme.failed)),
    );
    frame.render_widget(Paragraph::new(lines), inner);
}

/// An external run's tasks by name: how many ended and their mean time (the values they
/// returned are not known).
fn name_lines(run: &Run, width: usize, rows: usize) -> Vec<String> {
    run.by_name
        .iter()
        .take(rows)
        .map(|t| {
            let mean = t
                .busy
                .checked_div(u32::try_from(t.ended).unwrap_or(u32::MAX).max(1))
                .unwrap_or_default();
            // The count and time stay whole; a long name gives way.
            let figures = format!(" ×{} {}", t.ended, fmt_duration(mean));
            let room = width.saturating_sub(figures.chars().count());
            let name: String = match t.name.chars().count() {
                n if n <= room => t.name.to_string(),
                _ if room < 2 => String::new(),
                _ => t.name.chars().take(room - 1).chain(['…']).collect(),
            };
            fit_text(&format!("{name}{figures}"), width)
        })
        .collect()
}

/// The newest failures that fit in `rows` lines, and a line saying how many more there are.
fn failure_lines(run: &Run, width: usize, rows: usize) -> Vec<String> {
    if run.failed == 0 || rows == 0 {
        return Vec::new();
    }
    let total = usize::try_from(run.failed).unwrap_or(usize::MAX);
    // Keep a row for "n more" whenever not every failure fits.
    let listed = if total <= rows { total } else { rows - 1 }.min(run.failures.len());
    let mut out: Vec<String> = run
        .failures
        .iter()
        .rev()
        .take(listed)
        .rev()
        .map(|f| {
            let text = format!("✗ {}: {}", run.task_label(f.task), f.error);
            fit_text(&text, width)
        })
        .collect();
    let hidden = run.failed - listed as u64;
    if hidden > 0 {
        out.insert(0, fit_text(&format!("✗ {hidden} more failed"), width));
    }
    out
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
    let results = run.results_in_order();
    let total = results.len();
    for (i, r) in results.iter().enumerate() {
        let piece = if i + 1 == total {
            r.value.to_string()
        } else {
            format!("{},", r.value)
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
    out.extend(
        lines[lines.len() - keep..]
            .iter()
            .map(|l| fit_text(&l.0, width)),
    );
    out
}

/// The tail of the example-style log, in the order the workers stamped it.
/// Scrolled back by `back` lines, the title says so.
fn draw_log(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, back: usize) {
    let log = model.log_in_order();
    let back = back.min(log.len().saturating_sub(1));
    let title = if back > 0 {
        format!(" log (scrolled back {back}; ] for newer) ")
    } else {
        " log ".to_string()
    };
    let block = panel(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = inner.height as usize;
    let end = log.len() - back;
    let skip = end.saturating_sub(rows);
    let lines: Vec<Line> = log
        .into_iter()
        .take(end)
        .skip(skip)
        .map(|(_, l)| {
            let text = fit_text(&l.to_string(), inner.width as usize);
            Line::styled(text, log_style(l, theme))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn log_style(line: &LogLine, theme: &Theme) -> Style {
    if line.is_failure() {
        theme.failed
    } else if line.logger == Logger::Stderr {
        Style::new().add_modifier(Modifier::ITALIC)
    } else if matches!(line.logger, Logger::Coordinator | Logger::Output(_)) {
        theme.dim
    } else {
        Style::new()
    }
}

fn dur(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_string(), fmt_duration)
}

/// The last complete thread run beside the last complete process run.
fn draw_compare(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme) {
    if let Some(run) = model.run.as_ref().filter(|r| !r.is_experiment()) {
        let block = panel(" source ", theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let lines: Vec<Line> = source_lines(run, inner.width as usize)
            .into_iter()
            .map(Line::from)
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let block = panel(" thread vs process ", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (t, p) = (model.last_thread.as_ref(), model.last_process.as_ref());
    let mut lines = Vec::new();
    if t.is_none() && p.is_none() {
        lines.extend(
            [
                "no complete run yet",
                "",
                "let a run finish, press m,",
                "and compare the two here",
            ]
            .map(Line::from),
        );
    } else {
        lines.extend(compare_table(t, p, model.pipe_round_trip));
    }
    let room = (inner.height as usize).saturating_sub(lines.len() + 1);
    if room >= MEANING.len() {
        lines.push(Line::from(""));
        lines.extend(MEANING.iter().map(|m| Line::styled(*m, theme.dim)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn compare_table(
    t: Option<&RunSummary>,
    p: Option<&RunSummary>,
    pipe: Option<Duration>,
) -> Vec<Line<'static>> {
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
    let head = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(vec![
        Span::raw(format!("{:<9}", "")),
        Span::styled(format!("{:>12}", "thread"), head),
        Span::styled(format!("{:>13}", "process"), head),
    ])];
    for (name, f) in &figures {
        let (a, b) = (cell(t, f.as_ref()), cell(p, f.as_ref()));
        lines.push(Line::from(format!("{name:<9}{a:>12}{b:>13}")));
        if *name == "  p99" {
            // The machine's raw pipe round trip, beside the process hand-off it bounds.
            let b = dur(pipe);
            lines.push(Line::from(format!("{:<9}{:>12}{b:>13}", "pipe", "—")));
        }
    }
    lines
}

/// The two-line thread-vs-process summary for narrow screens, under a titled rule.
pub fn draw_summary(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme) {
    if let Some(run) = model.run.as_ref().filter(|r| !r.is_experiment()) {
        let block = Block::new()
            .borders(Borders::TOP)
            .border_style(theme.border)
            .title(" source ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let width = inner.width as usize;
        let mut lines = source_lines(run, 4096);
        let first = lines
            .drain(..lines.len().min(2))
            .collect::<Vec<_>>()
            .join("  ");
        lines.insert(0, first);
        let lines: Vec<Line> = lines
            .into_iter()
            .map(|l| Line::from(fit_text(&l, width)))
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(theme.border)
        .title(" thread vs process ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let lines: Vec<Line> = [
        (Mode::Thread, model.last_thread.as_ref()),
        (Mode::Process, model.last_process.as_ref()),
    ]
    .into_iter()
    .map(|(mode, s)| {
        let pipe = (mode == Mode::Process)
            .then_some(model.pipe_round_trip)
            .flatten();
        Line::from(summary_line(mode, s, pipe, width))
    })
    .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One mode's figures on one line, whole pieces only, the most telling first.
fn summary_line(
    mode: Mode,
    s: Option<&RunSummary>,
    pipe: Option<Duration>,
    width: usize,
) -> String {
    let name = format!("{:<8}", mode.name());
    let Some(s) = s else {
        let key = match mode {
            Mode::Thread => 't',
            Mode::Process => 'p',
        };
        return fit_pieces(
            &name,
            &[(0, format!("no complete run yet (press {key})"))],
            width,
        );
    };
    let hand_off = match pipe {
        Some(pipe) => format!(
            "hand-off {} (pipe {})",
            dur(s.overhead_mean),
            fmt_duration(pipe)
        ),
        None => format!("hand-off {}", dur(s.overhead_mean)),
    };
    let pieces = [
        (0, format!("start-up {}", fmt_duration(s.startup))),
        (1, hand_off),
        (
            0,
            format!("{} tasks/s", crate::view::fmt_count(s.tasks_per_s)),
        ),
        (2, format!("busy {:.0}%", s.busy_pct)),
        (3, format!("wall {}", fmt_duration(s.wall))),
    ];
    fit_pieces(&name, &pieces, width)
}

/// `lead` and the pieces that fit in `width`, separated by two spaces, dropping the least
/// important (highest number) first.
fn fit_pieces(lead: &str, pieces: &[(u8, String)], width: usize) -> String {
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.sort_by_key(|&i| pieces[i].0);
    let mut budget = width.saturating_sub(lead.chars().count());
    let mut keep = vec![false; pieces.len()];
    for i in order {
        let w = pieces[i].1.chars().count() + 2;
        if w <= budget {
            budget -= w;
            keep[i] = true;
        }
    }
    let kept: Vec<&str> = pieces
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(p, _)| p.1.as_str())
        .collect();
    format!("{lead}{}", kept.join("  "))
}

/// What an external run is: where it comes from, its lanes, its wall time, how it ended.
fn source_lines(run: &Run, width: usize) -> Vec<String> {
    use crate::event::RunSource;
    let mut out = match &run.source {
        RunSource::Program { command } => vec!["program".to_string(), tail(command, width)],
        RunSource::Attached { pid, command, .. } => {
            vec![format!("attached to PID {pid}"), tail(command, width)]
        }
        RunSource::Replay {
            file,
            format,
            producer,
        } => vec![
            format!("replay of {producer} ({format})"),
            tail(file, width),
        ],
        RunSource::Experiment => Vec::new(),
    };
    let lanes = run.lanes.len() as u64 + run.folded.workers;
    out.push(format!(
        "{} · {}",
        crate::view::plural(lanes, "lane"),
        crate::view::plural(run.submitted, "task")
    ));
    if let Some(end) = run.last_task_end {
        out.push(format!("wall {}", fmt_duration(end)));
    }
    match &run.program_exit {
        Some(exit) if exit.is_clean() => out.push("program exited 0".into()),
        Some(exit) => out.push(format!("program ended: {exit}")),
        None if run.source.is_program() && !run.is_over() => out.push("program running".into()),
        None => {}
    }
    out.into_iter()
        .map(|l| fit_text(&l, width).trim_end().to_string())
        .collect()
}

/// The end of `s` in `width` columns, `…` in front when cut: a path's end says most.
fn tail(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width || width == 0 {
        return s.to_string();
    }
    let kept: String = s.chars().skip(n - width + 1).collect();
    format!("…{kept}")
}
