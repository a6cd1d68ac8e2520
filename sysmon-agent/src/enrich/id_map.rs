//! Maps keyed by pid or uid with a multiplicative hash instead of SipHash: a lookup per event
//! in the process cache and the user names, where SipHash was a tenth of the agent's time.
//!
//! SipHash guards against keys chosen to collide; pids and uids are handed out by the
//! kernel and the administrator, within small ranges, so nobody gets to choose many keys
//! that collide. A multiply by an odd constant maps distinct low bits (the bucket index) to
//! distinct low bits, so consecutive pids land in distinct buckets, and mixes the high bits
//! (hashbrown's control byte). Keys an attacker controls (file identities) keep SipHash.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

/// A `HashMap` keyed by a pid or uid.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Multiply-rotate (as rustc's FxHasher) over the key's integers.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_pids_spread_over_buckets() {
        // The low bits pick the bucket: 1024 consecutive pids, 1024 distinct low 10 bits.
        let low: std::collections::HashSet<u64> = (300_000u32..301_024)
            .map(|pid| {
                let mut h = IdHasher::default();
                h.write_u32(pid);
                h.finish() & 1023
            })
            .collect();
        assert_eq!(low.len(), 1024);
        let mut m: IdMap<u32, u32> = IdMap::default();
        for pid in 0..10_000 {
            m.insert(pid, pid * 2);
        }
        assert!((0..10_000).all(|pid| m[&pid] == pid * 2));
    }
}
