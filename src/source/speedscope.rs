//! speedscope JSON (`py-spy record -f speedscope`, pyinstrument's speedscope renderer, and
//! others): a profile per thread, `sampled` (stacks with weights) or `evented` (frames
//! opened and closed at times). Each profile is a lane; its frames become spans, and the
//! tasks are chosen among them by the Chrome reader's rules (the functions a pool runs, the
//! outermost frames matching `--task`, else the top frames).
//!
//! A sampled profile has no timestamps, only each sample's weight: its times are the
//! profile's `startValue` plus the weights before, so a pause in sampling is lost, and a run
//! of samples in one function is one task however many calls it was (shown as such).
//!
//! The file is parsed as it is read, never held as text, and each sample is kept as the
//! number of its stack among the distinct ones (4 bytes): a profile lists its samples
//! before their weights, and the frames' names after the profiles, so the samples must be
//! kept until the end; a few million samples of 12 frames cost tens of MB, not a GB.

use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::chrome::{Producer, RawEvent, Spans};
use super::{MAX_LANES, MAX_NAME, ReadStats, SourceError, SourceEvent, clip};

/// Largest speedscope file read: it is one JSON document, parsed whole.
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// Distinct stacks kept per profile (each at most [`MAX_DEPTH`] frames); a file with more is
/// refused rather than costing memory without bound (real profiles have thousands).
const MAX_STACKS: usize = 1 << 20;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    exporter: String,
    shared: Shared,
    profiles: Vec<Profile>,
}

#[derive(Deserialize)]
struct Shared {
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
    name: String,
    #[serde(default)]
    file: Option<String>,
}

/// One profile, `sampled` (stacks with weights) or `evented` (open/close events). A struct,
/// not an internally tagged enum: serde buffers a tagged enum's whole content before it looks
/// at the tag, which would cost memory in proportion to every stack's depth.
#[derive(Deserialize)]
struct Profile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    unit: String,
    #[serde(rename = "startValue")]
    start: f64,
    #[serde(rename = "endValue")]
    end: f64,
    #[serde(default, deserialize_with = "outer_frames")]
    samples: Stacks,
    #[serde(default, deserialize_with = "weight_runs")]
    weights: Weights,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    frame: usize,
    at: f64,
}

/// Frames kept per sampled stack, from the root: tasks are the outermost frames, and a file
/// of deep stacks must not cost memory in proportion to their depth.
const MAX_DEPTH: usize = 64;

/// A profile's sample weights, as runs of equal ones (a sampler's are all equal).
#[derive(Default)]
struct Weights(Vec<(f64, u32)>);

impl Weights {
    /// Each sample's weight, in order.
    fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        self.0
            .iter()
            .flat_map(|&(w, n)| std::iter::repeat_n(w, n as usize))
    }
}

/// The weights, gathered into runs as they are read.
fn weight_runs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Weights, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Weights;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of sample weights")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut runs: Vec<(f64, u32)> = Vec::new();
            while let Some(w) = seq.next_element::<f64>()? {
                match runs.last_mut() {
                    Some((last, n)) if last.to_bits() == w.to_bits() && *n < u32::MAX => *n += 1,
                    _ => runs.push((w, 1)),
                }
            }
            Ok(Weights(runs))
        }
    }
    d.deserialize_seq(Visit)
}

/// A profile's samples: each the number of its stack among the distinct stacks.
#[derive(Default)]
struct Stacks {
    samples: Vec<u32>,
    distinct: Vec<Rc<[u32]>>,
}

impl Stacks {
    /// Each sample's stack of frame indices, in order.
    fn iter(&self) -> impl Iterator<Item = &[u32]> + '_ {
        self.samples
            .iter()
            .map(|&i| self.distinct.get(i as usize).map_or(&[][..], |s| &s[..]))
    }
}

