//! Reading a DNS response (RFC 1035) into what DnsQuery (22) reports: the question's name
//! and type, Sysmon's QueryStatus and QueryResults. Pure: bytes in, text out; anything that
//! is not a well-formed response is refused, whatever the bytes.

use std::{
    fmt::Write,
    net::{Ipv4Addr, Ipv6Addr},
};

/// A response, in the text Sysmon writes. Reused from message to message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Response {
    /// The question's name, without the root's dot (`www.example.com`).
    pub name: String,
    /// The question's type (1 A, 28 AAAA, ...).
    pub qtype: u16,
    /// Windows' DNS status: 0 success, `9000 + RCODE` for an error answer (9003 NXDOMAIN),
    /// 9501 (`DNS_INFO_NO_RECORDS`) for a success without answer records.
    pub status: u32,
    /// Every answer record in order, each ending in `;` (empty when there is none):
    /// `::ffff:1.2.3.4` for A, the IPv6 text for AAAA, `type:  5 name` for CNAME and
    /// other types (the name for name-valued types, else nothing after the number). No entry
    /// holds a `;` of its own (names escape it), so splitting on `;` gives exactly the
    /// answers.
    pub results: String,
}

/// Why bytes are not a DNS response we report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its header, question or records say.
    Truncated,
    /// A query, or an opcode other than QUERY.
    NotResponse,
    /// Not exactly one question.
    Questions,
    /// A label of a reserved kind, a pointer that does not point back, or a name over 255
    /// bytes.
    BadName,
    /// An A or AAAA record of the wrong length.
    BadRecord,
}

