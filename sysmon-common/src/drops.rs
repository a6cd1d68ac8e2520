//! Why the kernel side lost a record. The `DROPS` map counts per cause and record kind, in
//! slot `cause * RecordKind::SLOTS + kind`; the agent reports every count that grew (event
//! 255 `KernelDrops`).

use crate::RecordKind;

/// No room in the ring buffer, or a record a probe could not build.
pub const RING: u32 = 0;
/// A table of calls in flight was full: a call that might have given a record was not
/// watched (more threads inside such calls at once than the table holds).
pub const TABLE: u32 = 1;
/// Over a per-process rate limit (DNS answers, see `dns::DNS_PER_SEC`).
pub const RATE: u32 = 2;
pub const CAUSES: u32 = 3;

/// Slots of the `DROPS` map.
pub const SLOTS: u32 = CAUSES * RecordKind::SLOTS;

/// The slot counting `kind` records lost to `cause`.
pub const fn slot(cause: u32, kind: RecordKind) -> u32 {
    cause * RecordKind::SLOTS + kind as u32
}
