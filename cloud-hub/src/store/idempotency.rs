//! Idempotent writes: the key under which a caller's `Idempotency-Key` is
//! recorded, so a retried request gets the first answer, and the
//! questions and writes to the `idempotency` table: a replay and its
//! record (the coupon claim, the group-buy commitment and the erasure; the
//! online order still runs its own), and an erasure's deletes. Whether a
//! replay answers or refuses (another request under the same key) is the
//! use case's rule.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::auth::Caller;
use crate::time::ts;

/// The idempotency record's primary key (the caller and the key, joined by a
/// unit separator, which neither contains) and the key as the caller sent it.
pub(crate) fn idempotency_record_key(caller: &Caller, key: &str) -> (String, String) {
    let who = match caller {
        Caller::Staff(u) => format!("staff:{}", u.name),
        Caller::Customer { customer_id, .. } => format!("customer:{customer_id}"),
    };
    (format!("{who}\u{1f}{key}"), key.to_owned())
}

/// The request's fingerprint and the answer recorded under `key`, if any.
pub(crate) fn replay(c: &Connection, key: &str) -> Result<Option<(String, String)>, StoreError> {
    Ok(
        c.prepare_cached("SELECT request_hash, response FROM idempotency WHERE key = ?1")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

/// Records the answer to a request under `key`, at `now`.
pub(crate) fn record(
    c: &Connection,
    key: &str,
    request_hash: &str,
    response: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // cached: every online order records its answer here
    c.prepare_cached(
        "INSERT INTO idempotency(key, request_hash, response, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![key, request_hash, response, ts(now)])?;
    Ok(())
}

/// Deletes the records whose key starts with `prefix`; the rows deleted.
pub(crate) fn delete_keyed(c: &Connection, prefix: &str) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM idempotency WHERE substr(key, 1, length(?1)) = ?1",
        [prefix],
    )?)
}

/// Deletes the records whose request or answer holds `value`; the rows
/// deleted.
pub(crate) fn delete_holding(c: &Connection, value: &str) -> Result<usize, StoreError> {
    Ok(c.execute(
        "DELETE FROM idempotency WHERE instr(response, ?1) > 0 OR instr(request_hash, ?1) > 0",
        [value],
    )?)
}
