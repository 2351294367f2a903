//! Perfetto protobuf traces (`.perfetto-trace`, `.pftrace`: the Perfetto SDK,
//! `tracing-perfetto`, Android, Chrome): `TrackEvent` slices (`SLICE_BEGIN`/`SLICE_END`) on
//! thread tracks, named by their `TrackDescriptor`s (thread and process descriptors). The
//! slices become spans, and the tasks are chosen by the Chrome reader's rules (top-level
//! slices, or the outermost matching `--task`); an instant or slice with an `error` debug
//! annotation fails the task that encloses it. Decoded with prost from the few messages
//! needed (field numbers from perfetto's `trace_packet.proto` and `track_event.proto`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use prost::Message;
use serde_json::json;

use super::chrome::{Producer, RawEvent, Spans};
use super::{MAX_LANES, MAX_NAME, ReadStats, SourceError, SourceEvent, clip};

/// `perfetto.protos.TracePacket`, the fields read here.
#[derive(Clone, PartialEq, Message)]
struct TracePacket {
    #[prost(uint64, optional, tag = "8")]
    timestamp: Option<u64>,
    #[prost(message, optional, tag = "11")]
    track_event: Option<TrackEvent>,
    #[prost(message, optional, tag = "60")]
    track_descriptor: Option<TrackDescriptor>,
}

/// `perfetto.protos.TrackEvent`.
#[derive(Clone, PartialEq, Message)]
struct TrackEvent {
    #[prost(string, repeated, tag = "22")]
    categories: Vec<String>,
    #[prost(string, optional, tag = "23")]
    name: Option<String>,
    /// 1 slice begin, 2 slice end, 3 instant.
    #[prost(int32, optional, tag = "9")]
    kind: Option<i32>,
    #[prost(uint64, optional, tag = "11")]
    track_uuid: Option<u64>,
    #[prost(message, repeated, tag = "4")]
    debug_annotations: Vec<DebugAnnotation>,
}

/// `perfetto.protos.DebugAnnotation`: a name and a string value are all that is read.
#[derive(Clone, PartialEq, Message)]
struct DebugAnnotation {
    #[prost(string, optional, tag = "10")]
    name: Option<String>,
    #[prost(string, optional, tag = "6")]
    string_value: Option<String>,
}

/// `perfetto.protos.TrackDescriptor`.
#[derive(Clone, PartialEq, Message)]
struct TrackDescriptor {
    #[prost(uint64, optional, tag = "1")]
    uuid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(message, optional, tag = "3")]
    process: Option<ProcessDescriptor>,
    #[prost(message, optional, tag = "4")]
    thread: Option<ThreadDescriptor>,
}

/// `perfetto.protos.ProcessDescriptor`.
#[derive(Clone, PartialEq, Message)]
struct ProcessDescriptor {
    #[prost(int32, optional, tag = "1")]
    pid: Option<i32>,
    #[prost(string, optional, tag = "6")]
    process_name: Option<String>,
}

/// `perfetto.protos.ThreadDescriptor`.
#[derive(Clone, PartialEq, Message)]
struct ThreadDescriptor {
    #[prost(int32, optional, tag = "1")]
    pid: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    tid: Option<i32>,
    #[prost(string, optional, tag = "5")]
    thread_name: Option<String>,
}

/// Whether `head` looks like a Perfetto trace: a `Trace`'s first field is `packet` (field 1,
/// length-delimited: the byte 0x0a), and the packet begins with a field tag poolscope knows.
pub(crate) fn looks_like(head: &[u8]) -> bool {
    let [0x0a, rest @ ..] = head else {
        return false;
    };
    // skip the packet's length (a varint), then the packet's first tag
    let Some(len_bytes) = rest.iter().position(|b| b & 0x80 == 0) else {
        return false;
    };
    let Some(&tag) = rest.get(len_bytes + 1) else {
        return false;
    };
    let (field, wire) = (tag >> 3, tag & 7);
    field > 0 && wire <= 5 && wire != 3 && wire != 4
}

