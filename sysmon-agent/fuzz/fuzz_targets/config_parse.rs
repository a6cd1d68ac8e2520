//! Any bytes: the config parser returns a Config or a ConfigError, never panics or hangs;
//! a Config that loads can be displayed and judges events without panicking.
//!
//! From sysmon-agent/: `cargo +nightly fuzz run config_parse -- -dict=fuzz/config.dict
//! -max_total_time=600 -timeout=10`. Seed `fuzz/corpus/config_parse/` with configs first
//! (configs/examples/*.xml, the real-world ones); the corpus is not committed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysmon_agent::events::{Event, schema::EVENTS};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = sysmon_agent::rules::parse_bytes(data, "fuzz.xml") else {
        return;
    };
    let _ = config.dump();
    for kind in EVENTS {
        let mut event = Event::new(kind);
        for (i, _) in kind.fields.iter().enumerate() {
            // Reuse the input as field values so matching sees interesting text.
            let s = String::from_utf8_lossy(
                &data[i.min(data.len())..(i * 7).min(data.len()).max(i.min(data.len()))],
            );
            event.push(&s);
        }
        let _ = config.rules.decide(&event);
        config.field_sizes.apply(&mut event);
    }
});
