//! 32-bit (compat) syscalls on x86_64: a 32-bit process, or `int $0x80` from a 64-bit one.
//! The kernel gives them no per-syscall tracepoint (`ARCH_TRACE_IGNORE_COMPAT_SYSCALLS`), so
//! the compat programs take them from `raw_syscalls` and dispatch these numbers
//! (`arch/x86/entry/syscalls/syscall_32.tbl`) to the 64-bit programs' handlers.

/// ia32 syscall numbers of the calls the probes watch.
pub mod ia32 {
    pub const UNLINK: i32 = 10;
    pub const OPEN: i32 = 5;
    pub const CREAT: i32 = 8;
    pub const MKNOD: i32 = 14;
    pub const CHMOD: i32 = 15;
    pub const PTRACE: i32 = 26;
    pub const UTIME: i32 = 30;
    pub const MMAP: i32 = 90;
    pub const FCHMOD: i32 = 94;
    pub const SOCKETCALL: i32 = 102;
    pub const MPROTECT: i32 = 125;
    pub const MMAP2: i32 = 192;
    pub const UTIMES: i32 = 271;
    pub const OPENAT: i32 = 295;
    pub const MKNODAT: i32 = 297;
    pub const FUTIMESAT: i32 = 299;
    pub const UNLINKAT: i32 = 301;
    pub const FCHMODAT: i32 = 306;
    pub const UTIMENSAT: i32 = 320;
    pub const RECVMMSG: i32 = 337;
    pub const PROCESS_VM_READV: i32 = 347;
    pub const PROCESS_VM_WRITEV: i32 = 348;
    pub const ACCEPT4: i32 = 364;
    pub const RECVFROM: i32 = 371;
    pub const RECVMSG: i32 = 372;
    pub const PKEY_MPROTECT: i32 = 380;
    pub const UTIMENSAT_TIME64: i32 = 412;
    pub const RECVMMSG_TIME64: i32 = 417;
    pub const OPENAT2: i32 = 437;
    pub const FCHMODAT2: i32 = 452;

    /// (name, number) of each, for checking against the system's headers.
    pub const ALL: &[(&str, i32)] = &[
        ("unlink", UNLINK),
        ("open", OPEN),
        ("creat", CREAT),
        ("mknod", MKNOD),
        ("chmod", CHMOD),
        ("ptrace", PTRACE),
        ("utime", UTIME),
        ("mmap", MMAP),
        ("fchmod", FCHMOD),
        ("socketcall", SOCKETCALL),
        ("mprotect", MPROTECT),
        ("mmap2", MMAP2),
        ("utimes", UTIMES),
        ("openat", OPENAT),
        ("mknodat", MKNODAT),
        ("futimesat", FUTIMESAT),
        ("unlinkat", UNLINKAT),
        ("fchmodat", FCHMODAT),
        ("utimensat", UTIMENSAT),
        ("recvmmsg", RECVMMSG),
        ("process_vm_readv", PROCESS_VM_READV),
        ("process_vm_writev", PROCESS_VM_WRITEV),
        ("accept4", ACCEPT4),
        ("recvfrom", RECVFROM),
        ("recvmsg", RECVMSG),
        ("pkey_mprotect", PKEY_MPROTECT),
        ("utimensat_time64", UTIMENSAT_TIME64),
        ("recvmmsg_time64", RECVMMSG_TIME64),
        ("openat2", OPENAT2),
        ("fchmodat2", FCHMODAT2),
    ];
}

/// `socketcall`'s first argument (`include/uapi/linux/net.h`): which socket call.
pub mod socketcall {
    pub const ACCEPT: u32 = 5;
    pub const RECV: u32 = 10;
    pub const RECVFROM: u32 = 12;
    pub const RECVMSG: u32 = 17;
    pub const ACCEPT4: u32 = 18;
    pub const RECVMMSG: u32 = 19;
}

/// Bits of the `COMPAT_ON` map: the events whose handlers the compat programs run, bit n for
/// event id n (ProcessAccess, CreateRemoteThread, NetworkConnect's receive side and DnsQuery
/// are told by `ACCESS_ON` and `RECV_WANTS`, as for the 64-bit programs).
pub mod on {
    pub const FILE_CREATE_TIME: u32 = 1 << 2;
    pub const NETWORK_CONNECT: u32 = 1 << 3;
    pub const IMAGE_LOAD: u32 = 1 << 7;
    pub const RAW_ACCESS_READ: u32 = 1 << 9;
    pub const FILE_CREATE: u32 = 1 << 11;
    pub const PIPE_CREATED: u32 = 1 << 17;
    pub const PIPE_CONNECTED: u32 = 1 << 18;
    pub const FILE_DELETE: u32 = 1 << 23;
    pub const FILE_EXECUTABLE_DETECTED: u32 = 1 << 29;
}

/// `thread_info.status` bit of a task inside a 32-bit syscall (x86 `TS_COMPAT`); set at its
/// entry, cleared on the way back to user space, after the exit tracepoint.
pub const TS_COMPAT: u32 = 0x0002;

/// How a caller's structs are laid out: the 64-bit ABI, or the compat (ia32) one (32-bit
/// pointers and lengths in `msghdr`, `iovec`, `timeval`...).
pub mod abi {
    pub const NATIVE: u32 = 0;
    pub const IA32: u32 = 1;
}
