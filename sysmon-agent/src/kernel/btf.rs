//! Kernel struct offsets from BTF (`/sys/kernel/btf/vmlinux` or `-btf <file>`).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use sysmon_common::{
    Offsets,
    offsets::{ABSENT, OPTIONAL},
};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// What the programs need from a kernel, read from its BTF.
pub struct Kernel {
    pub offsets: Offsets,
    /// What of [`REQUIRED`] this kernel lacks.
    pub lacks: Vec<&'static str>,
}

/// The BPF features every program needs, newest last: (BTF enum, value, what and since when).
/// A kernel has a helper or map type when the enum that numbers them has its value. The
/// newest, `bpf_loop`, sets the minimum kernel: 5.17 (or a distribution kernel with it
/// backported, as RHEL 9's 5.14).
pub const REQUIRED: &[(&str, &str, &str)] = &[
    (
        "bpf_func_id",
        "BPF_FUNC_probe_read_kernel",
        "the bpf_probe_read_kernel helper (Linux 5.5)",
    ),
    (
        "bpf_map_type",
        "BPF_MAP_TYPE_RINGBUF",
        "the BPF ring buffer (Linux 5.8)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_ktime_get_boot_ns",
        "the bpf_ktime_get_boot_ns helper (Linux 5.8)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_get_current_task_btf",
        "the bpf_get_current_task_btf helper (Linux 5.11)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_loop",
        "the bpf_loop helper (Linux 5.17)",
    ),
];

/// Test hook: values of [`REQUIRED`] to treat as missing, as on an older kernel
/// (`SYSMON_TEST_MISSING_FEATURES=BPF_FUNC_loop`).
pub const MISSING_FEATURES_HOOK: &str = "SYSMON_TEST_MISSING_FEATURES";

/// Reads the BTF once for everything `Kernel` holds.
pub fn inspect(path: &Path) -> Result<Kernel> {
    let btf =
        Btf::from_file(path).with_context(|| format!("reading BTF from {}", path.display()))?;
    let pretend = std::env::var(MISSING_FEATURES_HOOK).unwrap_or_default();
    let lacks = REQUIRED
        .iter()
        .filter(|(e, v, _)| !has_enum_value(&btf, e, v) || pretend.split(',').any(|p| p == *v))
        .map(|(_, _, what)| *what)
        .collect();
    Ok(Kernel {
        offsets: offsets(&btf, path)?,
        lacks,
    })
}

/// Whether `enum name` has the value `value`: helpers are numbered by `enum bpf_func_id`,
/// so a helper the kernel has is a value there.
fn has_enum_value(btf: &Btf, name: &str, value: &str) -> bool {
    btf.resolve_types_by_name(name)
        .unwrap_or_default()
        .iter()
        .any(|t| match t {
            Type::Enum(e) => e
                .members
                .iter()
                .any(|m| btf.resolve_name(m).is_ok_and(|n| n == value)),
            _ => false,
        })
}

/// Resolves every offset the programs need; fails naming the first member not found.
fn offsets(btf: &Btf, path: &Path) -> Result<Offsets> {
    let mut out = Offsets::ZERO;
    for (field, strukt, member) in Offsets::MEMBERS {
        let found = member
            .split('|')
            .find_map(|alt| member_offset(btf, strukt, alt).ok());
        let value = match found {
            Some(v) => v,
            None if OPTIONAL.contains(field) => ABSENT,
            None => bail!("{}: struct {strukt} has no member {member}", path.display()),
        };
        out.set(field, value);
    }
    // `css_set.subsys` is an array indexed by controller: the memory controller's slot.
    out.css_set_memory = match enum_value(btf, "cgroup_subsys_id", "memory_cgrp_id") {
        Some(i) if out.css_set_memory != ABSENT => out.css_set_memory + 8 * i,
        _ => ABSENT,
    };
    Ok(out)
}

/// The value of `name` in `enum ty`, if the kernel has both.
fn enum_value(btf: &Btf, ty: &str, name: &str) -> Option<u32> {
    btf.resolve_types_by_name(ty)
        .unwrap_or_default()
        .iter()
        .find_map(|t| match t {
            Type::Enum(e) => e
                .members
                .iter()
                .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == name))
                .map(|m| m.val()),
            _ => None,
        })
}

/// Byte offset of `path` (`a.b.c`) inside `struct strukt`, looking through anonymous
/// structs and unions.
fn member_offset(btf: &Btf, strukt: &str, path: &str) -> Result<u32> {
    let mut ty = btf
        .resolve_types_by_name(strukt)?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
        .ok_or_else(|| anyhow!("no struct {strukt}"))?;
    let mut total = 0;
    for name in path.split('.') {
        let (off, member_ty) = find_member(btf, &ty, name)?.ok_or_else(|| anyhow!("no {name}"))?;
        total += off;
        ty = member_ty;
    }
    Ok(total)
}

/// (byte offset, type) of member `name` in the struct or union `ty`.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> Result<Option<(u32, Type)>> {
    let members = match strip(btf, ty.clone())? {
        Type::Struct(s) | Type::Union(s) => s.members,
        _ => return Ok(None),
    };
    for m in &members {
        let here = m.bit_offset() / 8;
        let member_ty = strip(btf, btf.resolve_chained_type(m)?)?;
        match btf.resolve_name(m) {
            Ok(n) if n == name => return Ok(Some((here, member_ty))),
            Ok(n) if !n.is_empty() => continue,
            _ => {
                if let Some((off, t)) = find_member(btf, &member_ty, name)? {
                    return Ok(Some((here + off, t)));
                }
            }
        }
    }
    Ok(None)
}

/// Looks through typedefs and qualifiers.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type> {
    loop {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t)?,
            Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                btf.resolve_chained_type(t)?
            }
            Type::TypeTag(t) => btf.resolve_chained_type(t)?,
            _ => return Ok(ty),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_offset_on_this_kernel() {
        if !Path::new(VMLINUX).exists() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "no {VMLINUX} under CI"
            );
            eprintln!("skipped: no {VMLINUX}");
            return;
        }
        let k = inspect(Path::new(VMLINUX)).unwrap();
        assert_eq!(
            k.lacks,
            Vec::<&str>::new(),
            "this project's kernels (6.x) have it all"
        );
        let o = k.offsets;
        // Members that sit inside anonymous unions on current kernels must still resolve,
        // and distinct members must not collapse onto one offset.
        assert_ne!(o.mm_arg_start, o.mm_arg_end);
        assert!(o.mm_arg_start > 0);
        assert_eq!(
            o.qstr_len, 4,
            "qstr.len follows the 32-bit hash on little-endian"
        );
        assert_ne!(o.task_tgid, o.task_pid);
        // The memory controller's slot lies past `subsys[0]`, and the pid idr's head and
        // the radix tree node's slots resolve through nested members.
        assert_ne!(o.css_set_memory, ABSENT);
        assert_ne!(o.pid_ns_idr_head, ABSENT);
        assert!(o.xa_node_slots > o.xa_node_shift);
    }
}
