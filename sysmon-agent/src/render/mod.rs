//! Turning an event into text: Sysmon's XML (spec §2.2), JSON lines and the sysmonLogView
//! layout.

pub mod digits;
pub mod fit;
pub mod json;
pub mod layout;
pub mod xml;
