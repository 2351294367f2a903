//! Keys that explore a run: the task table (`T`, Enter on a lane), its sort, the `/` filter
//! and `n`/`N` among matches, and what a paste means.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, LANE_PAGE};
use crate::explore::{self, Column, TableState, TaskRow};
use crate::keys::KeyAction;
use crate::view_state::MAX_ZOOM;

impl App {
    /// The rows the task table shows now (sorted, filtered), and how many ended tasks are no
    /// longer kept.
    pub fn table_rows(&self, now: Duration) -> (Vec<TaskRow>, u64) {
        match (self.shown().run.as_ref(), &self.view.table) {
            (Some(run), Some(table)) => explore::rows(run, now, table, &self.view.filter),
            _ => (Vec::new(), 0),
        }
    }

    /// Opens the task table: of the whole run, or of lane `lane` only.
    pub(super) fn open_table(&mut self, lane: Option<usize>) {
        if self.shown().run.is_none() {
            self.notify("no run yet".into());
            return;
        }
        let sort = self.view.table.as_ref().map(|t| (t.sort, t.descending));
        let mut table = TableState {
            lane,
            ..TableState::default()
        };
        if let Some((column, descending)) = sort {
            table.sort = column;
            table.descending = descending;
        }
        self.view.table = Some(table);
    }

    /// A key while the filter is typed: text goes into it, Enter keeps it, Esc clears it.
    pub(super) fn filter_key(&mut self, key: KeyEvent) {
        let filter = &mut self.view.filter;
        match key.code {
            KeyCode::Enter => filter.editing = false,
            KeyCode::Esc => {
                filter.editing = false;
                filter.pattern.clear();
            }
            KeyCode::Backspace => {
                filter.pattern.pop();
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                filter.pattern.clear();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                filter.push_str(c.encode_utf8(&mut [0; 4]));
            }
            _ => {}
        }
        self.view.match_at = None;
        if let Some(t) = &mut self.view.table {
            t.cursor = 0;
        }
    }

    /// Pasted text: it goes into the filter while one is typed (bounded); anywhere else it is
    /// ignored, never taken as keys.
    pub fn on_paste(&mut self, text: &str) {
        if self.view.filter.editing {
            self.view.filter.push_str(text);
            if let Some(t) = &mut self.view.table {
                t.cursor = 0;
            }
        } else {
            self.view.key_note = Some(format!(
                "paste of {} ignored (no field takes text here)",
                crate::units::plural(text.chars().count() as u64, "character")
            ));
        }
    }