/// Reads a Perfetto trace packet by packet, pushing its lanes and its tasks to `sink` as they
/// settle: memory holds one packet, the spans still open, and the slices of tracks not yet
/// described (bounded), never the whole trace.
pub fn read(
    input: impl Read,
    file: &str,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Producer), SourceError> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut r = Reading {
        tracks: HashMap::new(),
        early: HashMap::new(),
        held: 0,
        spans: Spans::streaming(filter),
    };
    let mut buf = Vec::new();
    let mut line = 0u64;
    while let Some(key) = varint(&mut input, file)? {
        match key & 7 {
            2 => {}
            0 => {
                varint(&mut input, file)?;
                continue;
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if !fill(&mut input, &mut buf, n, file)? {
                    r.spans.stats().cut_off = true;
                    break;
                }
                continue;
            }
            wire => {
                return Err(SourceError::invalid(
                    file,
                    Some(line + 1),
                    format!("not a Perfetto protobuf trace: wire type {wire} at the top level"),
                ));
            }
        }
        let len = varint(&mut input, file)?.unwrap_or(0);
        if len > MAX_PACKET {
            let mib = MAX_PACKET / (1024 * 1024);
            return Err(SourceError::invalid(
                file,
                Some(line + 1),
                format!("a Perfetto packet over {mib} MiB"),
            ));
        }
        #[allow(clippy::cast_possible_truncation)] // bounded by MAX_PACKET above
        if !fill(&mut input, &mut buf, len as usize, file)? {
            r.spans.stats().cut_off = true;
            break;
        }
        if key >> 3 != 1 {
            continue; // a top-level field other than `packet`
        }
        line += 1;
        match TracePacket::decode(buf.as_slice()) {
            Ok(p) => r.packet(p, line, sink),
            Err(e) => r
                .spans
                .stats()
                .reject(line, format!("not a Perfetto trace packet: {e}")),
        }
    }
    if line == 0 {
        return Err(SourceError::invalid(
            file,
            None,
            "not a Perfetto protobuf trace: no packet",
        ));
    }
    for (_, slices) in r.early.drain() {
        for s in slices {
            r.spans
                .stats()
                .reject(s.line, "a track event on no thread track");
        }
    }
    Ok(r.spans.finish(sink))
}

/// Largest packet read: a packet is one event or descriptor (a few bytes to a few KiB).
const MAX_PACKET: u64 = 16 * 1024 * 1024;
/// Slices of tracks not yet described, held until their descriptor comes; past this many,
/// more are refused.
const MAX_EARLY: usize = 65_536;

/// A read under way: the thread tracks known, the slices waiting for theirs, the spans.
struct Reading<'f> {
    tracks: HashMap<u64, (i64, i64)>,
    early: HashMap<u64, Vec<Slice>>,
    held: usize,
    spans: Spans<'f>,
}

/// A track event's slice, as read (its track resolved when it is taken).
struct Slice {
    ph: &'static str,
    name: String,
    cat: String,
    ts: u64,
    error: Option<String>,
    line: u64,
}

