//! A drawn frame as an SVG picture: every cell's colours and weight, in a monospace grid.

use std::fmt::Write;

use ratatui::buffer::{Buffer, Cell};
use ratatui::style::{Color, Modifier};

use crate::view::Theme;

/// Width of one cell, in pixels (0.6 em of the font).
const CELL_W: f64 = 8.4;
/// Height of one cell, in pixels.
const CELL_H: f64 = 17.0;
const FONT_SIZE: f64 = 14.0;
const BACKGROUND: &str = "#1d1f21";
const FOREGROUND: &str = "#d8d8d8";

/// The page's colours for a theme: (background, default text).
fn page(theme: &Theme) -> (&'static str, &'static str) {
    if theme.name == "light" {
        ("#fdfdf8", "#202020")
    } else {
        (BACKGROUND, FOREGROUND)
    }
}

/// The buffer as a standalone SVG document on a dark page.
pub fn buffer_to_svg(buf: &Buffer) -> String {
    buffer_to_svg_with(buf, &Theme::dark())
}

/// The buffer as a standalone SVG document on the page colours of `theme`.
pub fn buffer_to_svg_with(buf: &Buffer, theme: &Theme) -> String {
    let (background, foreground) = page(theme);
    let area = buf.area;
    let (w, h) = (
        f64::from(area.width) * CELL_W,
        f64::from(area.height) * CELL_H,
    );
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.1} {h:.1}\" font-family=\"'DejaVu Sans Mono', Menlo, Consolas, monospace\" \
         font-size=\"{FONT_SIZE}\">\n<rect width=\"100%\" height=\"100%\" fill=\"{background}\"/>\n"
    );
    for y in area.top()..area.bottom() {
        let row = f64::from(y - area.top());
        let mut x = area.left();
        while x < area.right() {
            // A run: neighbouring cells of one style, drawn as one rectangle and one text.
            let first = &buf[(x, y)];
            let start = x;
            let mut text = String::new();
            while x < area.right() && same_style(&buf[(x, y)], first) {
                text.push_str(buf[(x, y)].symbol());
                x += 1;
            }
            let len = f64::from(x - start);
            let col = f64::from(start - area.left());
            let (fg, bg) = colours(first, background, foreground);
            if let Some(bg) = bg {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{CELL_H}\" fill=\"{bg}\"/>",
                    col * CELL_W,
                    row * CELL_H,
                    len * CELL_W
                );
            }
            if !text.trim().is_empty() {
                let weight = if first.modifier.contains(Modifier::BOLD) {
                    " font-weight=\"bold\""
                } else {
                    ""
                };
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{fg}\"{weight} textLength=\"{:.1}\" \
                     lengthAdjust=\"spacingAndGlyphs\" xml:space=\"preserve\">{}</text>",
                    col * CELL_W,
                    row * CELL_H + CELL_H * 0.78,
                    len * CELL_W,
                    escape(&text)
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn same_style(a: &Cell, b: &Cell) -> bool {
    a.fg == b.fg && a.bg == b.bg && a.modifier == b.modifier
}

/// Foreground and (unless it is the page's) background colour of a cell, reversal applied.
fn colours(cell: &Cell, background: &str, foreground: &str) -> (String, Option<String>) {
    let fg = hex(cell.fg).unwrap_or_else(|| foreground.to_string());
    let bg = hex(cell.bg);
    if cell.modifier.contains(Modifier::REVERSED) {
        (bg.unwrap_or_else(|| background.to_string()), Some(fg))
    } else {
        (fg, bg)
    }
}

/// A terminal colour in a dark palette; `None` for the default.
fn hex(c: Color) -> Option<String> {
    if let Color::Rgb(r, g, b) = c {
        return Some(format!("#{r:02x}{g:02x}{b:02x}"));
    }
    let named = match c {
        Color::Reset => return None,
        Color::Black => "#1d1f21",
        Color::Red => "#cc6666",
        Color::Green => "#8fbf6f",
        Color::Yellow => "#e6c547",
        Color::Blue => "#5f87d7",
        Color::Magenta => "#b294bb",
        Color::Cyan => "#70c0ba",
        Color::Gray => "#c5c8c6",
        Color::DarkGray => "#707880",
        Color::LightRed => "#ff7b7b",
        Color::LightGreen => "#b5e08f",
        Color::LightYellow => "#f0d070",
        Color::LightBlue => "#81a2be",
        Color::LightMagenta => "#d7a6e0",
        Color::LightCyan => "#8abeb7",
        Color::White => "#ffffff",
        _ => FOREGROUND,
    };
    Some(named.to_string())
}

/// XML text: unsafe characters (controls, which XML forbids, bidi, zero-width) escaped
/// visibly first, then the XML specials.
fn escape(text: &str) -> String {
    crate::outside_text::shown(text, usize::MAX)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::style::Style;

    #[test]
    fn cells_become_rects_and_escaped_text() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
        buf.set_string(0, 0, "<a>", Style::new().fg(Color::Red).bg(Color::Blue));
        let svg = buffer_to_svg(&buf);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("fill=\"#5f87d7\""), "{svg}");
        assert!(svg.contains(">&lt;a&gt;</text>"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_light_theme_gets_a_light_page_and_rgb_roles_their_own_colour() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 1));
        let light = Theme::light();
        buf.set_string(0, 0, "ok", light.ok);
        let svg = buffer_to_svg_with(&buf, &light);
        assert!(svg.contains("fill=\"#fdfdf8\""), "{svg}");
        assert!(svg.contains("fill=\"#007800\""), "{svg}");
    }
}
