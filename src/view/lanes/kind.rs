//! What a stretch of work is (sleep, CPU, a failure…) and how it looks: its colour, and
//! the shade that stands for a busy share.

use ratatui::style::Style;

use crate::model::Run;
use crate::view::Theme;
use crate::workload::WorkKind;

/// What a stretch of a timeline shows, resolved to a theme's style only when drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Idle,
    Sleep,
    Cpu,
    Task,
    Failed,
    Warning,
    /// An outside task, coloured by its name's place among the run's names (0..).
    Named(u8),
}

impl Kind {
    /// The kind of work task `task` of `run` does, where the workload tells it.
    pub(super) fn of(run: &Run, task: u64) -> Kind {
        Kind::of_named(run, task, None)
    }

    /// The kind of `task`, whose `name` is known when the run no longer keeps it.
    pub(super) fn of_named(run: &Run, task: u64, name: Option<&str>) -> Kind {
        let c = &run.config;
        if !run.is_experiment() {
            return named(run, task, name);
        }
        match c.workload.kind(task, c.task_ms, c.seed) {
            WorkKind::Sleep => Kind::Sleep,
            WorkKind::Cpu => Kind::Cpu,
            WorkKind::Unknown => Kind::Task,
        }
    }

    /// The theme's style for this kind.
    pub(super) fn style(self, theme: &Theme) -> Style {
        match self {
            Kind::Idle => theme.dim,
            Kind::Sleep => theme.sleep,
            Kind::Cpu => theme.cpu,
            Kind::Task => theme.task,
            Kind::Failed => theme.failed,
            Kind::Warning => theme.warning,
            // Colours that stand for no outcome, so a name never reads as a failure.
            Kind::Named(i) => [theme.task, theme.cpu, theme.sleep, theme.ok][usize::from(i) % 4],
        }
    }
}

/// An outside task's colour: by its name when the run has tasks of several names (a
/// program's `load`, `parse`, `save`), else the one task colour.
fn named(run: &Run, task: u64, name: Option<&str>) -> Kind {
    if run.by_name.len() < 2 {
        return Kind::Task;
    }
    let Some(name) = name.or_else(|| run.names.get(task).map(|n| &**n)) else {
        return Kind::Task;
    };
    run.by_name
        .iter()
        .position(|t| *t.name == *name)
        .map_or(Kind::Task, |i| Kind::Named((i % 4) as u8))
}

/// The colour of a task's kind of work, where the workload tells it.
pub(super) fn kind_style(run: &Run, task: u64, theme: &Theme) -> Style {
    Kind::of(run, task).style(theme)
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
