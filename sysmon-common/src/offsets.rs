//! Kernel struct member offsets, read from the running kernel's BTF by the agent and handed
//! to the programs as a load-time constant (no CO-RE in Rust eBPF yet).

/// Value of an offset whose member does not exist on this kernel (e.g. no CONFIG_AUDIT).
pub const ABSENT: u32 = u32::MAX;

macro_rules! offsets {
    ($($field:ident => $ty:literal . $path:literal),* $(,)?) => {
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Offsets { $(pub $field: u32,)* }

        impl Offsets {
            pub const ZERO: Offsets = Offsets { $($field: 0,)* };
            /// (field, struct, member path) for every offset, for the BTF resolver. A path may
            /// name nested members (`a.b`) and alternatives for other kernels (`x|y`).
            pub const MEMBERS: &'static [(&'static str, &'static str, &'static str)] =
                &[$((stringify!($field), $ty, $path),)*];

            pub fn set(&mut self, field: &str, value: u32) -> bool {
                match field {
                    $(stringify!($field) => { self.$field = value; true })*
                    _ => false,
                }
            }
        }
    };
}

offsets! {
    task_tgid => "task_struct"."tgid",
    task_pid => "task_struct"."pid",
    task_group_leader => "task_struct"."group_leader",
    task_real_parent => "task_struct"."real_parent",
    task_real_cred => "task_struct"."real_cred",
    task_loginuid => "task_struct"."loginuid",
    task_sessionid => "task_struct"."sessionid",
    task_start_boottime => "task_struct"."start_boottime",
    task_mm => "task_struct"."mm",
    task_fs => "task_struct"."fs",
    task_signal => "task_struct"."signal",
    task_files => "task_struct"."files",
    files_fdt => "files_struct"."fdt",
    fdtable_max_fds => "fdtable"."max_fds",
    fdtable_fd => "fdtable"."fd",
    signal_tty => "signal_struct"."tty",
    signal_live => "signal_struct"."live",
    tty_index => "tty_struct"."index",
    cred_uid => "cred"."uid",
    mm_exe_file => "mm_struct"."exe_file",
    mm_arg_start => "mm_struct"."arg_start",
    mm_arg_end => "mm_struct"."arg_end",
    mm_end_code => "mm_struct"."end_code",
    fs_pwd => "fs_struct"."pwd",
    file_f_path => "file"."f_path",
    file_f_inode => "file"."f_inode",
    file_f_mode => "file"."f_mode",
    file_private_data => "file"."private_data",
    socket_sk => "socket"."sk",
    sock_common => "sock"."__sk_common",
    sock_protocol => "sock"."sk_protocol",
    skc_family => "sock_common"."skc_family",
    skc_daddr => "sock_common"."skc_daddr",
    skc_rcv_saddr => "sock_common"."skc_rcv_saddr",
    skc_dport => "sock_common"."skc_dport",
    skc_num => "sock_common"."skc_num",
    skc_v6_daddr => "sock_common"."skc_v6_daddr",
    skc_v6_rcv_saddr => "sock_common"."skc_v6_rcv_saddr",
    skb_sk => "sk_buff"."sk",
    skb_head => "sk_buff"."head",
    skb_network_header => "sk_buff"."network_header",
    skb_transport_header => "sk_buff"."transport_header",
    path_mnt => "path"."mnt",
    path_dentry => "path"."dentry",
    dentry_d_parent => "dentry"."d_parent",
    dentry_d_name => "dentry"."d_name",
    qstr_len => "qstr"."len",
    qstr_name => "qstr"."name",
    mount_mnt => "mount"."mnt",
    mount_mnt_parent => "mount"."mnt_parent",
    mount_mnt_mountpoint => "mount"."mnt_mountpoint",
    vfsmount_mnt_root => "vfsmount"."mnt_root",
    inode_i_mode => "inode"."i_mode",
    inode_i_ino => "inode"."i_ino",
    inode_i_sb => "inode"."i_sb",
    inode_i_size => "inode"."i_size",
    inode_i_mtime_sec => "inode"."i_mtime_sec|__i_mtime.tv_sec|i_mtime.tv_sec",
    inode_i_mtime_nsec => "inode"."i_mtime_nsec|__i_mtime.tv_nsec|i_mtime.tv_nsec",
    sb_s_dev => "super_block"."s_dev",
    mm_saved_auxv => "mm_struct"."saved_auxv",
    vma_vm_file => "vm_area_struct"."vm_file",
    vma_vm_start => "vm_area_struct"."vm_start",
    vma_vm_end => "vm_area_struct"."vm_end",
    vma_vm_flags => "vm_area_struct"."vm_flags",
    inode_i_nlink => "inode"."i_nlink|__i_nlink",
    file_f_op => "file"."f_op",
    fops_open => "file_operations"."open",
    proc_inode_pid => "proc_inode"."pid",
    proc_inode_vfs_inode => "proc_inode"."vfs_inode",
    pid_tasks => "pid"."tasks",
    task_pid_links => "task_struct"."pid_links",
    task_personality => "task_struct"."personality",
    task_ti_status => "task_struct"."thread_info.status",
    // Cgroups (containers): task->cgroups->{dfl_cgrp, subsys[memory]->cgroup}->kn->id.
    task_cgroups => "task_struct"."cgroups",
    css_set_dfl_cgrp => "css_set"."dfl_cgrp",
    // `subsys`, plus 8 × the memory controller's index (`memory_cgrp_id`), set by the agent.
    css_set_memory => "css_set"."subsys",
    css_cgroup => "cgroup_subsys_state"."cgroup",
    cgroup_kn => "cgroup"."kn",
    kernfs_node_id => "kernfs_node"."id",
    // Pid namespaces: a pid as a caller in a container names it, to the task.
    task_thread_pid => "task_struct"."thread_pid",
    pid_level => "pid"."level",
    pid_numbers => "pid"."numbers",
    upid_ns => "upid"."ns",
    pid_ns_idr_head => "pid_namespace"."idr.idr_rt.xa_head",
    xa_node_shift => "xa_node"."shift",
    xa_node_slots => "xa_node"."slots",
}

/// Members that some kernels lack; the programs treat them as unknown.
pub const OPTIONAL: &[&str] = &[
    "task_loginuid",
    "task_sessionid",
    // CONFIG_IPV6 off.
    "skc_v6_daddr",
    "skc_v6_rcv_saddr",
    // Only to name the target of a /proc/<pid>/mem open (internal to fs/proc).
    "proc_inode_pid",
    "proc_inode_vfs_inode",
    // x86 only: where a task says it is in a 32-bit (compat) syscall.
    "task_ti_status",
    // No memory controller (CONFIG_MEMCG off): containers are found by the v2 cgroup only.
    "css_set_memory",
];

#[cfg(feature = "user")]
unsafe impl aya::Pod for Offsets {}
