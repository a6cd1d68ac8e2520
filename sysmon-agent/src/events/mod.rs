//! Sysmon events: an event id plus its field values in schema order.
//!
//! One builder file per event id turns a kernel record (plus the process cache) into an
//! [`Event`]. The rules engine and the renderer see only this type.

pub mod create_remote_thread;
pub mod dns;
pub mod dns_query;
pub mod file;
pub mod file_create;
pub mod file_create_time;
pub mod file_delete;
pub mod file_executable;
pub mod image_load;
pub mod network_connect;
pub mod pipe;
pub mod process_access;
pub mod process_create;
pub mod process_tampering;
pub mod process_terminate;
pub mod raw_access_read;
pub mod schema;
pub mod service;
pub mod text;

pub use schema::EventKind;

use crate::enrich::{
    Enrich, clock,
    containers::Container,
    guid::Guid,
    hashes::{Ask, FileId},
};

/// A field whose value costs I/O (hashing a file): the builder leaves it empty and says how
/// to fill it. The pipeline judges the event first (an excluded event never pays for it)
/// unless a rule reads that field, asks the hashing thread for the value, and fills it once
/// known (`agent::held`). A builder of an event with `Hashes` pushes the other fields as
/// usual and calls [`Event::defer`] in place of pushing the hashes.
#[derive(Debug, Clone, Copy)]
pub enum Deferred {
    /// `Hashes` (field `field`) of the file `file`: opened through `/proc/<pid>/exe` when
    /// that is the file (an exec; right across mount namespaces), else by the path in field
    /// `path` (a loaded library, a written executable). The file identity is checked: all
    /// of it, or with `as_found` only device and inode (the content as read).
    Hashes {
        field: usize,
        path: usize,
        file: FileId,
        pid: u32,
        as_found: bool,
    },
}

impl Deferred {
    /// The field it fills.
    pub fn field(&self) -> usize {
        match self {
            Deferred::Hashes { field, .. } => *field,
        }
    }

    /// Whether the value is known now (the event need not wait for it).
    pub fn ready(&self, cx: &Enrich) -> bool {
        match self {
            Deferred::Hashes { file, .. } => cx.hasher.get(file).is_some(),
        }
    }

    /// Asks for the value in the background, to be begun before `until`; false when it
    /// cannot be asked now (the event then goes without it).
    pub fn ask(&self, ev: &Event, cx: &mut Enrich, until: std::time::Instant) -> bool {
        match *self {
            Deferred::Hashes {
                path,
                file,
                pid,
                as_found,
                ..
            } => {
                let ask = Ask {
                    id: file,
                    pid,
                    path: ev.get(path).into(),
                    as_found,
                };
                cx.hasher.ask(&ask, until)
            }
        }
    }

    /// Asks for the value and waits for it, then fills the field (tests).
    #[cfg(test)]
    pub fn fill_waiting(self, ev: &mut Event, cx: &mut Enrich) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        if self.ask(ev, cx, until) {
            while !self.ready(cx) && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(2));
                cx.hasher.collect();
            }
        }
        self.fill(ev, cx);
    }

    /// Fills the field in `ev` with what is known (`-` when nothing is).
    pub fn fill(self, ev: &mut Event, cx: &mut Enrich) {
        match self {
            Deferred::Hashes { field, file, .. } => {
                let hashes = cx.hasher.get(&file).flatten().unwrap_or("");
                ev.set(field, hashes);
            }
        }
    }
}

/// RuleName, UtcTime, ProcessGuid and ProcessId of an event about what process `pid` did at
/// `time_ns` (since boot), the start of events 3, 9, 11 and 23; returns the process's image
/// (empty if unknown), which each event places itself.
pub fn push_actor(ev: &mut Event, pid: u32, time_ns: u64, cx: &mut Enrich) -> std::rc::Rc<str> {
    ev.push(""); // RuleName
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(time_ns));
    ev.close();
    let (guid, image) = match cx.cache.get(pid, None) {
        Some(p) => (p.guid, p.image.clone()),
        None => (Guid::ZERO, "".into()),
    };
    ev.push_guid(&guid);
    ev.push_u64(pid as u64);
    image
}

/// The container fields (`schema::CONTAINER_FIELDS`) of an event whose acting process runs
/// in `c` (`None`: a host process, `-` in all six), after the event's own fields.
pub fn push_container(ev: &mut Event, c: Option<&Container>) {
    match c {
        Some(c) => {
            for v in [&c.id, &c.name, &c.image] {
                ev.push(v);
            }
            ev.push(c.runtime);
            ev.push(&c.pod_name);
            ev.push(&c.pod_namespace);
        }
        None => {
            for _ in schema::CONTAINER_FIELDS {
                ev.push("");
            }
        }
    }
}

