//! Decoding the records the programs send.

use sysmon_common::{
    Header, RecordKind,
    file::FileRecord,
    net::NetRecord,
    process::{ExecRecord, ExitRecord, ForkRecord},
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
        Some(RecordKind::FileCreate | RecordKind::FileDelete | RecordKind::RawAccess) => {
            let rec: FileRecord = copy(bytes)?;
            let mut tail = &bytes[size_of::<FileRecord>()..];
            let dir = take(&mut tail, rec.dir_len)?;
            let name = take(&mut tail, rec.name_len)?;
            Ok(Record::File(rec, FileTail { dir, name }))
        }
        Some(RecordKind::Network) => Ok(Record::Net(copy(bytes)?)),
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
