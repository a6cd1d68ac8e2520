//! Our kernel tests inside Debian 12's 6.1 kernel, the one many users run, booted under
//! emulated qemu (`sysmon_tests::guest`): one trial per guest test, named
//! `6.1::<file>::<test>`, all from one boot. The test binaries and the agent are this
//! build's, seen by the guest through the read-only share.
//!
//! A harness of its own (`harness = false`, libtest-mimic) so each guest test is a line in
//! cargo's summary. Where the guest cannot run and CI is not set, `tests/build.rs` sets
//! `cfg(no_guest)` and every trial is ignored with the reason; under `CI=true` a guest that
//! cannot run or boot fails every trial, with the console shown.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use sysmon_tests::{
    guest::{self, Kernel},
    libtest::{Outcome, outcome},
};

const SERIES: &str = "6.1";

/// What runs in the guest, in order: `sysmon -kernelcheck` first (every program verified by
/// this kernel, the table printed), then the kernel tests of every sensor and of the agent's
/// start on this kernel. Left out: benches, and tests of the agent's own speed, which the
/// emulated CPU makes slow (image_load_cost_per_exec alone would take half an hour);
/// responsive.rs, service*.rs and package.rs test the agent, not the kernel. A new kernel
/// test joins here by name.
const STEPS: &[Step] = &[
    Step::KernelCheck,
    Step::Test(
        "process",
        "five_hundred_execs_give_exactly_five_hundred_creates_and_terminates",
    ),
    Step::Test(
        "process",
        "parent_fields_correlate_with_the_parents_own_event",
    ),
    Step::Test("process", "a_multithreaded_process_ends_with_one_terminate"),
    Step::Test(
        "process",
        "the_config_decides_which_execs_are_logged_and_names_the_rule",
    ),
    Step::Test("network", "tcp_connect_and_accept_over_ipv4_and_ipv6"),
    Step::Test(
        "network",
        "udp_send_and_receive_once_per_flow_over_ipv4_and_ipv6",
    ),
    Step::Test("network", "udp_send_behind_ipv6_extension_headers"),
    Step::Test(
        "dns",
        "dns_queries_through_glibc_and_raw_sockets_over_ipv4_and_ipv6",
    ),
    Step::Test("dns", "dns_records_only_when_the_config_has_dns_query"),
    Step::Test(
        "file",
        "file_create_once_per_created_file_and_never_for_an_existing_one",
    ),
    Step::Test(
        "file",
        "file_delete_gives_the_absolute_path_however_the_name_was_passed",
    ),
    Step::Test("file", "file_delete_of_a_name_in_a_page_not_yet_faulted_in"),
    Step::Test("file", "raw_access_read_of_a_block_device"),
    Step::Test(
        "file",
        "file_create_storm_every_creation_is_an_event_or_a_counted_drop",
    ),
    Step::Test(
        "file_more",
        "file_create_time_only_when_a_file_is_given_an_earlier_modification_time",
    ),
    Step::Test(
        "file_more",
        "pipe_created_once_and_connected_once_per_process",
    ),
    Step::Test(
        "file_more",
        "file_executable_detected_when_a_regular_file_becomes_executable",
    ),
    Step::Test(
        "file_more",
        "the_config_includes_excludes_and_names_file_time_pipe_and_executable_events",
    ),
    Step::Test(
        "process_access",
        "ptrace_attach_and_seize_give_process_access_and_a_failed_attach_none",
    ),
    Step::Test(
        "process_access",
        "process_vm_and_proc_mem_and_peeks_give_process_access_once_a_second",
    ),
    Step::Test(
        "process_access",
        "every_thread_of_a_process_is_that_process_once_a_second",
    ),
    Step::Test(
        "process_access",
        "pokes_and_new_instruction_pointers_give_create_remote_thread",
    ),
    Step::Test(
        "process_access",
        "memfd_and_deleted_file_execs_give_process_tampering_besides_process_create",
    ),
    Step::Test(
        "process_access",
        "the_config_includes_excludes_and_names_events_8_10_and_25",
    ),
    Step::Test(
        "process_access",
        "without_a_config_element_no_access_probe_runs_and_nothing_is_reported",
    ),
    Step::Test(
        "image_load",
        "image_load_of_the_loader_libc_dlopen_preload_and_mprotect",
    ),
    Step::Test(
        "image_load",
        "the_config_includes_excludes_and_names_image_loads",
    ),
    Step::Test(
        "activation",
        "probes_of_inactive_event_types_are_not_attached",
    ),
    Step::Test("startup", "says_what_is_wrong_and_exits_non_zero"),
    Step::Test(
        "startup",
        "a_missing_optional_tracepoint_turns_off_only_its_program",
    ),
    Step::Test("startup", "a_missing_requirement_is_refused_in_one_line"),
    Step::Test(
        "startup",
        "a_probe_refused_at_start_turns_off_only_its_events",
    ),
    Step::Test("kernels", "every_program_loads_within_the_limits"),
    Step::Test("kernels", "real_world_configs_start_and_log_a_tcp_connect"),
    Step::Test("size", "a_padded_exec_arrives_cut_as_valid_xml"),
];

