//! `sysmon`: Sysmon for Linux, on eBPF.

use std::{path::PathBuf, process::ExitCode};

use sha2::{Digest, Sha256};
use sysmon_agent::{
    agent::{self, Settings},
    cli::{self, Command},
    rules,
    service::record_id::STATE_DIR,
    sinks::syslog::DEV_LOG,
};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sysmon: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(cli::BAD_USAGE as u8);
        }
    };
    match args.command {
        Command::Usage => {
            eprint!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Debug { config } => match run(config, args.btf) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sysmon: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(config: Option<PathBuf>, btf: Option<PathBuf>) -> anyhow::Result<()> {
    let (cfg, label, hash) = match &config {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read configuration {}: {e}", path.display())
            })?;
            let cfg = rules::load_file(path)?;
            for w in &cfg.warnings {
                eprintln!("sysmon: warning: {w}");
            }
            let hash = format!("SHA256={:x}", Sha256::digest(&bytes));
            (cfg, path.display().to_string(), Some(hash))
        }
        None => (rules::Config::default(), "Defaults".to_string(), None),
    };
    let env_path = |name: &str, default: &str| {
        PathBuf::from(std::env::var_os(name).unwrap_or_else(|| default.into()))
    };
    agent::run(Settings {
        config: cfg,
        config_label: label,
        config_hash: hash,
        debug: true,
        syslog_path: env_path("SYSMON_SYSLOG_SOCKET", DEV_LOG),
        state_dir: env_path("SYSMON_STATE_DIR", STATE_DIR),
        btf,
    })
}
