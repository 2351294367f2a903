//! A drawn frame as plain text, for `poolscope snapshot` and the snapshot tests.

use ratatui::buffer::Buffer;

/// The buffer's rows as lines of text, trailing blanks trimmed.
pub fn buffer_to_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::with_capacity((area.width as usize + 1) * area.height as usize);
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut skip = 0;
        for x in area.left()..area.right() {
            // A wide glyph covers the next cell, which holds a placeholder to be skipped.
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buf[(x, y)].symbol();
            skip = unicode_width(symbol).saturating_sub(1);
            line.push_str(symbol);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn unicode_width(s: &str) -> usize {
    use ratatui::text::Span;
    Span::raw(s).width()
}

/// What stays on the normal screen after the dashboard: the last run of each mode, as a
/// small table (wall, start-up, hand-off, tasks/s, failures). `None` if no run completed.
pub fn exit_summary(model: &crate::model::Model) -> Option<String> {
    use crate::view::{fmt_duration, fmt_rate};
    let runs = [
        ("thread", model.last_thread.as_ref()),
        ("process", model.last_process.as_ref()),
    ];
    if runs.iter().all(|(_, r)| r.is_none()) {
        return None;
    }
    let mut out = String::from("poolscope: the last run of each mode\n");
    out += &format!(
        "{:<8} {:>10} {:>8} {:>10} {:>10} {:>10} {:>7}\n",
        "mode", "run", "wall", "start-up", "hand-off", "tasks/s", "failed"
    );
    for (name, run) in runs {
        let Some(s) = run else { continue };
        let handoff = s.overhead_mean.map_or_else(|| "–".into(), fmt_duration);
        out.push_str(&format!(
            "{name:<8} {:>10} {:>8} {:>10} {:>10} {:>10} {:>7}\n",
            format!("{}w×{}", s.config.workers, s.config.tasks),
            fmt_duration(s.wall),
            fmt_duration(s.startup),
            handoff,
            fmt_rate(s.tasks_per_s),
            s.failed
        ));
    }
    Some(out)
}
