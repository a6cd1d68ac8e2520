//! The 16 filter conditions (spec §3.6, with our decisions in docs/config.md) and their
//! matching. Rule values are lower-cased once when compiled; matching folds the event's
//! field ASCII-case-insensitively in place, so it never allocates.

use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Is,
    IsNot,
    Contains,
    ContainsAny,
    IsAny,
    ContainsAll,
    Excludes,
    ExcludesAny,
    ExcludesAll,
    BeginWith,
    NotBeginWith,
    EndWith,
    NotEndWith,
    LessThan,
    MoreThan,
    Image,
}

/// Names in the order Sysmon lists them (manifest `<filters>`).
pub const CONDITIONS: [(Condition, &str); 16] = [
    (Condition::Is, "is"),
    (Condition::IsNot, "is not"),
    (Condition::Contains, "contains"),
    (Condition::ContainsAny, "contains any"),
    (Condition::IsAny, "is any"),
    (Condition::ContainsAll, "contains all"),
    (Condition::Excludes, "excludes"),
    (Condition::ExcludesAny, "excludes any"),
    (Condition::ExcludesAll, "excludes all"),
    (Condition::BeginWith, "begin with"),
    (Condition::NotBeginWith, "not begin with"),
    (Condition::EndWith, "end with"),
    (Condition::NotEndWith, "not end with"),
    (Condition::LessThan, "less than"),
    (Condition::MoreThan, "more than"),
    (Condition::Image, "image"),
];

impl Condition {
    /// Condition names are case-insensitive (`Contains` works as well as `contains`).
    pub fn parse(name: &str) -> Option<Condition> {
        CONDITIONS
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(c, _)| *c)
    }

    pub fn name(self) -> &'static str {
        CONDITIONS
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("is", |(_, n)| n)
    }

    fn is_list(self) -> bool {
        matches!(
            self,
            Condition::ContainsAny
                | Condition::IsAny
                | Condition::ContainsAll
                | Condition::ExcludesAny
                | Condition::ExcludesAll
        )
    }
}

/// A compiled filter value: the condition plus the rule value prepared once.
#[derive(Debug, Clone)]
pub struct Matcher {
    condition: Condition,
    /// ASCII lower-case.
    value: Box<str>,
    /// `;`-separated pieces of `value` for the list conditions; empty pieces dropped.
    pieces: Box<[Box<str>]>,
    /// `value` as an integer, for numeric `less than` / `more than`.
    number: Option<i128>,
    /// `image` compares with the last path component when the value has no separator.
    basename_only: bool,
}

impl Matcher {
    pub fn new(condition: Condition, value: &str) -> Matcher {
        let value = value.to_ascii_lowercase();
        let pieces = if condition.is_list() {
            value
                .split(';')
                .filter(|p| !p.is_empty())
                .map(Box::from)
                .collect()
        } else {
            Box::default()
        };
        Matcher {
            condition,
            number: integer(&value),
            basename_only: !value.contains(['\\', '/']),
            pieces,
            value: value.into_boxed_str(),
        }
    }

    pub fn condition(&self) -> Condition {
        self.condition
    }

    pub fn matches(&self, field: &str) -> bool {
        let f = field.as_bytes();
        let v = self.value.as_bytes();
        let pieces = || self.pieces.iter().map(|p| p.as_bytes());
        // A list with no pieces (`""`, `;;;`) never matches: there is nothing to look for.
        let has_pieces = !self.pieces.is_empty();
        match self.condition {
            Condition::Is => eq_ci(f, v),
            Condition::IsNot => !eq_ci(f, v),
            Condition::Contains => contains_ci(f, v),
            Condition::Excludes => !contains_ci(f, v),
            Condition::ContainsAny => pieces().any(|p| contains_ci(f, p)),
            Condition::IsAny => pieces().any(|p| eq_ci(f, p)),
            Condition::ContainsAll => has_pieces && pieces().all(|p| contains_ci(f, p)),
            Condition::ExcludesAny => has_pieces && !pieces().any(|p| contains_ci(f, p)),
            Condition::ExcludesAll => has_pieces && !pieces().all(|p| contains_ci(f, p)),
            Condition::BeginWith => starts_ci(f, v),
            Condition::NotBeginWith => !starts_ci(f, v),
            Condition::EndWith => ends_ci(f, v),
            Condition::NotEndWith => !ends_ci(f, v),
            Condition::LessThan => self.compare(field) == Ordering::Less,
            Condition::MoreThan => self.compare(field) == Ordering::Greater,
            Condition::Image => {
                let f = if self.basename_only { basename(f) } else { f };
                eq_ci(f, v)
            }
        }
    }

