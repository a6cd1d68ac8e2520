//! The Sysmon configuration engine: parse, compile once, evaluate.
