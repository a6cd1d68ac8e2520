//! `sysmonLogView`: show Sysmon events from syslog; see docs/logview.md.

fn main() {
    std::process::exit(sysmon_agent::logview::main_with_args(std::env::args()));
}
