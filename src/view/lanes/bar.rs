//! One task's bar drawn in glyphs: caps, a whole-or-absent label, and the marks of a
//! running or failed task.

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
}

impl BarShape {
    /// Draws through `put(cell, char)`; `label` goes in whole, or not at all.
    pub(super) fn draw(&self, label: &str, mut put: impl FnMut(usize, char)) {
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
}
