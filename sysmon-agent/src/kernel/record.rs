//! Decoding the records the programs send.

use sysmon_common::{
    Header, RecordKind,
    access::AccessRecord,
    dns::DnsRecord,
    file::FileRecord,
    file_info::FileInfoRecord,
    net::NetRecord,
    process::{CgroupRecord, ExecRecord, ExitRecord, ForkRecord},
};

/// One decoded record. Fixed parts are copied out (records are small and the ring buffer
/// gives no alignment promise beyond 8 bytes); the variable tail is borrowed.
pub enum Record<'a> {
    Exec(ExecRecord, ExecTail<'a>),
    Exit(ExitRecord),
    Fork(ForkRecord),
    /// FileCreate, FileDelete or RawAccess (see the header's kind).
    File(FileRecord, FileTail<'a>),
    Net(NetRecord),
    /// FileCreateTime, FileExecutable, PipeCreate or ImageLoad (see the header's kind).
    FileInfo(FileInfoRecord, FileTail<'a>),
    /// ProcessAccess and/or CreateRemoteThread.
    Access(AccessRecord),
    Dns(DnsMessage<'a>),
    /// A new cgroup and its path (relative to its hierarchy's root).
    Cgroup(CgroupRecord, &'a [u8]),
}

/// A DNS record: its fixed part, the message bytes borrowed.
pub struct DnsMessage<'a> {
    pub header: Header,
    pub uid: u32,
    /// The datagram went on past `data`.
    pub cut: bool,
    pub data: &'a [u8],
}

/// The tail of a file record: a kernel-built path and/or a name as passed to the call.
pub struct FileTail<'a> {
    pub dir: &'a [u8],
    pub name: &'a [u8],
}

/// The tail of an exec record: exe path, cwd and argv bytes.
pub struct ExecTail<'a> {
    pub exe: &'a [u8],
    pub cwd: &'a [u8],
    pub args: &'a [u8],
}

/// Why a record could not be decoded (counted, never fatal).
#[derive(Debug, PartialEq, Eq)]
pub enum BadRecord {
    Short,
    UnknownKind(u32),
}

pub fn decode(bytes: &[u8]) -> Result<Record<'_>, BadRecord> {
    let header: Header = copy(bytes)?;
    match RecordKind::from_u32(header.kind) {
        Some(RecordKind::Exec) => {
            let rec: ExecRecord = copy(bytes)?;
            let mut tail = &bytes[size_of::<ExecRecord>()..];
            let exe = take(&mut tail, rec.exe_len)?;
            let cwd = take(&mut tail, rec.cwd_len)?;
            let args = take(&mut tail, rec.args_len)?;
            Ok(Record::Exec(rec, ExecTail { exe, cwd, args }))
        }
        Some(RecordKind::Exit) => Ok(Record::Exit(copy(bytes)?)),
        Some(RecordKind::Fork) => Ok(Record::Fork(copy(bytes)?)),
        Some(
            RecordKind::FileCreate
            | RecordKind::FileDelete
            | RecordKind::RawAccess
            | RecordKind::PipeConnect,
        ) => {
            let rec: FileRecord = copy(bytes)?;
            let mut tail = &bytes[size_of::<FileRecord>()..];
            let dir = take(&mut tail, rec.dir_len)?;
            let name = take(&mut tail, rec.name_len)?;
            Ok(Record::File(rec, FileTail { dir, name }))
        }
        Some(RecordKind::Network) => Ok(Record::Net(copy(bytes)?)),
        Some(
            RecordKind::FileCreateTime
            | RecordKind::FileExecutable
            | RecordKind::PipeCreate
            | RecordKind::ImageLoad,
        ) => {
            let rec: FileInfoRecord = copy(bytes)?;
            let mut tail = &bytes[size_of::<FileInfoRecord>()..];
            let dir = take(&mut tail, rec.file.dir_len)?;
            let name = take(&mut tail, rec.file.name_len)?;
            Ok(Record::FileInfo(rec, FileTail { dir, name }))
        }
        Some(RecordKind::Access) => Ok(Record::Access(copy(bytes)?)),
        Some(RecordKind::Dns) => {
            let rec: DnsRecord = copy(bytes)?;
            let start = std::mem::offset_of!(DnsRecord, data);
            let data = &bytes[start..start + (rec.len as usize).min(rec.data.len())];
            Ok(Record::Dns(DnsMessage {
                header: rec.header,
                uid: rec.uid,
                cut: rec.cut != 0,
                data,
            }))
        }
        Some(RecordKind::Cgroup) => {
            let rec: CgroupRecord = copy(bytes)?;
            let mut tail = &bytes[size_of::<CgroupRecord>()..];
            let path = take(&mut tail, rec.path_len)?;
            Ok(Record::Cgroup(rec, path))
        }
        None => Err(BadRecord::UnknownKind(header.kind)),
    }
}

