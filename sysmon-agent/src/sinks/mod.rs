//! Where rendered events leave: syslog, the agent's own log files (`-o`), stdout (`-t`).

pub mod delivery;
pub mod file;
pub mod outputs;
pub mod stream;
pub mod syslog;
pub mod writer;
