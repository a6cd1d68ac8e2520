//! The stack each program needs, read from the object before any kernel sees it.
//!
//! Every kernel without private BPF stacks (all before 6.13, and 6.13+ in most setups)
//! refuses a program whose frames along any chain of BPF-to-BPF calls add up to more than
//! 512 bytes, each frame rounded up to 32 bytes (6.1; newer kernels round to 16 when the
//! program is JITed). The verifier reports the depth only when it refuses a program, so the
//! depth is computed here the way the verifier counts it: a frame reaches as deep as the
//! lowest stack slot its code touches or hands to a helper (`r10` minus an offset), and a
//! chain adds the frames of the calls it makes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::{Context, Result};
use aya_obj::{Object, generated::bpf_insn};

/// The limit on the combined stack of a chain of calls.
pub const LIMIT: u32 = 512;
/// The strictest rounding of a frame (6.1 and every kernel that does not JIT).
const ROUND: u32 = 32;

/// One program's stack: each frame in program order (the program first, then every function
/// it calls, as linked), and the deepest chain.
#[derive(Debug, PartialEq, Eq)]
pub struct Stack {
    pub frames: Vec<u32>,
    /// The frames of the deepest chain, outermost first.
    pub chain: Vec<u32>,
    /// Their sum, each rounded up as the strictest kernel does.
    pub combined: u32,
}

/// Every program of `object` (an eBPF ELF), by name, with its stack.
pub fn of_object(object: &[u8]) -> Result<BTreeMap<String, Stack>> {
    let mut obj = Object::parse(object).context("parsing the eBPF object")?;
    let text: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_calls(&text)
        .context("linking the eBPF object's calls")?;
    let mut out = BTreeMap::new();
    for (name, prog) in &obj.programs {
        let f = &obj.functions[&prog.function_key()];
        let insns: Vec<Insn> = f.instructions.iter().map(Insn::from).collect();
        out.insert(name.clone(), of_program(&insns));
    }
    Ok(out)
}

