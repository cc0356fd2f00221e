//! The keyed hash under which a store keeps a member's phone (DESIGN.md §8:
//! stores keep only what a counter needs).
//!
//! The key is **one per chain**: the hub creates it (`member.key` in its data
//! directory) and hands it to every store with its identity at enrolment
//! (`linli-hub issue-cert` writes `member.key` beside the certificate). With
//! one key the hub can compute the hash of every phone it knows once and tie a
//! counter sale's `member_hash` to a customer; with a key per store it would
//! need one hash per (store, phone), and a store's own key would have to
//! travel to the hub anyway. A stolen store database holds the key and the
//! hashes together either way (11-digit phones are few enough to try all),
//! so a per-store key bought no secrecy. Why, in full: docs/DECISIONS.md.
//!
//! Documents and store tables name a customer by this hash and, where a
//! person at the counter has to recognise them, by the masked phone
//! ([`mask_phone`]); never by the phone itself (automerge keeps every
//! change, so a phone written once could not be erased). The hash is
//! pseudonymous, not anonymous: whoever holds the key can try every mobile
//! number and re-identify it, which is why the key never leaves the chain.

use hmac::digest::KeyInit;
use hmac::{Mac, SimpleHmac};
use sha2::Sha256;

/// HMAC-SHA256 of the 11-digit phone under the chain's member key, in hex.
pub fn member_hash(key: &[u8; 32], phone: &str) -> String {
    // HMAC pads a key shorter than the hash's 64-byte block with zeros, so
    // the padded key is the same key, and a block-sized key is never refused
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <SimpleHmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(phone.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The phone as the chain hashes it: surrounding space dropped, then an
/// 11-digit mobile starting with 1 (what the store's counter and the hub's
/// order checks accept), else `None`. Store and hub normalise with this one
/// function, so they hash the same string for the same customer.
pub fn normal_phone(raw: &str) -> Option<String> {
    let p = raw.trim();
    (p.len() == 11 && p.starts_with('1') && p.bytes().all(|b| b.is_ascii_digit()))
        .then(|| p.to_owned())
}

/// The phone as a person at the counter sees it: `138****1234` (the last
/// four digits are what a customer who lost the code is found by).
/// Anything that is not an 11-digit phone shows as `****`.
pub fn mask_phone(phone: &str) -> String {
    if phone.len() == 11 && phone.is_ascii() {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "****".into()
    }
}

/// The member behind a fact: its hash when the fact carries one, else the
/// hash of the plain phone that facts written before 2026-12-02 carried
/// (normalised first); `None` when neither names a member.
pub fn hash_or_legacy(key: &[u8; 32], hash: &str, legacy_phone: &str) -> Option<String> {
    if !hash.is_empty() {
        return Some(hash.to_owned());
    }
    normal_phone(legacy_phone).map(|p| member_hash(key, &p))
}

/// Reads a member key written as 64 hex digits (surrounding space ignored).
pub fn parse_key(hex_key: &str) -> Option<[u8; 32]> {
    hex::decode(hex_key.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_hash_other_key_other_hash() {
        let a = [7u8; 32];
        let b = [8u8; 32];
        assert_eq!(
            member_hash(&a, "13800138000"),
            member_hash(&a, "13800138000")
        );
        assert_ne!(
            member_hash(&a, "13800138000"),
            member_hash(&b, "13800138000")
        );
        assert_ne!(
            member_hash(&a, "13800138000"),
            member_hash(&a, "13800138001")
        );
        assert_eq!(member_hash(&a, "13800138000").len(), 64);
    }

    #[test]
    fn padded_key_is_the_same_hmac() {
        let key = [0xa5u8; 32];
        let Ok(mut mac) = <SimpleHmac<Sha256> as Mac>::new_from_slice(&key) else {
            panic!("hmac takes any key")
        };
        mac.update(b"13912345678");
        assert_eq!(
            member_hash(&key, "13912345678"),
            hex::encode(mac.finalize().into_bytes())
        );
    }

    #[test]
    fn phones_normalise_and_mask() {
        assert_eq!(
            normal_phone(" 13912345678 ").as_deref(),
            Some("13912345678")
        );
        assert_eq!(normal_phone("1391234567"), None);
        assert_eq!(normal_phone("23912345678"), None);
        assert_eq!(normal_phone("139-1234-567"), None);
        assert_eq!(mask_phone("13912345678"), "139****5678");
        assert_eq!(mask_phone("139"), "****");
        let key = [1u8; 32];
        let h = member_hash(&key, "13912345678");
        assert_eq!(hash_or_legacy(&key, &h, "").as_deref(), Some(h.as_str()));
        assert_eq!(
            hash_or_legacy(&key, "", " 13912345678").as_deref(),
            Some(h.as_str())
        );
        assert_eq!(hash_or_legacy(&key, "", "junk"), None);
    }

    #[test]
    fn keys_parse_from_hex() {
        assert_eq!(
            parse_key(&format!("{}\n", hex::encode([3u8; 32]))),
            Some([3u8; 32])
        );
        assert_eq!(parse_key("abcd"), None);
        assert_eq!(parse_key("zz"), None);
    }
}
