//! The two header rows: what is running, and how far along it is.
//!
//! Both rows are built from whole segments that are dropped, least useful first, when the
//! terminal is too narrow: a segment is shown whole or not at all.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::config::Mode;
use crate::event::{RunSource, WorkerExit};
use crate::model::{Model, Run};
use crate::view::{Theme, ViewState, fmt_bytes, fmt_count, fmt_duration, plural};

/// A piece of a header row and its priority: lower survives a narrow terminal longer.
type Segment = (u8, Vec<Span<'static>>);

/// Draws the title row and the counters row.
pub fn draw(frame: &mut Frame, area: Rect, model: &Model, state: &ViewState, now: Duration) {
    let theme = &state.theme;
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let status = status(model, state);
    let status_width = status.iter().map(Span::width).sum::<usize>() as u16;
    let title_width = top.width.saturating_sub(status_width + 1);
    let title = fit_segments(title(model, theme), title_width as usize);
    frame.render_widget(Paragraph::new(Line::from(title)).style(theme.title), top);
    frame.render_widget(Paragraph::new(Line::from(status)).right_aligned(), top);
    // With nothing else to say, the header says what the filter keeps.
    let filter = &state.filter;
    let filtered = (filter.is_active() && !filter.editing).then(|| {
        let mut f = String::from(" filter");
        if !filter.pattern.is_empty() {
            f.push_str(" /");
            f.push_str(&crate::outside_text::printable(&filter.pattern));
        }
        if filter.failed_only {
            f.push_str(" failed only");
        }
        Span::styled(format!("{f} · n/N · Esc "), theme.key)
    });
    let notice = state
        .notice
        .as_ref()
        .map(|n| Span::styled(format!(" {n} "), theme.filled(theme.warning)))
        .or(filtered);
    let notice_width = notice.as_ref().map_or(0, |n| n.width() + 1);
    let room = (bottom.width as usize).saturating_sub(notice_width);
    let counters = fit_segments(counters(model, state, now), room);
    frame.render_widget(Paragraph::new(Line::from(counters)), bottom);
    if let Some(notice) = notice {
        frame.render_widget(Paragraph::new(Line::from(notice)).right_aligned(), bottom);
    }
}

/// Keeps the segments that fit in `width`, dropping the least useful first, in their order.
fn fit_segments(segments: Vec<Segment>, width: usize) -> Vec<Span<'static>> {
    let size = |s: &Segment| s.1.iter().map(Span::width).sum::<usize>();
    let mut by_priority: Vec<usize> = (0..segments.len()).collect();
    by_priority.sort_by_key(|&i| segments[i].0);
    let mut budget = width;
    let mut keep = vec![false; segments.len()];
    for i in by_priority {
        let w = size(&segments[i]);
        if w <= budget {
            budget -= w;
            keep[i] = true;
        }
    }
    segments
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .flat_map(|(s, _)| s.1)
        .collect()
}

fn title(model: &Model, theme: &Theme) -> Vec<Segment> {
    let bar = theme.title;
    let mut out: Vec<Segment> = vec![(0, vec![Span::styled(" poolscope ", theme.badge())])];
    let Some(run) = &model.run else {
        out.push((1, vec![Span::styled(" starting… ", bar)]));
        return out;
    };
    if !run.is_experiment() {
        out.extend(source_title(run, theme));
        return out;
    }
    let c = &run.config;
    let mode = match c.mode {
        Mode::Thread => " THREAD pool ",
        Mode::Process => " PROCESS pool ",
    };
    let badge = theme.badge().add_modifier(Modifier::REVERSED);
    out.push((0, vec![Span::styled(mode, badge)]));
    out.push((
        1,
        vec![Span::styled(
            format!(" {} ", plural(u64::from(c.workers), "worker")),
            bar,
        )],
    ));
    out.push((
        2,
        vec![Span::styled(
            format!("· {}(n) × {} ", c.workload.name(), c.tasks),
            bar,
        )],
    ));
    out.push((3, vec![Span::styled(format!("· {} ms ", c.task_ms), bar)]));
    out
}