    /// A key while the task table is open; `false` leaves it to the main screen (quit, help,
    /// the filter, pause).
    pub(super) fn table_key(
        &mut self,
        key: KeyEvent,
        action: Option<KeyAction>,
        now: Duration,
    ) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if let (KeyCode::Char(c), false) = (key.code, ctrl)
            && let Some(column) = Column::for_key(c)
        {
            self.sort_by(column);
            return true;
        }
        let rows = self.table_rows(now).0.len();
        let Some(table) = self.view.table.as_mut() else {
            return false;
        };
        let last = rows.saturating_sub(1);
        let at = table.cursor.min(last);
        let Some(action) = action else {
            self.unknown_key(key);
            return true;
        };
        table.cursor = match action {
            KeyAction::Up | KeyAction::PrevMatch => at.saturating_sub(1),
            KeyAction::Down | KeyAction::NextMatch => (at + 1).min(last),
            KeyAction::PageUp => at.saturating_sub(LANE_PAGE),
            KeyAction::PageDown => (at + LANE_PAGE).min(last),
            KeyAction::First => 0,
            KeyAction::Last => last,
            KeyAction::Tasks => {
                self.view.table = None;
                return true;
            }
            KeyAction::Escape if self.view.filter.is_active() => {
                self.view.filter = explore::Filter::default();
                table.cursor = 0;
                return true;
            }
            KeyAction::Escape => {
                self.view.table = None;
                return true;
            }
            KeyAction::Open => {
                let row = self.table_rows(now).0.into_iter().nth(at);
                if let Some(row) = row {
                    self.view.table = None;
                    self.show_task(&row, now);
                }
                return true;
            }
            KeyAction::SortLeft | KeyAction::SortRight => {
                let i = Column::ALL
                    .iter()
                    .position(|c| *c == table.sort)
                    .unwrap_or(0);
                let n = Column::ALL.len();
                let next = if action == KeyAction::SortRight {
                    i + 1
                } else {
                    i + n - 1
                };
                table.sort = Column::ALL[next % n];
                table.cursor = 0;
                return true;
            }
            KeyAction::Filter | KeyAction::FailedOnly | KeyAction::Help => return false,
            KeyAction::Quit | KeyAction::Suspend | KeyAction::Pause => return false,
            _ => {
                self.view.key_note = Some("not in the task table: T or Esc closes it".into());
                at
            }
        };
        true
    }

    /// Sorts the table by `column`; the same column again reverses the order.
    fn sort_by(&mut self, column: Column) {
        if let Some(t) = &mut self.view.table {
            if t.sort == column {
                t.descending = !t.descending;
            } else {
                t.sort = column;
                // Durations and waits are looked at largest first.
                t.descending = matches!(column, Column::Duration | Column::Wait | Column::Cpu);
            }
            t.cursor = 0;
        }
    }

    /// `n`/`N` on the timeline: the next or previous matching task in time, shown.
    pub(super) fn next_match(&mut self, forward: bool, now: Duration) {
        if !self.view.filter.is_active() {
            self.view.key_note = Some("no filter: / sets one".into());
            return;
        }
        let Some(run) = self.shown().run.as_ref() else {
            return;
        };
        let matches = explore::matches_in_time(run, now, &self.view.filter);
        if matches.is_empty() {
            self.notify("no task matches the filter".into());
            return;
        }
        let n = matches.len();
        let i = match (self.view.match_at, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        };
        self.view.match_at = Some(i);
        let row = &matches[i];
        self.notify(format!("match {} of {n}", i + 1));
        self.show_task(row, now);
    }

    /// Moves the timeline to `row`'s task, zoomed so that it is a few cells wide, and
    /// selects its lane.
    pub(super) fn show_task(&mut self, row: &TaskRow, now: Duration) {
        let Some(run) = self.shown().run.as_ref() else {
            return;
        };
        let end = row.start + row.duration;
        let t_end = run.ended_at.map_or(now, |e| e.min(now)).max(end);
        let full = t_end.max(Duration::from_millis(10));
        let want = (row.duration * 4).max(Duration::from_millis(1));
        let mut zoom = 0u8;
        while zoom < MAX_ZOOM && full / (1u32 << (zoom + 1)) >= want {
            zoom += 1;
        }
        let width = full / (1u32 << zoom);
        self.view.zoom = zoom;
        self.view.follow = false;
        self.view.anchor = (row.start + row.duration / 2 + width / 2).min(t_end.max(width));
        self.view.selected = row.lane;
        self.view.marked = Some(row.task);
        let detail = format!(
            "{} on {}: {} from {}",
            row.name,
            row.lane_name,
            crate::units::fmt_duration(row.duration),
            crate::units::fmt_duration(row.start)
        );
        let notice = match self.view.notice.take() {
            Some(n) => format!("{n} · {detail}"),
            None => detail,
        };
        self.notify(notice);
    }

    /// Says briefly, in the footer, that a key means nothing here.
    pub(super) fn unknown_key(&mut self, key: KeyEvent) {
        let name = match key.code {
            KeyCode::Char(c) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                format!("Ctrl-{c}")
            }
            KeyCode::Char(c) => c.to_string(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        self.view.key_note = Some(format!("{name}: no such key (? or F1 for help)"));
    }

    /// The keys that explore a run, on the main screen.
    pub(super) fn perform_explore(&mut self, action: KeyAction, now: Duration) {
        match action {
            KeyAction::Tasks => self.open_table(None),
            KeyAction::Open => {
                if let Some(lane) = self.selected_lane() {
                    self.open_table(Some(lane));
                }
            }
            KeyAction::Filter => self.view.filter.editing = true,
            KeyAction::NextMatch => self.next_match(true, now),
            KeyAction::PrevMatch => self.next_match(false, now),
            KeyAction::FailedOnly => {
                let f = &mut self.view.filter;
                f.failed_only = !f.failed_only;
                self.view.match_at = None;
                let what = if f.failed_only {
                    "failed tasks only (F again: all)"
                } else {
                    "all tasks"
                };
                self.notify(what.into());
            }
            _ => self.view.key_note = Some("that key sorts the task table: T opens it".into()),
        }
    }
}
