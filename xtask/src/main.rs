//! `cargo xtask`: everything cargo alone cannot do.
//!
//! setup       install what the build and the tests need (idempotent, quick when done)
//! build       build the eBPF programs (nightly, bpfel) and the agent (release)
//! run         build, then run the agent in the foreground with the default config
//! package     build, then the .deb and .rpm in target/package/
//! test        setup, build, package, then every test (unit, golden, end-to-end against the kernel)
//! bench       exec storms at several rates; the agent's CPU, events/s, losses, peak RSS
//! image       build, then a container image of the agent (`docker import`, offline)
//! vm          one command inside Debian's 6.1 kernel under qemu (the guest tests' guest)

mod bench;
mod build;
mod image;
mod package;
mod setup;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the nightly's rust-src, bpf-linker, cargo-deb, cargo-generate-rpm, rsyslog,
    /// lintian, rpmlint, qemu, busybox-static and the guest tests' kernel when missing.
    Setup,
    /// Build the eBPF object and the agent (release).
    Build,
    /// Build, then run `sysmon -t configs/default.xml` (Ctrl-C stops it).
    Run {
        /// Config file (default: configs/default.xml).
        #[arg(long)]
        config: Option<String>,
    },
    /// Build, then target/package/sysmon-ebpf_<version>_amd64.deb and
    /// sysmon-ebpf-<version>.x86_64.rpm.
    Package,
    /// Setup, build, package, then run every test in the workspace.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Exec storms at several rates, reporting the agent's cost.
    Bench(bench::Args),
    /// Build, then boot a kernel under qemu (the host's root read-only) and run one command
    /// in it as root: `cargo xtask vm -- target/release/sysmon -kernelcheck`.
    Vm {
        /// The kernel series (only 6.1 is set up).
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Build, then a container image of the agent (`$DOCKER import`, default `docker`;
    /// `DOCKER_HOST` picks the daemon). See docs/containers.md.
    Image {
        /// Image name (default: sysmon-ebpf:<version>).
        #[arg(long)]
        tag: Option<String>,
        /// An agent binary already built (default: build it).
        #[arg(long)]
        bin: Option<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup => setup::all(),
        Cmd::Build => build::all().map(drop),
        Cmd::Image { tag, bin } => {
            let bin = match bin {
                Some(b) => b,
                None => build::all()?,
            };
            image::build(&bin, &tag.unwrap_or_else(image::default_tag)).map(drop)
        }
        Cmd::Package => {
            setup::all()?;
            package::all().map(drop)
        }
        Cmd::Run { config } => {
            let bin = build::all()?;
            let config = config.unwrap_or_else(|| {
                build::root()
                    .join("configs/default.xml")
                    .display()
                    .to_string()
            });
            build::exec(std::process::Command::new(bin).args(["-accepteula", "-t", &config]))
        }
        Cmd::Test { args } => {
            setup::all()?;
            // The package tests read target/package/.
            let bin = package::all()?;
            kernel_check(&bin);
            // Every test binary, whatever `args` select: the guest tests run the others.
            let tests = build::test_binaries()?;
            build::run(
                build::cargo()
                    .args(["test", "--workspace", "--release", "--no-fail-fast"])
                    .args(args)
                    .env("SYSMON_BIN", bin)
                    .env("SYSMON_GUEST_TESTS", tests),
            )
        }
        Cmd::Vm { kernel, command } => vm::run(&kernel, &command),
        Cmd::Bench(args) => {
            setup::all()?;
            // Another build's binary, to compare before and after with the same bench.
            let bin = match std::env::var_os("SYSMON_BENCH_BIN") {
                Some(other) => other.into(),
                None => build::all()?,
            };
            bench::run(&bin, &args)
        }
    }
}

/// Prints how close each program comes to the verifier's limits on this kernel (the kernel
/// test `every_program_loads_within_the_limits` fails on a program over one).
fn kernel_check(bin: &std::path::Path) {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xtask: not root: no `sysmon -kernelcheck` report");
        return;
    }
    let _ = std::process::Command::new(bin)
        .args(["-nologo", "-kernelcheck"])
        .status();
}
