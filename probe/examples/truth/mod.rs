//! What each task of an example says about itself, for poolscope's end-to-end test: the
//! kernel thread id that ran it, and its start and duration (microseconds from the
//! program's start). Written only when the program is given a file to write it to.

use std::sync::Mutex;
use std::time::Instant;

/// The tasks' own records, saved at the end.
pub struct Truth {
    file: Option<String>,
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl Truth {
    /// Records to the file named by the first argument, if there is one.
    pub fn from_args() -> Truth {
        Truth {
            file: std::env::args().nth(1),
            start: Instant::now(),
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Runs `work`, noting on which thread and when.
    pub fn record<T>(&self, work: impl FnOnce() -> T) -> T {
        if self.file.is_none() {
            return work();
        }
        let t0 = self.start.elapsed();
        let out = work();
        let t1 = self.start.elapsed();
        // `/proc/thread-self` links to `PID/task/TID`: the kernel's id of this thread.
        let tid = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse::<i64>().ok())
            .unwrap_or(-1);
        let line = format!(
            "{tid} {} {}",
            t0.as_micros(),
            t1.saturating_sub(t0).as_micros()
        );
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
        out
    }

    /// Writes the records, one task a line.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::fs::write(file, lines.join("\n") + "\n")
    }
}