impl Reading<'_> {
    fn packet(&mut self, p: TracePacket, line: u64, sink: &mut dyn FnMut(SourceEvent)) {
        if let Some(d) = &p.track_descriptor
            && let Some(uuid) = describe(d, &mut self.tracks, &mut self.spans)
        {
            for s in self.early.remove(&uuid).unwrap_or_default() {
                self.held -= 1;
                self.take(uuid, s, sink);
            }
        }
        let Some(ev) = p.track_event else { return };
        let ph = match ev.kind {
            Some(1) => "B",
            Some(2) => "E",
            Some(3) => "i",
            _ => return, // counters and others: not slices
        };
        let Some(ts) = p.timestamp else {
            self.spans
                .stats()
                .bad_time(line, "a track event without a timestamp");
            return;
        };
        let error = ev
            .debug_annotations
            .into_iter()
            .find(|a| a.name.as_deref() == Some("error"))
            .and_then(|a| a.string_value);
        let slice = Slice {
            ph,
            name: clip(ev.name.as_deref().unwrap_or(""), MAX_NAME),
            cat: ev.categories.into_iter().next().unwrap_or_default(),
            ts,
            error,
            line,
        };
        match ev.track_uuid {
            Some(uuid) if self.tracks.contains_key(&uuid) => self.take(uuid, slice, sink),
            Some(uuid) if self.held < MAX_EARLY => {
                self.held += 1;
                self.early.entry(uuid).or_default().push(slice);
            }
            _ => self
                .spans
                .stats()
                .reject(line, "a track event on no thread track"),
        }
    }

    /// A slice of a described thread track, as a span event.
    fn take(&mut self, uuid: u64, s: Slice, sink: &mut dyn FnMut(SourceEvent)) {
        let Some(&(pid, tid)) = self.tracks.get(&uuid) else {
            return;
        };
        #[allow(clippy::cast_precision_loss)] // ns as µs: the precision of Chrome's own traces
        let ts = s.ts as f64 / 1000.0;
        self.spans.event_to(
            RawEvent {
                ph: s.ph.into(),
                name: s.name.into(),
                cat: s.cat.into(),
                ts: Some(json!(ts)),
                pid: Some(json!(pid)),
                tid: Some(json!(tid)),
                args: s.error.map(|e| json!({ "error": e })),
                ..RawEvent::default()
            },
            s.line,
            sink,
        );
    }
}

/// A varint, or `None` at the end of the input before its first byte.
fn varint(input: &mut impl BufRead, file: &str) -> Result<Option<u64>, SourceError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = match input.fill_buf().map_err(|e| SourceError::io(file, e))? {
            [] if shift == 0 => return Ok(None),
            [] => return Ok(Some(value)), // cut inside it: the caller finds the input ended
            [b, ..] => *b,
        };
        input.consume(1);
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(SourceError::invalid(
        file,
        None,
        "not a Perfetto protobuf trace: a varint over 10 bytes",
    ))
}

/// Reads exactly `n` bytes into `buf`; `false` if the input ends first (a cut-off trace).
fn fill(
    input: &mut impl Read,
    buf: &mut Vec<u8>,
    n: usize,
    file: &str,
) -> Result<bool, SourceError> {
    buf.clear();
    let got = input
        .take(n as u64)
        .read_to_end(buf)
        .map_err(|e| SourceError::io(file, e))?;
    Ok(got == n)
}

/// Learns a thread track's (pid, tid) and names its thread and process; the thread track's
/// uuid, if it described one.
fn describe(
    d: &TrackDescriptor,
    tracks: &mut HashMap<u64, (i64, i64)>,
    spans: &mut Spans<'_>,
) -> Option<u64> {
    let (Some(uuid), Some(thread)) = (d.uuid, &d.thread) else {
        if let (Some(p), Some(pid)) = (&d.process, d.process.as_ref().and_then(|p| p.pid)) {
            let name = p.process_name.clone().unwrap_or_default();
            spans.event(metadata("process_name", pid.into(), None, &name), 0);
        }
        return None;
    };
    let (Some(pid), Some(tid)) = (thread.pid, thread.tid) else {
        return None;
    };
    if tracks.len() >= MAX_LANES && !tracks.contains_key(&uuid) {
        return None;
    }
    tracks.insert(uuid, (pid.into(), tid.into()));
    if let Some(name) = thread.thread_name.as_ref().or(d.name.as_ref()) {
        spans.event(
            metadata("thread_name", pid.into(), Some(tid.into()), name),
            0,
        );
    }
    Some(uuid)
}

fn metadata(kind: &str, pid: i64, tid: Option<i64>, name: &str) -> RawEvent<'static> {
    RawEvent {
        ph: "M".into(),
        name: kind.to_string().into(),
        pid: Some(json!(pid)),
        tid: tid.map(|t| json!(t)),
        args: Some(json!({ "name": clip(name, MAX_NAME) })),
        ..RawEvent::default()
    }
}
