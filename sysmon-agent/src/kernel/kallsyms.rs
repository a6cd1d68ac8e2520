//! Kernel symbol addresses from /proc/kallsyms, for programs that recognise a kernel object
//! by one of its functions (a pointer compare instead of path or name work).

use std::fs;

const KALLSYMS: &str = "/proc/kallsyms";

/// The address of the function `name`, if the kernel lists exactly one symbol of that name
/// with a real address (kptr_restrict can hide addresses as zeros).
pub fn function(name: &str) -> Option<u64> {
    find(&fs::read_to_string(KALLSYMS).ok()?, name)
}

fn find(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(addr), Some(ty), Some(sym)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // Module symbols carry a `[module]` column; ours are built in.
        if sym != name || f.next().is_some() || !matches!(ty, "t" | "T") {
            continue;
        }
        if found.is_some() {
            return None; // two functions of that name: cannot tell which
        }
        found = u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0);
    }
    found
}

/// Offset of the instruction pointer in the register set PTRACE_SETREGS/SETREGSET take
/// (`struct user_regs_struct`), on the architecture this agent was built for.
pub fn user_regs_ip() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(16 * 8) // r15 … orig_rax, then rip
    } else if cfg!(target_arch = "aarch64") {
        Some(32 * 8) // regs[31], sp, then pc
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_one_builtin_function_only() {
        let text = "ffffffff817a4c00 t mem_open\n\
                    ffffffff817a4b50 T proc_mem_open\n\
                    ffffffffc0001000 t dup_fn [some_mod]\n\
                    ffffffff81000000 t dup_fn\n\
                    ffffffff81000010 t twice\n\
                    ffffffff81000020 t twice\n\
                    0000000000000000 t hidden\n\
                    ffffffff81000030 d mem_data\n";
        // (name, address)
        let cases = [
            ("mem_open", Some(0xffffffff817a4c00)),
            ("proc_mem_open", Some(0xffffffff817a4b50)),
            ("dup_fn", Some(0xffffffff81000000)),
            ("twice", None),
            ("hidden", None),
            ("mem_data", None),
            ("absent", None),
        ];
        for (name, want) in cases {
            assert_eq!(find(text, name), want, "{name}");
        }
    }
}
