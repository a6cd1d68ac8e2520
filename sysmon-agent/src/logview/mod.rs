//! sysmonLogView: read syslog lines back and show, filter and summarise events.
