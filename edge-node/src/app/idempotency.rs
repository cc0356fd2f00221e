//! Idempotency keys: a retried request returns the first response and writes
//! nothing new.
//!
//! The key's record (request fingerprint + response) is written in the same
//! transaction as the effects it stands for, so after a crash either both
//! exist or neither does: a client that never saw the answer retries and
//! either gets the committed result or performs the write for the first time.
//!
//! A key belongs to the staff member who sent it: the record is looked up by
//! caller and key together, so nobody can replay another's key to read their
//! receipt, nor block it by using it first.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{AppError, ts};

/// A validated `Idempotency-Key` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1–128 visible ASCII characters (a UUID or ULID fits).
    pub fn parse(s: &str) -> Result<IdempotencyKey, AppError> {
        if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(IdempotencyKey(s.to_owned()))
        } else {
            Err(AppError::IdempotencyKeyRequired)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stable fingerprint of a request: scope plus its canonical JSON.
pub(crate) fn fingerprint<T: Serialize>(scope: &str, req: &T) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(req).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The record's primary key: the caller's name and the key, joined by a
/// unit separator (names hold no control characters and keys are visible
/// ASCII, so no two pairs give the same record key).
fn record_key(caller: &str, key: &IdempotencyKey) -> String {
    format!("{caller}\u{1f}{}", key.as_str())
}

/// Looks `caller`'s key up. `Ok(Some(response))` if this exact request was done
/// before; an error if the key was used for something else.
pub(crate) fn replay<T: DeserializeOwned>(
    c: &Connection,
    caller: &str,
    key: &IdempotencyKey,
    scope: &str,
    hash: &str,
) -> Result<Option<T>, AppError> {
    // cached, as the record below: every write use case runs both
    let row: Option<(String, String, String)> = c
        .prepare_cached("SELECT scope, request_hash, response FROM idempotency WHERE key = ?1")?
        .query_row([record_key(caller, key)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((s, h, resp)) if s == scope && h == hash => serde_json::from_str(&resp)
            .map(Some)
            .map_err(|e| AppError::Store(crate::store::StoreError::Sql(e.to_string()))),
        Some(_) => Err(AppError::IdempotencyKeyReused(key.as_str().to_owned())),
    }
}

/// Records the response sent for `caller`'s key.
pub(crate) fn record<T: Serialize>(
    c: &Connection,
    caller: &str,
    key: &IdempotencyKey,
    scope: &str,
    hash: &str,
    response: &T,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AppError> {
    let body = serde_json::to_string(response)
        .map_err(|e| AppError::Store(crate::store::StoreError::Sql(e.to_string())))?;
    c.prepare_cached(
        "INSERT INTO idempotency(key, scope, request_hash, status, response, created_at) VALUES (?1, ?2, ?3, 201, ?4, ?5)",
    )?
    .execute(params![record_key(caller, key), scope, hash, body, ts(now)])?;
    Ok(())
}
