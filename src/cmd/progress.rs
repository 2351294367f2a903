//! The progress line of a headless run: on stderr, once the run has taken two seconds, when
//! stderr is a terminal that the output is not going to (else it would mix with the output).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use poolscope::event::{EventKind, PoolEvent};
use poolscope::units::fmt_duration;

/// A run shorter than this shows no progress at all.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// The line is redrawn at most this often.
const EVERY: Duration = Duration::from_millis(200);

/// Counts tasks as events pass and redraws one stderr line.
pub struct Progress {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
    total: u64,
    done: u64,
}

impl Progress {
    /// A progress line, shown only where it helps (see the module's doc).
    pub fn new() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal() && !std::io::stdout().is_terminal(),
            started: Instant::now(),
            drawn: None,
            total: 0,
            done: 0,
        }
    }

    /// Counts `events` and redraws the line if it is due.
    pub fn observe<'a>(&mut self, events: impl IntoIterator<Item = &'a PoolEvent>) {
        if !self.enabled {
            return;
        }
        for ev in events {
            match &ev.kind {
                EventKind::RunStarted { config, .. } => {
                    self.total += config.tasks;
                }
                EventKind::RunFinished { cancelled, .. } => {
                    self.done += cancelled;
                }
                _ if ev.task_end().is_some() => self.done += 1,
                _ => {}
            }
        }
        let now = Instant::now();
        let elapsed = now - self.started;
        if elapsed < QUIET_FOR || self.drawn.is_some_and(|d| now - d < EVERY) {
            return;
        }
        self.drawn = Some(now);
        let eta = if self.done > 0 && self.done < self.total {
            let left = elapsed.mul_f64((self.total - self.done) as f64 / self.done as f64);
            format!(" · ETA {}", fmt_duration(left))
        } else {
            String::new()
        };
        let pct = 100 * self.done / self.total.max(1);
        let line = format!(
            "\r\x1b[K{}/{} tasks ({pct}%) · {}{eta}",
            self.done,
            self.total,
            fmt_duration(elapsed)
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    /// Clears the line, if one was drawn.
    pub fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