/// The fields of an instruction this analysis reads.
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl From<&bpf_insn> for Insn {
    fn from(i: &bpf_insn) -> Self {
        Insn {
            code: i.code,
            dst: i.dst_reg(),
            src: i.src_reg(),
            off: i.off,
            imm: i.imm,
        }
    }
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const CLASS: u8 = 0x07;
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const OP: u8 = 0xf0;
const SOURCE_REG: u8 = 0x08;
const MOV: u8 = 0xb0;
const ADD: u8 = 0x00;
const SUB: u8 = 0x10;
const CALL: u8 = 0x80;
const IMM64: u8 = 0x18;
const PSEUDO_CALL: u8 = 1;
/// `ld_imm64` of a function's address: a callback handed to a helper (`bpf_loop`), which
/// the verifier counts as a call made where its address is taken.
const PSEUDO_FUNC: u8 = 4;
const FP: u8 = 10;

/// The stack of one linked program: subprograms start at 0 and at every call's or
/// callback's target.
pub fn of_program(insns: &[Insn]) -> Stack {
    let mut starts = BTreeSet::from([0usize]);
    for (pc, i) in insns.iter().enumerate() {
        if let Some(t) = call_target(pc, i) {
            starts.insert(t);
        }
    }
    let starts: Vec<usize> = starts.into_iter().collect();
    let bounds: Vec<(usize, usize)> = starts
        .iter()
        .enumerate()
        .map(|(n, s)| (*s, starts.get(n + 1).copied().unwrap_or(insns.len())))
        .collect();
    let frames: Vec<u32> = bounds.iter().map(|(s, e)| frame(&insns[*s..*e])).collect();
    let callees: Vec<Vec<usize>> = bounds
        .iter()
        .map(|(s, e)| {
            (*s..*e)
                .filter_map(|pc| call_target(pc, &insns[pc]))
                .filter_map(|t| starts.binary_search(&t).ok())
                .collect()
        })
        .collect();
    let mut memo = vec![None; frames.len()];
    let chain = deepest(0, &frames, &callees, &mut memo, &mut Vec::new());
    let combined = chain.iter().map(|f| round(*f)).sum();
    Stack {
        frames,
        chain,
        combined,
    }
}

fn round(frame: u32) -> u32 {
    frame.max(1).div_ceil(ROUND) * ROUND
}

/// Where a call, or the address of a callback, leads.
fn call_target(pc: usize, i: &Insn) -> Option<usize> {
    let call = i.code == JMP | CALL && i.src == PSEUDO_CALL;
    let callback = i.code == LD | IMM64 && i.src == PSEUDO_FUNC;
    (call || callback).then(|| (pc as i64 + i.imm as i64 + 1) as usize)
}

/// The deepest chain of frames from subprogram `n` (BPF has no recursion; a cycle, which
/// the verifier would refuse anyway, is cut).
fn deepest(
    n: usize,
    frames: &[u32],
    callees: &[Vec<usize>],
    memo: &mut Vec<Option<Vec<u32>>>,
    path: &mut Vec<usize>,
) -> Vec<u32> {
    if let Some(done) = &memo[n] {
        return done.clone();
    }
    path.push(n);
    let mut best: Vec<u32> = Vec::new();
    for &c in &callees[n] {
        if path.contains(&c) {
            continue;
        }
        let sub = deepest(c, frames, callees, memo, path);
        let total = |v: &[u32]| v.iter().map(|f| round(*f)).sum::<u32>();
        if total(&sub) > total(&best) {
            best = sub;
        }
    }
    path.pop();
    let mut chain = vec![frames[n]];
    chain.extend(best);
    memo[n] = Some(chain.clone());
    chain
}

/// How deep below the frame pointer one subprogram's code reaches: through `r10` itself
/// and through registers holding `r10` plus a constant (a buffer handed to a helper reaches
/// from that address upwards, so its start is the depth).
fn frame(insns: &[Insn]) -> u32 {
    let mut regs: [Option<i64>; 11] = [None; 11];
    let mut deepest = 0i64;
    let mut reach = |at: i64| deepest = deepest.max(-at);
    let mut pc = 0;
    while pc < insns.len() {
        let i = insns[pc];
        regs[FP as usize] = Some(0);
        let (dst, src) = (i.dst as usize % 11, i.src as usize % 11);
        match i.code & CLASS {
            LDX => {
                if let Some(k) = regs[src] {
                    reach(k + i.off as i64);
                }
                regs[dst] = None;
            }
            ST | STX => {
                if let Some(k) = regs[dst] {
                    reach(k + i.off as i64);
                }
            }
            ALU64 => {
                let by_reg = i.code & SOURCE_REG != 0;
                regs[dst] = match (i.code & OP, by_reg) {
                    (MOV, true) => regs[src],
                    (ADD, false) => regs[dst].map(|k| k + i.imm as i64),
                    (SUB, false) => regs[dst].map(|k| k - i.imm as i64),
                    _ => None,
                };
                if let Some(k) = regs[dst] {
                    reach(k);
                }
            }
            JMP if i.code == JMP | CALL => regs[..6].fill(None),
            LD => {
                regs[dst] = None;
                if i.code == LD | IMM64 {
                    pc += 1;
                }
            }
            JMP => {}
            _ => regs[dst] = None,
        }
        pc += 1;
    }
    deepest.clamp(0, u32::MAX as i64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }
    const STX_DW: u8 = STX | 0x18 | 0x60;
    const LDX_W: u8 = LDX | 0x60;
    const EXIT: u8 = JMP | 0x90;

    #[test]
    fn frames_follow_the_deepest_slot_touched() {
        // (instructions, frame)
        let cases: &[(&[Insn], u32)] = &[
            (&[insn(EXIT, 0, 0, 0, 0)], 0),
            // *(u64 *)(r10 - 8) = r1
            (&[insn(STX_DW, FP, 1, -8, 0), insn(EXIT, 0, 0, 0, 0)], 8),
            // r1 = r10; r1 += -408; call helper (a buffer handed over)
            (
                &[
                    insn(ALU64 | MOV | SOURCE_REG, 1, FP, 0, 0),
                    insn(ALU64 | ADD, 1, 0, 0, -408),
                    insn(JMP | CALL, 0, 0, 0, 4),
                    insn(EXIT, 0, 0, 0, 0),
                ],
                408,
            ),
            // r2 = r10; r2 += -64; r0 = *(u32 *)(r2 - 16)
            (
                &[
                    insn(ALU64 | MOV | SOURCE_REG, 2, FP, 0, 0),
                    insn(ALU64 | ADD, 2, 0, 0, -64),
                    insn(LDX_W, 0, 2, -16, 0),
                    insn(EXIT, 0, 0, 0, 0),
                ],
                80,
            ),
            // A helper call clobbers r1-r5: r1 no longer points at the stack after it.
            (
                &[
                    insn(ALU64 | MOV | SOURCE_REG, 1, FP, 0, 0),
                    insn(ALU64 | ADD, 1, 0, 0, -16),
                    insn(JMP | CALL, 0, 0, 0, 4),
                    insn(STX_DW, 1, 2, -100, 0),
                    insn(EXIT, 0, 0, 0, 0),
                ],
                16,
            ),
        ];
        for (insns, want) in cases {
            assert_eq!(of_program(insns).frames, vec![*want], "{insns:?}");
        }
    }

    #[test]
    fn chains_add_frames_rounded_to_32() {
        // main (136) calls f (408) at pc 3, f calls g (0) at pc 5.
        let insns = [
            insn(STX_DW, FP, 1, -136, 0),
            insn(JMP | CALL, 0, PSEUDO_CALL, 0, 1),
            insn(EXIT, 0, 0, 0, 0),
            insn(STX_DW, FP, 1, -408, 0),
            insn(JMP | CALL, 0, PSEUDO_CALL, 0, 1),
            insn(EXIT, 0, 0, 0, 0),
            insn(EXIT, 0, 0, 0, 0),
        ];
        let s = of_program(&insns);
        assert_eq!(s.frames, vec![136, 408, 0]);
        assert_eq!(s.chain, vec![136, 408, 0]);
        // 160 + 416 (the 576 at which 6.1 refused recv_exit) + 32.
        assert_eq!(s.combined, 608);
    }

    #[test]
    fn a_callback_counts_as_a_call_where_its_address_is_taken() {
        // main (64) takes cb's address (pc 1, two slots) for a helper; cb (200) follows.
        let insns = [
            insn(STX_DW, FP, 1, -64, 0),
            insn(LD | IMM64, 2, PSEUDO_FUNC, 0, 3),
            insn(0, 0, 0, 0, 0),
            insn(JMP | CALL, 0, 0, 0, 181),
            insn(EXIT, 0, 0, 0, 0),
            insn(STX_DW, FP, 1, -200, 0),
            insn(EXIT, 0, 0, 0, 0),
        ];
        let s = of_program(&insns);
        assert_eq!(s.frames, vec![64, 200]);
        assert_eq!(s.combined, 64 + 224);
    }

    /// The programs as built: none may need more stack than the strictest kernel allows.
    #[test]
    fn every_program_fits_the_portable_stack_limit() {
        if super::super::OBJECT.is_empty() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "built without the eBPF object under CI");
            return;
        }
        let stacks = of_object(super::super::OBJECT).unwrap();
        for (n, s) in &stacks {
            eprintln!("{n:24} {:?} {}", s.chain, s.combined);
        }
        assert!(stacks.len() > 30, "{} programs", stacks.len());
        let over: Vec<_> = stacks
            .iter()
            .filter(|(_, s)| s.combined > LIMIT)
            .map(|(n, s)| format!("{n}: {:?} = {}", s.chain, s.combined))
            .collect();
        assert!(over.is_empty(), "over {LIMIT} bytes of stack: {over:#?}");
    }
}
