//! Events about the agent itself: 4 (service state), 16 (configuration), 255 (error).

use super::{Event, schema};
use crate::enrich::clock;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn start(ev: &mut Event, id: u16) {
    ev.reset(schema::by_id(id).unwrap());
    clock::write_utc_time(ev.buf(), clock::wall_ns());
    ev.close();
}

/// Event 4: `Started` or `Stopped`.
pub fn state(ev: &mut Event, state: &str) {
    start(ev, schema::SERVICE_STATE);
    ev.push(state);
    ev.push(VERSION);
    ev.push(schema::SCHEMA_VERSION);
}

/// Event 16: the configuration in force and its hash (`SHA256=…`, or `-` for defaults).
pub fn config(ev: &mut Event, configuration: &str, hash: Option<&str>) {
    start(ev, schema::CONFIG_CHANGE);
    ev.push(configuration);
    ev.push(hash.unwrap_or(""));
}

/// Event 255: `id` names the source (e.g. `KernelDrops`), `description` says what happened.
pub fn error(ev: &mut Event, id: &str, description: &str) {
    start(ev, schema::ERROR);
    ev.push(id);
    ev.push(description);
}
