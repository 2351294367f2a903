//! ASCII-only drawing: every cell of a drawn frame transliterated, one character for one,
//! so a terminal without UTF-8 (or `--ascii`) gets the same screen in plain characters.

use ratatui::buffer::Buffer;

/// The ASCII stand-in for one drawn character (a `?` for anything unforeseen).
pub fn to_ascii(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match c {
        '─' | '━' | '╌' | '—' | '–' => '-',
        '│' | '┃' | '‖' | '╎' | '▕' => '|',
        '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' | '╭' | '╮' | '╯' | '╰' => {
            '+'
        }
        '▶' | '→' | '►' => '>',
        '◀' | '←' => '<',
        '↑' => '^',
        '↓' => 'v',
        '⇄' => '~',
        '✗' | '×' => 'x',
        '✓' => 'v',
        '⚠' => '!',
        '●' => '*',
        // `┄` is a task's time off-CPU: dots, so it stays apart from the `-` that ran.
        '·' | '…' | '┄' => '.',
        'µ' => 'u',
        '░' | '▁' => '_',
        '▂' | '▃' => '.',
        '▒' | '▄' => ':',
        '▅' | '▆' => '=',
        '▓' | '▇' => '%',
        '█' | '▀' | '▉' | '▊' | '▋' => '#',
        '▌' | '▍' | '▎' => '=',
        '▏' => '|',
        _ => '?',
    }
}

/// Rewrites every cell of `buf` in ASCII, keeping its style.
pub fn asciify(buf: &mut Buffer) {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let cell = &mut buf[(x, y)];
            let symbol = cell.symbol();
            if symbol.is_ascii() {
                continue;
            }
            let mut chars = symbol.chars();
            let ascii = chars.next().map_or(' ', to_ascii);
            cell.set_char(ascii);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_drawing_and_glyphs_become_single_ascii_characters() {
        let text = "├blocks(3)──┤ ✗ ▶ ░▒▓█ µs ⚠ …";
        let out: String = text.chars().map(to_ascii).collect();
        assert_eq!(out, "+blocks(3)--+ x > _:%# us ! .");
        assert_eq!(out.chars().count(), text.chars().count());
    }
}
