//! Any bytes: the DNS parser returns a response or says why not, never panics or hangs; a
//! response's text is bounded by the message (no runaway from compression pointers).
//!
//! From sysmon-agent/: `cargo +nightly fuzz run dns_parse -- -max_len=512
//! -max_total_time=600`. The corpus is not committed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysmon_agent::events::dns::{Response, parse};

fuzz_target!(|data: &[u8]| {
    let mut r = Response::default();
    for cut in [false, true] {
        if parse(data, cut, &mut r).is_ok() {
            // Every name is at most 255 wire bytes, written at most 4 times as long
            // (`\xNN`), and every record takes at least 11 bytes of the message.
            assert!(r.name.len() <= 4 * 255);
            assert!(r.results.len() <= (data.len() / 11 + 1) * (4 * 255 + 16));
        }
    }
});