/// A Sysmon event: its kind and one string per field of `kind.fields`, in order.
///
/// The values live in one reused buffer, so building an event does not allocate once the
/// buffer has grown to its working size.
#[derive(Debug, Clone)]
pub struct Event {
    kind: &'static EventKind,
    buf: String,
    ends: Vec<u32>,
    deferred: Option<Deferred>,
}

impl Event {
    pub fn new(kind: &'static EventKind) -> Self {
        Event {
            kind,
            buf: String::with_capacity(1024),
            ends: Vec::with_capacity(32),
            deferred: None,
        }
    }

    /// Makes this event a copy of `other`, keeping this one's buffers.
    pub fn copy_from(&mut self, other: &Event) {
        self.kind = other.kind;
        self.buf.clear();
        self.buf.push_str(&other.buf);
        self.ends.clear();
        self.ends.extend_from_slice(&other.ends);
        self.deferred = other.deferred;
    }

    /// Bytes its values hold (for memory bounds).
    pub fn bytes(&self) -> usize {
        self.buf.len() + 4 * self.ends.len()
    }

    /// Starts a new event of `kind`, keeping the buffers.
    pub fn reset(&mut self, kind: &'static EventKind) {
        self.kind = kind;
        self.buf.clear();
        self.ends.clear();
        self.deferred = None;
    }

    /// Pushes an empty value for a field that `how` fills later (see [`Deferred`]).
    pub fn defer(&mut self, how: Deferred) {
        debug_assert_eq!(how.field(), self.len());
        self.close();
        self.deferred = Some(how);
    }

    /// The field left to fill, if any (taken: it is filled at most once).
    pub fn take_deferred(&mut self) -> Option<Deferred> {
        self.deferred.take()
    }

    pub fn kind(&self) -> &'static EventKind {
        self.kind
    }

    pub fn id(&self) -> u16 {
        self.kind.id
    }

    /// Number of fields set so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Value of field `i` (schema order). Empty values read as `-`, as Sysmon prints them.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let v = &self.buf[start..self.ends[i] as usize];
        if v.is_empty() { "-" } else { v }
    }

    /// Value of the named field, if this event has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.kind
            .field_index(name)
            .filter(|i| *i < self.len())
            .map(|i| self.get(i))
    }

    /// (name, value) pairs in schema order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        (0..self.len()).map(|i| (self.kind.fields[i], self.get(i)))
    }

    /// Appends the next field's value.
    pub fn push(&mut self, value: &str) {
        self.buf.push_str(value);
        self.close();
    }

    /// Appends the next field's value with `write!`-style formatting.
    pub fn push_fmt(&mut self, args: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        let _ = self.buf.write_fmt(args);
        self.close();
    }

    /// Appends the next field's value, a number (`{n}` without `core::fmt`).
    pub fn push_u64(&mut self, n: u64) {
        crate::render::digits::push_u64(&mut self.buf, n);
        self.close();
    }

    /// Appends the next field's value, a GUID.
    pub fn push_guid(&mut self, guid: &Guid) {
        guid.push(&mut self.buf);
        self.close();
    }

    /// Appends the next field's value from raw kernel bytes (see [`text::push_bytes`]).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        text::push_bytes(&mut self.buf, bytes);
        self.close();
    }

    /// Direct access to the buffer for builders that assemble a value in pieces; call
    /// [`Event::close`] when the value is complete.
    pub fn buf(&mut self) -> &mut String {
        &mut self.buf
    }

    pub fn close(&mut self) {
        debug_assert!(self.ends.len() < self.kind.fields.len(), "too many fields");
        self.ends.push(self.buf.len() as u32);
    }

    /// Replaces the value of field `i` (used for FieldSizes trimming and RuleName).
    pub fn set(&mut self, i: usize, value: &str) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        self.buf.replace_range(start..end, value);
        let delta = value.len() as i64 - (end - start) as i64;
        for e in &mut self.ends[i..] {
            *e = (*e as i64 + delta) as u32;
        }
    }

    /// True once every field of the kind has a value (the container fields, which the
    /// pipeline appends, not counted).
    pub fn is_complete(&self) -> bool {
        self.ends.len() == self.kind.own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_set_shifts_later_values() {
        let mut e = Event::new(schema::by_id(schema::PROCESS_TERMINATE).unwrap());
        for v in [
            "",
            "2024-05-14 09:21:07.731",
            "{g}",
            "2345",
            "/usr/bin/curl",
            "alice",
        ] {
            e.push(v);
        }
        assert!(e.is_complete());
        assert_eq!(e.get(0), "-");
        e.set(0, "rule-x");
        assert_eq!(e.get(0), "rule-x");
        assert_eq!(e.field("Image"), Some("/usr/bin/curl"));
        e.set(4, "/a");
        assert_eq!(e.field("User"), Some("alice"));
        assert_eq!(e.pairs().count(), 6);
    }
}
