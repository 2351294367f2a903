//! Words shown whole or not at all: lane names, free text cut between words, and text that
//! either fits its column or is left out.

use crate::model::Lane;

/// A lane's name: `Thread-2 · tid 41234` or `PID 29895`; on a narrow screen `Thread-2 41234`.
pub(super) fn lane_label(lane: &Lane, narrow: bool) -> String {
    match &lane.label {
        crate::event::WorkerLabel::Thread { name, tid } if narrow => format!("{name} {tid}"),
        crate::event::WorkerLabel::External(w) if narrow => {
            let name = w.name.replace("ThreadPoolExecutor-", "TPE-");
            match (w.tid, &w.host) {
                (Some(tid), _) => format!("{name} {tid}"),
                (None, Some(host)) if !name.contains(host.as_str()) => format!("{host} {name}"),
                (None, _) => name,
            }
        }
        label => label.to_string(),
    }
}

/// `text` if it fits `width` characters, padded; otherwise nothing.
pub(super) fn whole_or_nothing(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        format!("{text:<width$}")
    } else {
        " ".repeat(width)
    }
}

/// Cuts `text` to `width` characters at a word boundary, marking the cut with `…`, so no
/// word (and no `blocks(12)` inside free text) is shown in part.
pub fn fit_text(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return format!("{text:<width$}");
    }
    if width == 0 {
        return String::new();
    }
    let mut cut = String::new();
    let mut used = 0;
    for word in text.split_inclusive(' ') {
        let len = word.chars().count();
        if used + len.min(word.trim_end().chars().count()) + 1 > width {
            break;
        }
        cut.push_str(word);
        used += len;
    }
    let mut cut = cut.trim_end().to_string();
    cut.push('…');
    format!("{cut:<width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_cut_between_words() {
        assert_eq!(fit_text("mixed(9) raised: disk full", 14), "mixed(9)…     ");
        assert_eq!(fit_text("mixed(9) raised: disk full", 7), "…      ");
        assert_eq!(fit_text("short", 8), "short   ");
        assert_eq!(fit_text("a b c", 4), "a b…");
    }
}
