//! `-i [config]`: validate, lay out /opt/sysmon (spec 4.3), the rsyslog split, the unit,
//! then start the daemon (through systemd when it runs, else ourselves).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    DEFAULT_CONFIG, Paths, control, control::Failure, daemon, proc, record_id::RecordIds, rsyslog,
    unit,
};

pub const VIEWER: &str = "sysmonLogView";

pub fn install(paths: &Paths, config: Option<&Path>, argv: &[String]) -> Result<(), Failure> {
    // Validate before touching anything: a bad config leaves the machine as it was.
    let bytes = match config {
        Some(path) => {
            control::check(path)?;
            fs::read(path).map_err(|e| fail(path, e))?
        }
        None => DEFAULT_CONFIG.as_bytes().to_vec(),
    };
    // A running daemon holds the old binary and config: stop it first.
    control::stop(paths, true)?;
    lay_out(paths, &bytes, argv)?;
    rsyslog::install(paths).map_err(|e| Failure::new(1, format!("rsyslog: {e}")))?;
    let unit_dir = paths.unit.parent().unwrap_or(Path::new("/"));
    if paths.systemd() {
        fs::create_dir_all(unit_dir).map_err(|e| fail(unit_dir, e))?;
    }
    if unit_dir.is_dir() {
        proc::write_atomic(&paths.unit, unit::render(paths).as_bytes(), 0o644)
            .map_err(|e| fail(&paths.unit, e))?;
    }
    if paths.systemd() {
        for args in [
            &["daemon-reload"][..],
            &["enable", "sysmon.service"],
            &["restart", "sysmon.service"],
        ] {
            run(Command::new("systemctl").args(args))?;
        }
    } else {
        // No systemd: `-service` returns once the daemon it forked runs.
        run(Command::new(paths.binary()).arg("-service"))?;
    }
    Ok(())
}

/// The files of spec 4.3: directory 0700, binaries 0700, config and state 0600.
fn lay_out(paths: &Paths, config: &[u8], argv: &[String]) -> Result<(), Failure> {
    proc::make_dir(&paths.dir, 0o700).map_err(|e| fail(&paths.dir, e))?;
    let me = std::env::current_exe().map_err(|e| Failure::new(1, format!("current exe: {e}")))?;
    copy_binary(&me, &paths.binary())?;
    let viewer = me.with_file_name(VIEWER);
    if viewer.exists() {
        copy_binary(&viewer, &paths.dir.join(VIEWER))?;
    } else {
        eprintln!(
            "Warning: no {VIEWER} beside {}; not installed",
            me.display()
        );
    }
    proc::write_atomic(&paths.config(), config, 0o600).map_err(|e| fail(&paths.config(), e))?;
    daemon::write_argv(paths, argv).map_err(|e| fail(&paths.argv(), e))?;
    // `-o` (already checked by the command line parser), or syslog only.
    let outputs = crate::cli::parse(argv.to_vec())
        .ok()
        .and_then(|a| a.outputs);
    match outputs {
        Some(list) => proc::write_atomic(&paths.outputs(), list.as_bytes(), 0o600)
            .map(drop)
            .map_err(|e| fail(&paths.outputs(), e))?,
        None => match fs::remove_file(paths.outputs()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(fail(&paths.outputs(), e));
            }
            _ => {}
        },
    }
    // The counter survives re-installs: open (create if missing), never reset.
    if let (_, Some(e)) = RecordIds::open(&paths.dir) {
        return Err(fail(&paths.dir.join("eventId"), e));
    }
    let id_file = paths.dir.join("eventId");
    fs::set_permissions(&id_file, fs::Permissions::from_mode(0o600)).map_err(|e| fail(&id_file, e))
}

fn copy_binary(from: &Path, to: &PathBuf) -> Result<(), Failure> {
    // Re-installing from the installed binary: it is already in place.
    if fs::canonicalize(from).ok() == fs::canonicalize(to).ok() {
        return Ok(());
    }
    let bytes = fs::read(from).map_err(|e| fail(from, e))?;
    proc::write_atomic(to, &bytes, 0o700).map_err(|e| fail(to, e))?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), Failure> {
    let status = cmd
        .status()
        .map_err(|e| Failure::new(1, format!("{cmd:?}: {e}")))?;
    if !status.success() {
        return Err(Failure::new(1, format!("{cmd:?} failed: {status}")));
    }
    Ok(())
}

fn fail(path: &Path, e: std::io::Error) -> Failure {
    Failure::new(1, format!("{}: {e}", path.display()))
}