/// The samples' stacks, each cut to its outermost [`MAX_DEPTH`] frames as it is read and
/// kept once however many samples share it.
fn outer_frames<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Stacks, D::Error> {
    struct Visit;
    struct Stack<'s>(&'s mut Vec<u32>);
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Stacks;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of stacks")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut stacks = Stacks::default();
            let mut ids: HashMap<Rc<[u32]>, u32> = HashMap::new();
            let mut frames = Vec::with_capacity(MAX_DEPTH);
            while seq.next_element_seed(Stack(&mut frames))?.is_some() {
                let id = match ids.get(&frames[..]) {
                    Some(&id) => id,
                    None => {
                        if stacks.distinct.len() >= MAX_STACKS {
                            return Err(serde::de::Error::custom(format!(
                                "a profile of more than {MAX_STACKS} distinct stacks"
                            )));
                        }
                        let id = u32::try_from(stacks.distinct.len()).unwrap_or(u32::MAX);
                        let stack: Rc<[u32]> = frames.as_slice().into();
                        ids.insert(Rc::clone(&stack), id);
                        stacks.distinct.push(stack);
                        id
                    }
                };
                stacks.samples.push(id);
                frames.clear();
            }
            stacks.samples.shrink_to_fit();
            Ok(stacks)
        }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for Stack<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for Stack<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a stack of frame indices")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(frame) = seq.next_element::<u64>()? {
                if self.0.len() < MAX_DEPTH {
                    // An index past u32 is past any frame table: it is refused where used.
                    self.0.push(u32::try_from(frame).unwrap_or(u32::MAX));
                }
            }
            Ok(())
        }
    }
    d.deserialize_seq(Visit)
}

/// Reads a speedscope file, pushing its lanes and then its tasks to `sink`.
pub fn read(
    input: impl Read,
    file: &str,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Producer), SourceError> {
    let mut counted = Counted {
        inner: input.take(MAX_FILE + 1),
        bytes: 0,
    };
    // Buffered here, over the count: serde reads a byte at a time, fast only from a BufReader.
    let parsed: Result<File, serde_json::Error> =
        serde_json::from_reader(std::io::BufReader::with_capacity(64 * 1024, &mut counted));
    if counted.bytes > MAX_FILE {
        return Err(SourceError::invalid(
            file,
            None,
            format!(
                "a speedscope file over {} MiB is not read",
                MAX_FILE / (1024 * 1024)
            ),
        ));
    }
    let doc = parsed.map_err(|e| match e.io_error_kind() {
        Some(kind) => SourceError::io(file, std::io::Error::from(kind)),
        None => SourceError::invalid(file, Some(e.line() as u64), format!("{e}")),
    })?;
    if doc.profiles.len() > MAX_LANES {
        return Err(SourceError::invalid(file, None, "too many profiles"));
    }
    let pyspy = doc.exporter.starts_with("py-spy");
    let frames: Vec<(String, Value)> = doc
        .shared
        .frames
        .iter()
        .map(|f| {
            let args = json!({ "filename": f.file.as_deref().map(|p| clip(p, 4 * MAX_NAME)) });
            (clip(&f.name, MAX_NAME), args)
        })
        .collect();
    let mut first: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    let keys: Vec<usize> = doc
        .shared
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            *first
                .entry((f.name.as_str(), f.file.as_deref()))
                .or_insert(i)
        })
        .collect();
    let mut spans = Spans::new(filter);
    for (i, profile) in doc.profiles.into_iter().enumerate() {
        let mut lane = Lane {
            tid: json!(format!("profile {}", i + 1)),
            frames: &frames,
            keys: &keys,
            cat: if pyspy { "py-spy" } else { "speedscope" },
            spans: &mut spans,
        };
        let Some(scale) = lane.begin(&profile.name, &profile.unit) else {
            let unit = &profile.unit;
            lane.spans
                .stats()
                .reject(0, format!("a profile in {unit:?}, not time"));
            continue;
        };
        match profile.kind.as_str() {
            // A sampled profile's end is where its weights end.
            "sampled" => lane.sampled(
                &profile.samples,
                &profile.weights,
                scale,
                profile.start * scale,
            ),
            "evented" => lane.evented(
                &profile.events,
                scale,
                profile.start * scale,
                profile.end * scale,
            ),
            other => lane.spans.stats().reject(
                0,
                format!("a profile of type {other:?}, not sampled or evented"),
            ),
        }
    }
    Ok(spans.finish(sink))
}

