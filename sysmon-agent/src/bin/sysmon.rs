//! `sysmon`: Sysmon for Linux, on eBPF.

use std::{path::PathBuf, process::ExitCode};

use sha2::{Digest, Sha256};
use sysmon_agent::{
    agent::{self, Settings},
    cli::{self, Command},
    rules,
    service::{Paths, control, daemon, install},
    sinks::outputs::Outputs,
};

fn main() -> ExitCode {
    let argv = match cli::utf8_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            print!("{}", cli::BANNER);
            eprintln!("sysmon: {e}");
            return exit(cli::BAD_USAGE);
        }
    };
    let args = match cli::parse(argv.clone()) {
        Ok(a) => a,
        Err(e) => {
            print!("{}", cli::BANNER);
            eprintln!("sysmon: {e}\n\n{}", cli::USAGE);
            return exit(cli::BAD_USAGE);
        }
    };
    // The daemon's output is not for a terminal; everything else starts with the banner.
    if args.command != Command::Service {
        print!("{}", cli::BANNER);
    }
    let needs_root = !matches!(
        args.command,
        Command::Usage | Command::ConfigHelp | Command::PrintSchema(_)
    );
    if needs_root && unsafe { libc::geteuid() } != 0 {
        eprintln!("{}", cli::NOT_ROOT_MSG);
        return exit(cli::NOT_ROOT);
    }
    let paths = Paths::from_env();
    let result = match args.command {
        Command::Usage => {
            eprint!("{}", cli::USAGE);
            Ok(())
        }
        Command::ConfigHelp => {
            eprint!("{}", rules::config_help());
            Ok(())
        }
        Command::PrintSchema(version) => rules::print_schema(version.as_deref())
            .map(|s| print!("{s}"))
            .map_err(|e| control::Failure::new(1, e)),
        Command::Debug { config } => run_foreground(
            config,
            args.btf,
            args.hash_algorithms,
            args.outputs.as_deref(),
            &paths,
        ),
        Command::Install { config } => install::install(&paths, config.as_deref(), &argv),
        Command::Configure { config } => control::update(&paths, config.as_deref(), &argv),
        Command::ShowConfig => control::show(&paths).map(|s| print!("{s}")),
        Command::Uninstall { force } => control::uninstall(&paths, force),
        Command::Service => return exit(daemon::service(&paths)),
        Command::KernelCheck => kernel_check(args.btf.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message);
            exit(f.code)
        }
    }
}

/// `-kernelcheck`: the report on stdout; exit 1 if a program is refused or over a limit.
fn kernel_check(btf: Option<&std::path::Path>) -> Result<(), control::Failure> {
    use sysmon_agent::kernel::check;
    let (rows, missing) =
        check::run(btf).map_err(|e| control::Failure::new(1, format!("sysmon: {e:#}")))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    print!(
        "{}",
        check::render(&rows, release.trim(), missing.as_deref())
    );
    if rows.iter().all(check::Row::ok) {
        Ok(())
    } else {
        Err(control::Failure::new(
            1,
            "sysmon: some programs cannot load on this kernel",
        ))
    }
}

fn exit(code: i32) -> ExitCode {
    // Sysmon's codes (87, 740) as the shell sees them: the low byte.
    ExitCode::from((code & 0xff) as u8)
}

/// `-t [config]`: the agent in the foreground, events also on stdout.
fn run_foreground(
    config: Option<PathBuf>,
    btf: Option<PathBuf>,
    hash_algorithms: Option<String>,
    outputs: Option<&str>,
    paths: &Paths,
) -> Result<(), control::Failure> {
    let outputs = match outputs {
        Some(list) => Outputs::parse(list, &paths.root)
            .map_err(|e| control::Failure::new(cli::BAD_USAGE, e))?,
        None => Outputs::default(),
    };
    let (mut cfg, label, hash) = match &config {
        Some(path) => {
            let cfg = control::check(path)?;
            let bytes = std::fs::read(path)
                .map_err(|e| control::Failure::new(1, format!("{}: {e}", path.display())))?;
            let hash = format!("SHA256={:x}", Sha256::digest(&bytes));
            (cfg, path.display().to_string(), Some(hash))
        }
        None => (rules::Config::default(), "Defaults".to_string(), None),
    };
    if let Some(algs) = hash_algorithms {
        cfg.apply_hash_switch(&algs)
            .map_err(|e| control::Failure::new(87, e))?;
    }
    agent::run(Settings {
        config: cfg,
        config_label: label,
        config_hash: hash,
        debug: true,
        syslog_path: paths.syslog_socket.clone(),
        rsyslog_socket: Some(paths.rsyslog_socket.clone()),
        outputs,
        state_dir: paths.dir.clone(),
        btf,
        reload: None,
        on_ready: None,
    })
    .map_err(|e| control::Failure::new(1, format!("sysmon: {e:#}")))
}
