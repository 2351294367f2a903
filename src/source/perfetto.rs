//! Perfetto protobuf traces (`.perfetto-trace`, `.pftrace`: the Perfetto SDK,
//! `tracing-perfetto`, Android, Chrome): `TrackEvent` slices (`SLICE_BEGIN`/`SLICE_END`) on
//! thread tracks, named by their `TrackDescriptor`s (thread and process descriptors). The
//! slices become spans, and the tasks are chosen by the Chrome reader's rules (top-level
//! slices, or the outermost matching `--task`); an instant or slice with an `error` debug
//! annotation fails the task that encloses it. Decoded with prost from the few messages
//! needed (field numbers from perfetto's `trace_packet.proto` and `track_event.proto`).

use std::collections::HashMap;
use std::io::Read;

use prost::Message;
use serde_json::json;

use super::chrome::{Producer, RawEvent, Spans};
use super::{MAX_LANES, MAX_NAME, ReadStats, SourceError, SourceEvent, clip};

/// Largest trace read: it is decoded whole.
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// `perfetto.protos.Trace`.
#[derive(Clone, PartialEq, Message)]
struct Trace {
    #[prost(message, repeated, tag = "1")]
    packet: Vec<TracePacket>,
}

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

/// Reads a Perfetto trace, pushing its lanes and then its tasks to `sink`.
pub fn read(
    input: impl Read,
    file: &str,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn FnMut(SourceEvent),
) -> Result<(ReadStats, Producer), SourceError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::io(file, e))?;
    if bytes.len() as u64 > MAX_FILE {
        let mib = MAX_FILE / (1024 * 1024);
        return Err(SourceError::invalid(
            file,
            None,
            format!("a Perfetto trace over {mib} MiB is not read"),
        ));
    }
    let trace = Trace::decode(bytes.as_slice()).map_err(|e| {
        SourceError::invalid(file, None, format!("not a Perfetto protobuf trace: {e}"))
    })?;
    drop(bytes);
    let mut tracks: HashMap<u64, (i64, i64)> = HashMap::new();
    let mut spans = Spans::new(filter);
    for p in &trace.packet {
        if let Some(d) = &p.track_descriptor {
            describe(d, &mut tracks, &mut spans);
        }
    }
    for (i, p) in trace.packet.iter().enumerate() {
        let Some(ev) = &p.track_event else { continue };
        let line = i as u64 + 1;
        let Some(&(pid, tid)) = ev.track_uuid.and_then(|u| tracks.get(&u)) else {
            spans
                .stats()
                .reject(line, "a track event on no thread track");
            continue;
        };
        let ph = match ev.kind {
            Some(1) => "B",
            Some(2) => "E",
            Some(3) => "i",
            _ => continue, // counters and others: not slices
        };
        let Some(ts) = p.timestamp else {
            spans
                .stats()
                .bad_time(line, "a track event without a timestamp");
            continue;
        };
        let error = ev
            .debug_annotations
            .iter()
            .find(|a| a.name.as_deref() == Some("error"))
            .and_then(|a| a.string_value.clone());
        spans.event(
            RawEvent {
                ph: ph.into(),
                name: clip(ev.name.as_deref().unwrap_or(""), MAX_NAME).into(),
                cat: ev.categories.first().map_or("", String::as_str).into(),
                ts: Some(json!(ts as f64 / 1000.0)),
                pid: Some(json!(pid)),
                tid: Some(json!(tid)),
                args: error.map(|e| json!({ "error": e })),
                ..RawEvent::default()
            },
            line,
        );
    }
    let (stats, producer) = spans.finish(sink);
    Ok((stats, producer))
}

/// Learns a thread track's (pid, tid) and names its thread and process.
fn describe(d: &TrackDescriptor, tracks: &mut HashMap<u64, (i64, i64)>, spans: &mut Spans<'_>) {
    let (Some(uuid), Some(thread)) = (d.uuid, &d.thread) else {
        if let (Some(p), Some(pid)) = (&d.process, d.process.as_ref().and_then(|p| p.pid)) {
            let name = p.process_name.clone().unwrap_or_default();
            spans.event(metadata("process_name", pid.into(), None, &name), 0);
        }
        return;
    };
    let (Some(pid), Some(tid)) = (thread.pid, thread.tid) else {
        return;
    };
    if tracks.len() >= MAX_LANES && !tracks.contains_key(&uuid) {
        return;
    }
    tracks.insert(uuid, (pid.into(), tid.into()));
    if let Some(name) = thread.thread_name.as_ref().or(d.name.as_ref()) {
        spans.event(
            metadata("thread_name", pid.into(), Some(tid.into()), name),
            0,
        );
    }
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
