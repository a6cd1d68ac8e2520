//! Event 3, NetworkConnect, from a network record (TCP connect or accept).

use std::{
    fmt::Write,
    net::{Ipv4Addr, Ipv6Addr},
};

use sysmon_common::net::{AF_INET6, IPPROTO_TCP, NetRecord};

use super::{Event, schema};
use crate::enrich::Enrich;

pub fn build(ev: &mut Event, rec: &NetRecord, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::NETWORK_CONNECT).unwrap());
    let image = super::push_actor(ev, rec.header.tgid, rec.header.time_ns, cx);
    ev.push(&image);
    let user = cx.users.name(rec.uid).unwrap_or("");
    ev.push(user);
    ev.push(if rec.protocol == IPPROTO_TCP {
        "tcp"
    } else {
        "udp"
    });
    let v6 = rec.family == AF_INET6;
    ev.push(bool_text(rec.initiated != 0));
    for (addr, port) in [(&rec.saddr, rec.sport), (&rec.daddr, rec.dport)] {
        ev.push(bool_text(v6));
        write_ip(ev.buf(), addr, v6);
        ev.close();
        ev.push(""); // Hostname: no resolver lookups (as Sysmon for Linux)
        ev.push_fmt(format_args!("{port}"));
        ev.push(""); // PortName
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// IPv4 dotted; IPv6 as eight hex groups without `::` compression or leading zeros, as
/// Sysmon writes them (`0:0:0:0:0:0:0:1`).
fn write_ip(out: &mut String, addr: &[u8; 16], v6: bool) {
    if !v6 {
        let _ = write!(out, "{}", Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]));
        return;
    }
    for (i, g) in Ipv6Addr::from(*addr).segments().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{g:x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_sysmon_writes_them() {
        let v4 = |a: [u8; 4]| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a);
            b
        };
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        // (address bytes, IPv6, text)
        let cases = [
            (v4([127, 0, 0, 1]), false, "127.0.0.1"),
            (v4([10, 20, 0, 255]), false, "10.20.0.255"),
            (v6("::1"), true, "0:0:0:0:0:0:0:1"),
            (
                v6("fe80::a00:27ff:fe4e:66a1"),
                true,
                "fe80:0:0:0:a00:27ff:fe4e:66a1",
            ),
            (v6("::ffff:127.0.0.1"), true, "0:0:0:0:0:ffff:7f00:1"),
            (v6("2001:db8::"), true, "2001:db8:0:0:0:0:0:0"),
        ];
        for (addr, is6, want) in cases {
            let mut s = String::new();
            write_ip(&mut s, &addr, is6);
            assert_eq!(s, want);
        }
    }
}
