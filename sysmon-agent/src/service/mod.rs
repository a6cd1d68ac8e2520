//! The agent as a service: its state files.

pub mod record_id;
