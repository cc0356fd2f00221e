//! Projection as an explicit step: what a store's sync message brought
//! into the hub's documents is written into the query tables (sales,
//! refunds, stock, rights, write-offs, counter joins, group-buy
//! commitments and cancels, coupons, erasure confirmations, fulfilment),
//! in the same writer transaction as the message, and the orders and
//! group-buys it can have changed are settled ([`Hub::receive_from`]).
//!
//! It sits above the features it projects into; the hub's core
//! ([`crate::hub`]) knows none of them.

use chrono::{DateTime, Utc};
use linli_shared::docs::json::{from_text, records_of};
use linli_shared::docs::ledger::{read_refunds_of, read_sales_of, sale_from_text};
use linli_shared::docs::stock::{Level, read_levels_of};
use linli_shared::docs::{DocId, DocKind, Owner};
use linli_shared::online::FulfilmentFact;
use linli_shared::rights::StoreRights;
use linli_sync::doc_store::{Docs, Received};
use rusqlite::Connection;

use crate::error::HubError;
use crate::hub::Hub;
use crate::store::sales::SaleRecords;

impl Hub {
    /// Applies a store's sync message and projects what it brought into the
    /// query tables, in one transaction.
    pub async fn receive_from(
        &self,
        store_id: &str,
        doc: DocId,
        msg: Vec<u8>,
    ) -> Result<Received, HubError> {
        let store = store_id.to_owned();
        let this = self.clone();
        let now = self.now();
        let r = self
            .with_docs(move |c, docs| {
                let r = docs.receive(c, &doc, &store, &Owner::Store(store.clone()), &msg)?;
                let mut touched = Vec::new();
                if r.new_changes > 0 {
                    let today = now
                        .with_timezone(&this.order_settings.utc_offset)
                        .date_naive();
                    let (campaigns, written) =
                        project(c, docs, &this.member_key, &store, &doc, &r, today, now)?;
                    touched.extend(written);
                    // a counter commitment may reach a group-buy: decided now
                    let mut gb = this.settle_group_buys_of(c, docs, &store, &campaigns, now)?;
                    touched.append(&mut gb);
                    // settle what can have changed: the SKUs whose rights the
                    // store moved (most sales move none), or everything after
                    // a fulfilment record (a hand-over may re-consume rights)
                    let scope = match doc.kind() {
                        DocKind::Stock => r
                            .touched
                            .contains_key("rights")
                            .then(|| Some(r.keys("rights"))),
                        DocKind::Fulfilment => Some(None),
                        _ => None,
                    };
                    if let Some(skus) = scope {
                        let dir = this.directory();
                        touched.extend(crate::app::orders::reconcile(
                            c,
                            &dir,
                            &this.order_settings,
                            &this.signing,
                            &store,
                            skus.as_ref(),
                            now,
                        )?);
                    }
                }
                Ok((r, touched))
            })
            .await
            .map(|(r, touched)| {
                for d in touched {
                    let _ = self.changes.send(d);
                }
                r
            });
        self.count_received(store_id, &r);
        r
    }
}

/// Records a store's sales of business day `day` in `hub_sales` (a sale
/// seen before is kept as it was).
pub fn project_sales(
    c: &Connection,
    store: &str,
    day: &str,
    sales: &[linli_shared::docs::ledger::SaleFact],
) -> Result<(), HubError> {
    Ok(c.add_sales(store, day, sales)?)
}

/// Records a store's refunds in `hub_refunds` (once each).
pub fn project_refunds(
    c: &Connection,
    store: &str,
    refunds: &[linli_shared::docs::ledger::RefundFact],
) -> Result<(), HubError> {
    Ok(c.add_refunds(store, refunds)?)
}

