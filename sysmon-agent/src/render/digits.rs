//! Numbers as text without `core::fmt`: every event carries a dozen of them (pids, GUIDs,
//! times), and the formatting machinery (argument tables, padding, one `write_str` per
//! piece) cost more than the digits themselves on the hot path.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `n` in decimal, as `{n}`.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_ascii(out, &buf[i..]);
}

/// `n` in decimal, as `{n}`.
pub fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// The last `width` decimal digits of `n`, zero-padded, as `{n:0width$}` for an `n` below
/// `10^width` (`width` at most 20).
pub fn push_padded(out: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while i > buf.len() - width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    push_ascii(out, &buf[i..]);
}

/// The low `digits` hex digits of `n`, lower case, zero-padded, as `{n:0digits$x}` for an
/// `n` that fits (`digits` at most 16).
pub fn push_hex(out: &mut String, n: u64, digits: usize) {
    let mut buf = [0u8; 16];
    for (k, b) in buf[..digits].iter_mut().enumerate() {
        *b = HEX[(n >> (4 * (digits - 1 - k)) & 15) as usize];
    }
    push_ascii(out, &buf[..digits]);
}

fn push_ascii(out: &mut String, digits: &[u8]) {
    // SAFETY: only ASCII digits are ever passed.
    unsafe { out.as_mut_vec() }.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_as_fmt() {
        let nums = [
            0u64,
            1,
            9,
            10,
            99,
            100,
            4_194_304,
            u32::MAX as u64,
            u64::MAX / 3,
            u64::MAX,
        ];
        for n in nums {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
            for i in [n as i64, -(n as i64), i64::MIN] {
                s.clear();
                push_i64(&mut s, i);
                assert_eq!(s, format!("{i}"));
            }
            for width in [2, 3, 4, 9] {
                let m = n % 10u64.pow(width as u32);
                s.clear();
                push_padded(&mut s, m, width);
                assert_eq!(s, format!("{m:0width$}"));
            }
            for digits in [2, 4, 8, 16] {
                let m = if digits == 16 {
                    n
                } else {
                    n & ((1 << (4 * digits)) - 1)
                };
                s.clear();
                push_hex(&mut s, m, digits);
                assert_eq!(s, format!("{m:0digits$x}"));
            }
        }
    }
}
