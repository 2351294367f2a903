//! A frame made into a picture worth sharing: a title above, the key footer (which means
//! nothing outside the dashboard) replaced by a colour legend.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};

use crate::view::Theme;

/// `frame` (a whole dashboard) under `title`, its last row (the key hints) replaced by a
/// legend of the colours; one row taller than `frame`.
pub fn framed(frame: &Buffer, title: &str, theme: &Theme, ascii: bool) -> Buffer {
    let area = frame.area;
    let mut out = Buffer::empty(Rect::new(0, 0, area.width, area.height + 1));
    let title = crate::outside_text::printable(title);
    out.set_stringn(
        1,
        0,
        title.as_ref(),
        usize::from(area.width.saturating_sub(2)),
        theme.title.add_modifier(Modifier::BOLD),
    );
    for y in 0..area.height.saturating_sub(1) {
        for x in 0..area.width {
            out[(x, y + 1)] = frame[(x + area.x, y + area.y)].clone();
        }
    }
    let mut x = 1u16;
    let block = if ascii { "#" } else { "█" };
    for (style, what) in legend(theme) {
        let width = 2 + what.chars().count() as u16 + 2;
        if x + width > area.width {
            break;
        }
        out.set_string(x, area.height, block, theme.filled(style));
        out.set_string(x + 2, area.height, what, Style::new());
        x += width;
    }
    out
}

/// The colours a frame uses, and what each stands for.
fn legend(theme: &Theme) -> [(Style, &'static str); 5] {
    [
        (theme.sleep, "sleep / I/O"),
        (theme.cpu, "CPU"),
        (theme.task, "task"),
        (theme.failed, "failed"),
        (theme.warning, "overdue / earlier run"),
    ]
}