#[derive(Clone, Copy)]
enum Step {
    KernelCheck,
    /// (test file, test)
    Test(&'static str, &'static str),
}

impl Step {
    fn name(self) -> String {
        match self {
            Step::KernelCheck => "kernelcheck".into(),
            Step::Test(file, test) => format!("{file}::{test}"),
        }
    }
}

/// A hung guest fails the run after this, its console shown; never a measure of speed.
const TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The guard of the tests' own waits inside the guest (`SYSMON_WAIT_SECS`): loading the
/// agent's programs takes about a minute under emulation.
const GUEST_WAIT_SECS: u32 = 600;
/// Marks a test's start and its binary's exit status on the guest's output.
const START: &str = "@@@test ";
const STATUS: &str = "@@@status ";

fn main() {
    let mut args = Arguments::from_args();
    // The trials only report what the guest did: in order.
    args.test_threads = Some(1);
    let names: Vec<String> = STEPS
        .iter()
        .map(|step| format!("{SERIES}::{}", step.name()))
        .collect();
    let trials: Vec<Trial> = match gate() {
        Some(why) => names
            .into_iter()
            .map(|n| Trial::ignorable_test(n, move || Ok(Completion::ignored_with(why))))
            .collect(),
        None => {
            let wanted: Vec<usize> = (0..STEPS.len())
                .filter(|&i| {
                    let t = Trial::test(names[i].clone(), || Ok(()));
                    !args.list && !args.is_filtered_out(&t) && !args.is_ignored(&t)
                })
                .collect();
            let mut results = if wanted.is_empty() {
                HashMap::new()
            } else {
                in_guest(&wanted)
            };
            names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    let r = results
                        .remove(&i)
                        .unwrap_or_else(|| Err("not run".to_string()));
                    Trial::ignorable_test(n, move || r.map_err(Failed::from))
                })
                .collect()
        }
    };
    libtest_mimic::run(&args, trials).exit();
}

/// Why the guest tests are ignored in this build (`cfg(no_guest)`, set by tests/build.rs).
fn gate() -> Option<&'static str> {
    if cfg!(no_guest) {
        Some(option_env!("SYSMON_NO_GUEST").unwrap_or("guest test: needs root, qemu, a kernel"))
    } else {
        None
    }
}

type Results = HashMap<usize, Result<Completion, String>>;

/// Boots the guest once, runs the steps `wanted` (indices into STEPS) in it, one binary run
/// per test; the outcome of each.
fn in_guest(wanted: &[usize]) -> Results {
    let all_fail = |why: String| wanted.iter().map(|&i| (i, Err(why.clone()))).collect();
    if let Some(why) = guest::unavailable(SERIES) {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let hint = if ci {
            "under CI"
        } else {
            "here (built where it could: tests/build.rs)"
        };
        return all_fail(format!("the {SERIES} guest cannot run {hint}: {why}"));
    }
    let kernel = Kernel::cached(SERIES).expect("checked by unavailable");
    let bins = match test_binaries() {
        Ok(b) => b,
        Err(e) => return all_fail(format!("{e:#}")),
    };
    let sysmon = sysmon_tests::sysmon_bin();
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut script = format!(
        "export CI=true SYSMON_BIN='{}' SYSMON_WAIT_SECS={GUEST_WAIT_SECS} HOME=/root USER=root \
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         cd '{}'\n",
        sysmon.display(),
        package.display()
    );
    for &i in wanted {
        let command = match STEPS[i] {
            Step::KernelCheck => "\"$SYSMON_BIN\" -nologo -kernelcheck".to_string(),
            Step::Test(file, test) => {
                let Some(bin) = bins.get(file) else {
                    return all_fail(format!("no test binary for {file}"));
                };
                format!(
                    "'{}' --exact {test} --test-threads=1 --color never",
                    bin.display()
                )
            }
        };
        script += &format!("echo '{START}{i}'\n{command}\necho \"{STATUS}$?\"\n");
    }
    let mut keep = vec![package.parent().unwrap().to_path_buf()];
    keep.extend(sysmon.parent().map(Path::to_path_buf));
    keep.extend(
        bins.values()
            .filter_map(|b| b.parent().map(Path::to_path_buf)),
    );
    keep.sort();
    keep.dedup();
    println!(
        "guest: booting Debian's {} under emulated qemu for {} tests",
        kernel.release,
        wanted.len()
    );
    let start = Instant::now();
    // (test index, when it started, when its binary ended)
    let mut times: Vec<(usize, Instant, Option<Instant>)> = Vec::new();
    let mut on_line = |line: &str| {
        println!("guest| {line}");
        if let Some(i) = line.strip_prefix(START).and_then(|i| i.parse().ok()) {
            times.push((i, Instant::now(), None));
        } else if line.starts_with(STATUS)
            && let Some(last) = times.last_mut()
        {
            last.2 = Some(Instant::now());
        }
    };
    let opts = guest::Options {
        keep,
        timeout: TIMEOUT,
    };
    let run = match guest::run(&kernel, &script, &opts, &mut on_line) {
        Ok(r) => r,
        Err(e) => return all_fail(format!("starting the guest: {e:#}")),
    };
    let took = start.elapsed();
    report_times(&kernel, &times, start, took);
    let mut results = Results::new();
    let chunks = per_test(&run.output);
    for &i in wanted {
        let Some((output, status)) = chunks.get(&i) else {
            results.insert(i, Err(guest_died(&run, "before this test started")));
            continue;
        };
        let test = match STEPS[i] {
            Step::KernelCheck => {
                println!(
                    "guest: sysmon -kernelcheck on {}:\n{output}",
                    kernel.release
                );
                let r = match status {
                    Some(0) => Ok(Completion::Completed),
                    Some(s) => Err(format!("sysmon -kernelcheck exited with {s}:\n{output}")),
                    None => Err(format!("{output}\n{}", guest_died(&run, "while it ran"))),
                };
                results.insert(i, r);
                continue;
            }
            Step::Test(_, test) => test,
        };
        let r = match (outcome(output, test), status) {
            (Outcome::Passed, Some(0)) => Ok(Completion::Completed),
            (Outcome::Ignored(why), Some(0)) => Ok(match why {
                Some(w) => Completion::ignored_with(w),
                None => Completion::ignored(),
            }),
            (_, None) => Err(format!(
                "{output}\n{}",
                guest_died(&run, "while this test ran")
            )),
            (Outcome::Missing, Some(s)) => Err(format!(
                "no result for {test} (the binary exited with {s}):\n{output}"
            )),
            _ => Err(output.clone()),
        };
        results.insert(i, r);
    }
    results
}

