//! Embeds the eBPF object built by `cargo xtask build-ebpf`. Without it the agent still
//! builds (so the pure libraries and their tests need no eBPF toolchain) but refuses to
//! start, saying how to build the object.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("sysmon.bpf.o");
    let src = env::var("SYSMON_EBPF_OBJ")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap())
                .join("../sysmon-ebpf/target/bpfel-unknown-none/release/sysmon")
        });
    println!("cargo:rerun-if-env-changed=SYSMON_EBPF_OBJ");
    println!("cargo:rerun-if-changed={}", src.display());
    match fs::read(&src) {
        Ok(bytes) => fs::write(&out, bytes).unwrap(),
        Err(_) => {
            println!(
                "cargo:warning=no eBPF object at {}; run `cargo xtask build` to build it",
                src.display()
            );
            fs::write(&out, []).unwrap();
        }
    }
}
