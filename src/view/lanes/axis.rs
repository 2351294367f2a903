//! The time axis under the lanes: the stretch of the run on screen, and ticks at round times.

use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use crate::model::Run;
use crate::view::{Theme, ViewState};

/// Shortest visible window, so a run that just began does not zoom into nanoseconds.
const MIN_WINDOW: Duration = Duration::from_millis(10);

/// Followed live, a run longer than this shows only its last stretch this wide.
pub const LIVE_WINDOW: Duration = Duration::from_secs(30);

/// Whether the window slides over the last [`LIVE_WINDOW`] of a live run (following it, not
/// zoomed, not asked for the whole run, and the run longer than the window).
pub fn sliding(run: &Run, state: &ViewState, now: Duration) -> bool {
    let t_end = run.ended_at.map_or(now, |e| e.min(now));
    state.zoom == 0
        && state.follow
        && !state.whole
        && !run.is_over()
        && fit_of(run, t_end) > LIVE_WINDOW
}

/// What the whole run takes on screen: so far, or what it is expected to take.
fn fit_of(run: &Run, t_end: Duration) -> Duration {
    // While running, fit what the run is expected to take, so the axis holds still.
    let expected = if run.is_over() || !run.is_experiment() {
        Duration::ZERO
    } else {
        let rounds = run
            .config
            .tasks
            .div_ceil(u64::from(run.config.workers.max(1)));
        Duration::from_millis(rounds.saturating_mul(run.config.task_ms))
    };
    t_end.max(expected).max(MIN_WINDOW)
}

/// The visible time window `[from, to)` of the run at `now`.
pub fn window(run: &Run, state: &ViewState, now: Duration) -> (Duration, Duration) {
    let t_end = run.ended_at.map_or(now, |e| e.min(now));
    if sliding(run, state, now) {
        let right = t_end.max(LIVE_WINDOW);
        return (right.saturating_sub(LIVE_WINDOW), right);
    }
    let fit = fit_of(run, t_end);
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

/// The time axis under the lanes: ticks at round times, labelled where they fit.
pub(super) fn draw_axis(
    buf: &mut Buffer,
    rect: Rect,
    (from, to): (Duration, Duration),
    theme: &Theme,
) {
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
