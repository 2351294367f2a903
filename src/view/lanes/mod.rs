//! The lanes: one row per worker with its label, its task now, and a timeline of its tasks.
//!
//! Every label on screen is whole or absent: a bar's `blocks(12)` is drawn only where no
//! other bar will cover it, a lane's status only if it fits its column.

use std::fmt::Write as _;
use std::time::Duration;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::model::{Lane, Model, Outcome, Run};
use crate::view::{Theme, ViewState, fmt_bytes, plural};
use crate::workload::WorkKind;

/// Shortest visible window, so a run that just began does not zoom into nanoseconds.
const MIN_WINDOW: Duration = Duration::from_millis(10);
/// Below this inner width, lanes use compact labels.
const NARROW: u16 = 100;
/// From this inner width on, lanes show memory and a CPU sparkline beside CPU %.
const WIDE: u16 = 110;
/// Width of the CPU % column.
const CPU_WIDTH: u16 = 4;
/// Width of memory plus sparkline columns: ` 12.3 MiB ▁▂▃▄▅▆▇█`.
const MEM_SPARK_WIDTH: u16 = 9 + 1 + 8;

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
        (right.saturating_sub(width), right)
    }
}

/// Column positions shared by every lane row.
struct Columns {
    label: u16,
    status: u16,
    stats: u16,
    wide_stats: bool,
    timeline_x: u16,
    timeline_w: u16,
}

impl Columns {
    fn of(inner: Rect, run: &Run, labels: &[String], monitored: bool) -> Columns {
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
    let mut block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(" workers ");
    // The selected lane's latest task in detail, on the bottom border, if it fits whole.
    if let Some(run) = &model.run
        && let Some(lane) = run
            .lanes
            .get(state.selected.min(run.lanes.len().saturating_sub(1)))
        && let Some(detail) = task_detail(run, lane, now)
        && detail.chars().count() + 4 <= area.width as usize
    {
        block = block.title_bottom(detail);
    }
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
    let narrow = inner.width < NARROW;
    let mut labels: Vec<String> = run.lanes.iter().map(|l| lane_label(l, narrow)).collect();
    // Other programs' names run long (`ThreadPoolExecutor-0_1 · tid 41234`): shorten them
    // all, alike, rather than cut them to nothing.
    let room = usize::from(inner.width / 4);
    if labels.iter().any(|l| l.chars().count() > room) {
        labels = run.lanes.iter().map(|l| lane_label(l, true)).collect();
    }
    let cols = Columns::of(inner, run, &labels, model.own.is_some());
    let window = window(run, state, now);
    let t_now = run.ended_at.map_or(now, |e| e.min(now));
    let mut top = inner.y;
    if run.folded.workers > 0 && inner.height > 2 {
        draw_folded(
            frame,
            Rect::new(inner.x + 2, top, inner.width - 2, 1),
            run,
            theme,
        );
        top += 1;
    }
    let rows = inner.bottom().saturating_sub(top + 1); // the last row is the axis
    let per_lane = per_lane.max(1);
    let shown = (rows / per_lane) as usize;
    let selected = state.selected.min(run.lanes.len().saturating_sub(1));
    let first = scroll_offset(selected, shown, run.lanes.len());
    for (row, (i, lane)) in run
        .lanes
        .iter()
        .enumerate()
        .skip(first)
        .take(shown)
        .enumerate()
    {
        let y = top + row as u16 * per_lane;
        let ctx = LaneRow {
            run,
            lane,
            label: &labels[i],
            selected: i == selected,
            cols: &cols,
            window,
            now: t_now,
            theme,
        };
        ctx.draw(frame, inner.x, y, per_lane);
    }
    if shown < run.lanes.len() && inner.height > 1 {
        let note = format!(
            "{}–{} of {}",
            first + 1,
            (first + shown).min(run.lanes.len()),
            run.lanes.len()
        );
        let rect = Rect::new(inner.x + 2, inner.bottom() - 1, cols.label + cols.status, 1);
        frame.render_widget(Paragraph::new(Span::styled(note, theme.dim)), rect);
    }
    if cols.timeline_w > 0 && inner.height > 1 {
        let rect = Rect::new(cols.timeline_x, inner.bottom() - 1, cols.timeline_w, 1);
        draw_axis(frame.buffer_mut(), rect, window, theme);
    }
}

/// The lane drawn at screen row `y` of the lanes' `area`, as [`draw`] lays them out.
pub fn lane_at(area: Rect, run: &Run, state: &ViewState, per_lane: u16, y: u16) -> Option<usize> {
    let inner = Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let mut top = inner.y;
    if run.folded.workers > 0 && inner.height > 2 {
        top += 1;
    }
    let rows = inner.bottom().saturating_sub(top + 1);
    let per_lane = per_lane.max(1);
    let shown = (rows / per_lane) as usize;
    let selected = state.selected.min(run.lanes.len().saturating_sub(1));
    let first = scroll_offset(selected, shown, run.lanes.len());
    let row = usize::from(y.checked_sub(top)? / per_lane);
    (row < shown)
        .then_some(first + row)
        .filter(|&i| i < run.lanes.len())
}

/// The selected lane's current or latest task: name, start, duration, and result or error.
fn task_detail(run: &Run, lane: &Lane, now: Duration) -> Option<String> {
    use crate::view::fmt_duration;
    let call = |task| run.task_label(task);
    let now = run.ended_at.map_or(now, |e| e.min(now));
    if let Some((task, start)) = lane.current {
        let so_far = fmt_duration(now.saturating_sub(start));
        return Some(format!(
            " {}: {} running since {} ({so_far} so far) ",
            lane_label(lane, true),
            call(task),
            fmt_duration(start)
        ));
    }
    let span = lane.spans.back()?;
    let outcome = match span.outcome {
        // An external task's value is not known, only that it returned.
        Outcome::Finished if !run.is_experiment() => "done".to_string(),
        Outcome::Finished => run
            .results
            .iter()
            .rev()
            .find(|r| r.task == span.task)
            .map_or_else(|| "done".to_string(), |r| format!("→ {}", r.value)),
        Outcome::Failed => run
            .failures
            .iter()
            .rev()
            .find(|f| f.task == span.task)
            .map_or_else(|| "failed".to_string(), |f| format!("✗ {}", f.error)),
    };
    Some(format!(
        " {}: {} at {} took {} {outcome} ",
        lane_label(lane, true),
        call(span.task),
        fmt_duration(span.start),
        fmt_duration(span.end.saturating_sub(span.start))
    ))
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
        crate::event::WorkerLabel::External(w) if narrow => {
            let name = w.name.replace("ThreadPoolExecutor-", "TPE-");
            match (w.tid, &w.host) {
                (Some(tid), _) => format!("{name} {tid}"),
                (None, Some(host)) if !name.contains(host.as_str()) => format!("{host} {name}"),
                (None, _) => name,
            }
        }
        label => label.to_string(),
    }
}