const HEADER: usize = 12;
/// Longest name on the wire (RFC 1035 3.1).
const NAME_MAX: usize = 255;
/// `DNS_INFO_NO_RECORDS`: Windows' status for a success without records.
pub const NO_RECORDS: u32 = 9501;
/// Windows' status for an error answer is this plus the RCODE.
pub const RCODE_BASE: u32 = 9000;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// Parses `msg`, a response as received. `cut` says that the datagram went on past `msg`
/// (our copy is bounded): records that run past its end are then left out instead of
/// making the whole message malformed.
pub fn parse(msg: &[u8], cut: bool, out: &mut Response) -> Result<(), Malformed> {
    out.name.clear();
    out.results.clear();
    let header = msg.get(..HEADER).ok_or(Malformed::Truncated)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 {
        return Err(Malformed::NotResponse);
    }
    if be16(msg, 4)? != 1 {
        return Err(Malformed::Questions);
    }
    let answers = be16(msg, 6)?;
    let mut at = name(msg, HEADER, &mut out.name)?;
    out.qtype = be16(msg, at)?;
    be16(msg, at + 2)?; // class
    at += 4;
    let rcode = u32::from(flags & 0xf);
    out.status = match (rcode, answers) {
        (0, 0) => NO_RECORDS,
        (0, _) => 0,
        (r, _) => RCODE_BASE + r,
    };
    let mut scratch = String::new();
    for _ in 0..answers {
        match record(msg, at, out, &mut scratch) {
            Ok(next) => at = next,
            Err(Malformed::Truncated) if cut => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One answer record at `at`, appended to `out.results`; returns where the next starts.
fn record(
    msg: &[u8],
    at: usize,
    out: &mut Response,
    scratch: &mut String,
) -> Result<usize, Malformed> {
    scratch.clear();
    let at = name(msg, at, scratch)?;
    let rtype = be16(msg, at)?;
    let len = be16(msg, at + 8)? as usize;
    let start = at + 10;
    let data = msg.get(start..start + len).ok_or(Malformed::Truncated)?;
    let r = &mut out.results;
    match rtype {
        TYPE_A => {
            let a: [u8; 4] = data.try_into().map_err(|_| Malformed::BadRecord)?;
            let _ = write!(r, "::ffff:{};", Ipv4Addr::from(a));
        }
        TYPE_AAAA => {
            let a: [u8; 16] = data.try_into().map_err(|_| Malformed::BadRecord)?;
            let _ = write!(r, "{};", Ipv6Addr::from(a));
        }
        _ => {
            let _ = write!(r, "type:  {rtype} ");
            // Where a name starts in the data of name-valued types: NS, CNAME, PTR, DNAME;
            // MX after its preference, SRV after priority, weight and port.
            let skip = match rtype {
                2 | 5 | 12 | 39 => Some(0),
                15 => Some(2),
                33 => Some(6),
                _ => None,
            };
            if let Some(skip) = skip {
                if len < skip + 1 {
                    return Err(Malformed::BadRecord);
                }
                scratch.clear();
                let end = name(msg, start + skip, scratch)?;
                if end > start + len {
                    return Err(Malformed::BadRecord);
                }
                r.push_str(scratch);
            }
            r.push(';');
        }
    }
    Ok(start + len)
}

/// Reads the (possibly compressed) name at `at` into `out` as dotted text; returns the
/// offset just past it where it started (a pointer ends it there). A pointer must point
/// before the label it ends, so that no chain of pointers can loop.
fn name(msg: &[u8], mut at: usize, out: &mut String) -> Result<usize, Malformed> {
    let mut end = None;
    let mut wire = 0usize;
    // Where the labels being read start: pointers must go strictly before it.
    let mut floor = at;
    loop {
        let len = *msg.get(at).ok_or(Malformed::Truncated)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok(end.unwrap_or(at + 1));
            }
            0x00 => {
                let label = msg.get(at + 1..at + 1 + len).ok_or(Malformed::Truncated)?;
                wire += len + 1;
                if wire + 1 > NAME_MAX {
                    return Err(Malformed::BadName);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(out, label);
                at += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(at + 1).ok_or(Malformed::Truncated)? as usize;
                let target = (len & 0x3f) << 8 | low;
                if target >= floor {
                    return Err(Malformed::BadName);
                }
                end.get_or_insert(at + 2);
                at = target;
                floor = target;
            }
            _ => return Err(Malformed::BadName),
        }
    }
}

/// Printable ASCII as is, any other byte as `\xNN`: a name is one line of plain text. So
/// are the bytes that have a meaning around it: `;` ends an entry of QueryResults (a label
/// `x;::ffff:10.0.0.1` must not add an address nobody answered), `.` inside a label would
/// read as a label boundary, and `\` starts an escape (so that the text reads back one
/// way only).
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        if b.is_ascii_graphic() && !matches!(b, b';' | b'.' | b'\\') {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

fn be16(msg: &[u8], at: usize) -> Result<u16, Malformed> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(Malformed::Truncated)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A name in wire form, uncompressed.
    pub fn wire_name(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            v.push(label.len() as u8);
            v.extend_from_slice(label.as_bytes());
        }
        v.push(0);
        v
    }

    /// A response: header (`rcode`, one question for `name`/`qtype`, `answers.len()`
    /// answers), question, then the records (type, rdata) each owned by the question's name
    /// through a pointer to offset 12.
    pub fn response(name: &str, qtype: u16, rcode: u16, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80 | rcode as u8, 0, 1];
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&wire_name(name));
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        for (t, data) in answers {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    fn parsed(msg: &[u8], cut: bool) -> Result<Response, Malformed> {
        let mut r = Response::default();
        parse(msg, cut, &mut r).map(|_| r)
    }

    #[test]
    fn well_formed_responses_in_sysmons_layout() {
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        // A CNAME whose target is compressed against the question's name.
        let mut cname = vec![3];
        cname.extend_from_slice(b"www");
        cname.extend_from_slice(&[0xc0, 12]);
        // (message, name, qtype, status, results)
        let cases: Vec<(Vec<u8>, &str, u16, u32, &str)> = vec![
            (
                response(
                    "example.com",
                    1,
                    0,
                    &[(1, vec![1, 2, 3, 4]), (1, vec![10, 0, 0, 9])],
                ),
                "example.com",
                1,
                0,
                "::ffff:1.2.3.4;::ffff:10.0.0.9;",
            ),
            (
                response("example.com", 28, 0, &[(28, v6.octets().to_vec())]),
                "example.com",
                28,
                0,
                "2001:db8::1;",
            ),
            (
                response(
                    "a.example.com",
                    1,
                    0,
                    &[(5, cname), (1, vec![127, 0, 0, 7])],
                ),
                "a.example.com",
                1,
                0,
                "type:  5 www.a.example.com;::ffff:127.0.0.7;",
            ),
            (
                response("nope.example", 1, 3, &[]),
                "nope.example",
                1,
                9003,
                "",
            ),
            (response("x.example", 1, 2, &[]), "x.example", 1, 9002, ""),
            (
                response("x.example", 28, 0, &[]),
                "x.example",
                28,
                NO_RECORDS,
                "",
            ),
            // MX: preference then a name; TXT: no name to show.
            (
                response(
                    "m.example",
                    15,
                    0,
                    &[
                        (15, [&[0, 10][..], &wire_name("mx.example")].concat()),
                        (16, b"\x02hi".to_vec()),
                    ],
                ),
                "m.example",
                15,
                0,
                "type:  15 mx.example;type:  16 ;",
            ),
        ];
        for (msg, name, qtype, status, results) in cases {
            let r = parsed(&msg, false).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(
                (r.name.as_str(), r.qtype, r.status, r.results.as_str()),
                (name, qtype, status, results)
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let good = response("example.com", 1, 0, &[(1, vec![1, 2, 3, 4])]);
        let with = |at: usize, b: u8| {
            let mut m = good.clone();
            m[at] = b;
            m
        };
        let name_end = 12 + wire_name("example.com").len();
        // A name that is a pointer to itself, and two pointers to each other.
        let mut self_loop = good[..12].to_vec();
        self_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let mut pair = response("a", 1, 0, &[]);
        pair.truncate(12);
        pair.extend_from_slice(&[1, b'a', 0xc0, 16, 0xc0, 14, 0, 1, 0, 1]);
        // A name of 300 bytes.
        let mut long = good[..12].to_vec();
        for _ in 0..5 {
            long.push(60);
            long.extend_from_slice(&[b'a'; 60]);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        // (message, why)
        let cases: Vec<(Vec<u8>, Malformed)> = vec![
            (vec![], Malformed::Truncated),
            (good[..11].to_vec(), Malformed::Truncated),
            (good[..name_end - 1].to_vec(), Malformed::Truncated),
            (good[..good.len() - 1].to_vec(), Malformed::Truncated),
            // Answer count says 2, there is one.
            (with(7, 2), Malformed::Truncated),
            (with(2, 0x01), Malformed::NotResponse),
            (with(2, 0x81 | 0x10), Malformed::NotResponse),
            (with(5, 0), Malformed::Questions),
            (with(5, 2), Malformed::Questions),
            (with(12, 0x40), Malformed::BadName),
            (with(12, 0x80), Malformed::BadName),
            (self_loop, Malformed::BadName),
            (pair, Malformed::BadName),
            (long, Malformed::BadName),
            // An A record of 5 bytes.
            (
                response("example.com", 1, 0, &[(1, vec![1, 2, 3, 4, 5])]),
                Malformed::BadRecord,
            ),
            // A CNAME whose name runs past its data.
            (
                response("example.com", 1, 0, &[(5, vec![3, b'a', b'b'])]),
                Malformed::Truncated,
            ),
        ];
        for (i, (msg, why)) in cases.into_iter().enumerate() {
            assert_eq!(parsed(&msg, false), Err(why), "case {i}");
        }
    }

    #[test]
    fn a_message_cut_by_our_copy_keeps_the_answers_before_the_cut() {
        let msg = response(
            "example.com",
            1,
            0,
            &[(1, vec![1, 2, 3, 4]), (1, vec![5, 6, 7, 8])],
        );
        let cut = &msg[..msg.len() - 2];
        assert_eq!(parsed(cut, true).unwrap().results, "::ffff:1.2.3.4;");
        assert_eq!(parsed(cut, false), Err(Malformed::Truncated));
    }

    /// A label may hold any byte: `;`, `.` and `\\` in it are escaped like unprintable
    /// bytes, so that QueryResults split on `;` gives exactly one entry per answer, and
    /// QueryName reads back one way only.
    #[test]
    fn labels_cannot_forge_entries() {
        // A name of one label per item, uncompressed.
        let labels = |items: &[&[u8]]| {
            let mut v = Vec::new();
            for l in items {
                v.push(l.len() as u8);
                v.extend_from_slice(l);
            }
            v.push(0);
            v
        };
        let forged = labels(&[b"x;::ffff:10.0.0.1", b"evil"]);
        // (answers, entries as a parser splits QueryResults)
        type Answers = Vec<(u16, Vec<u8>)>;
        let cases: Vec<(Answers, Vec<&str>)> = vec![
            (
                vec![(5, forged.clone()), (1, vec![192, 0, 2, 1])],
                vec![
                    "type:  5 x\\x3b::ffff:10\\x2e0\\x2e0\\x2e1.evil",
                    "::ffff:192.0.2.1",
                ],
            ),
            (
                vec![(12, forged.clone())],
                vec!["type:  12 x\\x3b::ffff:10\\x2e0\\x2e0\\x2e1.evil"],
            ),
            (
                vec![(2, labels(&[b";", b";;"])), (39, labels(&[b"a\\x3b"]))],
                vec!["type:  2 \\x3b.\\x3b\\x3b", "type:  39 a\\x5cx3b"],
            ),
            (
                vec![
                    (15, [&[0, 10][..], &labels(&[b"m;x"])].concat()),
                    (
                        33,
                        [&[0, 1, 0, 2, 0, 53][..], &labels(&[b"s;", b"t"])].concat(),
                    ),
                ],
                vec!["type:  15 m\\x3bx", "type:  33 s\\x3b.t"],
            ),
        ];
        for (answers, want) in cases {
            let msg = response("q.example", 1, 0, &answers);
            let r = parsed(&msg, false).unwrap();
            let entries: Vec<&str> = r.results.strip_suffix(';').unwrap().split(';').collect();
            assert_eq!(entries, want, "{}", r.results);
            assert_eq!(entries.len(), answers.len());
        }
        // The question's name is escaped the same way.
        let mut msg = response("q.example", 1, 0, &[]);
        msg[13] = b';';
        assert_eq!(parsed(&msg, false).unwrap().name, "\\x3b.example");
    }

    #[test]
    fn odd_bytes_in_names_are_escaped() {
        let mut msg = response("example.com", 1, 0, &[]);
        msg[13] = 0xff; // first byte of "example"
        msg[14] = b'\n';
        let r = parsed(&msg, false).unwrap();
        assert!(r.name.starts_with("\\xff\\x0aample.com"), "{}", r.name);
        assert!(r.name.ends_with("ample.com"), "{}", r.name);
        assert!(!r.name.contains('\n'));
    }
}
