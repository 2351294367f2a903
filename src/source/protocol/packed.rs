//! `name` and `packed` lines (`docs/protocol.md`): a writer's task records as integers,
//! read as the `task_queued`, `task_ran` and `task_finished` lines they stand for, through
//! the same checks.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{Decoder, Problem, bad, opt_str, pid};
use crate::source::{MAX_NAME, SourceEvent};

/// The integers a packed record stands for: its kind, then the kind's fields.
const WORDS: usize = 7;
/// Most names kept, over all the program's processes; past it the names of the process that
/// named first are forgotten (a program forking a process per job names anew in each).
const MAX_NAMES: usize = 1 << 16;
/// A task handed to the pool: `[1, t, n, name, 0, 0, 0]`.
const QUEUED: i64 = 1;
/// A task that ran: `[2, t, end_t, n, name, tid, cpu_ns or -1]`.
const RAN: i64 = 2;
/// The kinds the probe writes, each its record's first byte: a head of eight bytes,
/// `n << 18 | name << 8 | kind`, then `i64 t` (16 bytes), or `i64 t, i64 end_t, i64 cpu_ns,
/// u32 tid` (36 bytes).
const QUEUED_HEAD: u8 = 3;
const RAN_HEAD: u8 = 4;
/// The bits of a head's name (its number is above them, its kind below).
const NAME_BITS: u32 = 10;
/// The probe's earlier kinds 1 and 2, still read: a kind byte, then `i64 t, u64 n, u16 name`
/// (19 bytes), or `i64 t, i64 end_t, u64 n, u16 name, u32 tid, i64 cpu_ns` (39 bytes). Each
/// kind's fields after its kind byte, by size in bytes, little endian.
const QUEUED_FIELDS: &[usize] = &[8, 8, 2];
const RAN_FIELDS: &[usize] = &[8, 8, 8, 2, 4, 8];
const QUEUED_HEAD_FIELDS: &[usize] = &[8];
const RAN_HEAD_FIELDS: &[usize] = &[8, 8, 8, 4];

impl Decoder {
    /// A `name` line: the name that `packed` records of process `pid` call `n`.
    pub(super) fn name(&mut self, obj: &Map<String, Value>) -> Result<(), Problem> {
        let pid = pid(obj)?;
        let n = obj
            .get("n")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("name without its number n"))?;
        let name = opt_str(obj, "name", MAX_NAME)?.ok_or_else(|| bad("name without a name"))?;
        let known = self.names.get(&pid).is_some_and(|m| m.contains_key(&n));
        if self.names_kept >= MAX_NAMES && !known {
            match self.naming_pids.front() {
                Some(&oldest) if oldest != pid => {
                    self.naming_pids.pop_front();
                    let gone = self.names.remove(&oldest).map_or(0, |m| m.len());
                    self.names_kept -= gone;
                }
                _ => return Err(bad("too many names")),
            }
        }
        let of_pid = self.names.entry(pid).or_insert_with(|| {
            self.naming_pids.push_back(pid);
            HashMap::new()
        });
        if of_pid.insert(n, name).is_none() {
            self.names_kept += 1;
        }
        Ok(())
    }

    /// A `packed` line: each record counts as one, and a bad one is counted and skipped.
    pub(super) fn packed(
        &mut self,
        obj: &Map<String, Value>,
        sink: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), Problem> {
        let pid = pid(obj)?;
        if obj.contains_key("v") && !obj.contains_key("r") {
            return Err(bad(
                "packed records in the earlier format (v): record again",
            ));
        }
        let text = obj
            .get("r")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("packed without its records r"))?;
        let bytes = hex::decode(text).map_err(|_| bad("packed records r are not hex"))?;
        if bytes.is_empty() {
            return Err(bad("packed records r are empty"));
        }
        let mut rest = bytes.as_slice();
        let mut first = true;
        while !rest.is_empty() {
            if !std::mem::take(&mut first) {
                self.stats.records += 1; // each record counts as a line; the line counted one
            }
            let Some((rec, after)) = record(rest) else {
                // Nothing after an unknown kind or a cut record can be read: one refused.
                return Err(bad("packed records r are not whole records of known kinds"));
            };
            rest = after;
            let line = self.unpack(pid, &rec);
            if let Err(what) = line.and_then(|line| self.event(&line, sink)) {
                self.count(what);
            }
        }
        Ok(())
    }

    /// The line a packed record of process `pid` stands for.
    fn unpack(&self, pid: u32, rec: &[i64; WORDS]) -> Result<Map<String, Value>, Problem> {
        let (n, name) = match rec[0] {
            QUEUED => (rec[2], rec[3]),
            RAN => (rec[3], rec[4]),
            _ => return Err(bad("packed record of an unknown kind")),
        };
        if n < 1 {
            return Err(bad("packed record without a task number"));
        }
        let name = u64::try_from(name)
            .ok()
            .and_then(|name| self.names.get(&pid)?.get(&name))
            .ok_or_else(|| bad("packed record of a name no name line gave"))?;
        let id = format!("{pid}-{n}");
        let mut line = match rec[0] {
            QUEUED => json!({"ev": "task_queued", "t": rec[1], "id": id, "name": name}),
            // A task told started already (it ran long): this is its end.
            _ if self.started.contains_key(&id) => {
                json!({"ev": "task_finished", "t": rec[2], "id": id})
            }
            _ => json!({"ev": "task_ran", "t": rec[1], "end_t": rec[2], "id": id,
                         "name": name, "pid": pid, "tid": rec[5]}),
        };
        let Value::Object(line) = &mut line else {
            return Err(bad("packed record"));
        };
        if rec[0] == RAN && rec[6] != -1 {
            line.insert("cpu_ns".into(), rec[6].into());
        }
        Ok(std::mem::take(line))
    }
}

