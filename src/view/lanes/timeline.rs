//! A lane's timeline over the window: where each task's bar goes, how busy each cell was,
//! and how they are drawn.

use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::bar::BarShape;
use super::kind::{Kind, shade};
use crate::model::{Lane, Outcome, Run};
use crate::view::Theme;

/// One task's bar, in cells of the timeline.
struct Bar<'a> {
    task: u64,
    /// Its name, when it comes with the span rather than from the run's bounded table.
    name: Option<&'a str>,
    /// Its kind of work, or failed.
    kind: Kind,
    c0: usize,
    c1: usize,
    /// Where it starts and ends, in fractional cells.
    x: (f64, f64),
    starts_inside: bool,
    ends_inside: bool,
    outcome: Option<Outcome>,
    /// Its share of time on a CPU, when measured (only an ended task's is known).
    cpu_share: Option<f64>,
}

/// Per cell: busy fraction, whether it lies in the worker's life, and the kind of the task
/// that touched it last (failed wins).
type Cell = (f32, bool, Kind);

/// Where times fall on a timeline `width` cells wide that shows the window `[from, to)`.
struct Scale {
    from: Duration,
    to: Duration,
    width: usize,
    from_s: f64,
    span_s: f64,
}

impl Scale {
    fn new((from, to): (Duration, Duration), width: usize) -> Scale {
        Scale {
            from,
            to,
            width,
            from_s: from.as_secs_f64(),
            span_s: to.saturating_sub(from).as_secs_f64().max(1e-12),
        }
    }

    /// The cell position of time `t`: fractional, and off the timeline outside the window.
    fn cell_of(&self, t: Duration) -> f64 {
        (t.as_secs_f64() - self.from_s) / self.span_s * self.width as f64
    }
}

/// A lane's timeline over the window: where each task's bar goes and how busy each cell was.
pub(super) struct Timeline<'a> {
    run: &'a Run,
    lane: &'a Lane,
    theme: &'a Theme,
    width: usize,
    bars: Vec<Bar<'a>>,
    cells: Vec<Cell>,
}

/// Past this many spans per cell in the window, spans only shade cells: no bar is wider
/// than a cell then, and laying each out would cost a frame far more than it shows.
const BARS_PER_CELL: usize = 4;

/// A span to lay out: task, start, end, outcome (none while it runs), CPU share, name.
type Placed<'a> = (
    u64,
    Duration,
    Duration,
    Option<Outcome>,
    Option<f64>,
    Option<&'a str>,
);

impl<'a> Timeline<'a> {
    /// Lays out `lane`'s tasks over `window` on a timeline `width` cells wide, as of `now`.
    pub(super) fn new(
        run: &'a Run,
        lane: &'a Lane,
        window: (Duration, Duration),
        now: Duration,
        width: u16,
        theme: &'a Theme,
    ) -> Self {
        let scale = Scale::new(window, width as usize);
        let mut cells = life_cells(lane, &scale, now);
        let running = lane
            .current
            .map(|(task, start)| (task, start, now.max(start), None, None, None));
        // A run explored whole has every span: no coarse part, any zoom in detail.
        let bars = match run.archive.as_deref().filter(|a| a.has_lane(lane.worker)) {
            Some(archive) => {
                let spans = archive.spans_in(lane.worker, scale.from, scale.to);
                let with_bars = spans.len() <= BARS_PER_CELL * scale.width;
                let spans = spans.map(|a| {
                    let s = a.span;
                    (
                        s.task,
                        s.start,
                        s.end,
                        Some(s.outcome),
                        s.cpu_share(),
                        a.name,
                    )
                });
                place_bars(
                    run,
                    lane,
                    &scale,
                    spans.chain(running),
                    with_bars,
                    &mut cells,
                )
            }
            None => {
                fill_coarse(&mut cells, lane, &scale);
                let spans = lane
                    .spans
                    .iter()
                    .map(|s| (s.task, s.start, s.end, Some(s.outcome), s.cpu_share(), None));
                place_bars(run, lane, &scale, spans.chain(running), true, &mut cells)
            }
        };
        Timeline {
            run,
            lane,
            theme,
            width: scale.width,
            bars,
            cells,
        }
    }