/// Writes what a store document brought into the query tables: only the
/// entries the new changes touched (`Received::touched`), so a sale pushed
/// into a day's stock document of 1,500 SKUs projects one SKU, not all.
#[allow(clippy::too_many_arguments)]
fn project(
    c: &Connection,
    docs: &mut Docs,
    member_key: &[u8; 32],
    store: &str,
    doc: &DocId,
    received: &Received,
    today: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, Vec<DocId>), HubError> {
    let day = doc.day().map(|d| d.to_string()).unwrap_or_default();
    let mut campaigns = Vec::new();
    let mut written = Vec::new();
    let touched = |section: &str| received.keys(section);
    match doc.kind() {
        DocKind::Ledger => {
            // a refund is projected on its own: its sale may be on an earlier
            // day's ledger, arrive later (synced after an offline spell) or
            // have arrived long ago; the query joins them by sale id
            let refunds = touched("refunds");
            if !refunds.is_empty() {
                let refunds = docs
                    .read(c, doc, |d| read_refunds_of(d, &refunds))?
                    .unwrap_or_default();
                project_refunds(c, store, &refunds)?;
            }
            // goods written off, for the waste rate
            let movements = touched("movements");
            if !movements.is_empty() {
                let wanted: std::collections::BTreeSet<&String> = movements.iter().collect();
                let waste = docs
                    .read(c, doc, |d| {
                        linli_shared::docs::ledger::read_movements(d)
                            .into_iter()
                            .filter(|m| wanted.contains(&m.movement_id))
                            .collect::<Vec<_>>()
                    })?
                    .unwrap_or_default();
                crate::app::kpis::project_write_offs(c, store, &day, &waste)?;
            }
            let joins = touched("members");
            if !joins.is_empty() {
                let joins = docs
                    .read(c, doc, |d| {
                        records_of::<linli_shared::community::MemberFact>(d, "members", &joins)
                    })?
                    .unwrap_or_default();
                crate::app::communities::project_counter_joins(c, member_key, store, &joins, now)?;
            }
            let orders: Vec<String> = touched("orders")
                .into_iter()
                .filter(|id| id.starts_with("GB-"))
                .collect();
            if !orders.is_empty() {
                let facts = docs
                    .read(c, doc, |d| {
                        linli_shared::docs::ledger::read_orders(d)
                            .into_iter()
                            .filter(|o| orders.contains(&o.order_id))
                            .collect::<Vec<_>>()
                    })?
                    .unwrap_or_default();
                crate::app::groupbuys::project_group_buy_orders(c, store, &facts, now)?;
            }
            let commitments = touched("commitments");
            if !commitments.is_empty() {
                let facts = docs
                    .read(c, doc, |d| {
                        records_of::<linli_shared::groupbuy::CounterCommitment>(
                            d,
                            "commitments",
                            &commitments,
                        )
                    })?
                    .unwrap_or_default();
                campaigns = crate::app::groupbuys::project_counter_commitments(
                    c, member_key, store, &facts, now,
                )?;
            }
            // after the commitments: a cancel in the same ledger as its
            // commitment finds it (one in an earlier-synced ledger waits)
            let cancels = touched("commitment_cancels");
            if !cancels.is_empty() {
                let facts = docs
                    .read(c, doc, |d| {
                        records_of::<linli_shared::groupbuy::CounterCancel>(
                            d,
                            "commitment_cancels",
                            &cancels,
                        )
                    })?
                    .unwrap_or_default();
                for g in crate::app::groupbuys::project_counter_cancels(c, store, &facts, now)? {
                    if !campaigns.contains(&g) {
                        campaigns.push(g);
                    }
                }
            }
            // coupons the counter took or gave back, and recalled
            // allotments it returned; a store running low is lent more
            let (taken, back, given) = (
                touched("coupon_redemptions"),
                touched("coupon_voids"),
                touched("coupon_returns"),
            );
            if !taken.is_empty() || !back.is_empty() || !given.is_empty() {
                let report = docs
                    .read(c, doc, |d| crate::app::coupons::CounterReport {
                        redemptions: records_of::<linli_shared::coupon::CounterRedemption>(
                            d,
                            "coupon_redemptions",
                            &taken,
                        ),
                        voids: records_of::<linli_shared::coupon::CounterVoid>(
                            d,
                            "coupon_voids",
                            &back,
                        ),
                        returns: records_of::<linli_shared::coupon::CounterReturn>(
                            d,
                            "coupon_returns",
                            &given,
                        ),
                    })?
                    .unwrap_or_default();
                written = crate::app::coupons::project_counter(c, docs, store, &report, today)?;
            }
            // stores' confirmations of customers' erasures
            let erased = touched("erasures");
            if !erased.is_empty() {
                let facts = docs
                    .read(c, doc, |d| {
                        records_of::<linli_shared::erasure::ErasureConfirmation>(
                            d, "erasures", &erased,
                        )
                    })?
                    .unwrap_or_default();
                crate::app::customers::erasure::project_confirmations(c, store, &facts)?;
            }
            let new = touched("sales");
            if new.is_empty() {
                return Ok((campaigns, written));
            }
            let sales = touched_entries(
                c,
                docs,
                doc,
                received,
                "sales",
                sale_from_text,
                |d, keys| read_sales_of(d, keys),
            )?;
            project_sales(c, store, &day, &sales)?;
        }
        DocKind::Stock => {
            let levels = touched_entries(
                c,
                docs,
                doc,
                received,
                "levels",
                |sku, text| from_text::<Level>(text).map(|l| (sku.to_owned(), l)),
                |d, skus| {
                    read_levels_of(d, skus.iter().map(String::as_str))
                        .into_iter()
                        .collect()
                },
            )?;
            // a later day's document wins over an earlier one (ISO dates
            // sort), and a later part of the same day over an earlier one:
            // parts may arrive in any order (a catch-up, a recovery)
            crate::store::rights::put_levels(c, store, &day, doc.part_no(), &levels)?;
            let rights = touched_entries(
                c,
                docs,
                doc,
                received,
                "rights",
                |sku, text| from_text::<StoreRights>(text).map(|r| (sku.to_owned(), r)),
                |d, skus| records_of::<StoreRights>(d, "rights", skus),
            )?;
            for (sku, r) in rights {
                crate::store::rights::merge_store_rights(c, store, &sku, &r)?;
            }
        }
        DocKind::Fulfilment => {
            let records = touched_entries(
                c,
                docs,
                doc,
                received,
                "orders",
                |id, text| from_text::<FulfilmentFact>(text).map(|r| (id.to_owned(), r)),
                |d, ids| records_of::<FulfilmentFact>(d, "orders", ids),
            )?;
            crate::app::orders::project_fulfilment(c, &records, now)?;
        }
        DocKind::Catalog | DocKind::Orders => {}
    }
    Ok((campaigns, written))
}

/// The entries of `section` a message touched: decoded from the new
/// values its patches carried (`Received::values`), and those it did not
/// carry as one string (deleted, or written in the nested layout) read
/// from the document, as before.
fn touched_entries<T>(
    c: &Connection,
    docs: &mut Docs,
    doc: &DocId,
    received: &Received,
    section: &str,
    decode: impl Fn(&str, &str) -> Option<T>,
    read: impl FnOnce(&automerge::AutoCommit, &[String]) -> Vec<T>,
) -> Result<Vec<T>, HubError> {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for (key, value) in received.entries(section) {
        match value.and_then(|text| decode(key, text)) {
            Some(v) => out.push(v),
            None => rest.push(key.clone()),
        }
    }
    if !rest.is_empty() {
        out.extend(docs.read(c, doc, |d| read(d, &rest))?.unwrap_or_default());
    }
    Ok(out)
}
