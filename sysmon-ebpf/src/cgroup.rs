//! A task's cgroups, the key user space maps to a container (see `Cgroups`).

use sysmon_common::process::Cgroups;

use crate::kernel::{Ptr, load, load_ptr, off, read, read_ptr};

/// The current task's cgroups, through BTF-typed loads (no helper calls: exec is hot).
#[inline(always)]
pub fn of_current(task: Ptr) -> Cgroups {
    let set = load_ptr(task, off!(task_cgroups));
    let id = |cgrp: Ptr| load::<u64>(load_ptr(cgrp, off!(cgroup_kn)), off!(kernfs_node_id));
    Cgroups {
        v2: id(load_ptr(set, off!(css_set_dfl_cgrp))),
        v1: id(load_ptr(
            load_ptr(set, off!(css_set_memory)),
            off!(css_cgroup),
        )),
    }
}

/// Another task's cgroups (a raw tracepoint's untyped task pointer: helper reads).
#[inline(always)]
pub fn of_task(task: Ptr) -> Cgroups {
    let set = read_ptr(task, off!(task_cgroups));
    let id = |cgrp: Ptr| read::<u64>(read_ptr(cgrp, off!(cgroup_kn)), off!(kernfs_node_id));
    Cgroups {
        v2: id(read_ptr(set, off!(css_set_dfl_cgrp))),
        v1: id(read_ptr(
            read_ptr(set, off!(css_set_memory)),
            off!(css_cgroup),
        )),
    }
}