/// A reader that counts the bytes it gave, to tell a file over the limit from a cut one.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// One profile being turned into spans on its lane.
struct Lane<'a, 'f> {
    /// The thread's native id (py-spy names it), else a label unique to the profile.
    tid: Value,
    frames: &'a [(String, Value)],
    keys: &'a [usize],
    cat: &'static str,
    spans: &'a mut Spans<'f>,
}

impl Lane<'_, '_> {
    /// Names the lane from the profile's name; the unit's scale to microseconds, if a time.
    fn begin(&mut self, name: &str, unit: &str) -> Option<f64> {
        let scale = match unit {
            "seconds" => 1e6,
            "milliseconds" => 1e3,
            "microseconds" => 1.0,
            "nanoseconds" => 1e-3,
            _ => return None,
        };
        // py-spy names a profile `Thread 32148 "ThreadPoolExecutor-0_0"`: its native id
        let (tid, thread) = parse_thread(name);
        if let Some(t) = tid {
            self.tid = json!(t);
        }
        self.spans.event(
            RawEvent {
                ph: "M".into(),
                name: "thread_name".into(),
                pid: Some(json!(0)),
                tid: Some(self.tid.clone()),
                args: Some(json!({ "name": thread.unwrap_or(name) })),
                ..RawEvent::default()
            },
            0,
        );
        Some(scale)
    }

    fn edge(&mut self, ph: &str, frame: usize, at_us: f64) {
        let Some((name, args)) = self.frames.get(frame) else {
            self.spans
                .stats()
                .reject(0, "a frame index past the frame table");
            return;
        };
        self.spans.event(
            RawEvent {
                ph: ph.into(),
                name: name.as_str().into(),
                cat: self.cat.into(),
                ts: Some(json!(at_us)),
                pid: Some(json!(0)),
                tid: Some(self.tid.clone()),
                args: Some(args.clone()),
                ..RawEvent::default()
            },
            0,
        );
    }

    /// Consecutive samples sharing a stack's frames (by function, not line) make one span;
    /// a sample lasts its weight.
    fn sampled(&mut self, samples: &Stacks, weights: &Weights, scale: f64, start: f64) {
        let mut open: Vec<usize> = Vec::new();
        let mut at = start;
        let mut keys: Vec<usize> = Vec::with_capacity(MAX_DEPTH);
        for (stack, w) in samples.iter().zip(weights.iter()) {
            keys.clear();
            keys.extend(stack.iter().map(|&f| self.key(f as usize)));
            let same = open.iter().zip(&keys).take_while(|(a, b)| a == b).count();
            while open.len() > same {
                let f = open.pop().unwrap_or_default();
                self.edge("E", f, at);
            }
            for &f in &keys[same..] {
                self.edge("B", f, at);
                open.push(f);
            }
            if w.is_finite() {
                at += w.max(0.0) * scale;
            }
        }
        while let Some(f) = open.pop() {
            self.edge("E", f, at);
        }
    }

    /// The first frame with the same function and file as `frame` (py-spy has one frame per
    /// line, so a function moving to its next line is still the same call).
    fn key(&self, frame: usize) -> usize {
        self.keys.get(frame).copied().unwrap_or(frame)
    }

    fn evented(&mut self, events: &[Event], scale: f64, start: f64, end: f64) {
        let mut open: Vec<usize> = Vec::new();
        for e in events {
            let at = e.at * scale;
            match e.kind.as_str() {
                "O" => {
                    self.edge("B", e.frame, at);
                    open.push(e.frame);
                }
                "C" if open.last() == Some(&e.frame) => {
                    open.pop();
                    self.edge("E", e.frame, at);
                }
                _ => self
                    .spans
                    .stats()
                    .reject(0, "an event that closes no open frame"),
            }
        }
        while let Some(f) = open.pop() {
            self.edge("E", f, end.max(start));
        }
    }
}

/// `Thread 32148 "ThreadPoolExecutor-0_0"` → (32148, `ThreadPoolExecutor-0_0`).
fn parse_thread(name: &str) -> (Option<i64>, Option<&str>) {
    let Some(rest) = name.strip_prefix("Thread ") else {
        return (None, None);
    };
    let (id, label) = rest.split_once(' ').unwrap_or((rest, ""));
    let id = id.parse::<i64>().ok();
    let label = label.trim().trim_matches('"');
    (id, (!label.is_empty()).then_some(label))
}
