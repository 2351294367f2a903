//! Text from outside made fit to show: the one place where a program's, a recording's or a
//! worker's words become displayable, for every sink (terminal, snapshot text, SVG, log
//! text, csv, jsonl).
//!
//! Outside text may carry escape sequences (ESC, CSI, OSC: a pane title, a cleared screen),
//! C1 controls (U+0080–U+009F, which some terminals take as ESC-sequences), bidi overrides
//! that reorder what is shown (U+202A–U+202E, U+2066–U+2069) and zero-width characters that
//! hide text. Each of these is shown as a visible `\u{…}` escape instead of acting, so the
//! text stays readable and nothing in it reaches a terminal or a file raw. Text is also cut
//! to a bounded length. Sources clean their events as they enter ([`clean_event`]); sinks
//! clean again what they write ([`shown`], [`clean_cell_symbol`]) as a second line of defence.

use std::borrow::Cow;

use crate::event::{EventKind, PoolEvent, RunSource, WorkerExit, WorkerLabel};

/// Longest piece of outside text kept in an event, in characters (after escaping).
pub const MAX_CHARS: usize = 2000;

/// Whether `c` must not be shown as itself: it acts on a terminal, reorders or hides text, or
/// is not allowed in XML.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}'                 // Arabic letter mark (bidi)
            | '\u{00ad}'               // soft hyphen (invisible)
            | '\u{180e}'               // Mongolian vowel separator (zero width)
            | '\u{200b}'..='\u{200f}'  // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'  // line and paragraph separators
            | '\u{202a}'..='\u{202e}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'  // bidi isolates
            | '\u{feff}'               // zero-width no-break space (BOM)
            | '\u{fff9}'..='\u{fffb}'  // interlinear annotation controls
            | '\u{fffe}' | '\u{ffff}'  // noncharacters (not allowed in XML)
        )
}

/// Most combining marks (zero-width characters) kept on one base character: enough for any
/// script's stacks; a flood of thousands on one letter makes terminals disagree on where a
/// cell ends (tmux keeps some in the cell and starts new cells for the rest, xterm keeps two)
/// and shifts every column after it, so the marks past this many are shown escaped.
pub const MAX_MARKS: usize = 4;

/// Whether `c` is a combining mark or another zero-width character that joins the one before.
fn is_mark(c: char) -> bool {
    unicode_width::UnicodeWidthChar::width(c) == Some(0)
}

/// The characters of `text`, each with whether it must be shown escaped: unsafe by itself,
/// or a mark past [`MAX_MARKS`] on one base.
fn judged(text: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    let mut marks = 0usize;
    text.chars().map(move |c| {
        if is_unsafe(c) {
            marks = 0;
            return (c, true);
        }
        if is_mark(c) {
            marks += 1;
            (c, marks > MAX_MARKS)
        } else {
            marks = 0;
            (c, false)
        }
    })
}

/// Whether `text` can be shown as it is: nothing unsafe in it, no flood of marks, and no
/// longer than `max`.
pub fn is_clean(text: &str, max: usize) -> bool {
    !judged(text).any(|(_, escaped)| escaped) && text.chars().nth(max).is_none()
}

/// `text` fit to show on one line: every unsafe character as a visible `\u{1b}` escape
/// (`\n`, `\r`, `\t` as such), cut to at most `max` characters and a `…`.
pub fn shown(text: &str, max: usize) -> Cow<'_, str> {
    if is_clean(text, max) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)) + 8);
    let mut count = 0;
    for (c, escaped) in judged(text) {
        let before = out.len();
        if escaped {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        count += out[before..].chars().count();
        if count > max {
            out.truncate(before);
            out.push('…');
            break;
        }
    }
    Cow::Owned(out)
}

/// Cleans `s` in place with [`shown`] and the event bound, allocating only when it must.
pub fn clean(s: &mut String) {
    if let Cow::Owned(new) = shown(s, MAX_CHARS) {
        *s = new;
    }
}

/// Cleans every piece of text an event carries.
pub fn clean_event(ev: &mut PoolEvent) {
    clean_kind(&mut ev.kind);
}

/// Cleans every piece of text an event kind carries.
pub fn clean_kind(kind: &mut EventKind) {
    match kind {
        EventKind::RunStarted { source, .. } => clean_source(source),
        EventKind::WorkerSpawned { label, .. } => clean_label(label),
        EventKind::WorkerExited { exit, .. } | EventKind::ProgramExited { exit } => {
            if let WorkerExit::Broken(s) | WorkerExit::Reported(s) = exit {
                clean(s);
            }
        }
        EventKind::TaskFailed { error: s, .. }
        | EventKind::WorkerOutput { line: s, .. }
        | EventKind::PoolNote { line: s, .. }
        | EventKind::TaskNamed { name: s, .. }
        | EventKind::ProgramOutput { line: s, .. } => clean(s),
        _ => {}
    }
}

/// Cleans the texts that say where a run comes from.
pub fn clean_source(source: &mut RunSource) {
    match source {
        RunSource::Experiment => {}
        RunSource::Program { command } | RunSource::Attached { command, .. } => clean(command),
        RunSource::Replay {
            file,
            format,
            producer,
        } => {
            clean(file);
            clean(format);
            clean(producer);
        }
    }
}

fn clean_label(label: &mut WorkerLabel) {
    match label {
        WorkerLabel::Thread { name, .. } => clean(name),
        WorkerLabel::Process { .. } => {}
        WorkerLabel::External(w) => {
            clean(&mut w.name);
            if let Some(host) = w.host.as_mut() {
                clean(host);
            }
        }
    }
}

