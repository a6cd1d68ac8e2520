//! Turning an event into text: Sysmon's XML (spec §2.2) and the sysmonLogView layout.

pub mod fit;
pub mod layout;
pub mod xml;
