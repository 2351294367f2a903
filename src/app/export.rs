//! `e`: exporting the run on screen, at most once per state of the run.

use std::time::Duration;

use super::{Action, App};
use crate::event::RunId;

/// Exports are this far apart at least, within a run.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// What a run looked like when it was exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ExportMark {
    run: RunId,
    ended: u64,
    over: bool,
    at: Duration,
}

impl App {
    /// `e`: one export per run and state, at most one a second, so a held key or a paste
    /// without brackets cannot write thousands of files.
    pub(super) fn export(&mut self, now: Duration) -> Option<Action> {
        let Some(run) = self.model.run.as_ref() else {
            self.notify("no run to export yet".into());
            return None;
        };
        let mark = ExportMark {
            run: run.id,
            ended: run.finished + run.failed + run.cancelled,
            over: run.is_over(),
            at: now,
        };
        if let Some(last) = self.last_export {
            let same = last.run == mark.run && last.ended == mark.ended && last.over == mark.over;
            if same {
                self.notify(
                    "already exported as it is now: e again once the run has changed".into(),
                );
                return None;
            }
            if last.run == mark.run && now.saturating_sub(last.at) < EXPORT_EVERY {
                self.notify("one export a second at most".into());
                return None;
            }
        }
        self.last_export = Some(mark);
        Some(Action::ExportTrace)
    }
}
