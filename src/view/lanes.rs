//! The lanes: one row per worker with its label, its task now, and a timeline of its tasks.

use std::time::Duration;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::model::{Lane, Model, Outcome, Run};
use crate::view::ViewState;

/// Shortest visible window, so a run that just began does not zoom into nanoseconds.
const MIN_WINDOW: Duration = Duration::from_millis(10);
/// Width of the column that says what a lane is doing now (narrower on small terminals).
const STATUS_WIDTH: u16 = 12;
const STATUS_WIDTH_NARROW: u16 = 10;
/// Below this inner width, lanes use compact labels and the narrow status column.
const NARROW: u16 = 80;
/// From this inner width on, lanes show memory and a CPU sparkline beside CPU %.
const WIDE: u16 = 110;
/// Width of the CPU % column.
const CPU_WIDTH: u16 = 4;
/// Width of memory plus sparkline columns.
const MEM_SPARK_WIDTH: u16 = 6 + 1 + 8;

/// The visible time window `[from, to)` of the run at `now`.
pub fn window(run: &Run, state: &ViewState, now: Duration) -> (Duration, Duration) {
    let t_end = run.ended_at.map_or(now, |e| e.min(now));
    // While running, fit what the run is expected to take, so the axis holds still.
    let expected = if run.is_over() {
        Duration::ZERO
    } else {
        let rounds = run
            .config
            .tasks
            .div_ceil(u64::from(run.config.workers.max(1)));
        Duration::from_millis(rounds.saturating_mul(run.config.task_ms))
    };
    let fit = t_end.max(expected).max(MIN_WINDOW);
    let width = (fit / (1u32 << state.zoom.min(crate::view::MAX_ZOOM))).max(MIN_WINDOW / 10);
    let right = if state.follow {
        t_end.max(width)
    } else {
        state.anchor.max(width)
    };
    if state.zoom == 0 && state.follow {
        (Duration::ZERO, fit)
    } else {
        (right - width, right)
    }
}

