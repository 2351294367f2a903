//! One task's bar drawn in glyphs: caps, a whole-or-absent label, the marks of a running or
//! failed task, and the part of it spent off-CPU.

use crate::model::Outcome;

/// A bar's glyphs: `├blocks(3)───┤`, open at a clipped side, `▶` at the growing end of a
/// running task, `✗` at the start of a failed one.
pub(super) struct BarShape {
    pub(super) width: usize,
    /// Cells the label may use (a later bar may start inside this one's last cell).
    pub(super) room: usize,
    pub(super) starts_inside: bool,
    pub(super) ends_inside: bool,
    pub(super) outcome: Option<Outcome>,
    /// The share of the task spent on a CPU, when its source measured it: that many cells,
    /// from the start, are drawn as running; the rest off-CPU, `┄`.
    pub(super) cpu_share: Option<f64>,
}

impl BarShape {
    /// How many of the bar's cells stand for time on a CPU: all of them when not measured
    /// or too narrow to split. The running share is put first, as a stacked bar: the cells
    /// say how much of the task ran, not when.
    pub(super) fn running_cells(&self) -> usize {
        match self.cpu_share {
            Some(share) if self.width > 2 => {
                ((share.clamp(0.0, 1.0) * self.width as f64).round() as usize).min(self.width)
            }
            _ => self.width,
        }
    }

    /// Draws through `put(cell, char, on_cpu)`; `label` goes in whole, or not at all.
    pub(super) fn draw(&self, label: &str, mut put: impl FnMut(usize, char, bool)) {
        let running = self.running_cells();
        self.draw_glyphs(label, |k, ch| {
            let on_cpu = k < running;
            // A line cell off-CPU is dotted; caps, marks and the label keep their glyph.
            let ch = if ch == '─' && !on_cpu { '┄' } else { ch };
            put(k, ch, on_cpu);
        });
    }

    fn draw_glyphs(&self, label: &str, mut put: impl FnMut(usize, char)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(width: usize, label: &str, start: bool, end: bool, o: Option<Outcome>) -> String {
        cpu_bar(width, label, (start, end), o, None).0
    }

    /// The glyphs, and which cells are drawn as time on a CPU (`#`) or off it (`.`).
    fn cpu_bar(
        width: usize,
        label: &str,
        (start, end): (bool, bool),
        o: Option<Outcome>,
        cpu_share: Option<f64>,
    ) -> (String, String) {
        let mut cells = vec![(' ', ' '); width];
        let shape = BarShape {
            width,
            room: width,
            starts_inside: start,
            ends_inside: end,
            outcome: o,
            cpu_share,
        };
        shape.draw(label, |k, ch, on| {
            cells[k] = (ch, if on { '#' } else { '.' });
        });
        cells.into_iter().unzip()
    }

    #[test]
    fn the_part_off_cpu_is_dotted_after_the_part_that_ran() {
        let done = Some(Outcome::Finished);
        // A third on a CPU (three threads sharing the GIL): 4 of 12 cells run.
        let (glyphs, parts) = cpu_bar(12, "spin", (true, true), done, Some(1.0 / 3.0));
        assert_eq!(glyphs, "├spin┄┄┄┄┄┄┤");
        assert_eq!(parts, "####........");
        // All of it on a CPU, or not measured: one solid bar.
        assert_eq!(cpu_bar(8, "", (true, true), done, Some(1.0)).0, "├──────┤");
        assert_eq!(cpu_bar(8, "", (true, true), done, None).1, "########");
        // Nothing on a CPU (a sleep): all dotted; a CPU time past the wall time is all of it.
        assert_eq!(
            cpu_bar(6, "", (true, true), done, Some(0.0)),
            ("├┄┄┄┄┤".into(), "......".into())
        );
        assert_eq!(cpu_bar(6, "", (true, true), done, Some(7.5)).1, "######");
        // Too narrow to split: solid.
        assert_eq!(cpu_bar(2, "", (true, true), done, Some(0.0)).1, "##");
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
            cpu_share: None,
        };
        shape.draw("fail(12)", |k, ch, _| cells[k] = ch);
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
}
