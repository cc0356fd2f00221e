//! Idempotent writes: the key under which a caller's `Idempotency-Key` is
//! recorded, so a retried request gets the first answer.

use crate::auth::Caller;

/// The idempotency record's primary key (the caller and the key, joined by a
/// unit separator, which neither contains) and the key as the caller sent it.
pub(crate) fn idempotency_record_key(caller: &Caller, key: &str) -> (String, String) {
    let who = match caller {
        Caller::Staff(u) => format!("staff:{}", u.name),
        Caller::Customer { customer_id, .. } => format!("customer:{customer_id}"),
    };
    (format!("{who}\u{1f}{key}"), key.to_owned())
}
