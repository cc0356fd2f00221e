//! A customer's erasure at the store (PIPL Art. 47; DESIGN.md §8).
//!
//! The hub's notice ([`ErasureNotice`], section `erasures` of the store's
//! orders document) names the person by keyed phone hashes and order and
//! commitment ids, never by phone. On receipt, in the same transaction as
//! the document change, the store erases what matches:
//! - `sales.member_hash` (the member behind a counter sale) is cleared;
//! - `group_buy_commitments.member_hash` becomes `erased` (the commitment's
//!   quantity stays: the campaign's counts and the books need it);
//! - `orders.customer_hash` and `customer_masked` (a counter pickup order's
//!   customer, named by id or hash) are cleared: the order is still handed
//!   over by its code, no longer found by the phone;
//! - `group_buy_participants.member_hash` and `masked_phone` are cleared;
//! - request replays (`idempotency`) whose answer names one of those
//!   orders or commitments, or holds one of the phones (replays written
//!   before issue 12), and the replays of the member's counter joins
//!   (found by the hash's fingerprint; their answer holds the masked
//!   phone) are deleted (a retry afterwards is a new request).
//!
//! The store keeps no phone in the clear (`super::phones`), and its writer
//! runs with `secure_delete` on, so what is cleared is overwritten in the
//! file.
//!
//! The notice is recorded in `erasures`, so a notice arriving again (a
//! reconnect, a later part) erases nothing twice. The confirmation is a
//! ledger fact written afterwards by [`App::confirm_erasures`] in its own
//! transaction (a use case's publish cannot run inside the receipt's), and
//! again at start-up for any erasure not yet confirmed; it is keyed by the
//! erasure id, so confirming twice writes the same record.
//!
//! What stays: the day documents' history (automerge keeps every change)
//! still holds the hashes and masked phones that ledger facts and
//! participant lists carried before the erasure (and, in documents written
//! before issue 12, phones), until those documents are retired; see
//! docs/DECISIONS.md.

use std::collections::BTreeSet;

use linli_shared::erasure::{ErasureConfirmation, ErasureNotice};
use rusqlite::{Connection, OptionalExtension, params};

use super::idempotency;
use super::replication::LedgerFact;
use super::{App, AppError, ts};

/// Erases what the notices match (each notice once). Runs inside the
/// receipt of the hub's document.
pub(crate) fn apply_notices(
    c: &Connection,
    notices: &[(String, ErasureNotice)],
    key: &[u8; 32],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AppError> {
    for (_, n) in notices {
        let seen: Option<String> = c
            .query_row(
                "SELECT erasure_id FROM erasures WHERE erasure_id = ?1",
                [&n.erasure_id],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            continue;
        }
        let hashes: BTreeSet<&str> = n.member_hashes.iter().map(String::as_str).collect();
        let orders: BTreeSet<&str> = n.order_ids.iter().map(String::as_str).collect();
        let commitments: BTreeSet<&str> = n.commitment_ids.iter().map(String::as_str).collect();
        let mut rows = 0usize;
        for h in &hashes {
            rows += c.execute(
                "UPDATE sales SET member_hash = NULL WHERE member_hash = ?1",
                [h],
            )?;
            rows += c.execute(
                "UPDATE group_buy_commitments SET member_hash = 'erased', masked_phone = '' WHERE member_hash = ?1",
                [h],
            )?;
        }
        // counter pickup orders and participants name the customer by
        // hash and masked phone (plain phones were hashed at start): the
        // rows named by id or by one of the hashes lose both
        let named = |sql: &str| -> Result<Vec<(String, String)>, AppError> {
            Ok(c.prepare(sql)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        };
        let mut erased_ids: BTreeSet<String> = BTreeSet::new();
        for (id, hash) in named(
            "SELECT order_id, customer_hash FROM orders WHERE customer_hash <> '' OR customer_masked <> ''",
        )? {
            if orders.contains(id.as_str()) || hashes.contains(hash.as_str()) {
                rows += c.execute(
                    "UPDATE orders SET customer_hash = '', customer_masked = '', customer_phone = ''
                     WHERE order_id = ?1",
                    [&id],
                )?;
                erased_ids.insert(id);
            }
        }
        for (id, hash) in named(
            "SELECT commitment_id, member_hash FROM group_buy_participants
             WHERE member_hash <> '' OR masked_phone <> ''",
        )? {
            if commitments.contains(id.as_str()) || hashes.contains(hash.as_str()) {
                rows += c.execute(
                    "UPDATE group_buy_participants SET member_hash = '', masked_phone = '', phone = ''
                     WHERE commitment_id = ?1",
                    [&id],
                )?;
                erased_ids.insert(linli_shared::groupbuy::order_id_of(&id));
                erased_ids.insert(id);
            }
        }
        // a request's replay may hold the masked phone (an order's or a
        // commitment's answer; one written before issue 12 the phone): the
        // replay goes (a retry of that request after the erasure is new).
        // A counter join's answer names no id, only the masked phone: its
        // replay is found by the join's fingerprint, which is the hash's
        for h in &hashes {
            rows += c.execute(
                "DELETE FROM idempotency WHERE scope = 'community_join' AND request_hash = ?1",
                [idempotency::fingerprint("community_join", h)],
            )?;
        }
        for (k, response) in named("SELECT key, response FROM idempotency")? {
            if erased_ids.iter().any(|id| response.contains(id.as_str()))
                || mobiles_in(&response)
                    .any(|p| hashes.contains(linli_shared::member::member_hash(key, p).as_str()))
            {
                rows += c.execute("DELETE FROM idempotency WHERE key = ?1", [&k])?;
            }
        }
        c.execute(
            "INSERT INTO erasures(erasure_id, rows, erased_at) VALUES (?1, ?2, ?3)",
            params![n.erasure_id, rows as i64, ts(now)],
        )?;
        tracing::info!(erasure_id = %n.erasure_id, rows, "customer erased at the store");
    }
    Ok(())
}

/// The 11-digit runs starting with 1 in `text` (mobile numbers).
fn mobiles_in(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(10)).filter_map(move |i| {
        let run = &b[i..i + 11];
        let bounded = (i == 0 || !b[i - 1].is_ascii_digit())
            && b.get(i + 11).is_none_or(|n| !n.is_ascii_digit());
        (bounded && run[0] == b'1' && run.iter().all(u8::is_ascii_digit)).then(|| &text[i..i + 11])
    })
}

impl App {
    /// Confirms every erasure done here but not yet confirmed, with a fact
    /// in today's ledger. Returns how many it confirmed.
    pub async fn confirm_erasures(&self) -> Result<usize, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        self.write_published(stamp, move |c, p| {
            let pending: Vec<(String, i64)> = c
                .prepare("SELECT erasure_id, rows FROM erasures WHERE confirmed_at IS NULL ORDER BY erasure_id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (erasure_id, rows) in &pending {
                p.fact(LedgerFact::Erasure(ErasureConfirmation {
                    erasure_id: erasure_id.clone(),
                    rows: *rows,
                    at: ts(now),
                }));
                c.execute(
                    "UPDATE erasures SET confirmed_at = ?2 WHERE erasure_id = ?1",
                    params![erasure_id, ts(now)],
                )?;
            }
            Ok(pending.len())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::mobiles_in;

    #[test]
    fn mobiles_are_found_whole() {
        let t = r#"{"customer_phone":"13812345678","n":123456789012,"x":"a13900000000"}"#;
        assert_eq!(
            mobiles_in(t).collect::<Vec<_>>(),
            ["13812345678", "13900000000"]
        );
        assert_eq!(mobiles_in("1381234567").count(), 0);
    }
}
