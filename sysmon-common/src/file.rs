//! File records: FileCreate, FileDelete and RawAccessRead share one layout.

use crate::{Header, PATH_MAX};

/// `file->f_mode` bit the kernel sets on a file that this open created (`FMODE_CREATED`,
/// `include/linux/fs.h`; 0x100000 since 4.19). The kernel tests check it on the running
/// kernel: an event for every new file, none for an existing one.
pub const FMODE_CREATED: u32 = 0x0010_0000;

/// `S_IFMT` and `S_IFBLK` of `inode->i_mode`.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFBLK: u16 = 0o060000;

/// `unlinkat` flag that makes it an rmdir (not a FileDelete).
pub const AT_REMOVEDIR: u64 = 0x200;

/// Tail of a [`FileRecord`]: `dir` bytes then `name` bytes. The full path is `dir` alone when
/// `name` is empty, `name` alone when `dir` is empty, else `dir/name`.
pub const FILE_TAIL_MAX: usize = 2 * PATH_MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileRecord {
    pub header: Header,
    /// Real uid (`cred->uid`) at the time of the call.
    pub uid: u32,
    /// `truncated::*` bits.
    pub flags: u32,
    /// A path the kernel rebuilt from a dentry: the created file or block device, or for a
    /// delete by relative name the cwd or the directory fd.
    pub dir_len: u32,
    /// For a delete: the name as the caller passed it.
    pub name_len: u32,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for FileRecord {}