/// Everything needed to draw one lane.
struct LaneRow<'a> {
    run: &'a Run,
    lane: &'a Lane,
    label: &'a str,
    selected: bool,
    cols: &'a Columns,
    window: (Duration, Duration),
    now: Duration,
    theme: &'a Theme,
}

impl LaneRow<'_> {
    fn draw(&self, frame: &mut Frame, x: u16, y: u16, height: u16) {
        let (cols, theme) = (self.cols, self.theme);
        let dead = self
            .lane
            .exited
            .as_ref()
            .is_some_and(|(_, e)| !e.is_clean());
        let mut label_style = if dead || self.lane.has_exited() {
            theme.dim
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        if self.selected {
            label_style = label_style.add_modifier(Modifier::REVERSED);
        }
        let marker = if self.selected { "▶ " } else { "  " };
        let label = Line::from(vec![
            Span::raw(marker),
            Span::styled(fit_text(self.label, cols.label as usize), label_style),
        ]);
        frame.render_widget(Paragraph::new(label), Rect::new(x, y, 2 + cols.label, 1));
        let status_x = x + 2 + cols.label + 1;
        let (status, style) = status_of(self.run, self.lane, self.now, cols.status, theme);
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
        if height >= 2 {
            let text = totals_of(
                self.run,
                self.lane,
                self.now,
                (cols.label + cols.status) as usize,
            );
            let rect2 = Rect::new(x + 2, y + 1, cols.label + 1 + cols.status, 1);
            frame.render_widget(Paragraph::new(Span::styled(text, theme.dim)), rect2);
            let rect = Rect::new(cols.timeline_x, y + 1, cols.timeline_w, 1);
            timeline.draw_density(frame.buffer_mut(), rect);
        }
    }
}

