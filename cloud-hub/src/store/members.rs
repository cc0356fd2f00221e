//! Customers as the hub knows them from its channels (`customers`): the
//! online customer behind a phone or openid, the customer a store's counter
//! names by member hash, and the one-time backfill of member hashes for
//! customers made before the hub kept them. The key is the chain's member
//! key ([`linli_shared::member`]).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::StoreError;
use crate::time::ts;

/// The online customer with this phone or openid, created if none: found
/// by phone, else by the member hash of the phone (a customer a store's
/// counter named before the hub knew the phone: the phone is now linked),
/// else by openid. The customer's member hash and masked phone are kept
/// with the phone, so a counter fact carrying the hash finds them. A new
/// customer is created at `now`.
pub(crate) fn resolve_customer(
    c: &rusqlite::Connection,
    key: &[u8; 32],
    phone: Option<&str>,
    openid: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    // the customer a column names, with what the row holds
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let by = |col: &str, v: Option<&str>| -> Result<Option<Row>, StoreError> {
        let Some(v) = v else { return Ok(None) };
        Ok(c.prepare_cached(&format!(
            "SELECT customer_id, phone, openid, member_hash, masked_phone FROM customers WHERE {col} = ?1"
        ))?
        .query_row([v], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?)
    };
    let hash = phone.map(|p| linli_shared::member::member_hash(key, p));
    let masked = phone.map(linli_shared::member::mask_phone);
    let found = match by("phone", phone)? {
        Some(row) => Some(row),
        None => match by("member_hash", hash.as_deref())? {
            Some(row) => Some(row),
            None => by("openid", openid)?,
        },
    };
    match found {
        Some((id, old_phone, old_openid, old_hash, old_masked)) => {
            // what is missing is filled in; the hash follows the phone the
            // customer keeps (an account found by openid keeps its own
            // phone); a customer already complete is not written again
            let new_phone = old_phone.clone().or(phone.map(str::to_owned));
            let new_openid = old_openid.clone().or(openid.map(str::to_owned));
            let keeps_phone = phone.is_some() && new_phone.as_deref() == phone;
            let (new_hash, new_masked) = if keeps_phone {
                (hash.or(old_hash.clone()), masked.or(old_masked.clone()))
            } else {
                (old_hash.clone(), old_masked.clone())
            };
            if (&new_phone, &new_openid, &new_hash, &new_masked)
                != (&old_phone, &old_openid, &old_hash, &old_masked)
            {
                c.prepare_cached(
                    "UPDATE customers SET phone = ?2, openid = ?3, member_hash = ?4, masked_phone = ?5
                     WHERE customer_id = ?1",
                )?
                .execute(params![id, new_phone, new_openid, new_hash, new_masked])?;
            }
            Ok(id)
        }
        None => {
            let id = format!("C{}", linli_sync::ids::ulid());
            c.prepare_cached(
                "INSERT INTO customers(customer_id, phone, openid, member_hash, masked_phone, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![id, phone, openid, hash, masked, ts(now)])?;
            Ok(id)
        }
    }
}

/// The customer a store's counter names by member hash (a counter join or
/// group-buy commitment): the one whose phone hashes to it, else one made
/// now with the hash and masked phone alone (the phone unknown), so the
/// membership and the commitment count; [`resolve_customer`] links the
/// phone when that customer logs in or orders online. A new customer is
/// created at `now`.
pub(crate) fn resolve_member(
    c: &rusqlite::Connection,
    hash: &str,
    masked: &str,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let masked = (!masked.is_empty()).then_some(masked);
    let found: Option<String> = c
        .query_row(
            "SELECT customer_id FROM customers WHERE member_hash = ?1",
            [hash],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = found {
        c.execute(
            "UPDATE customers SET masked_phone = coalesce(masked_phone, ?2) WHERE customer_id = ?1",
            params![id, masked],
        )?;
        return Ok(id);
    }
    let id = format!("C{}", linli_sync::ids::ulid());
    c.execute(
        "INSERT INTO customers(customer_id, phone, openid, member_hash, masked_phone, created_at)
         VALUES (?1, NULL, NULL, ?2, ?3, ?4)",
        params![id, hash, masked, ts(now)],
    )?;
    Ok(id)
}

/// Gives every customer with a phone and no member hash its hash and
/// masked phone (customers created before the hub kept them). Idempotent;
/// returns the rows changed.
pub fn backfill_member_hashes(
    c: &rusqlite::Connection,
    key: &[u8; 32],
) -> Result<usize, StoreError> {
    let rows: Vec<(String, String)> = c
        .prepare("SELECT customer_id, phone FROM customers WHERE phone IS NOT NULL AND member_hash IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for (id, phone) in rows {
        n += c.execute(
            "UPDATE customers SET member_hash = ?2, masked_phone = ?3 WHERE customer_id = ?1",
            params![
                id,
                linli_shared::member::member_hash(key, &phone),
                linli_shared::member::mask_phone(&phone)
            ],
        )?;
    }
    if n > 0 {
        tracing::info!(customers = n, "member hashes backfilled");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter names a customer by hash before the hub knows the phone;
    /// the phone's first session finds that customer and links the phone.
    /// Customers made before the hub kept hashes get theirs at open.
    #[test]
    fn a_customer_known_by_hash_gets_the_phone_when_it_logs_in() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        let key = [5u8; 32];
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let hash = linli_shared::member::member_hash(&key, "13912345678");
        let counter = resolve_member(&c, &hash, "139****5678", now).unwrap();
        assert_eq!(
            resolve_member(&c, &hash, "139****5678", now).unwrap(),
            counter
        );
        let online = resolve_customer(&c, &key, Some("13912345678"), None, now).unwrap();
        assert_eq!(online, counter);
        let phone: Option<String> = c
            .query_row(
                "SELECT phone FROM customers WHERE customer_id = ?1",
                [&online],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(phone.as_deref(), Some("13912345678"));

        // an account from before: no hash until the backfill, once
        c.execute(
            "INSERT INTO customers(customer_id, phone, created_at) VALUES ('Cold', '13700001111', 't')",
            [],
        )
        .unwrap();
        assert_eq!(backfill_member_hashes(&c, &key).unwrap(), 1);
        assert_eq!(backfill_member_hashes(&c, &key).unwrap(), 0);
        let old = linli_shared::member::member_hash(&key, "13700001111");
        assert_eq!(resolve_member(&c, &old, "", now).unwrap(), "Cold");
    }
}
