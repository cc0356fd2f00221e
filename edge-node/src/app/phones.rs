//! Customers' phones at the store: only the chain's member hash and the
//! masked phone (issue 12; DESIGN.md §8).
//!
//! A counter pickup order and a group-buy participant name their customer
//! by the HMAC of the normalised phone under the chain's member key (the
//! counter finds them by hashing the phone the customer gives) and by the
//! masked phone `138****1234` (shown, and matched by its last four digits
//! for a customer who lost the code). Databases written before kept the
//! phone in the clear: [`hide_plain_phones`] hashes and empties those
//! columns at start, once per row (a row already emptied is not touched
//! again), with SQLite's `secure_delete` on so the old bytes are
//! overwritten rather than left in free space.

use rusqlite::{Connection, OptionalExtension, params};

use super::AppError;

/// The chain's member key as this store keeps it (`meta`), for code that
/// runs without an [`super::App`] (recovery).
pub(crate) fn stored_key(c: &Connection) -> Result<Option<[u8; 32]>, AppError> {
    let hex_key: Option<String> = c
        .query_row("SELECT value FROM meta WHERE key = 'member_key'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(hex_key.and_then(|h| linli_shared::member::parse_key(&h)))
}

/// Replaces the plain phones left in `orders` and
/// `group_buy_participants` by their hash and masked form. Returns the rows
/// changed (0 once done: idempotent).
pub(crate) fn hide_plain_phones(c: &Connection, key: &[u8; 32]) -> Result<usize, AppError> {
    // overwrite freed cell space, so the emptied phones are not left in
    // the file's free pages (also what makes an erasure physical)
    c.pragma_update(None, "secure_delete", "ON")?;
    let mut n = 0;
    let held: Vec<(String, String)> = c
        .prepare("SELECT order_id, customer_phone FROM orders WHERE customer_phone <> ''")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, phone) in held {
        let (hash, masked) = hashed(key, &phone);
        n += c.execute(
            "UPDATE orders SET customer_hash = ?2, customer_masked = ?3, customer_phone = ''
             WHERE order_id = ?1",
            params![id, hash, masked],
        )?;
    }
    let held: Vec<(String, String)> = c
        .prepare("SELECT commitment_id, phone FROM group_buy_participants WHERE phone <> ''")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, phone) in held {
        let (hash, masked) = hashed(key, &phone);
        n += c.execute(
            "UPDATE group_buy_participants SET member_hash = ?2, masked_phone = ?3, phone = ''
             WHERE commitment_id = ?1",
            params![id, hash, masked],
        )?;
    }
    if n > 0 {
        tracing::info!(rows = n, "plain phones replaced by member hashes");
    }
    Ok(n)
}

/// The hash and masked form of a stored phone ("" for one that is no
/// phone: it names nobody).
fn hashed(key: &[u8; 32], phone: &str) -> (String, String) {
    match linli_shared::member::normal_phone(phone) {
        Some(p) => (
            linli_shared::member::member_hash(key, &p),
            linli_shared::member::mask_phone(&p),
        ),
        None => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_rows_are_hashed_once_and_the_phone_is_gone() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO orders(order_id, channel, fulfilment, customer_phone, pickup_code, status, total_fen,
                                created_at, created_by, expires_at)
             VALUES ('o1', 'community', 'pickup', '13912345678', '123456', 'placed', 100, 't', 'mia', 't');
             INSERT INTO group_buy_participants(commitment_id, group_buy_id, sku, price_fen, phone, qty)
             VALUES ('k1', 'g1', 'P00001', 100, '13912345678', 1);",
        )
        .unwrap();
        let key = [9u8; 32];
        assert_eq!(hide_plain_phones(&c, &key).unwrap(), 2);
        assert_eq!(hide_plain_phones(&c, &key).unwrap(), 0);
        let want = linli_shared::member::member_hash(&key, "13912345678");
        let (phone, hash, masked): (String, String, String) = c
            .query_row(
                "SELECT customer_phone, customer_hash, customer_masked FROM orders",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((phone.as_str(), masked.as_str()), ("", "139****5678"));
        assert_eq!(hash, want);
        let (phone, hash): (String, String) = c
            .query_row(
                "SELECT phone, member_hash FROM group_buy_participants",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((phone.as_str(), hash.as_str()), ("", want.as_str()));
    }
}
