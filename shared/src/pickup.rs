//! Signed pickup codes (DESIGN.md §6): the hub signs, with Ed25519, a claim
//! over the order id, the store, the lines (SKU and quantity) and an expiry;
//! the QR code carries the claim and its signature, so a store verifies a
//! scanned code with no hub at hand — even for an order that has not reached
//! it yet — and shows the lines before handing them over.
//!
//! Payload: `LP1.<claim>.<signature>`, both parts base64url without padding;
//! the claim is compact JSON (`{"o","s","l":[[sku,qty]..],"e"}`, expiry in
//! Unix seconds). The signature covers the claim's bytes exactly as carried,
//! so no canonical form is needed: a changed byte fails verification.
//! Whether a valid code was redeemed before is the store's record to keep
//! (a replay is refused there, with when and by whom).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Prefix and version of the QR payload.
pub const QR_PREFIX: &str = "LP1.";
/// Longest payload accepted (an order of 100 lines fits).
pub const MAX_QR_LEN: usize = 8 * 1024;

/// What a pickup code promises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupClaim {
    #[serde(rename = "o")]
    pub order_id: String,
    #[serde(rename = "s")]
    pub store_id: String,
    /// SKU and quantity (units, or grams for `kg`).
    #[serde(rename = "l")]
    pub lines: Vec<(String, i64)>,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl PickupClaim {
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.expires, 0)
            .single()
            .unwrap_or_default()
    }
}

/// Why a scanned code is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickupCodeError {
    /// Not a pickup QR payload at all (or cut short when scanned).
    #[error("this is not a Linli pickup code; scan the QR code again or type the short code")]
    Malformed,
    /// The signature does not match: forged, or altered after signing.
    #[error(
        "this pickup code is not signed by the hub (forged or altered); do not hand anything over"
    )]
    BadSignature,
    /// Signed for another store.
    #[error("this order is for store {store}; the customer should collect it there")]
    WrongStore { store: String },
    /// Past its expiry.
    #[error("this pickup code expired at {at}")]
    Expired { at: DateTime<Utc> },
}

/// Whether `s` looks like a QR payload (as opposed to a short code).
pub fn is_qr_payload(s: &str) -> bool {
    s.starts_with(QR_PREFIX)
}

/// Signs a claim into a QR payload.
pub fn sign(claim: &PickupClaim, key: &SigningKey) -> String {
    // serializing a struct of strings and integers cannot fail
    let bytes = serde_json::to_vec(claim).unwrap_or_default();
    let sig = key.sign(&bytes);
    format!(
        "{QR_PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(&bytes),
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    )
}

/// Verifies a scanned payload for `store_id` at `now`: signature first (a
/// forged code learns nothing), then store, then expiry.
pub fn verify(
    payload: &str,
    key: &VerifyingKey,
    store_id: &str,
    now: DateTime<Utc>,
) -> Result<PickupClaim, PickupCodeError> {
    let claim = verify_signature(payload, key)?;
    if claim.store_id != store_id {
        return Err(PickupCodeError::WrongStore {
            store: claim.store_id,
        });
    }
    if now.timestamp() >= claim.expires {
        return Err(PickupCodeError::Expired {
            at: claim.expires_at(),
        });
    }
    Ok(claim)
}

/// Checks only the signature and decodes the claim.
pub fn verify_signature(payload: &str, key: &VerifyingKey) -> Result<PickupClaim, PickupCodeError> {
    let payload = payload.trim();
    if payload.len() > MAX_QR_LEN {
        return Err(PickupCodeError::Malformed);
    }
    let rest = payload
        .strip_prefix(QR_PREFIX)
        .ok_or(PickupCodeError::Malformed)?;
    let (claim_b64, sig_b64) = rest.split_once('.').ok_or(PickupCodeError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(claim_b64)
        .map_err(|_| PickupCodeError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| PickupCodeError::Malformed)?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| PickupCodeError::Malformed)?;
    key.verify(&bytes, &Signature::from_bytes(&sig))
        .map_err(|_| PickupCodeError::BadSignature)?;
    serde_json::from_slice(&bytes).map_err(|_| PickupCodeError::Malformed)
}

/// A verifying key from its hex form (as `linli-hub issue-cert` writes it).
pub fn verifying_key_from_hex(s: &str) -> Option<VerifyingKey> {
    let mut raw = [0u8; 32];
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    VerifyingKey::from_bytes(&raw).ok()
}

/// The hex form of a verifying key.
pub fn verifying_key_hex(k: &VerifyingKey) -> String {
    k.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claim() -> PickupClaim {
        PickupClaim {
            order_id: "01ORDER".into(),
            store_id: "S001".into(),
            lines: vec![("P00001".into(), 2), ("P00002".into(), 1500)],
            expires: 2_000_000_000,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000, 0).unwrap()
    }

    #[test]
    fn a_signed_code_verifies_at_its_store() {
        let k = key(1);
        let qr = sign(&claim(), &k);
        assert!(is_qr_payload(&qr));
        assert_eq!(verify(&qr, &k.verifying_key(), "S001", now()), Ok(claim()));
        let hex = verifying_key_hex(&k.verifying_key());
        assert_eq!(verifying_key_from_hex(&hex), Some(k.verifying_key()));
    }

    #[test]
    fn forged_altered_wrong_store_and_expired_codes_are_refused() {
        let k = key(1);
        let vk = k.verifying_key();
        // forged: signed by someone else's key
        let forged = sign(&claim(), &key(2));
        assert_eq!(
            verify(&forged, &vk, "S001", now()),
            Err(PickupCodeError::BadSignature)
        );
        // altered: more units in the claim, old signature
        let qr = sign(&claim(), &k);
        let mut more = claim();
        more.lines[0].1 = 20;
        let altered_claim = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&more).unwrap());
        let sig = qr.rsplit('.').next().unwrap();
        let altered = format!("{QR_PREFIX}{altered_claim}.{sig}");
        assert_eq!(
            verify(&altered, &vk, "S001", now()),
            Err(PickupCodeError::BadSignature)
        );
        assert_eq!(
            verify(&qr, &vk, "S002", now()),
            Err(PickupCodeError::WrongStore {
                store: "S001".into()
            })
        );
        let late = Utc.timestamp_opt(2_000_000_000, 0).unwrap();
        assert!(matches!(
            verify(&qr, &vk, "S001", late),
            Err(PickupCodeError::Expired { .. })
        ));
        for junk in [
            "",
            "LP1.",
            "LP1.abc",
            "LP1.!!.??",
            "12345678",
            &qr[..qr.len() - 3],
        ] {
            assert!(verify(junk, &vk, "S001", now()).is_err(), "{junk}");
        }
    }
}
