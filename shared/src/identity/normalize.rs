//! What counts as an identifier, and what is junk typed at a counter.
//!
//! Phones arrive as `+86 138 0013 8001`, `138-0013-8001`, `8613800138001`
//! or `13800138001`; all of these are one mainland mobile, `1[3-9]` and nine
//! more digits. Anything else in the phone field is refused, never matched:
//! placeholders (`null`, `-`, `anonymous`, `0`), strings of zeros, and
//! numbers that are not mobiles — chiefly the store's own landline
//! (`0571…`), which a cashier types when the customer gives none, so it is
//! shared by strangers at that store.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An 11-digit mainland mobile number, `1[3-9]\d{9}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mobile(String);

impl Mobile {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a non-empty identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Junk {
    /// A word standing for "none": `null`, `-`, `anonymous`, `无`, …
    Placeholder,
    /// Only zeros (`0`, `00000000000`) or one digit repeated.
    Zeros,
    /// Digits, but not a mainland mobile (a landline such as the store's own
    /// counter phone, a short or long number).
    NotMobile,
    /// Letters or symbols where a phone number was expected.
    NotANumber,
    /// A well-known stand-in number (`13800138000`, the operator's own
    /// service line, typed when a customer gives no number).
    KnownFake,
}

/// What the phone field of a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneReading {
    Absent,
    Mobile(Mobile),
    Junk(Junk),
}

const PLACEHOLDERS: [&str; 14] = [
    "null",
    "none",
    "nil",
    "n/a",
    "na",
    "-",
    "--",
    "anonymous",
    "unknown",
    "undefined",
    "无",
    "匿名",
    "未知",
    "空",
];

const KNOWN_FAKE: [&str; 2] = ["13800138000", "13888888888"];

fn is_placeholder(s: &str) -> bool {
    PLACEHOLDERS.iter().any(|p| s.eq_ignore_ascii_case(p)) || s.chars().all(|c| c == '-')
}

/// Reads a phone field: separators (spaces, `-`, `.`, brackets) dropped, a
/// `+86` / `0086` / `86` country prefix dropped, then accepted only as a
/// mainland mobile.
pub fn read_phone(raw: &str) -> PhoneReading {
    let s = raw.trim();
    if s.is_empty() {
        return PhoneReading::Absent;
    }
    if is_placeholder(s) {
        return PhoneReading::Junk(Junk::Placeholder);
    }
    let mut digits = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' | '\u{3000}' => {}
            _ => return PhoneReading::Junk(Junk::NotANumber),
        }
    }
    if digits.is_empty() {
        return PhoneReading::Junk(Junk::NotANumber);
    }
    if digits.bytes().all(|b| b == b'0') {
        return PhoneReading::Junk(Junk::Zeros);
    }
    let national = if digits.len() == 15 && digits.starts_with("0086") {
        &digits[4..]
    } else if digits.len() == 13 && digits.starts_with("86") {
        &digits[2..]
    } else {
        &digits[..]
    };
    let b = national.as_bytes();
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    if !mobile {
        return PhoneReading::Junk(Junk::NotMobile);
    }
    if KNOWN_FAKE.contains(&national) || b[1..].iter().all(|d| *d == b[1]) {
        return PhoneReading::Junk(if b[1..].iter().all(|d| *d == b'0') {
            Junk::Zeros
        } else {
            Junk::KnownFake
        });
    }
    PhoneReading::Mobile(Mobile(national.to_owned()))
}

/// Reads an opaque identifier (openid, unionid, member card, nickname):
/// trimmed; `None` when absent or a placeholder (`null`, `-`, `0`, …), so a
/// placeholder is never a key two records can share.
pub fn read_token(raw: &str) -> Option<&str> {
    let s = raw.trim();
    if s.is_empty() || is_placeholder(s) || s.bytes().all(|b| b == b'0') {
        None
    } else {
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mobile(s: &str) -> Option<String> {
        match read_phone(s) {
            PhoneReading::Mobile(m) => Some(m.0),
            _ => None,
        }
    }

    #[test]
    fn every_written_form_of_one_mobile_reads_the_same() {
        for raw in [
            "13812345678",
            "+86 138 1234 5678",
            "138-1234-5678",
            "8613812345678",
            "+8613812345678",
            "008613812345678",
            " 138 1234 5678 ",
            "(138)1234-5678",
        ] {
            assert_eq!(mobile(raw).as_deref(), Some("13812345678"), "{raw}");
        }
    }

    #[test]
    fn junk_is_refused_with_its_kind() {
        let cases = [
            ("0", Junk::Zeros),
            ("00000000000", Junk::Zeros),
            ("null", Junk::Placeholder),
            ("NULL", Junk::Placeholder),
            ("-", Junk::Placeholder),
            ("anonymous", Junk::Placeholder),
            ("无", Junk::Placeholder),
            ("057117784483", Junk::NotMobile),
            ("12812345678", Junk::NotMobile),
            ("1381234567", Junk::NotMobile),
            ("abc", Junk::NotANumber),
            ("138x1234x5678", Junk::NotANumber),
            ("13800138000", Junk::KnownFake),
            ("13333333333", Junk::KnownFake),
        ];
        for (raw, kind) in cases {
            assert_eq!(read_phone(raw), PhoneReading::Junk(kind), "{raw}");
        }
        assert_eq!(read_phone("  "), PhoneReading::Absent);
    }

    #[test]
    fn placeholder_tokens_are_absent() {
        for raw in ["", " ", "null", "-", "0", "000", "anonymous", "None"] {
            assert_eq!(read_token(raw), None, "{raw:?}");
        }
        assert_eq!(read_token(" oAbc "), Some("oAbc"));
    }
}