/// The title of a program's or a recording's run: what it is, and its lanes.
fn source_title(run: &Run, theme: &Theme) -> Vec<Segment> {
    let bar = theme.title;
    let badge = theme.badge().add_modifier(Modifier::REVERSED);
    let (kind, what, how) = match &run.source {
        RunSource::Program { command } => (" PROGRAM ", command.clone(), None),
        RunSource::Attached {
            pid,
            command,
            python,
        } => (
            " PID ",
            format!("{pid} {command}"),
            // The probe reports task spans only from inside a program poolscope started.
            python.then(|| "Python: its tasks show when started under poolscope".to_string()),
        ),
        RunSource::Replay { file, producer, .. } => {
            (" REPLAY ", file.clone(), Some(producer.clone()))
        }
        RunSource::Experiment => (" POOL ", String::new(), None),
    };
    let lanes = run.lanes.len() as u64 + run.folded.workers;
    let mut out: Vec<Segment> = vec![
        (0, vec![Span::styled(kind, badge)]),
        (
            0,
            vec![Span::styled(format!(" {} ", clip_start(&what, 40)), bar)],
        ),
        (
            1,
            vec![Span::styled(format!("· {} ", plural(lanes, "lane")), bar)],
        ),
    ];
    if let Some(how) = how {
        // What an attached Python process cannot show is worth the room of the lane count.
        let keep = if matches!(run.source, RunSource::Attached { .. }) {
            1
        } else {
            2
        };
        out.push((keep, vec![Span::styled(format!("· {how} "), bar)]));
    }
    out
}

/// The last `max` characters of `s`, with `…` in front when cut: a path's end says most.
fn clip_start(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - max + 1).collect();
    format!("…{tail}")
}

fn status(model: &Model, state: &ViewState) -> Vec<Span<'static>> {
    let theme = &state.theme;
    let strong = Modifier::BOLD;
    let span = match &model.run {
        _ if state.paused_at.is_some() => Span::styled(
            " ‖ PAUSED ",
            theme.filled(theme.warning).add_modifier(strong),
        ),
        Some(run) if run.cancelled > 0 && run.is_over() && cancels(run) => {
            Span::styled(" cancelled ", theme.filled(theme.warning))
        }
        Some(run) if run.is_over() => match &run.program_exit {
            // A program's own failure is the run's headline, not a tick.
            Some(exit @ (WorkerExit::Code(_) | WorkerExit::Signal(_))) => {
                Span::styled(format!(" {exit} "), theme.filled(theme.warning))
            }
            // A program or a recording that ended with tasks not seen to end.
            _ if run.cancelled > 0 || run.running() > 0 => {
                Span::styled(" ended ", theme.filled(theme.warning))
            }
            _ => Span::styled(" ✓ finished ", theme.filled(theme.ok)),
        },
        Some(_) => Span::styled(" ● running ", theme.badge()),
        None => return Vec::new(),
    };
    vec![span]
}

/// Whether the run's tasks that never ran were cancelled: poolscope's own experiment
/// cancels them; of a program or a recording, only that they never ran is known (the
/// program exited first, or their end was lost).
fn cancels(run: &Run) -> bool {
    matches!(run.source, RunSource::Experiment)
}