    /// field <=> value: numeric when both are integers, else Sysmon's upper-cased string order.
    fn compare(&self, field: &str) -> Ordering {
        if let (Some(n), Some(f)) = (self.number, integer(field)) {
            return f.cmp(&n);
        }
        let upper = |b: &u8| b.to_ascii_uppercase();
        field
            .as_bytes()
            .iter()
            .map(upper)
            .cmp(self.value.as_bytes().iter().map(upper))
    }
}

fn integer(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Part after the last `\` or `/` (Sysmon splits on `\` only; Linux paths need `/`).
fn basename(f: &[u8]) -> &[u8] {
    match f.iter().rposition(|b| *b == b'\\' || *b == b'/') {
        Some(i) => &f[i + 1..],
        None => f,
    }
}

/// `f` equals lower-case `v`, ignoring ASCII case.
fn eq_ci(f: &[u8], v: &[u8]) -> bool {
    f.len() == v.len() && f.iter().zip(v).all(|(a, b)| a.to_ascii_lowercase() == *b)
}

fn starts_ci(f: &[u8], v: &[u8]) -> bool {
    f.len() >= v.len() && eq_ci(&f[..v.len()], v)
}

fn ends_ci(f: &[u8], v: &[u8]) -> bool {
    f.len() >= v.len() && eq_ci(&f[f.len() - v.len()..], v)
}

fn contains_ci(f: &[u8], v: &[u8]) -> bool {
    let Some((&first, rest)) = v.split_first() else {
        return true;
    };
    if f.len() < v.len() {
        return false;
    }
    // Jump between candidate first bytes (either case) with memchr's SIMD search: long
    // command lines against many `contains` pieces dominate the cost of judging an event.
    let haystack = &f[..=f.len() - v.len()];
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), haystack)
        .any(|i| eq_ci(&f[i + 1..i + v.len()], rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for (c, n) in CONDITIONS {
            assert_eq!(Condition::parse(n), Some(c));
            assert_eq!(Condition::parse(&n.to_uppercase()), Some(c));
            assert_eq!(c.name(), n);
        }
        assert_eq!(Condition::parse("begins with"), None);
    }

    /// Our decisions where Sysmon differs (docs/config.md), plus edge cases.
    #[test]
    fn decisions_and_edges() {
        let cases: &[(Condition, &str, &str, bool)] = &[
            (Condition::Image, "bash", "/usr/bin/bash", true),
            (Condition::Image, "bash", "/usr/bin/bash/", false),
            (Condition::Image, "/usr/bin/bash", "/usr/bin/bash", true),
            (Condition::Image, "bin/bash", "/usr/bin/bash", false),
            (Condition::LessThan, "80", "1024", false),
            (Condition::LessThan, "1024", "80", true),
            (Condition::MoreThan, "1023", "8080", true),
            (Condition::MoreThan, "-5", "-7", false),
            (Condition::LessThan, "80", "abc", false),
            (Condition::ContainsAny, "a;", "xyz", false),
            (Condition::ContainsAny, "a;;b", "x;b", true),
            (Condition::ContainsAny, "a;;b", "x;c", false),
            (Condition::ContainsAll, ";", "x", false),
            (Condition::ExcludesAny, "", "x", false),
            (Condition::ExcludesAll, ";;", "x", false),
            (Condition::Contains, "", "x", true),
            (Condition::BeginWith, "", "x", true),
            (Condition::EndWith, "", "x", true),
            (Condition::Is, "", "-", false),
            (Condition::Is, "ÉTÉ", "ÉTÉ", true),
            (Condition::Contains, "é", "É", false),
            (Condition::EndWith, "long value", "value", false),
        ];
        for &(c, rule, field, want) in cases {
            assert_eq!(
                Matcher::new(c, rule).matches(field),
                want,
                "{} {rule:?} on {field:?}",
                c.name()
            );
        }
    }
}
