//! The settings panel's form: the next run's mode, workers, tasks, workload, task length and
//! seed, edited field by field. Pure: keys in, a config out.

use crate::config::{MAX_TASK_MS, MAX_TASKS, MAX_WORKERS, RunConfig};
use crate::workload::Workload;

/// The fields, in the order the panel lists them.
pub const FIELDS: [Field; 6] = [
    Field::Mode,
    Field::Workers,
    Field::Tasks,
    Field::Workload,
    Field::TaskMs,
    Field::Seed,
];

/// Longest number typed into a field: enough for any valid value.
const MAX_DIGITS: usize = 20;

/// One editable setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Thread or process pool.
    Mode,
    /// Pool workers.
    Workers,
    /// Tasks to submit.
    Tasks,
    /// What each task does.
    Workload,
    /// Each task's length in ms.
    TaskMs,
    /// The `mixed` workload's seed.
    Seed,
}

impl Field {
    /// The field's name, as the panel and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Mode => "mode",
            Field::Workers => "workers",
            Field::Tasks => "tasks",
            Field::Workload => "workload",
            Field::TaskMs => "task-ms",
            Field::Seed => "seed",
        }
    }

    fn numeric(self) -> bool {
        !matches!(self, Field::Mode | Field::Workload)
    }
}

/// The form as it is being edited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsForm {
    /// The settings as edited so far.
    pub config: RunConfig,
    /// Index into [`FIELDS`] of the field being edited.
    pub field: usize,
    /// Digits typed into the current numeric field, not yet taken.
    pub typed: Option<String>,
    /// Why the last edit was refused.
    pub error: Option<String>,
}

impl SettingsForm {
    /// A form that starts from `config`.
    pub fn new(config: RunConfig) -> Self {
        SettingsForm {
            config,
            field: 0,
            typed: None,
            error: None,
        }
    }

    /// The field being edited.
    pub fn current(&self) -> Field {
        FIELDS[self.field.min(FIELDS.len() - 1)]
    }

    /// The value of `field` as the panel shows it (typed digits while typing).
    pub fn value(&self, field: Field) -> String {
        if field == self.current()
            && let Some(t) = &self.typed
        {
            return format!("{t}_");
        }
        let c = &self.config;
        match field {
            Field::Mode => c.mode.name().to_string(),
            Field::Workers => c.workers.to_string(),
            Field::Tasks => c.tasks.to_string(),
            Field::Workload => c.workload.name().to_string(),
            Field::TaskMs => c.task_ms.to_string(),
            Field::Seed => c.seed.to_string(),
        }
    }

    /// Moves to the field `delta` rows away, taking what was typed first.
    pub fn move_field(&mut self, delta: isize) {
        self.take_typed();
        let n = FIELDS.len() as isize;
        self.field = (self.field as isize + delta).rem_euclid(n) as usize;
    }

    /// Steps the current value up (`up`) or down: the next choice, or ±1 (±10% for sizes).
    pub fn step(&mut self, up: bool) {
        self.take_typed();
        self.error = None;
        let field = self.current();
        let c = &mut self.config;
        let bump = |v: u64, min: u64, max: u64| -> u64 {
            let d = (v / 10).max(1);
            if up {
                v.saturating_add(d).min(max)
            } else {
                v.saturating_sub(d).max(min)
            }
        };
        match field {
            Field::Mode => c.mode = c.mode.toggled(),
            Field::Workers => {
                let w = if up {
                    c.workers.saturating_add(1).min(MAX_WORKERS)
                } else {
                    c.workers.saturating_sub(1).max(1)
                };
                c.workers = w;
            }
            Field::Tasks => c.tasks = bump(c.tasks, 1, MAX_TASKS),
            Field::Workload => {
                // Every workload the command line knows, in its order.
                let all = <Workload as clap::ValueEnum>::value_variants();
                let i = all.iter().position(|w| *w == c.workload).unwrap_or(0);
                let n = all.len();
                let next = if up { i + 1 } else { i + n - 1 };
                c.workload = all[next % n];
            }
            Field::TaskMs => c.task_ms = bump(c.task_ms, 0, MAX_TASK_MS),
            Field::Seed => {
                c.seed = if up {
                    c.seed.wrapping_add(1)
                } else {
                    c.seed.wrapping_sub(1)
                }
            }
        }
    }

    /// Types a digit into a numeric field (ignored elsewhere).
    pub fn type_digit(&mut self, d: char) {
        if !self.current().numeric() || !d.is_ascii_digit() {
            return;
        }
        let typed = self.typed.get_or_insert_with(String::new);
        if typed.len() < MAX_DIGITS {
            typed.push(d);
        }
    }

    /// Removes the last typed digit.
    pub fn backspace(&mut self) {
        if let Some(t) = &mut self.typed {
            t.pop();
        }
    }

    /// Takes the typed digits into the field; a value out of range is refused with a reason.
    pub fn take_typed(&mut self) -> bool {
        let Some(typed) = self.typed.take() else {
            return true;
        };
        if typed.is_empty() {
            return true;
        }
        let field = self.current();
        let refused = |what: String| Some(format!("{}: {what}", field.name()));
        let Ok(v) = typed.parse::<u64>() else {
            self.error = refused(format!("{typed} is too large"));
            return false;
        };
        let c = &mut self.config;
        self.error = match field {
            Field::Workers if (1..=u64::from(MAX_WORKERS)).contains(&v) => {
                c.workers = v as u32;
                None
            }
            Field::Workers => refused(format!("1 to {MAX_WORKERS}")),
            Field::Tasks if (1..=MAX_TASKS).contains(&v) => {
                c.tasks = v;
                None
            }
            Field::Tasks => refused(format!("1 to {MAX_TASKS}")),
            Field::TaskMs if v <= MAX_TASK_MS => {
                c.task_ms = v;
                None
            }
            Field::TaskMs => refused(format!("0 to {MAX_TASK_MS}")),
            Field::Seed => {
                c.seed = v;
                None
            }
            Field::Mode | Field::Workload => None,
        };
        self.error.is_none()
    }

    /// The config to run, if everything typed is valid.
    pub fn finish(&mut self) -> Option<RunConfig> {
        if !self.take_typed() {
            return None;
        }
        match self.config.validate() {
            Ok(()) => Some(self.config.clone()),
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_are_checked_and_steps_stay_in_range() {
        let mut f = SettingsForm::new(RunConfig::default());
        f.move_field(1);
        assert_eq!(f.current(), Field::Workers);
        f.type_digit('0');
        assert!(f.finish().is_none());
        assert!(f.error.as_deref().unwrap_or("").contains("workers"));
        f.type_digit('8');
        assert_eq!(f.finish().map(|c| c.workers), Some(8));
        f.move_field(-2);
        assert_eq!(f.current(), Field::Seed);
        f.move_field(-1);
        f.step(false);
        f.step(false);
        assert!(f.config.task_ms < 1000);
        f.move_field(-3);
        assert_eq!(f.current(), Field::Workers);
        for _ in 0..10 {
            f.step(false);
        }
        assert_eq!(f.config.workers, 1);
    }
}