/// A lane's totals for its second row, whole pieces that fit `width`, least useful dropped
/// first: `12 done · 1 failed · busy 97%`.
fn totals_of(run: &Run, lane: &Lane, now: Duration, width: usize) -> String {
    let mut pieces = vec![format!("{} done", lane.finished)];
    if lane.failed > 0 {
        pieces.push(format!("{} failed", lane.failed));
    }
    if !lane.has_exited() && !run.is_over() {
        let share = run.busy_share(lane, now);
        pieces.push(format!("busy {:.0}%", share * 100.0));
    }
    while pieces.len() > 1 && pieces.join(" · ").chars().count() > width {
        pieces.pop();
    }
    whole_or_nothing(&pieces.join(" · "), width)
}

/// `text` if it fits `width` characters, padded; otherwise nothing.
fn whole_or_nothing(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        format!("{text:<width$}")
    } else {
        " ".repeat(width)
    }
}

/// What a lane is doing now, in words that fit `width`: the task it runs (the latest one,
/// for tasks too short to be seen running, with a shade for its busy share over the last
/// second), `idle`, `exited` or `✗ dead`.
fn status_of(run: &Run, lane: &Lane, now: Duration, width: u16, theme: &Theme) -> (String, Style) {
    let width = width as usize;
    let call = |task| run.task_label(task);
    let (text, alternative, style) = if let Some((_, exit)) = &lane.exited {
        if exit.is_clean() {
            ("exited".to_string(), None, theme.dim)
        } else {
            ("✗ dead".to_string(), None, theme.failed)
        }
    } else if let Some((task, _)) = lane.current {
        if lane.overdue {
            (
                format!("⚠ {}", call(task)),
                Some("⚠ overdue".to_string()),
                theme.warning,
            )
        } else {
            (
                call(task),
                Some("running".to_string()),
                kind_style(run, task, theme),
            )
        }
    } else {
        // Where starts are announced, a lane with no current task is idle: that is the truth.
        // Shorter tasks are seen only once done: name the latest, shaded by the busy share.
        let share = if run.is_over() || run.config.announces_starts() {
            0.0
        } else {
            run.busy_share(lane, now)
        };
        match lane.spans.back() {
            Some(span) if share > 0.0 => {
                let shade = shade(share);
                let pct = format!("busy {:.0}%", share * 100.0);
                (
                    format!("{shade} {}", call(span.task)),
                    Some(pct),
                    kind_style(run, span.task, theme),
                )
            }
            _ => ("idle".to_string(), None, theme.dim),
        }
    };
    let fits = |t: &String| t.chars().count() <= width;
    let chosen = [Some(text), alternative].into_iter().flatten().find(fits);
    (
        whole_or_nothing(chosen.as_deref().unwrap_or(""), width),
        style,
    )
}

/// What a stretch of a timeline shows, resolved to a theme's style only when drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Idle,
    Sleep,
    Cpu,
    Task,
    Failed,
    Warning,
}

impl Kind {
    /// The kind of work task `task` of `run` does, where the workload tells it.
    fn of(run: &Run, task: u64) -> Kind {
        let c = &run.config;
        if !run.is_experiment() {
            return Kind::Task;
        }
        match c.workload.kind(task, c.task_ms, c.seed) {
            WorkKind::Sleep => Kind::Sleep,
            WorkKind::Cpu => Kind::Cpu,
            WorkKind::Unknown => Kind::Task,
        }
    }

    fn style(self, theme: &Theme) -> Style {
        match self {
            Kind::Idle => theme.dim,
            Kind::Sleep => theme.sleep,
            Kind::Cpu => theme.cpu,
            Kind::Task => theme.task,
            Kind::Failed => theme.failed,
            Kind::Warning => theme.warning,
        }
    }
}

/// The colour of a task's kind of work, where the workload tells it.
fn kind_style(run: &Run, task: u64, theme: &Theme) -> Style {
    Kind::of(run, task).style(theme)
}

