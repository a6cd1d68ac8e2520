//! Where rendered events leave: syslog (always), stdout (`-t`).

pub mod delivery;
pub mod syslog;
