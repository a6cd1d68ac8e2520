//! `cargo xtask vm -- <command>`: one command inside the guest the guest tests use (Debian's
//! 6.1 kernel under emulated qemu, the host's root read-only), its output as it comes.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use sysmon_tests::guest::{self, Kernel};

use crate::build;

pub fn run(series: &str, command: &[String]) -> Result<()> {
    if series != "6.1" {
        bail!("only the 6.1 kernel is set up (cargo xtask setup): not {series}");
    }
    crate::setup::guest()?;
    let sysmon = build::all()?;
    if let Some(why) = guest::unavailable(series) {
        bail!("the guest cannot run here: {why}");
    }
    let kernel = Kernel::cached(series).expect("checked by unavailable");
    let quoted: Vec<String> = command
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let script = format!(
        "export SYSMON_BIN='{}' HOME=/root USER=root \
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         cd '{}'\n{}\n",
        sysmon.display(),
        build::root().display(),
        quoted.join(" ")
    );
    let mut keep = vec![build::root()];
    keep.extend(sysmon.parent().map(|p| p.to_path_buf()));
    let opts = guest::Options {
        keep,
        timeout: Duration::from_secs(30 * 60),
    };
    eprintln!("vm: booting {} (emulated CPU: slow)", kernel.release);
    let start = Instant::now();
    let run = guest::run(&kernel, &script, &opts, &mut |line| println!("{line}"))?;
    eprintln!("vm: {:.1} s in all", start.elapsed().as_secs_f64());
    match run.status {
        Some(code) => std::process::exit(code),
        None => bail!(
            "the guest ended without the command's status{}; its console:\n{}",
            if run.timed_out { " (timed out)" } else { "" },
            run.console
        ),
    }
}