/// A lane's CPU %, and on wide screens its memory and CPU sparkline. A lane whose worker
/// has exited shows, greyed, its mean CPU over its life and its last memory reading.
fn stats_of(lane: &Lane, wide: bool, theme: &Theme) -> Line<'static> {
    let dim = theme.dim;
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
                c if c >= 50.0 => theme.cpu,
                _ => Style::new(),
            };
            Span::styled(format!("{:>3.0}%", c.clamp(0.0, 999.0)), style)
        }
        None => Span::styled("   –", dim),
    };
    let mut spans = vec![cpu];
    if wide {
        let mem = match lane.rss {
            Some(b) => fmt_bytes(b),
            None if matches!(lane.label, crate::event::WorkerLabel::Thread { .. }) => {
                "shared".to_string()
            }
            None => "–".to_string(),
        };
        spans.push(Span::styled(format!(" {mem:>9}"), dim));
        spans.push(Span::raw(" "));
        let spark = if exited { dim } else { theme.cpu };
        spans.push(Span::styled(sparkline(&lane.cpu_history, 8), spark));
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

/// Cuts `text` to `width` characters at a word boundary, marking the cut with `…`, so no
/// word (and no `blocks(12)` inside free text) is shown in part.
pub fn fit_text(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return format!("{text:<width$}");
    }
    if width == 0 {
        return String::new();
    }
    let mut cut = String::new();
    let mut used = 0;
    for word in text.split_inclusive(' ') {
        let len = word.chars().count();
        if used + len.min(word.trim_end().chars().count()) + 1 > width {
            break;
        }
        cut.push_str(word);
        used += len;
    }
    let mut cut = cut.trim_end().to_string();
    cut.push('…');
    format!("{cut:<width$}")
}

/// Shade characters for a busy fraction, from idle to solid.
pub fn shade(fraction: f64) -> char {
    match fraction {
        f if f <= 0.02 => '·',
        f if f <= 0.25 => '░',
        f if f <= 0.5 => '▒',
        f if f <= 0.85 => '▓',
        _ => '█',
    }
}

/// One task's bar, in cells of the timeline.
struct Bar {
    task: u64,
    c0: usize,
    c1: usize,
    starts_inside: bool,
    ends_inside: bool,
    outcome: Option<Outcome>,
}

/// A lane's timeline over the window: where each task's bar goes and how busy each cell was.
struct Timeline<'a> {
    run: &'a Run,
    lane: &'a Lane,
    theme: &'a Theme,
    width: usize,
    bars: Vec<Bar>,
    /// Per cell: busy fraction, whether it lies in the worker's life, and the kind of the
    /// task that touched it last (failed wins).
    cells: Vec<(f32, bool, Kind)>,
}

impl<'a> Timeline<'a> {
    fn new(
        run: &'a Run,
        lane: &'a Lane,
        (from, to): (Duration, Duration),
        now: Duration,
        width: u16,
        theme: &'a Theme,
    ) -> Self {
        let w = width as usize;
        let (from_s, span_s) = (
            from.as_secs_f64(),
            to.saturating_sub(from).as_secs_f64().max(1e-12),
        );
        let cell_of = |t: Duration| (t.as_secs_f64() - from_s) / span_s * w as f64;
        let life_end = lane.exited.as_ref().map_or(now, |(at, _)| (*at).min(now));
        let (alive0, alive1) = (cell_of(lane.spawned_at), cell_of(life_end));
        let mut cells: Vec<(f32, bool, Kind)> = (0..w)
            .map(|c| {
                let alive = (c as f64 + 1.0) > alive0 && (c as f64) < alive1;
                (0.0, alive, Kind::Idle)
            })
            .collect();
        // Where the detailed spans were dropped, the coarse occupancy fills in.
        let coarse_end = cell_of(lane.coarse_until).clamp(0.0, w as f64);
        for (c, cell) in cells
            .iter_mut()
            .enumerate()
            .take(coarse_end.ceil() as usize)
        {
            let t0 = from.saturating_add(time_at(to.saturating_sub(from), c, w));
            let t1 = from
                .saturating_add(time_at(to.saturating_sub(from), c + 1, w))
                .min(lane.coarse_until);
            cell.0 = lane.occupancy.busy_fraction(t0, t1) as f32;
            cell.2 = Kind::Task;
        }
        let running = lane
            .current
            .map(|(task, start)| (task, start, now.max(start), None));
        let spans = lane
            .spans
            .iter()
            .map(|s| (s.task, s.start, s.end, Some(s.outcome)));
        let mut bars = Vec::with_capacity(lane.spans.len() + 1);
        for (task, start, end, outcome) in spans.chain(running) {
            if end < from || start > to {
                continue;
            }
            let (x0, x1) = (cell_of(start).max(0.0), cell_of(end).min(w as f64));
            let kind = match outcome {
                Some(Outcome::Failed) => Kind::Failed,
                None if lane.overdue => Kind::Warning,
                _ => Kind::of(run, task),
            };
            // Each cell the task touches gets its share of that cell's time.
            let mut c = x0.floor() as usize;
            while (c as f64) < x1 && c < w {
                let part = (x1.min(c as f64 + 1.0) - x0.max(c as f64)).max(0.0);
                let cell = &mut cells[c];
                cell.0 = (cell.0 + part as f32).min(1.0);
                if cell.2 != Kind::Failed {
                    cell.2 = kind;
                }
                c += 1;
            }
            let c0 = x0.floor() as usize;
            let c1 = (x1.ceil() as usize).clamp(c0 + 1, w.max(c0 + 1)).min(w);
            if c0 < w {
                bars.push(Bar {
                    task,
                    c0,
                    c1,
                    starts_inside: start >= from,
                    ends_inside: end <= to,
                    outcome,
                });
            }
        }
        Timeline {
            run,
            lane,
            theme,
            width: w,
            bars,
            cells,
        }
    }

