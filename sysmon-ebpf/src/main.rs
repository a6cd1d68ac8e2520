//! Kernel programs: one probe per event kind under `probes/`, all feeding one ring buffer.
//!
//! Programs collect; user space decides. Struct offsets come from the running kernel's BTF,
//! set by the agent as load-time constants (see `kernel.rs`).
#![no_std]
#![no_main]

mod cgroup;
mod kernel;
mod maps;
mod path;
mod pidns;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