/// The output of each test's binary run and its exit status (None if the guest ended
/// first), by test index.
fn per_test(output: &str) -> HashMap<usize, (String, Option<i32>)> {
    let mut chunks = HashMap::new();
    let mut current: Option<(usize, String)> = None;
    for line in output.lines() {
        if let Some(i) = line.strip_prefix(START).and_then(|i| i.parse().ok()) {
            current = Some((i, String::new()));
        } else if let Some(s) = line.strip_prefix(STATUS) {
            if let Some((i, out)) = current.take() {
                chunks.insert(i, (out, s.trim().parse().ok()));
            }
        } else if let Some((_, out)) = &mut current {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some((i, out)) = current {
        chunks.insert(i, (out, None));
    }
    chunks
}

fn guest_died(run: &guest::Run, when: &str) -> String {
    let how = if run.timed_out {
        format!("was killed after {} minutes", TIMEOUT.as_secs() / 60)
    } else {
        "ended".to_string()
    };
    let lines: Vec<&str> = run.console.lines().collect();
    let tail = lines[lines.len().saturating_sub(100)..].join("\n");
    format!(
        "the guest {how} {when} (command status {:?}); its console:\n{tail}",
        run.status
    )
}

/// How long the boot and each test took: printed, never asserted.
fn report_times(
    kernel: &Kernel,
    times: &[(usize, Instant, Option<Instant>)],
    start: Instant,
    took: Duration,
) {
    println!("guest: {} times (emulated CPU):", kernel.release);
    if let Some((_, first, _)) = times.first() {
        println!(
            "guest:   {:>6.1} s  boot, until the first test starts",
            (*first - start).as_secs_f64()
        );
    }
    for (i, from, to) in times {
        let name = STEPS[*i].name();
        match to {
            Some(to) => println!("guest:   {:>6.1} s  {name}", (*to - *from).as_secs_f64()),
            None => println!("guest:          -  {name} (did not end)"),
        }
    }
    println!("guest:   {:>6.1} s  in all", took.as_secs_f64());
}

/// The kernel test binaries by test file name: from the file `$SYSMON_GUEST_TESTS` (lines
/// `name path`, written by `cargo xtask test` from cargo's build messages), else the newest
/// `<name>-<hash>` beside this binary (`cargo test --workspace` builds them all first).
fn test_binaries() -> anyhow::Result<HashMap<String, PathBuf>> {
    if let Some(file) = std::env::var_os("SYSMON_GUEST_TESTS") {
        let list = std::fs::read_to_string(&file)?;
        return Ok(list
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, p)| (n.to_string(), PathBuf::from(p)))
            .collect());
    }
    let me = std::env::current_exe()?;
    let deps = me.parent().unwrap();
    let mut found: HashMap<String, (std::time::SystemTime, PathBuf)> = HashMap::new();
    for file in STEPS.iter().filter_map(|s| match s {
        Step::Test(file, _) => Some(file),
        Step::KernelCheck => None,
    }) {
        for entry in std::fs::read_dir(deps)? {
            let path = entry?.path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let is_bin = name
                .strip_prefix(&format!("{file}-"))
                .is_some_and(|hash| hash.len() == 16 && !hash.contains('.'));
            if !is_bin {
                continue;
            }
            let modified = path.metadata()?.modified()?;
            if found.get(*file).is_none_or(|(t, _)| modified > *t) {
                found.insert(file.to_string(), (modified, path));
            }
        }
    }
    Ok(found.into_iter().map(|(n, (_, p))| (n, p)).collect())
}