    /// The busy share of each cell as shades, idle time as dots: the truth below one cell.
    fn draw_density(&self, buf: &mut Buffer, rect: Rect) {
        for (c, &(f, alive, kind)) in self.cells.iter().enumerate() {
            let cell = &mut buf[(rect.x + c as u16, rect.y)];
            if !alive && f <= 0.0 {
                cell.set_char(' ');
            } else if f > 0.02 {
                cell.set_char(shade(f64::from(f)))
                    .set_style(kind.style(self.theme));
            } else {
                cell.set_char('·').set_style(self.theme.dim);
            }
        }
    }

    /// Shades for time too fine to draw, then every bar three cells or wider with its caps
    /// and, where no later bar covers it, its whole label; then how a dead worker died.
    fn draw_bars(&self, buf: &mut Buffer, rect: Rect) {
        self.draw_density(buf, rect);
        let label_floor = if self.run.is_experiment() {
            self.run.config.workload.name().len() + 3
        } else {
            4
        };
        for (i, bar) in self.bars.iter().enumerate() {
            let width = bar.c1 - bar.c0;
            if width < 3 && bar.outcome.is_some() {
                continue;
            }
            // The label may use the cells up to the next bar's start, never beyond.
            let room = self
                .bars
                .get(i + 1)
                .map_or(bar.c1, |next| next.c0.min(bar.c1))
                - bar.c0;
            let label = if room > label_floor {
                self.run.task_label(bar.task)
            } else {
                String::new()
            };
            let style = match bar.outcome {
                Some(Outcome::Failed) => self.theme.filled(self.theme.failed),
                None if self.lane.overdue => self.theme.filled(self.theme.warning),
                _ => self
                    .theme
                    .filled(kind_style(self.run, bar.task, self.theme)),
            };
            let style = if width <= 2 {
                self.cells[bar.c0].2.style(self.theme)
            } else {
                style
            };
            let glyphs = BarShape {
                width,
                room,
                starts_inside: bar.starts_inside,
                ends_inside: bar.ends_inside,
                outcome: bar.outcome,
            };
            glyphs.draw(&label, |k, ch| {
                buf[(rect.x + (bar.c0 + k) as u16, rect.y)]
                    .set_char(ch)
                    .set_style(style);
            });
        }
        self.draw_exit(buf, rect);
    }

    /// A worker that died says how, right where its lane stops, if the words fit.
    fn draw_exit(&self, buf: &mut Buffer, rect: Rect) {
        let Some((_, exit)) = &self.lane.exited else {
            return;
        };
        if exit.is_clean() {
            return;
        }
        let Some(c) = self.cells.iter().rposition(|cell| cell.1 || cell.0 > 0.0) else {
            return;
        };
        let text = format!(" {exit}");
        let start = c + 1;
        if start >= self.width || start + text.chars().count() > self.width {
            return;
        }
        for (k, ch) in text.chars().enumerate() {
            buf[(rect.x + (start + k) as u16, rect.y)]
                .set_char(ch)
                .set_style(self.theme.failed);
        }
    }
}