    /// The busy share of each cell as shades, idle time as dots: the truth below one cell.
    pub(super) fn draw_density(&self, buf: &mut Buffer, rect: Rect) {
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
    pub(super) fn draw_bars(&self, buf: &mut Buffer, rect: Rect) {
        self.draw_density(buf, rect);
        for (i, bar) in self.bars.iter().enumerate() {
            let width = bar.c1 - bar.c0;
            if width < 3 && bar.outcome.is_some() {
                self.alternate(buf, rect, i, bar);
                continue;
            }
            // The label may use the cells up to the next bar's start, never beyond.
            let room = self
                .bars
                .get(i + 1)
                .map_or(bar.c1, |next| next.c0.min(bar.c1))
                - bar.c0;
            let label = self.label(bar, room);
            let style = match bar.outcome {
                Some(Outcome::Failed) => self.theme.filled(self.theme.failed),
                None if self.lane.overdue => self.theme.filled(self.theme.warning),
                _ => self.theme.filled(bar.kind.style(self.theme)),
            };
            let (style, off_cpu) = if width <= 2 {
                let style = self.cells[bar.c0].2.style(self.theme);
                (style, style)
            } else {
                (style, self.off_cpu_style(bar))
            };
            let glyphs = BarShape {
                width,
                room,
                starts_inside: bar.starts_inside,
                ends_inside: bar.ends_inside,
                outcome: bar.outcome,
                cpu_share: bar.cpu_share,
            };
            glyphs.draw(&label, |k, ch, on_cpu| {
                buf[(rect.x + (bar.c0 + k) as u16, rect.y)]
                    .set_char(ch)
                    .set_style(if on_cpu { style } else { off_cpu });
            });
        }
        self.draw_exit(buf, rect);
    }

    /// Outlines task `task`'s bar, if it is on this timeline (the task Enter or `n` showed).
    pub(super) fn mark(&self, buf: &mut Buffer, rect: Rect, task: u64) {
        let Some(bar) = self.bars.iter().find(|b| b.task == task) else {
            return;
        };
        let outline = ratatui::style::Modifier::UNDERLINED | ratatui::style::Modifier::BOLD;
        for c in bar.c0..bar.c1.min(self.width) {
            let cell = &mut buf[(rect.x + c as u16, rect.y)];
            cell.set_style(cell.style().add_modifier(outline));
        }
    }

    /// The task's name when it fits `room` (after the cap), else its number or first
    /// argument, else nothing.
    fn label(&self, bar: &Bar, room: usize) -> String {
        let fits = |l: &str| l.chars().count() + usize::from(bar.starts_inside) <= room;
        let full = bar
            .name
            .map_or_else(|| self.run.task_label(bar.task), str::to_string);
        if fits(&full) {
            return full;
        }
        let short = super::labels::short_label(&full, bar.task, self.run.is_experiment());
        if fits(&short) { short } else { String::new() }
    }

    /// A finished bar too narrow for caps: its solid cells alternate between two shades
    /// with its neighbours', so back-to-back short tasks stay told apart at any zoom.
    fn alternate(&self, buf: &mut Buffer, rect: Rect, i: usize, bar: &Bar) {
        if i.is_multiple_of(2) {
            return;
        }
        // A cell belongs to the task its middle falls in.
        let owned = (bar.c0..bar.c1.min(self.width))
            .filter(|&c| (bar.x.0..bar.x.1).contains(&(c as f64 + 0.5)));
        for c in owned {
            let cell = &mut buf[(rect.x + c as u16, rect.y)];
            if cell.symbol() == "█" {
                cell.set_char('▓');
            }
        }
    }

    /// The part of `bar` spent off-CPU: its kind's colour, unfilled.
    fn off_cpu_style(&self, bar: &Bar) -> ratatui::style::Style {
        bar.kind.style(self.theme).patch(self.theme.off_cpu)
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

/// Empty cells, each marked alive if it lies in the worker's life.
fn life_cells(lane: &Lane, scale: &Scale, now: Duration) -> Vec<Cell> {
    let life_end = lane.exited.as_ref().map_or(now, |(at, _)| (*at).min(now));
    let (alive0, alive1) = (scale.cell_of(lane.spawned_at), scale.cell_of(life_end));
    (0..scale.width)
        .map(|c| {
            let alive = (c as f64 + 1.0) > alive0 && (c as f64) < alive1;
            (0.0, alive, Kind::Idle)
        })
        .collect()
}

/// Where the detailed spans were dropped, the coarse occupancy fills in.
fn fill_coarse(cells: &mut [Cell], lane: &Lane, scale: &Scale) {
    let (from, to, w) = (scale.from, scale.to, scale.width);
    let coarse_end = scale.cell_of(lane.coarse_until).clamp(0.0, w as f64);
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
}

/// The bar of each task (done, or running at `now`) that shows in the window, each task
/// also spread over the `cells` it touches; only the cells when not `with_bars`.
fn place_bars<'a>(
    run: &Run,
    lane: &Lane,
    scale: &Scale,
    spans: impl Iterator<Item = Placed<'a>>,
    with_bars: bool,
    cells: &mut [Cell],
) -> Vec<Bar<'a>> {
    let (from, to, w) = (scale.from, scale.to, scale.width);
    let mut bars = Vec::with_capacity(if with_bars { lane.spans.len() + 1 } else { 0 });
    for (task, start, end, outcome, cpu_share, name) in spans {
        if end < from || start > to {
            continue;
        }
        let (x0, x1) = (
            scale.cell_of(start).max(0.0),
            scale.cell_of(end).min(w as f64),
        );
        let kind = match outcome {
            Some(Outcome::Failed) => Kind::Failed,
            _ => Kind::of_named(run, task, name),
        };
        let shade_as = match outcome {
            None if lane.overdue => Kind::Warning,
            _ => kind,
        };
        spread(cells, x0, x1, shade_as);
        let c0 = x0.floor() as usize;
        let c1 = (x1.ceil() as usize).clamp(c0 + 1, w.max(c0 + 1)).min(w);
        if with_bars && c0 < w {
            bars.push(Bar {
                task,
                name,
                kind,
                c0,
                c1,
                x: (x0, x1),
                starts_inside: start >= from,
                ends_inside: end <= to,
                outcome,
                cpu_share,
            });
        }
    }
    bars
}

/// Each cell a task spanning cells `x0..x1` touches gets its share of that cell's time.
fn spread(cells: &mut [Cell], x0: f64, x1: f64, kind: Kind) {
    let w = cells.len();
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
}

/// The time `c / w` of the way through a window of length `span`, without overflow (a
/// float is exact enough for a cell's edge and much cheaper than 128-bit division).
fn time_at(span: Duration, c: usize, w: usize) -> Duration {
    let ns = span.as_nanos() as f64 * (c as f64 / w.max(1) as f64);
    // `as` saturates: a huge window gives the largest time, never a panic.
    Duration::from_nanos(ns as u64).min(span)
}
