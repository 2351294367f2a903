//! A lane's words: what it does now, its totals, and its latest task in detail.

use std::time::Duration;

use ratatui::style::Style;

use super::kind::{kind_style, shade};
use super::labels::{lane_label, whole_or_nothing};
use crate::model::{Lane, Outcome, Run};
use crate::view::Theme;

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
    // Its CPU time and share, when measured: what it ran, apart from what it waited.
    let cpu = match (span.cpu, span.cpu_share()) {
        (Some(cpu), Some(share)) => {
            format!(" (cpu {}, {:.0}%)", fmt_duration(cpu), share * 100.0)
        }
        _ => String::new(),
    };
    Some(format!(
        " {}: {} at {} took {}{cpu} {outcome} ",
        lane_label(lane, true),
        call(span.task),
        fmt_duration(span.start),
        fmt_duration(span.end.saturating_sub(span.start))
    ))
}

/// What the selected lane's bottom line may say, longest first: its latest task and, for a
/// worker that died, how (`· killed by SIGKILL`: the lane's own words, after its timeline, are
/// left out where they do not fit); then the task alone, or how it died alone.
pub(super) fn lane_details(run: &Run, lane: &Lane, now: Duration) -> Vec<String> {
    let task = task_detail(run, lane, now);
    let death = lane
        .exited
        .as_ref()
        .filter(|(_, exit)| !exit.is_clean())
        .map(|(_, exit)| exit.to_string());
    let Some(death) = death else {
        return task.into_iter().collect();
    };
    let alone = format!(" {}: {death} ", lane_label(lane, true));
    match task {
        // A task that failed of the death already says it.
        Some(task) if task.contains(&death) => vec![task],
        Some(task) => vec![format!("{task}· {death} "), task, alone],
        None => vec![alone],
    }
}

/// A lane's totals for its second row, whole pieces that fit `width`, least useful dropped
/// first: `12 done · 1 failed · busy 97%`.
pub(super) fn totals_of(run: &Run, lane: &Lane, now: Duration, width: usize) -> String {
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

/// What a lane is doing now, in words that fit `width`: the task it runs (the latest one,
/// for tasks too short to be seen running, with a shade for its busy share over the last
/// second), `idle`, `exited` or `✗ dead`.
pub(super) fn status_of(
    run: &Run,
    lane: &Lane,
    now: Duration,
    width: u16,
    theme: &Theme,
) -> (String, Style) {
    let width = width as usize;
    let (text, alternative, style) = status_words(run, lane, now, theme);
    let fits = |t: &String| t.chars().count() <= width;
    let chosen = [Some(text), alternative].into_iter().flatten().find(fits);
    (
        whole_or_nothing(chosen.as_deref().unwrap_or(""), width),
        style,
    )
}

/// A lane's status, a shorter one to fall back on where it has one, and their style.
fn status_words(
    run: &Run,
    lane: &Lane,
    now: Duration,
    theme: &Theme,
) -> (String, Option<String>, Style) {
    let call = |task| run.task_label(task);
    if let Some((_, exit)) = &lane.exited {
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
    }
}
