//! Event 1, ProcessCreate, from an exec record. Also teaches the process cache the new
//! image, whether or not the event is then filtered out.

use sysmon_common::{
    process::ExecRecord,
    truncated::{ARGS, CWD, EXE},
};

use super::{Deferred, Event, schema};
use crate::{
    enrich::{Enrich, cache::Proc, clock, guid::Guid, hashes::FileId},
    kernel::record::ExecTail,
};

pub fn build(ev: &mut Event, rec: &ExecRecord, tail: &ExecTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::PROCESS_CREATE).unwrap());
    let pid = rec.header.tgid;
    let guid = cx.cache.guid(pid, rec.start_ns, rec.end_code);

    ev.push(""); // RuleName
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(rec.start_ns));
    ev.close();
    ev.push_guid(&guid);
    ev.push_u64(pid as u64);
    push_path(ev, tail.exe, rec.flags & EXE != 0);
    if super::process_tampering::applies(rec) {
        // As the kernel shows an executable with no links (d_path): `/memfd:x (deleted)`.
        ev.set(ev.len() - 1, &format!("{} (deleted)", ev.get(ev.len() - 1)));
    }
    let image_at = ev.len() - 1;
    // FileVersion, Description, Product, Company, OriginalFileName: no such data on Linux.
    for _ in 0..5 {
        ev.push("-");
    }
    push_args(ev.buf(), tail.args);
    if rec.flags & ARGS != 0 {
        ev.buf().push_str("...");
    }
    ev.close();
    let cmdline_at = ev.len() - 1;
    push_path(ev, tail.cwd, rec.flags & CWD != 0);
    let user = cx.users.name(rec.uid);
    ev.push(user.unwrap_or(""));
    let logon = cx.logons.guid(rec.uid, user, rec.tty);
    ev.push_guid(&logon);
    ev.push_u64((rec.uid & 0xffff) as u64);
    ev.push_u64(rec.sessionid as u64);
    ev.push("no level");
    let id = FileId {
        dev: rec.exe_dev,
        ino: rec.exe_ino,
        size: rec.exe_size,
        mtime_sec: rec.exe_mtime_sec,
        mtime_nsec: rec.exe_mtime_nsec,
    };
    // Hashed only if the rules keep the event (or read Hashes to judge it).
    ev.defer(Deferred::Hashes {
        field: ev.len(),
        path: image_at,
        file: id,
        pid,
        as_found: false,
    });

    match cx.cache.parent(rec.ppid, rec.start_ns) {
        Some(p) => {
            ev.push_guid(&p.guid);
            ev.push_u64(rec.ppid as u64);
            ev.push(&p.image);
            ev.push(&p.cmdline);
            ev.push(cx.users.name(p.uid).unwrap_or(""));
        }
        None => {
            ev.push_guid(&Guid::ZERO);
            ev.push_u64(rec.ppid as u64);
            ev.push("");
            ev.push("");
            ev.push("");
        }
    }

    let proc = Proc {
        guid,
        ppid: rec.ppid,
        start_ns: rec.start_ns,
        uid: rec.uid,
        image: ev.get(image_at).into(),
        cmdline: ev.get(cmdline_at).into(),
        cgroups: rec.cgroups,
    };
    cx.cache.insert(pid, proc);
}

/// The NUL-separated arguments joined by spaces, as `procfs::join_args` and then
/// `text::push_bytes`, without the joined copy: a NUL becomes an ASCII space, which ends any
/// UTF-8 sequence, so checking each argument alone gives the same text.
fn push_args(out: &mut String, raw: &[u8]) {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    for (i, arg) in raw.split(|b| *b == 0).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        super::text::push_bytes(out, arg);
    }
}

/// A path from the kernel; a path cut at the depth or length bound starts with `+`, as in
/// Sysmon.
fn push_path(ev: &mut Event, path: &[u8], truncated: bool) {
    if truncated && !path.is_empty() {
        ev.buf().push('+');
    }
    super::text::push_bytes(ev.buf(), path);
    ev.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::HashAlgorithms;

    /// Arguments come out as the joined command line would, whatever their bytes.
    #[test]
    fn args_as_joined() {
        let cases: &[&[u8]] = &[
            b"",
            b"\0",
            b"ls\0-l\0",
            b"ls\0\0x\0",
            b"a\xc3\0\xa9b\0",
            b"caf\xc3\xa9\0\xe2\x82\0\x07\0",
            b"no-final-nul",
            b"\0\0",
        ];
        for raw in cases {
            let mut want = String::new();
            crate::events::text::push_bytes(&mut want, &crate::enrich::procfs::join_args(raw));
            let mut got = String::new();
            push_args(&mut got, raw);
            assert_eq!(got, want, "{raw:?}");
        }
    }

    /// A command line the kernel could not read in full (cut at 32 KiB, or argv unreadable
    /// at exec: `truncated::ARGS` with what was read) ends with `...`, never shows as empty.
    #[test]
    fn cut_command_lines_end_with_the_marker() {
        // (argv bytes from the kernel, flags, CommandLine)
        let cases: &[(&[u8], u32, &str)] = &[
            (b"ls\0-l\0", 0, "ls -l"),
            (b"ls\0-l\0", ARGS, "ls -l..."),
            (b"", ARGS, "..."),
            // Nothing read and nothing cut: the empty-field marker.
            (b"", 0, "-"),
        ];
        let mut cx = Enrich::new(HashAlgorithms::default());
        let mut ev = Event::new(schema::by_id(schema::PROCESS_CREATE).unwrap());
        let at = ev.kind().field_index("CommandLine").unwrap();
        for (args, flags, want) in cases {
            let rec = ExecRecord {
                flags: *flags,
                ppid: 4_000_000,
                ..ExecRecord::default()
            };
            let tail = ExecTail {
                exe: b"/nonexistent/sysmon-test",
                cwd: b"/",
                args,
            };
            build(&mut ev, &rec, &tail, &mut cx);
            assert_eq!(ev.get(at), *want, "{args:?} flags {flags}");
        }
    }
}
