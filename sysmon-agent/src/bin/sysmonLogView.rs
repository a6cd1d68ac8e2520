//! `sysmonLogView`: show Sysmon events from syslog; see docs/logview.md.

use sysmon_agent::cli;

fn main() {
    let mut argv = std::env::args_os();
    let program = argv.next().map(|p| p.to_string_lossy().into_owned());
    match cli::utf8_args(argv) {
        Ok(args) => std::process::exit(sysmon_agent::logview::main_with_args(
            program.into_iter().chain(args),
        )),
        Err(e) => {
            eprintln!("sysmonLogView: {e}");
            std::process::exit(cli::BAD_USAGE);
        }
    }
}
