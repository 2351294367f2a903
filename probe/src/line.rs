//! Protocol lines, formatted by hand: a JSON object per line, strings escaped, names and
//! errors cut (at a character boundary) so a line stays well under the 4096-byte write.

use std::fmt::Write as _;

/// Longest task or thread name sent (the reader keeps 200 bytes).
pub(crate) const MAX_NAME: usize = 200;
/// Longest error text sent (the reader keeps 500 bytes).
pub(crate) const MAX_ERROR: usize = 500;

/// One protocol line being built: `{"ev":KIND` then fields, closed by [`Line::end`].
pub(crate) struct Line(String);

impl Line {
    /// A new event line of kind `ev` at time `t` (`CLOCK_MONOTONIC` ns).
    pub(crate) fn event(ev: &str, t: u64) -> Line {
        let mut s = String::with_capacity(160);
        let _ = write!(s, "{{\"ev\":\"{ev}\",\"t\":{t}");
        Line(s)
    }

    /// The header: the protocol version, time zero, who wrote it.
    pub(crate) fn header(origin_ns: u64, pid: u32) -> String {
        format!(
            "{{\"poolscope\":1,\"origin_ns\":{origin_ns},\"producer\":\"rust-probe\",\"pid\":{pid}}}\n"
        )
    }

    /// Adds `"key":n`.
    pub(crate) fn num(mut self, key: &str, n: impl std::fmt::Display) -> Line {
        let _ = write!(self.0, ",\"{key}\":{n}");
        self
    }

    /// Adds `"key":n` if there is an `n`: a value not measured is left out, never sent as 0.
    pub(crate) fn opt_num(self, key: &str, n: Option<u64>) -> Line {
        match n {
            Some(n) => self.num(key, n),
            None => self,
        }
    }

    /// Adds `"key":"text"`, the text's first line cut to `max` bytes and escaped.
    pub(crate) fn text(mut self, key: &str, text: &str, max: usize) -> Line {
        let _ = write!(self.0, ",\"{key}\":\"");
        escape_into(&mut self.0, cut(first_line(text), max));
        self.0.push('"');
        self
    }

    /// The finished line, newline included.
    pub(crate) fn end(mut self) -> String {
        self.0.push_str("}\n");
        self.0
    }
}

/// The first non-empty line of `text` (an error's message, not its traceback).
fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Appends `text` as the inside of a JSON string: quotes, backslashes and every control
/// character escaped, all else (UTF-8 included) as is.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `line` with a JSON reader written independently of this module: the standard
    /// library has none, so the test checks the escapes one by one against their meaning.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn hostile_text_is_escaped_and_comes_back_unchanged() {
        let nasty = "a\"b\\c\u{1b}[2J\u{7}\u{0}é日本\t";
        let mut out = String::new();
        escape_into(&mut out, nasty);
        assert!(out.chars().all(|c| !c.is_control()), "{out:?}");
        let bare = out
            .char_indices()
            .any(|(i, c)| c == '"' && !out[..i].ends_with('\\'));
        assert!(!bare, "a quote is never bare: {out}");
        assert_eq!(unescape(&out), nasty);
    }

    #[test]
    fn a_line_has_its_fields_and_leaves_out_what_was_not_measured() {
        let line = Line::event("task_finished", 42)
            .text("id", "7-1", 128)
            .opt_num("cpu_ns", None)
            .end();
        assert_eq!(line, "{\"ev\":\"task_finished\",\"t\":42,\"id\":\"7-1\"}\n");
        let line = Line::event("task_failed", 9)
            .opt_num("cpu_ns", Some(12))
            .text("error", "Boom: x\n  at line 3", MAX_ERROR)
            .end();
        assert_eq!(
            line,
            "{\"ev\":\"task_failed\",\"t\":9,\"cpu_ns\":12,\"error\":\"Boom: x\"}\n"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let line = Line::event("task_started", 1)
            .text("name", &long, MAX_NAME)
            .end();
        assert!(line.len() < MAX_NAME + 60);
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("abc", 9), "abc");
    }
}
