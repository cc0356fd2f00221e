//! The notification signature.
//!
//! What is signed is WeChat Pay v3's message: `timestamp\nnonce\nbody\n`.
//! The real provider signs it with its platform certificate's RSA key
//! (SHA256withRSA) and the merchant checks it with the certificate. Here it
//! is HMAC-SHA256 with the merchant's API v3 key, base64: the API v3 key is
//! already the one secret merchant and provider share (the real one
//! decrypts the notification's resource with it), so the hub needs no
//! certificate download and the simulator no key pair; a forged or altered
//! notification fails the check all the same. Swapping in RSA touches only
//! this module.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a notification's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signature header is missing or not text.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The signature is not base64 or does not match.
    #[error("signature does not match")]
    Mismatch,
}

fn message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + timestamp.len() + nonce.len() + 3);
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// The `Wechatpay-Signature` of a notification.
pub fn sign(key: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> String {
    let mut m = mac(key);
    m.update(&message(timestamp, nonce, body));
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// Checks a notification's signature in constant time.
pub fn verify(
    key: &[u8],
    timestamp: &str,
    nonce: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::Mismatch)?;
    let mut m = mac(key);
    m.update(&message(timestamp, nonce, body));
    m.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

/// Checks the signature headers of a notification (`get` reads a header
/// by its lower-case name).
pub fn verify_headers<'a>(
    key: &[u8],
    get: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    use crate::wire::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let ts = get(HEADER_TIMESTAMP).ok_or(SignatureError::MissingHeader(HEADER_TIMESTAMP))?;
    let nonce = get(HEADER_NONCE).ok_or(SignatureError::MissingHeader(HEADER_NONCE))?;
    let sig = get(HEADER_SIGNATURE).ok_or(SignatureError::MissingHeader(HEADER_SIGNATURE))?;
    verify(key, ts, nonce, body, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_verifies_and_altered_does_not() {
        let s = sign(b"k", "1", "n", b"{}");
        assert_eq!(verify(b"k", "1", "n", b"{}", &s), Ok(()));
        assert_eq!(
            verify(b"k", "1", "n", b"{ }", &s),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", "1", "n", b"{}", &s),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "2", "n", b"{}", &s),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "1", "n", b"{}", "not base64!"),
            Err(SignatureError::Mismatch)
        );
    }
}
