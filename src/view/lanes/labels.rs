//! Words shown whole or not at all: lane names, free text cut between words, and text that
//! either fits its column or is left out.

use crate::model::Lane;

/// A lane's name: `Thread-2 · tid 41234` or `PID 29895`; on a narrow screen `Thread-2 41234`.
pub fn lane_label(lane: &Lane, narrow: bool) -> String {
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

/// A lane's name in `width` characters: whole if it fits; else its id (a number at its end,
/// `… 41234`) kept whole and the name before it cut in the middle, so lanes whose long names
/// differ only at their start or end (`1-Dask-Default-Threads-19832-1`) stay apart.
pub fn fit_lane_name(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return format!("{text:<width$}");
    }
    let Some((name, id)) = text
        .rsplit_once(' ')
        .filter(|(_, id)| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
    else {
        return fit_text(text, width);
    };
    let id_width = id.chars().count() + 1;
    if width < id_width + 1 {
        return " ".repeat(width);
    }
    let room = width - id_width - 1; // characters of the name beside `…`
    let names: Vec<char> = name.chars().collect();
    let head = (room / 3).min(names.len());
    let tail = (room - head).min(names.len() - head);
    let cut: String = names[..head]
        .iter()
        .chain(std::iter::once(&'…'))
        .chain(&names[names.len() - tail..])
        .collect();
    format!("{:<width$}", format!("{cut} {id}"))
}

/// A bar's shorter label when its name does not fit: the first argument of a call
/// (`blocks(12)` → `12`, `load('a.csv', 3)` → `'a.csv'`), else the task's number (`#12`).
pub(super) fn short_label(label: &str, task: u64, experiment: bool) -> String {
    if let Some((_, args)) = label.split_once('(') {
        let first = args.split([',', ')']).next().unwrap_or("").trim();
        if !first.is_empty() {
            return first.to_string();
        }
    }
    if experiment {
        task.to_string()
    } else {
        format!("#{}", task + 1)
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
    fn a_long_lane_name_keeps_its_id_and_both_ends() {
        // Dask's thread names fill the column alone: cut to `…`, every lane looked alike.
        let dask = "1-Dask-Default-Threads-19832-1 19869";
        assert_eq!(fit_lane_name(dask, 30), "1-Dask-…-Threads-19832-1 19869");
        assert_eq!(fit_lane_name(dask, 36), dask);
        assert_eq!(fit_lane_name("PID 29895", 12), "PID 29895   ");
        // Little room: the name's last characters beside the id; none: nothing, not part of it.
        assert_eq!(fit_lane_name(dask, 8), "…1 19869");
        assert_eq!(fit_lane_name(dask, 5), "     ");
        // A name with no id at its end is cut as free text.
        assert_eq!(
            fit_lane_name("node a · worker-b", 9),
            fit_text("node a · worker-b", 9)
        );
    }

    #[test]
    fn a_short_label_is_the_first_argument_or_the_number() {
        assert_eq!(short_label("blocks(12)", 12, true), "12");
        assert_eq!(short_label("load('a.csv', 3)", 4, false), "'a.csv'");
        assert_eq!(short_label("work", 4, false), "#5");
        assert_eq!(short_label("f()", 0, false), "#1");
    }

    #[test]
    fn free_text_is_cut_between_words() {
        assert_eq!(fit_text("mixed(9) raised: disk full", 14), "mixed(9)…     ");
        assert_eq!(fit_text("mixed(9) raised: disk full", 7), "…      ");
        assert_eq!(fit_text("short", 8), "short   ");
        assert_eq!(fit_text("a b c", 4), "a b…");
    }
}