fn counters(model: &Model, state: &ViewState, now: Duration) -> Vec<Segment> {
    let theme = &state.theme;
    let Some(run) = &model.run else {
        return Vec::new();
    };
    let strong = Style::new().add_modifier(Modifier::BOLD);
    let elapsed = run.ended_at.map_or(now, |e| e.min(now));
    let done = run.done();
    let rate = if elapsed.as_secs_f64() > 0.0 {
        done as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };
    let mut out: Vec<Segment> = vec![(
        0,
        vec![
            Span::raw(" done "),
            Span::styled(
                format!("{done}/{}", run.config.tasks.max(run.submitted)),
                strong,
            ),
        ],
    )];
    if let Some(gauge) = gauge(run, elapsed, theme) {
        out.push((1, gauge));
    }
    out.push((1, running(run, now, strong)));
    out.push((
        2,
        vec![
            Span::raw("  queued "),
            Span::styled(run.queued().to_string(), strong),
        ],
    ));
    if run.failed > 0 {
        let failed = Span::styled(run.failed.to_string(), strong.patch(theme.failed));
        out.push((1, vec![Span::raw("  failed "), failed]));
    }
    if run.cancelled > 0 {
        let word = if cancels(run) {
            "cancelled"
        } else {
            "never ran"
        };
        out.push((3, vec![Span::raw(format!("  {word} {}", run.cancelled))]));
    }
    if run.dropped > 0 {
        let text = format!("  {} events lost", run.dropped);
        out.push((1, vec![Span::styled(text, strong.patch(theme.warning))]));
    }
    out.push((2, vec![Span::raw(format!("  │ {}", fmt_duration(elapsed)))]));
    out.push((
        4,
        vec![Span::raw(format!(" │ {} tasks/s", fmt_count(rate)))],
    ));
    if let Some(seg) = leftovers(model, theme) {
        out.push((3, seg));
    }
    if let Some((cpu, rss)) = model.own {
        // In process mode the coordinator's pipe work is most of poolscope's own CPU.
        let name = match run.config.mode {
            Mode::Thread => "self",
            Mode::Process => "self+dispatch",
        };
        let text = format!("  │ {name} {cpu:.1}% {}", fmt_bytes(rss));
        out.push((5, vec![Span::styled(text, theme.dim)]));
    }
    if !state.follow {
        out.push((3, vec![Span::styled("  not following", theme.warning)]));
    }
    if state.zoom > 0 {
        out.push((
            3,
            vec![Span::raw(format!("  zoom ×{}", 1u32 << state.zoom))],
        ));
    }
    out
}

/// Runs shorter than this get no gauge: they are over before one could be read.
const GAUGE_AFTER: Duration = Duration::from_secs(2);
/// Cells of the gauge's bar.
const GAUGE_CELLS: usize = 10;

/// A long run's progress: a bar, the share done and the time left at the pace so far:
/// ` ▕████▌     ▏45% ETA 12 s`.
fn gauge(run: &Run, elapsed: Duration, theme: &Theme) -> Option<Vec<Span<'static>>> {
    let total = run.config.tasks;
    let done = run.done().min(total);
    if run.is_over() || elapsed < GAUGE_AFTER || done == 0 || done >= total {
        return None;
    }
    let share = done as f64 / total as f64;
    let eighths = (share * (GAUGE_CELLS * 8) as f64).round() as usize;
    let mut bar: String = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) && bar.chars().count() < GAUGE_CELLS {
        bar.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
    }
    let pad = GAUGE_CELLS.saturating_sub(bar.chars().count());
    let left = elapsed.mul_f64((total - done) as f64 / done as f64);
    Some(vec![
        Span::raw("  ▕"),
        Span::styled(format!("{bar}{}", " ".repeat(pad)), theme.ok),
        Span::raw(format!("▏{:.0}% ETA {}", share * 100.0, fmt_duration(left))),
    ])
}

/// `running 3`, or where tasks are too short to be seen running, the workers' worth of
/// time spent in tasks over the last second: `busy 2.7/3`.
fn running(run: &Run, now: Duration, strong: Style) -> Vec<Span<'static>> {
    if run.config.announces_starts() || run.is_over() {
        return vec![
            Span::raw("  running "),
            Span::styled(run.running().to_string(), strong),
        ];
    }
    let busy = run.busy_workers(now);
    vec![
        Span::raw("  busy "),
        Span::styled(format!("{busy:.1}/{}", run.config.workers), strong),
    ]
}

/// Workers of earlier runs still alive, and the CPU of those that are threads:
/// `earlier run: 6 workers 180%`.
fn leftovers(model: &Model, theme: &Theme) -> Option<Vec<Span<'static>>> {
    let count = model.leftovers.len() as u64;
    let (threads, cpu) = model.leftover_cpu.unwrap_or((0, 0.0));
    let n = count.max(u64::from(threads));
    if n == 0 {
        return None;
    }
    let cpu = if threads > 0 {
        format!(" {cpu:.0}%")
    } else {
        String::new()
    };
    let text = format!("  │ earlier run: {}{cpu}", plural(n, "worker"));
    Some(vec![Span::styled(text, theme.warning)])
}
