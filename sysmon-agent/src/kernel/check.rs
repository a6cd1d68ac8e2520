//! `sysmon -kernelcheck`: whether every program loads on the running kernel, and how close
//! each comes to the verifier's limits. Programs are verified, never attached, so the check
//! records nothing and can run beside a running agent.

use std::path::Path;

use anyhow::Result;
use aya::programs::Program;

use super::{
    OBJECT,
    load::{self, Options},
    sensors::{describe, last_lines},
    stack::{self, Stack},
};

/// The verifier's limit on instructions processed for one program (since 5.2).
pub const INSN_LIMIT: u32 = 1_000_000;
/// Our own bound: half the limit, so that an older verifier, which explores more states
/// than the newest (6.1 processed 2.3 times as many for the same program), still passes.
pub const INSN_BUDGET: u32 = INSN_LIMIT / 2;

/// One program as the running kernel verified it.
pub struct Row {
    pub name: String,
    /// Instructions the verifier processed (`None`: kernel before 5.16 does not say), or why
    /// it refused the program.
    pub verified: Result<Option<u32>, String>,
    pub stack: Stack,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.stack.combined <= stack::LIMIT
            && matches!(self.verified, Ok(n) if n.is_none_or(|n| n <= INSN_BUDGET))
    }
}

/// Verifies every program of the object; the rows in name order, and what the kernel lacks.
pub fn run(btf: Option<&Path>) -> Result<(Vec<Row>, Option<String>)> {
    let stacks = stack::of_object(OBJECT)?;
    let (mut ebpf, gaps) = load::open(&Options { btf, active: &[] })?;
    let mut rows = Vec::new();
    for (name, stack) in stacks {
        let verified = match ebpf.program_mut(&name) {
            Some(p) => verify(p),
            None => Err("not in the object".into()),
        };
        rows.push(Row {
            name,
            verified,
            stack,
        });
    }
    Ok((rows, describe(&gaps)))
}

fn verify(p: &mut Program) -> Result<Option<u32>, String> {
    let loaded = match p {
        Program::TracePoint(p) => p.load().and_then(|()| p.info()),
        Program::RawTracePoint(p) => p.load().and_then(|()| p.info()),
        other => return Err(format!("unexpected program type {:?}", other.prog_type())),
    };
    match loaded {
        Ok(info) => Ok(info.verified_instruction_count()),
        // The verifier's last lines say why; the whole log can be thousands of lines.
        Err(e) => Err(last_lines(&format!("{e}"), 3)),
    }
}

/// The report: one line per program, then a verdict.
pub fn render(rows: &[Row], kernel: &str, missing: Option<&str>) -> String {
    let mut out = format!(
        "kernel {kernel}: {} programs; limits: {INSN_BUDGET} verified instructions (half the \
         verifier's {INSN_LIMIT}), {} bytes of stack across calls\n",
        rows.len(),
        stack::LIMIT
    );
    out += &format!(
        "{:<22} {:>12} {:>7}  {:<18} {:>8}\n",
        "program", "verified", "% limit", "stack frames", "combined"
    );
    for r in rows {
        let frames: Vec<String> = r.stack.chain.iter().map(u32::to_string).collect();
        let (insns, share) = match &r.verified {
            Ok(Some(n)) => (
                n.to_string(),
                format!("{:.1}", f64::from(*n) * 100.0 / f64::from(INSN_LIMIT)),
            ),
            Ok(None) => ("?".into(), "?".into()),
            Err(_) => ("refused".into(), "-".into()),
        };
        let mark = if r.ok() { "" } else { "  <-- over" };
        out += &format!(
            "{:<22} {insns:>12} {share:>7}  {:<18} {:>8}{mark}\n",
            r.name,
            frames.join("+"),
            r.stack.combined,
        );
        if let Err(why) = &r.verified {
            out += &format!("    refused: {why}\n");
        }
    }
    let peak_insns = rows
        .iter()
        .filter_map(|r| {
            r.verified
                .as_ref()
                .ok()
                .copied()
                .flatten()
                .map(|n| (n, &r.name))
        })
        .max();
    let peak_stack = rows.iter().map(|r| (r.stack.combined, &r.name)).max();
    if let Some((n, name)) = peak_insns {
        out += &format!("most instructions: {name} {n} of {INSN_BUDGET}\n");
    }
    if let Some((n, name)) = peak_stack {
        out += &format!("deepest stack: {name} {n} of {}\n", stack::LIMIT);
    }
    if let Some(line) = missing {
        out += &format!("{line}\n");
    }
    let bad: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.name.as_str())
        .collect();
    if bad.is_empty() {
        out += "every program loads within the limits\n";
    } else {
        out += &format!("over a limit or refused: {}\n", bad.join(", "));
    }
    out
}
