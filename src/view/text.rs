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
            let cell = buf[(x, y)].symbol();
            let symbol = crate::outside_text::clean_cell_symbol(cell).unwrap_or(cell);
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
    use std::fmt::Write as _;
    let runs = [
        ("thread", model.last_thread.as_ref()),
        ("process", model.last_process.as_ref()),
    ];
    if runs.iter().all(|(_, r)| r.is_none()) {
        return None;
    }
    let mut out = String::from("poolscope: the last run of each mode\n");
    let _ = writeln!(
        out,
        "{:<8} {:>10} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "mode", "run", "wall", "start-up", "hand-off", "tasks/s", "failed"
    );
    for (name, run) in runs {
        let Some(s) = run else { continue };
        let handoff = s.overhead_mean.map_or_else(|| "–".into(), fmt_duration);
        let _ = writeln!(
            out,
            "{name:<8} {:>10} {:>8} {:>10} {:>10} {:>10} {:>7}",
            format!("{}w×{}", s.config.workers, s.config.tasks),
            fmt_duration(s.wall),
            fmt_duration(s.startup),
            handoff,
            fmt_rate(s.tasks_per_s),
            s.failed
        );
    }
    Some(out)
}

/// The buffer's rows with their colours as ANSI escape codes (SGR), for a terminal.
pub fn buffer_to_ansi(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut current = ratatui::buffer::Cell::default().style();
        let mut skip = 0;
        let mut line = String::new();
        for x in area.left()..area.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let cell = &buf[(x, y)];
            let style = cell.style();
            if style != current {
                line.push_str(&sgr(style));
                current = style;
            }
            let symbol =
                crate::outside_text::clean_cell_symbol(cell.symbol()).unwrap_or(cell.symbol());
            skip = unicode_width(symbol).saturating_sub(1);
            line.push_str(symbol);
        }
        let line = line.trim_end();
        out.push_str(line.strip_suffix("\x1b[0m").unwrap_or(line));
        out.push_str("\x1b[0m\n");
    }
    out
}

/// The escape sequence that sets `style` from a clean slate.
fn sgr(style: ratatui::style::Style) -> String {
    use ratatui::style::Modifier;
    let mut codes = vec!["0".to_string()];
    let m = style.add_modifier;
    for (flag, code) in [
        (Modifier::BOLD, "1"),
        (Modifier::DIM, "2"),
        (Modifier::ITALIC, "3"),
        (Modifier::UNDERLINED, "4"),
        (Modifier::REVERSED, "7"),
    ] {
        if m.contains(flag) {
            codes.push(code.into());
        }
    }
    if let Some(c) = style.fg.and_then(|c| colour(c, false)) {
        codes.push(c);
    }
    if let Some(c) = style.bg.and_then(|c| colour(c, true)) {
        codes.push(c);
    }
    format!("\x1b[{}m", codes.join(";"))
}

fn colour(c: ratatui::style::Color, bg: bool) -> Option<String> {
    use ratatui::style::Color;
    let base = if bg { 40 } else { 30 };
    let named = |n: u8| Some((base + n).to_string());
    let bright = |n: u8| Some((base + 60 + n).to_string());
    match c {
        Color::Reset => None,
        Color::Black => named(0),
        Color::Red => named(1),
        Color::Green => named(2),
        Color::Yellow => named(3),
        Color::Blue => named(4),
        Color::Magenta => named(5),
        Color::Cyan => named(6),
        Color::Gray => named(7),
        Color::DarkGray => bright(0),
        Color::LightRed => bright(1),
        Color::LightGreen => bright(2),
        Color::LightYellow => bright(3),
        Color::LightBlue => bright(4),
        Color::LightMagenta => bright(5),
        Color::LightCyan => bright(6),
        Color::White => bright(7),
        Color::Indexed(i) => Some(format!("{};5;{i}", base + 8)),
        Color::Rgb(r, g, b) => Some(format!("{};2;{r};{g};{b}", base + 8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::style::{Color, Style};

    #[test]
    fn ansi_text_carries_the_colours_and_plain_text_does_not() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
        buf.set_string(0, 0, "ok", Style::new().fg(Color::Green));
        buf.set_string(3, 0, "x", Style::new().fg(Color::Rgb(1, 2, 3)));
        assert_eq!(buffer_to_text(&buf), "ok x\n");
        assert_eq!(
            buffer_to_ansi(&buf),
            "\x1b[0;32mok\x1b[0m \x1b[0;38;2;1;2;3mx\x1b[0m\n"
        );
    }
}