fn copy<T: Copy>(bytes: &[u8]) -> Result<T, BadRecord> {
    if bytes.len() < size_of::<T>() {
        return Err(BadRecord::Short);
    }
    // SAFETY: length checked; records are plain repr(C) data, any bit pattern is valid.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

fn take<'a>(tail: &mut &'a [u8], len: u32) -> Result<&'a [u8], BadRecord> {
    let len = len as usize;
    if tail.len() < len {
        return Err(BadRecord::Short);
    }
    let (head, rest) = tail.split_at(len);
    *tail = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(rec: &T) -> Vec<u8> {
        // SAFETY: plain repr(C) records.
        unsafe { std::slice::from_raw_parts(rec as *const T as *const u8, size_of::<T>()) }.to_vec()
    }

    #[test]
    fn file_record_tail_splits_into_dir_and_name() {
        let rec = FileRecord {
            header: Header {
                kind: RecordKind::FileDelete as u32,
                ..Header::default()
            },
            dir_len: 4,
            name_len: 3,
            ..FileRecord::default()
        };
        let mut b = bytes(&rec);
        b.extend_from_slice(b"/tmpabc");
        match decode(&b) {
            Ok(Record::File(r, tail)) => {
                assert_eq!(r.header.kind, RecordKind::FileDelete as u32);
                assert_eq!((tail.dir, tail.name), (&b"/tmp"[..], &b"abc"[..]));
            }
            _ => panic!("not a file record"),
        }
        // A tail shorter than its lengths say is refused, not read past.
        assert!(matches!(decode(&b[..b.len() - 1]), Err(BadRecord::Short)));
    }

    #[test]
    fn file_info_records_carry_the_inode_and_the_same_tail() {
        for kind in [
            RecordKind::FileCreateTime,
            RecordKind::FileExecutable,
            RecordKind::PipeCreate,
            RecordKind::ImageLoad,
        ] {
            let rec = FileInfoRecord {
                file: FileRecord {
                    header: Header {
                        kind: kind as u32,
                        ..Header::default()
                    },
                    dir_len: 4,
                    name_len: 1,
                    ..FileRecord::default()
                },
                ino: 77,
                old_sec: -5,
                ..FileInfoRecord::default()
            };
            let mut b = bytes(&rec);
            b.extend_from_slice(b"/tmpf");
            match decode(&b) {
                Ok(Record::FileInfo(r, tail)) => {
                    assert_eq!((r.ino, r.old_sec), (77, -5), "{kind:?}");
                    assert_eq!((tail.dir, tail.name), (&b"/tmp"[..], &b"f"[..]));
                }
                _ => panic!("{kind:?}: not a file-info record"),
            }
            assert!(matches!(decode(&b[..b.len() - 1]), Err(BadRecord::Short)));
        }
        // ConnectPipe is a plain file record.
        let rec = FileRecord {
            header: Header {
                kind: RecordKind::PipeConnect as u32,
                ..Header::default()
            },
            ..FileRecord::default()
        };
        assert!(matches!(decode(&bytes(&rec)), Ok(Record::File(..))));
    }

    #[test]
    fn access_record_decodes() {
        let rec = AccessRecord {
            header: Header {
                kind: RecordKind::Access as u32,
                ..Header::default()
            },
            target_tid: 77,
            address: 0x7f00_0000_1000,
            ..AccessRecord::default()
        };
        assert!(matches!(
            decode(&bytes(&rec)),
            Ok(Record::Access(r)) if r.target_tid == 77 && r.address == 0x7f00_0000_1000
        ));
        assert!(matches!(
            decode(&bytes(&rec)[..size_of::<AccessRecord>() - 1]),
            Err(BadRecord::Short)
        ));
    }

    #[test]
    fn network_record_decodes_and_unknown_kinds_are_refused() {
        let rec = NetRecord {
            header: Header {
                kind: RecordKind::Network as u32,
                ..Header::default()
            },
            sport: 4242,
            ..NetRecord::default()
        };
        assert!(matches!(decode(&bytes(&rec)), Ok(Record::Net(r)) if r.sport == 4242));
        let odd = Header {
            kind: 99,
            ..Header::default()
        };
        assert!(matches!(
            decode(&bytes(&odd)),
            Err(BadRecord::UnknownKind(99))
        ));
    }
}