/// The time `c / w` of the way through a window of length `span`, without overflow (a
/// float is exact enough for a cell's edge and much cheaper than 128-bit division).
fn time_at(span: Duration, c: usize, w: usize) -> Duration {
    let ns = span.as_nanos() as f64 * (c as f64 / w.max(1) as f64);
    // `as` saturates: a huge window gives the largest time, never a panic.
    Duration::from_nanos(ns as u64).min(span)
}

/// A bar's glyphs: `├blocks(3)───┤`, open at a clipped side, `▶` at the growing end of a
/// running task, `✗` at the start of a failed one.
struct BarShape {
    width: usize,
    /// Cells the label may use (a later bar may start inside this one's last cell).
    room: usize,
    starts_inside: bool,
    ends_inside: bool,
    outcome: Option<Outcome>,
}

impl BarShape {
    /// Draws through `put(cell, char)`; `label` goes in whole, or not at all.
    fn draw(&self, label: &str, mut put: impl FnMut(usize, char)) {
        let width = self.width;
        if width <= 2 {
            // Too narrow for caps: the running task's growing end, or a failure's cross.
            for k in 0..width {
                let ch = match (k, self.outcome) {
                    (0, Some(Outcome::Failed)) => '✗',
                    (k, None) if k == width - 1 => '▶',
                    _ => '█',
                };
                put(k, ch);
            }
            return;
        }
        let first = usize::from(self.starts_inside);
        let label_len = label.chars().count();
        let labelled = label_len > 0 && first + label_len <= self.room.min(width);
        for k in 0..width {
            let ch = if k == 0 && self.starts_inside {
                if self.outcome == Some(Outcome::Failed) {
                    '✗'
                } else {
                    '├'
                }
            } else if labelled && k >= first && k < first + label_len {
                continue;
            } else if k == width - 1 && self.ends_inside {
                if self.outcome.is_none() { '▶' } else { '┤' }
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
}

/// The time axis under the lanes: ticks at round times, labelled where they fit.
fn draw_axis(buf: &mut Buffer, rect: Rect, (from, to): (Duration, Duration), theme: &Theme) {
    let w = rect.width as usize;
    let span = to.saturating_sub(from).as_secs_f64();
    if w == 0 || span <= 0.0 {
        return;
    }
    let step = tick_step(span / w as f64 * 12.0);
    let style = theme.dim;
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
        let shape = BarShape {
            width,
            room: width,
            starts_inside: start,
            ends_inside: end,
            outcome: o,
        };
        shape.draw(label, |k, ch| cells[k] = ch);
        cells.into_iter().collect()
    }

    #[test]
    fn free_text_is_cut_between_words() {
        assert_eq!(fit_text("mixed(9) raised: disk full", 14), "mixed(9)…     ");
        assert_eq!(fit_text("mixed(9) raised: disk full", 7), "…      ");
        assert_eq!(fit_text("short", 8), "short   ");
        assert_eq!(fit_text("a b c", 4), "a b…");
    }

    #[test]
    fn a_label_is_whole_or_absent() {
        // A later bar starting in this one's last cell leaves room for 8 of `fail(12)`'s 8
        // characters after the cap: 9 cells of room is needed, so no label at all.
        let mut cells = vec![' '; 10];
        let shape = BarShape {
            width: 10,
            room: 8,
            starts_inside: true,
            ends_inside: true,
            outcome: Some(Outcome::Finished),
        };
        shape.draw("fail(12)", |k, ch| cells[k] = ch);
        let text: String = cells.into_iter().collect();
        assert_eq!(text, "├────────┤");
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
        assert!((tick_step(0.3) - 0.5).abs() < 1e-12);
        assert!((tick_step(0.000_7) - 0.001).abs() < 1e-12);
        assert_eq!(fmt_tick(1.5, 0.5, 2.0), "1.5s");
        assert_eq!(fmt_tick(2.0, 1.0, 3.0), "2s");
        assert_eq!(fmt_tick(0.25, 0.05, 0.5), "250ms");
        assert_eq!(fmt_tick(0.0005, 0.0001, 0.001), "500µs");
    }
}
