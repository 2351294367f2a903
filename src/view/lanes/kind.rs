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
}

impl Kind {
    /// The kind of work task `task` of `run` does, where the workload tells it.
    pub(super) fn of(run: &Run, task: u64) -> Kind {
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

    /// The theme's style for this kind.
    pub(super) fn style(self, theme: &Theme) -> Style {
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