/// Draws the lanes block.
pub fn draw(frame: &mut Frame, area: Rect, model: &Model, state: &ViewState, now: Duration) {
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(" workers ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(run) = &model.run else {
        frame.render_widget(
            Paragraph::new("waiting for the first run…").style(Style::new().fg(Color::DarkGray)),
            inner,
        );
        return;
    };
    if inner.height == 0 || inner.width < 20 {
        return;
    }
    let narrow = inner.width < NARROW;
    let status_width = if narrow {
        STATUS_WIDTH_NARROW
    } else {
        STATUS_WIDTH
    };
    let labels: Vec<String> = run.lanes.iter().map(|l| lane_label(l, narrow)).collect();
    let label_width = labels
        .iter()
        .map(|l| l.chars().count() as u16)
        .max()
        .unwrap_or(8)
        .min(inner.width / 3);
    // Without a monitor (headless runs) there is nothing to show in these columns.
    let stats_width = match inner.width {
        _ if model.own.is_none() => 0,
        w if w >= WIDE => CPU_WIDTH + 1 + MEM_SPARK_WIDTH + 1,
        w if w >= NARROW => CPU_WIDTH + 1,
        _ => 0,
    };
    let stats_x = inner.x + 2 + label_width + 1 + status_width + 1;
    let timeline_x = stats_x + stats_width;
    let timeline_w = inner.right().saturating_sub(timeline_x);
    let (from, to) = window(run, state, now);
    let rows = inner.height.saturating_sub(1) as usize; // the last row is the axis
    let selected = state.selected.min(run.lanes.len().saturating_sub(1));
    let first = scroll_offset(selected, rows, run.lanes.len());
    let t_now = run.ended_at.map_or(now, |e| e.min(now));

    for (row, (i, lane)) in run
        .lanes
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .enumerate()
    {
        let y = inner.y + row as u16;
        let dead = lane.exited.as_ref().is_some_and(|(_, e)| !e.is_clean());
        let mut label_style = if dead {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        if i == selected {
            label_style = label_style.add_modifier(Modifier::REVERSED);
        }
        let marker = if i == selected { "▶ " } else { "  " };
        let label = Line::from(vec![
            Span::raw(marker),
            Span::styled(fit_text(&labels[i], label_width as usize), label_style),
        ]);
        frame.render_widget(
            Paragraph::new(label),
            Rect::new(inner.x, y, 2 + label_width, 1),
        );
        let (status, status_style) = status_of(run, lane, t_now);
        frame.render_widget(
            Paragraph::new(Span::styled(
                fit_text(&status, status_width as usize),
                status_style,
            )),
            Rect::new(inner.x + 2 + label_width + 1, y, status_width, 1),
        );
        if stats_width > 0 {
            let stats = stats_of(lane, inner.width >= WIDE);
            frame.render_widget(Paragraph::new(stats), Rect::new(stats_x, y, stats_width, 1));
        }
        if timeline_w > 0 {
            let rect = Rect::new(timeline_x, y, timeline_w, 1);
            draw_timeline(frame.buffer_mut(), rect, run, lane, (from, to), t_now);
        }
    }
    if rows < run.lanes.len() && inner.height > 1 {
        let note = format!(
            "{}–{} of {}",
            first + 1,
            (first + rows).min(run.lanes.len()),
            run.lanes.len()
        );
        frame.render_widget(
            Paragraph::new(Span::styled(note, Style::new().fg(Color::DarkGray))),
            Rect::new(
                inner.x + 2,
                inner.bottom() - 1,
                label_width + status_width,
                1,
            ),
        );
    }
    if timeline_w > 0 && inner.height > 1 {
        let rect = Rect::new(timeline_x, inner.bottom() - 1, timeline_w, 1);
        draw_axis(frame.buffer_mut(), rect, (from, to));
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

/// A lane's name: `Thread-2 · tid 41234` or `PID 29895`; on a narrow screen `Thread-2 41234`.
fn lane_label(lane: &Lane, narrow: bool) -> String {
    match &lane.label {
        crate::event::WorkerLabel::Thread { name, tid } if narrow => format!("{name} {tid}"),
        label => label.to_string(),
    }
}

/// What a lane is doing now, in words.
fn status_of(run: &Run, lane: &Lane, now: Duration) -> (String, Style) {
    if let Some((_, exit)) = &lane.exited {
        return if exit.is_clean() {
            ("exited".to_string(), Style::new().fg(Color::DarkGray))
        } else {
            ("✗ dead".to_string(), Style::new().fg(Color::Red))
        };
    }
    match lane.current {
        Some(_) if lane.overdue => ("⚠ overdue".to_string(), Style::new().fg(Color::Yellow)),
        Some((task, _)) => (
            run.config.workload.call_label(task),
            Style::new().fg(Color::Green),
        ),
        // Short tasks report start and finish together: a lane working through them is busy.
        None if run.is_busy(lane, now) => ("busy".to_string(), Style::new().fg(Color::Green)),
        None => ("idle".to_string(), Style::new().fg(Color::DarkGray)),
    }
}

/// A lane's CPU %, and on wide screens its memory and CPU sparkline. A lane whose worker
/// has exited shows, greyed, its mean CPU over its life and its last memory reading.
fn stats_of(lane: &Lane, wide: bool) -> Line<'static> {
    let dim = Style::new().fg(Color::DarkGray);
    let exited = lane.exited.is_some();
    let cpu = if exited {
        let n = lane.cpu_history.len();
        (n > 0).then(|| lane.cpu_history.iter().sum::<f32>() / n as f32)
    } else {
        lane.cpu_pct
    };
    let cpu = match cpu {
        Some(c) => {
            let style = match c {
                _ if exited => dim,
                c if c >= 50.0 => Style::new().fg(Color::Yellow),
                _ => Style::new(),
            };
            Span::styled(format!("{:>3.0}%", c.min(999.0)), style)
        }
        None => Span::styled("   –", dim),
    };
    let mut spans = vec![cpu];
    if wide {
        let mem = match lane.rss {
            Some(b) => crate::view::fmt_bytes(b),
            None if matches!(lane.label, crate::event::WorkerLabel::Thread { .. }) => {
                "shared".to_string()
            }
            None => "–".to_string(),
        };
        spans.push(Span::styled(format!(" {mem:>6}"), dim));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(
            sparkline(&lane.cpu_history, 8),
            if exited {
                dim
            } else {
                Style::new().fg(Color::Yellow)
            },
        ));
    }
    Line::from(spans)
}

/// The last `width` CPU samples as block characters, right-aligned.
fn sparkline(history: &std::collections::VecDeque<f32>, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let skip = history.len().saturating_sub(width);
    let bars: String = history
        .iter()
        .skip(skip)
        .map(|&c| BARS[((c.clamp(0.0, 100.0) / 100.0 * 7.0).round()) as usize])
        .collect();
    format!("{bars:>width$}")
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub fn fit_text(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        format!("{text:<width$}")
    } else if width == 0 {
        String::new()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

/// Shade characters for a coarse busy fraction, from idle to solid.
fn shade(fraction: f64) -> char {
    match fraction {
        f if f <= 0.02 => '·',
        f if f <= 0.25 => '░',
        f if f <= 0.5 => '▒',
        f if f <= 0.85 => '▓',
        _ => '█',
    }
}

/// Draws one lane's timeline into `rect` for the window `(from, to)`.
fn draw_timeline(
    buf: &mut Buffer,
    rect: Rect,
    run: &Run,
    lane: &Lane,
    (from, to): (Duration, Duration),
    now: Duration,
) {
    let w = rect.width as usize;
    let span_ns = (to - from).as_nanos().max(1) as f64;
    let cell_of = |t: Duration| -> f64 {
        (t.as_nanos() as f64 - from.as_nanos() as f64) / span_ns * w as f64
    };
    let time_of = |c: usize| -> Duration { from + (to - from).mul_f64(c as f64 / w as f64) };
    let life_end = lane.exited.as_ref().map_or(now, |(at, _)| (*at).min(now));
    let idle = Style::new().fg(Color::DarkGray);
    let coarse = Style::new().fg(Color::Blue);

    // The background: blank outside the worker's life, idle dots or coarse shades inside.
    for c in 0..w {
        let (c0, c1) = (time_of(c), time_of(c + 1));
        let cell = &mut buf[(rect.x + c as u16, rect.y)];
        if c1 <= lane.spawned_at || c0 >= life_end {
            cell.set_char(' ');
        } else if c0 < lane.coarse_until {
            let f = lane.occupancy.busy_fraction(c0, c1.min(lane.coarse_until));
            cell.set_char(shade(f))
                .set_style(if f > 0.02 { coarse } else { idle });
        } else {
            cell.set_char('·').set_style(idle);
        }
    }

    let label_floor = run.config.workload.name().len() + 3;
    let running = lane
        .current
        .map(|(task, start)| (task, start, now.max(start), None));
    let spans = lane
        .spans
        .iter()
        .map(|s| (s.task, s.start, s.end, Some(s.outcome)))
        .chain(running);
    for (task, start, end, outcome) in spans {
        if end < from || start > to {
            continue;
        }
        let c0 = cell_of(start).floor().max(0.0) as usize;
        let c1 = (cell_of(end).ceil() as usize)
            .clamp(c0 + 1, w.max(c0 + 1))
            .min(w);
        if c0 >= w {
            continue;
        }
        let colour = match outcome {
            None if lane.overdue => Color::Yellow,
            None => Color::Green,
            Some(Outcome::Failed) => Color::Red,
            Some(Outcome::Finished) if task % 2 == 0 => Color::Cyan,
            Some(Outcome::Finished) => Color::LightBlue,
        };
        // A wide bar is coloured cells with its label in them; a narrow one is solid glyphs
        // drawn in the bar's colour.
        let style = match (c1 - c0, outcome) {
            (0..=2, _) => Style::new().fg(colour),
            (_, Some(Outcome::Failed)) => Style::new().fg(Color::White).bg(colour),
            _ => Style::new().fg(Color::Black).bg(colour),
        };
        // Only a bar with room for `name(n)` gets its label formatted.
        let width = c1 - c0;
        let label = if width > label_floor {
            run.config.workload.call_label(task)
        } else {
            String::new()
        };
        bar_glyphs(width, &label, start >= from, end <= to, outcome, |k, ch| {
            buf[(rect.x + (c0 + k) as u16, rect.y)]
                .set_char(ch)
                .set_style(style);
        });
    }

    // A worker that died says how, right where its lane stops.
    if let Some((at, exit)) = &lane.exited
        && !exit.is_clean()
        && *at >= from
        && *at <= to
    {
        let text = format!(" {exit}");
        let c = (cell_of(*at).ceil().max(0.0) as usize).min(w);
        let style = Style::new().fg(Color::Red);
        for (k, ch) in text.chars().take(w - c).enumerate() {
            buf[(rect.x + (c + k) as u16, rect.y)]
                .set_char(ch)
                .set_style(style);
        }
    }
}

/// Draws one bar `width` cells wide through `put(cell, char)`: `├blocks(3)───┤`, open at a
/// clipped side, `▶` at the growing end of a running task, `✗` at the start of a failed one;
/// too narrow for caps, solid cells, so a run of short tasks reads as busy time.
fn bar_glyphs(
    width: usize,
    label: &str,
    starts_inside: bool,
    ends_inside: bool,
    outcome: Option<Outcome>,
    mut put: impl FnMut(usize, char),
) {
    if width <= 2 {
        for k in 0..width {
            let ch = match (k, outcome) {
                (0, Some(Outcome::Failed)) => '✗',
                (k, None) if k == width - 1 => '▶',
                _ => '█',
            };
            put(k, ch);
        }
        return;
    }
    let first = usize::from(starts_inside);
    // The label may cover the end cap: the next bar's start usually overwrites it anyway.
    let label_len = label.chars().count();
    let labelled = label_len > 0 && label_len <= width - first;
    for k in 0..width {
        let ch = if k == 0 && starts_inside {
            if outcome == Some(Outcome::Failed) {
                '✗'
            } else {
                '├'
            }
        } else if labelled && k >= first && k < first + label_len {
            continue;
        } else if k == width - 1 && ends_inside {
            if outcome.is_none() { '▶' } else { '┤' }
        } else {
            '─'
        };
        put(k, ch);
    }
    if labelled {
        for (i, ch) in label.chars().enumerate() {
            put(first + i, ch);
        }
    }
}

/// The time axis under the lanes: ticks at round times, labelled where they fit.
fn draw_axis(buf: &mut Buffer, rect: Rect, (from, to): (Duration, Duration)) {
    let w = rect.width as usize;
    let span = (to - from).as_secs_f64();
    if w == 0 || span <= 0.0 {
        return;
    }
    let step = tick_step(span / w as f64 * 12.0);
    let style = Style::new().fg(Color::DarkGray);
    for c in 0..w {
        buf[(rect.x + c as u16, rect.y)]
            .set_char('─')
            .set_style(style);
    }
    // The tolerance keeps a tick sitting exactly on the left edge from rounding away.
    let first = (from.as_secs_f64() / step - 1e-6).ceil().max(0.0) as u64;
    let mut next_free = 0usize;
    let mut k = first;
    loop {
        let t = k as f64 * step;
        let c = ((t - from.as_secs_f64()) / span * w as f64).round() as usize;
        if c >= w {
            break;
        }
        let label = format!("┴{}", fmt_tick(t, step, to.as_secs_f64()));
        if c >= next_free && c + label.chars().count() <= w {
            for (i, ch) in label.chars().enumerate() {
                buf[(rect.x + (c + i) as u16, rect.y)]
                    .set_char(ch)
                    .set_style(style);
            }
            next_free = c + label.chars().count() + 1;
        }
        k += 1;
    }
}

/// The smallest round step (1, 2 or 5 × 10^k seconds) of at least `min` seconds.
fn tick_step(min: f64) -> f64 {
    let mut base = 1e-6;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if base * m >= min {
                return base * m;
            }
        }
        base *= 10.0;
    }
}

/// A tick's label, in one unit for the whole axis (seconds once it reaches a second) and
/// with as many decimals as the step needs.
fn fmt_tick(t: f64, step: f64, axis_end: f64) -> String {
    if axis_end >= 1.0 {
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        format!("{t:.decimals$}s")
    } else if step >= 1e-3 {
        format!("{:.0}ms", t * 1e3)
    } else {
        format!("{:.0}µs", t * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(width: usize, label: &str, start: bool, end: bool, o: Option<Outcome>) -> String {
        let mut cells = vec![' '; width];
        bar_glyphs(width, label, start, end, o, |k, ch| cells[k] = ch);
        cells.into_iter().collect()
    }

    #[test]
    fn bars_carry_their_label_when_it_fits() {
        let done = Some(Outcome::Finished);
        assert_eq!(bar(14, "blocks(3)", true, true, done), "├blocks(3)───┤");
        assert_eq!(bar(6, "blocks(3)", true, true, None), "├────▶");
        assert_eq!(bar(10, "blocks(3)", true, true, None), "├blocks(3)");
        assert_eq!(
            bar(12, "blocks(3)", false, true, Some(Outcome::Failed)),
            "blocks(3)──┤"
        );
        assert_eq!(bar(5, "", true, true, done), "├───┤");
    }

    #[test]
    fn narrow_bars_are_solid() {
        assert_eq!(
            bar(2, "blocks(3)", true, true, Some(Outcome::Finished)),
            "██"
        );
        assert_eq!(bar(2, "blocks(3)", true, true, Some(Outcome::Failed)), "✗█");
        assert_eq!(bar(1, "blocks(3)", true, true, None), "▶");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(0.3), 0.5);
        assert_eq!(tick_step(0.000_7), 0.001);
        assert_eq!(fmt_tick(1.5, 0.5, 2.0), "1.5s");
        assert_eq!(fmt_tick(2.0, 1.0, 3.0), "2s");
        assert_eq!(fmt_tick(0.25, 0.05, 0.5), "250ms");
        assert_eq!(fmt_tick(0.0005, 0.0001, 0.001), "500µs");
    }
}
