//! The sysmonLogView layout used by `-t`: `Event <NAME>` then one `\t<Field>: <value>` line
//! per field.

use crate::events::Event;

pub fn render(out: &mut String, ev: &Event) {
    out.push_str("Event ");
    out.push_str(ev.kind().name);
    out.push('\n');
    for (name, value) in ev.pairs() {
        out.push('\t');
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
}
