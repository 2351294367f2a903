//! Which format a recording is in, from its first bytes.

use std::fmt;

/// The formats poolscope replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// poolscope's own files: an event-protocol recording, or a `--trace` output.
    Poolscope,
    /// Chrome Trace Event Format JSON (viztracer, py-spy, tracing-chrome, Ray, Perfetto…).
    Chrome,
    /// The data of Dask's `get_task_stream()`, dumped as JSON.
    Dask,
    /// A GNU parallel `--joblog` file.
    Joblog,
    /// speedscope JSON (py-spy `-f speedscope`, pyinstrument).
    Speedscope,
    /// A Perfetto protobuf trace (the Perfetto SDK, `tracing-perfetto`, Android, Chrome).
    Perfetto,
}

impl Format {
    /// Parses a `--replay-format` value (`auto` is `None`).
    pub fn from_name(name: &str) -> Result<Option<Format>, String> {
        match name {
            "auto" => Ok(None),
            "poolscope" => Ok(Some(Format::Poolscope)),
            "chrome" => Ok(Some(Format::Chrome)),
            "dask" => Ok(Some(Format::Dask)),
            "joblog" => Ok(Some(Format::Joblog)),
            "speedscope" => Ok(Some(Format::Speedscope)),
            "perfetto" => Ok(Some(Format::Perfetto)),
            other => Err(format!(
                "unknown format {other:?} (expected auto, poolscope, chrome, dask, joblog, \
                 speedscope or perfetto)"
            )),
        }
    }

    /// Its `--replay-format` name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Poolscope => "poolscope",
            Format::Chrome => "chrome",
            Format::Dask => "dask",
            Format::Joblog => "joblog",
            Format::Speedscope => "speedscope",
            Format::Perfetto => "perfetto",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The formats poolscope reads, for the user.
pub(crate) const KNOWN: &str = "a poolscope protocol recording or trace, Chrome trace JSON \
    (viztracer, py-spy, tracing-chrome, ray timeline), speedscope JSON (py-spy, pyinstrument), \
    a Perfetto protobuf trace, a Dask task stream, a GNU parallel joblog, or any of these gzip-compressed";

/// What the first bytes of an unknown file look like, for the error that refuses it.
pub fn describe_head(head: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (b"\x7fELF", "an ELF executable"),
        (b"PK\x03\x04", "a zip archive"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"BZh", "bzip2 data"),
        (b"\xfd7zXZ", "xz data"),
        (b"\x28\xb5\x2f\xfd", "zstd data"),
        (b"SQLite format 3", "an SQLite database"),
        (b"<", "markup (HTML or XML)"),
    ];
    if let Some((_, what)) = known.iter().find(|(magic, _)| head.starts_with(magic)) {
        return (*what).to_string();
    }
    let shown: String = head
        .iter()
        .take(16)
        .map(|&b| match b {
            b' '..=b'~' => char::from(b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect();
    let kind = if head
        .iter()
        .take(512)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "text"
    } else {
        "binary data"
    };
    format!("{kind} \"{shown}\"")
}

/// The format of a recording that begins with `head` (its first few KiB), if recognised.
/// A poolscope `--trace` is Chrome JSON, so it is reported as [`Format::Chrome`].
pub fn detect_format(head: &[u8]) -> Option<Format> {
    if super::perfetto::looks_like(head) {
        return Some(Format::Perfetto);
    }
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("Seq\tHost\tStarttime") {
        return Some(Format::Joblog);
    }
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(4096)
        .collect();
    if compact.starts_with("{\"poolscope\":") {
        return Some(Format::Poolscope);
    }
    if compact.starts_with('{') && compact.contains("speedscope.app/file-format-schema") {
        return Some(Format::Speedscope);
    }
    if compact.starts_with('[') || compact.starts_with('{') {
        // Dask task-stream records carry `startstops`; a trace's events never do.
        if compact.contains("\"startstops\":") {
            return Some(Format::Dask);
        }
        return Some(Format::Chrome);
    }
    None
}