/// A drawn cell's symbol fit to show: the symbol itself, or `�` when it holds anything
/// unsafe (a cell has no room for an escape).
pub fn clean_cell_symbol(symbol: &str) -> Option<&'static str> {
    judged(symbol)
        .any(|(_, escaped)| escaped)
        .then_some("\u{fffd}")
}

/// Cleans every cell of a drawn buffer (see [`clean_cell_symbol`]), the last step of drawing.
pub fn clean_buffer(buf: &mut ratatui::buffer::Buffer) {
    for cell in &mut buf.content {
        if let Some(replacement) = clean_cell_symbol(cell.symbol()) {
            cell.set_symbol(replacement);
        }
    }
}

/// Longest piece of outside text (a file's value, a worker's line) quoted in a message.
pub const QUOTE_MAX: usize = 200;

/// `text` fit for one line on a terminal: control characters (escape sequences, carriage
/// returns, newlines) shown as `\u{1b}`-style escapes instead of acting on the terminal.
/// Bidi overrides and zero-width characters too (see [`shown`]).
pub fn printable(text: &str) -> Cow<'_, str> {
    shown(text, usize::MAX)
}

/// `text` cut to at most `max` characters, saying how much was left out.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_would_act_on_a_terminal() {
        assert_eq!(printable("plain · text"), "plain · text");
        assert_eq!(
            printable("\x1b[2Jgone\r\nx\u{9b}"),
            "\\u{1b}[2Jgone\\r\\nx\\u{9b}"
        );
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(50);
        assert_eq!(clip(&long, 3), "ééé… (94 more bytes)");
    }
    use crate::event::{ExternalWorker, WorkerId};
    use std::time::Duration;

    const HOSTILE: &str = "a\x1b]0;pwned\x07b\x1b[2J\u{9b}31m\u{202e}cba\u{200b}\u{2066}x\r\n";

    fn has_no_unsafe_bytes(s: &str) {
        assert!(!s.contains('\x1b'), "ESC in {s:?}");
        assert!(!s.chars().any(is_unsafe), "unsafe char in {s:?}");
    }

    #[test]
    fn escapes_terminal_sequences_bidi_and_zero_width() {
        let out = shown(HOSTILE, 1000);
        has_no_unsafe_bytes(&out);
        assert_eq!(
            out,
            "a\\u{1b}]0;pwned\\u{7}b\\u{1b}[2J\\u{9b}31m\\u{202e}cba\\u{200b}\\u{2066}x\\r\\n"
        );
        assert!(matches!(shown("plain · text ✓", 100), Cow::Borrowed(_)));
    }

    #[test]
    fn cuts_to_the_bound_after_escaping() {
        let escs = "\x1b".repeat(100);
        let out = shown(&escs, 20);
        assert_eq!(out.chars().count(), 19, "{out}");
        assert!(out.ends_with('…'));
        let long = "é".repeat(50);
        assert_eq!(shown(&long, 3), "ééé…");
        has_no_unsafe_bytes(&shown(&"\u{202e}".repeat(10_000), 7));
    }

    #[test]
    fn a_flood_of_combining_marks_is_cut_to_a_few_per_letter() {
        let flood = format!("e{}x", "\u{301}".repeat(5000));
        let out = shown(&flood, 100);
        assert!(
            out.starts_with("e\u{301}\u{301}\u{301}\u{301}\\u{301}"),
            "{out}"
        );
        assert!(shown("ễ ế tiếng Việt", 100) == "ễ ế tiếng Việt");
        assert_eq!(clean_cell_symbol(&flood), Some("\u{fffd}"));
        assert_eq!(clean_cell_symbol("e\u{301}"), None);
    }

    #[test]
    fn cleans_every_text_of_an_event() {
        let kinds = vec![
            EventKind::WorkerExited {
                worker: WorkerId(0),
                exit: WorkerExit::Reported(HOSTILE.into()),
            },
            EventKind::WorkerSpawned {
                worker: WorkerId(0),
                label: WorkerLabel::External(Box::new(ExternalWorker {
                    host: Some(HOSTILE.into()),
                    pid: None,
                    tid: None,
                    name: HOSTILE.into(),
                })),
            },
            EventKind::TaskNamed {
                task: 1,
                name: HOSTILE.into(),
            },
            EventKind::TaskFailed {
                task: 1,
                worker: None,
                error: HOSTILE.into(),
                cpu: None,
            },
            EventKind::ProgramOutput {
                line: HOSTILE.into(),
                stderr: false,
            },
        ];
        for kind in kinds {
            let mut ev = PoolEvent {
                run: 1,
                at: Duration::ZERO,
                kind,
            };
            clean_event(&mut ev);
            has_no_unsafe_bytes(&serde_json::to_string(&ev).unwrap_or_default());
        }
    }

    #[test]
    fn a_buffer_keeps_no_unsafe_symbol() {
        use ratatui::buffer::Buffer;
        use ratatui::layout::Rect;
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 1));
        buf.content[1].set_symbol("\x1b");
        buf.content[2].set_symbol("\u{202e}");
        clean_buffer(&mut buf);
        assert_eq!(buf.content[1].symbol(), "\u{fffd}");
        assert_eq!(buf.content[2].symbol(), "\u{fffd}");
        assert_eq!(buf.content[0].symbol(), " ");
    }
}