/// The first record of `bytes` as the integers it stands for, and the bytes after it; `None`
/// for an unknown kind or a record cut short.
fn record(bytes: &[u8]) -> Option<([i64; WORDS], &[u8])> {
    let &kind = bytes.first()?;
    let (fields, rest) = match kind {
        QUEUED_HEAD => (QUEUED_HEAD_FIELDS, bytes.get(8..)?),
        RAN_HEAD => (RAN_HEAD_FIELDS, bytes.get(8..)?),
        _ if i64::from(kind) == QUEUED => (QUEUED_FIELDS, &bytes[1..]),
        _ if i64::from(kind) == RAN => (RAN_FIELDS, &bytes[1..]),
        _ => return None,
    };
    let mut words = [0i64; WORDS];
    let rest = fields_of(rest, fields, &mut words)?;
    if kind < QUEUED_HEAD {
        let mut rec = [i64::from(kind), 0, 0, 0, 0, 0, 0];
        rec[1..].copy_from_slice(&words[..WORDS - 1]);
        return Some((rec, rest));
    }
    let head = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    // u64 numbers past i64::MAX cannot be: 46 bits are left.
    let n = (head >> (8 + NAME_BITS)) as i64;
    let name = ((head >> 8) & ((1 << NAME_BITS) - 1)) as i64;
    let rec = if kind == QUEUED_HEAD {
        [QUEUED, words[0], n, name, 0, 0, 0]
    } else {
        [RAN, words[0], words[1], n, name, words[3], words[2]]
    };
    Some((rec, rest))
}

/// Reads fields of `sizes` bytes each from `bytes`, little endian, into `words`; the bytes
/// after them, or `None` when they are cut short.
fn fields_of<'a>(
    mut bytes: &'a [u8],
    sizes: &[usize],
    words: &mut [i64; WORDS],
) -> Option<&'a [u8]> {
    for (word, &size) in words.iter_mut().zip(sizes) {
        let (field, after) = bytes.split_at_checked(size)?;
        let mut le = [0u8; 8];
        le[..size].copy_from_slice(field);
        // i64 fields are signed; u64 n past i64::MAX reads negative and is refused as no
        // task number; the narrower fields are unsigned and fit.
        *word = i64::from_le_bytes(le);
        bytes = after;
    }
    Some(bytes)
}
