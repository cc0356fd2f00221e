//! Group-buy presales at the counter (DESIGN.md §7): a cashier commits a
//! customer (by phone) to a campaign this store takes part in, offline too.
//!
//! The hub sends each store the campaign's terms and an **allotment**: the
//! units this counter may commit in all without asking (lent like stock
//! rights). The counter checks the deadline by its own clock, the
//! per-customer limit over what this counter took for the phone, and the
//! allotment over everything it took, then records the commitment in its
//! ledger (section `commitments`, with the chain's member hash the hub
//! finds the customer by and the masked phone, never the phone) in the same
//! transaction as its own row (member hash only) and the idempotency record. A commitment made before the deadline counts at
//! the hub however late it syncs; the hub decides reached and failed. A
//! customer leaving is cancelled at this counter by the hub's rule, the
//! money given back here (`groupbuy/cancel.rs`); when the hub says the
//! campaign failed, every commitment taken here is refunded here, once
//! (`groupbuy/refund.rs`).

use chrono::{DateTime, Utc};
use linli_shared::groupbuy::{
    self, CounterCommitment, CounterFailure, CounterTerms, ParticipantList, State,
};
use linli_shared::member::mask_phone;
use linli_shared::sale::PaymentMethod;
use linli_shared::stock::MovementKind;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::idempotency::{self, IdempotencyKey};
use super::replication::LedgerFact;
use super::{Actor, App, AppError, ts, valid_phone};

mod cancel;
mod refund;

pub use cancel::{CounterCommitmentView, CounterRefundView};

/// Keeps the terms the hub sent (a later version replaces an earlier one).
pub(crate) fn save_terms(
    c: &Connection,
    terms: &[(String, CounterTerms)],
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    for (id, t) in terms {
        c.execute(
            "INSERT INTO group_buys(group_buy_id, terms, deadline, received_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(group_buy_id) DO UPDATE SET terms = excluded.terms, deadline = excluded.deadline",
            params![id, serde_json::to_string(t).unwrap_or_default(), t.deadline, ts(now)],
        )?;
    }
    Ok(())
}

/// Keeps the hub's word that campaigns failed: once each, whenever it
/// arrives (before the terms too), never undone.
pub(crate) fn save_failures(
    c: &Connection,
    failures: &[(String, CounterFailure)],
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    for (id, f) in failures {
        c.execute(
            "INSERT OR IGNORE INTO group_buy_failures(group_buy_id, decided_at, reason, received_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![id, f.decided_at, f.reason, ts(now)],
        )?;
    }
    Ok(())
}

/// Where the campaign stands as this store knows it: failed once the hub's
/// word has come, reached once the hub's participants list has come (the
/// hub sends it on reaching), else open (the deadline is the rules' to
/// check by this store's clock).
fn state_here(c: &Connection, group_buy_id: &str) -> Result<State, AppError> {
    let known = |sql: &str| -> Result<bool, AppError> {
        Ok(c.prepare_cached(sql)?
            .query_row([group_buy_id], |_| Ok(()))
            .optional()?
            .is_some())
    };
    Ok(
        if known("SELECT 1 FROM group_buy_failures WHERE group_buy_id = ?1")? {
            State::Failed
        } else if known("SELECT 1 FROM group_buy_participants WHERE group_buy_id = ?1 LIMIT 1")? {
            State::Reached
        } else {
            State::Open
        },
    )
}

/// Keeps a reached campaign's participants at this store (the hub's list
/// replaces what was there; commitments cancelled since drop out).
pub(crate) fn save_participants(
    c: &Connection,
    lists: &[(String, ParticipantList)],
    key: &[u8; 32],
) -> Result<(), AppError> {
    for (id, l) in lists {
        c.execute(
            "DELETE FROM group_buy_participants WHERE group_buy_id = ?1",
            [id],
        )?;
        for p in &l.participants {
            c.execute(
                "INSERT OR REPLACE INTO group_buy_participants(commitment_id, group_buy_id, sku, price_fen, phone,
                                                               member_hash, masked_phone, qty)
                 VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7)",
                params![p.commitment_id, id, l.sku, l.price_fen, p.hash(key), p.masked(), p.qty],
            )?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    /// Units of the group-buy's product that arrived.
    pub qty: i64,
}

/// What receiving a group-buy's goods did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupBuyReceipt {
    pub group_buy_id: String,
    pub received: i64,
    /// Pickup orders made now, one per participant (code included).
    pub orders: Vec<super::orders::OrderView>,
    /// Participants still waiting for goods.
    pub waiting: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterCustomer {
    /// The customer's 11-digit mobile number.
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub customer: CounterCustomer,
    /// Units.
    pub qty: i64,
    /// How the customer paid at the counter (cash unless said); it goes
    /// into the drawer's count, and a refund of it is paid back the same way.
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
}

/// A commitment as taken at this counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterCommitted {
    pub commitment_id: String,
    pub group_buy_id: String,
    /// `138****1234`.
    pub phone: String,
    pub qty: i64,
    pub amount_fen: i64,
    /// How it was paid.
    pub payment_method: PaymentMethod,
    pub at: String,
    /// Units this counter may still commit.
    pub allotment_left: i64,
}

/// A campaign as this counter sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterGroupBuy {
    pub group_buy_id: String,
    pub sku: String,
    pub name: String,
    pub price_fen: i64,
    pub deadline: String,
    pub pickup_date: String,
    pub per_customer_limit: i64,
    pub allotment: i64,
    /// Units committed at this counter so far.
    pub taken: i64,
    /// Whether the deadline (by this store's clock) has not passed.
    pub open: bool,
    /// Participants here once the hub says it is reached (0 before).
    pub participants: i64,
    /// Of them, those who already have a pickup order.
    pub orders_made: i64,
    /// The hub says the campaign failed: the counter refunds its
    /// commitments (`POST …/commitments/{cid}/refund`).
    #[serde(default)]
    pub failed: bool,
    /// Why it failed, in the customers' words (failed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Counter commitments of a failed campaign not yet refunded here.
    #[serde(default)]
    pub refunds_owed: i64,
}

fn terms_of(c: &Connection, id: &str) -> Result<Option<CounterTerms>, AppError> {
    let t: Option<String> = c
        .query_row(
            "SELECT terms FROM group_buys WHERE group_buy_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(t.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Units this counter holds of the campaign (of one customer's hash):
/// a cancelled commitment gives its units back to the allotment and to the
/// customer's limit.
fn taken(c: &Connection, id: &str, member: Option<&str>) -> Result<i64, AppError> {
    Ok(c.query_row(
        "SELECT coalesce(sum(qty), 0) FROM group_buy_commitments
         WHERE group_buy_id = ?1 AND (?2 IS NULL OR member_hash = ?2) AND cancelled_at IS NULL",
        params![id, member],
        |r| r.get(0),
    )?)
}

impl App {
    /// The group-buys this store takes part in, newest deadline first.
    pub async fn group_buys(&self) -> Result<Vec<CounterGroupBuy>, AppError> {
        let now = self.now();
        self.store
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT group_buy_id, terms FROM group_buys ORDER BY deadline DESC LIMIT 100",
                )?;
                let rows: Vec<(String, String)> = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(rows.len());
                for (id, t) in rows {
                    let Ok(t) = serde_json::from_str::<CounterTerms>(&t) else {
                        continue;
                    };
                    let open = DateTime::parse_from_rfc3339(&t.deadline)
                        .is_ok_and(|d| now < d.with_timezone(&Utc));
                    let (participants, orders_made): (i64, i64) = c.query_row(
                        "SELECT count(*), count(o.order_id) FROM group_buy_participants g
                         LEFT JOIN orders o ON o.order_id = 'GB-' || replace(g.commitment_id, '/', '~')
                         WHERE g.group_buy_id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    let failure_reason: Option<String> = c
                        .prepare_cached(
                            "SELECT reason FROM group_buy_failures WHERE group_buy_id = ?1",
                        )?
                        .query_row([&id], |r| r.get(0))
                        .optional()?;
                    let refunds_owed = if failure_reason.is_some() {
                        c.query_row(
                            "SELECT count(*) FROM group_buy_commitments k
                             WHERE k.group_buy_id = ?1 AND NOT EXISTS
                               (SELECT 1 FROM group_buy_refunds r WHERE r.commitment_id = k.commitment_id)",
                            [&id],
                            |r| r.get(0),
                        )?
                    } else {
                        0
                    };
                    out.push(CounterGroupBuy {
                        failed: failure_reason.is_some(),
                        failure_reason,
                        refunds_owed,
                        participants,
                        orders_made,
                        taken: taken(c, &id, None)?,
                        group_buy_id: id,
                        sku: t.sku,
                        name: t.name,
                        price_fen: t.price_fen,
                        deadline: t.deadline,
                        pickup_date: t.pickup_date,
                        per_customer_limit: t.per_customer_limit,
                        allotment: t.allotment,
                        open,
                    });
                }
                Ok::<_, AppError>(out)
            })
            .await
    }

    /// Books a reached group-buy's goods in and makes a pickup order, with
    /// its code, for each participant here the stock now covers (in the
    /// order they committed); a later receipt serves those still waiting.
    /// Each participant gets one order however often this runs. Manager.
    pub async fn receive_group_buy(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        group_buy_id: &str,
        req: ReceiveRequest,
    ) -> Result<GroupBuyReceipt, AppError> {
        actor.require_manager("receive group-buy goods")?;
        if !(0..=1_000_000).contains(&req.qty) {
            return Err(super::invalid("qty", "must be 0-1000000 units"));
        }
        let fp = idempotency::fingerprint("group_buy_receive", &(group_buy_id, req.qty));
        let stamp = self.stamp();
        let now = stamp.at();
        let expires = now + self.settings.pickup_hold * 3;
        let cat = self.catalog();
        let store_id = self.settings.store_id.clone();
        let (staff, gid, qty) = (actor.name.clone(), group_buy_id.to_owned(), req.qty);
        self.write_published(stamp, move |c, p| {
            if let Some(k) = &key
                && let Some(prev) = idempotency::replay(c, &staff, k, "group_buy_receive", &fp)?
            {
                return Ok(prev);
            }
            // a commitment cancelled at this counter is no participant, even
            // while the hub's list still names it (its cancel on the way)
            let mut stmt = c.prepare_cached(
                "SELECT commitment_id, sku, price_fen, member_hash, masked_phone, qty FROM group_buy_participants
                 WHERE group_buy_id = ?1 AND commitment_id NOT IN
                   (SELECT ?2 || '/' || commitment_id FROM group_buy_commitments
                    WHERE group_buy_id = ?1 AND cancelled_at IS NOT NULL)
                 ORDER BY rowid",
            )?;
            #[allow(clippy::type_complexity)]
            let participants: Vec<(String, String, i64, String, String, i64)> = stmt
                .query_map(params![gid, store_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })?
                .collect::<Result<_, _>>()?;
            let Some(sku) = participants.first().map(|x| x.1.clone()) else {
                return Err(AppError::GroupBuyNotFound(gid.clone()));
            };
            let product = cat
                .by_sku(&sku)
                .ok_or_else(|| AppError::UnknownSku(sku.clone()))?;
            if qty > 0 {
                super::stock::apply_and_publish(
                    c,
                    p,
                    &super::stock::NewMovement {
                        sku: &sku,
                        kind: MovementKind::Receipt,
                        delta: qty,
                        reason: Some("group-buy goods"),
                        ref_id: Some(&gid),
                        staff: &staff,
                        at: now,
                    },
                )?;
            }
            // the goods were bought for these participants (以销定采): what
            // came in for the campaign is shared out in commitment order,
            // whatever else is on the shelf
            c.execute(
                "UPDATE group_buys SET goods_in = goods_in + ?2 WHERE group_buy_id = ?1",
                params![gid, qty],
            )?;
            let goods_in: i64 = c
                .query_row(
                    "SELECT goods_in FROM group_buys WHERE group_buy_id = ?1",
                    [&gid],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(qty);
            let mut assigned = 0;
            for (cid, _, _, _, _, want) in &participants {
                if super::orders::load_order(c, &groupbuy::order_id_of(cid))?.is_some() {
                    assigned += want;
                }
            }
            let mut orders = Vec::new();
            let mut waiting = 0;
            for (cid, sku, price, hash, masked, want) in &participants {
                let order_id = groupbuy::order_id_of(cid);
                if super::orders::load_order(c, &order_id)?.is_some() {
                    continue;
                }
                if assigned + want > goods_in {
                    waiting += 1;
                    continue;
                }
                assigned += want;
                orders.push(super::orders::make_own_order(
                    c,
                    p,
                    &super::orders::OwnOrder {
                        order_id: &order_id,
                        customer_hash: hash,
                        customer_masked: masked,
                        sku,
                        name: &product.name,
                        unit: product.unit,
                        qty: *want,
                        unit_price_fen: *price,
                        by: &staff,
                        now,
                        expires,
                    },
                )?);
            }
            let out = GroupBuyReceipt {
                group_buy_id: gid.clone(),
                received: qty,
                orders,
                waiting,
            };
            if let Some(k) = &key {
                idempotency::record(c, &staff, k, "group_buy_receive", &fp, &out, now)?;
            }
            Ok(out)
        })
        .await
    }

    /// Commits the customer with this phone to a group-buy at this counter.
    pub async fn commit_at_counter(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        group_buy_id: &str,
        req: CommitRequest,
    ) -> Result<CounterCommitted, AppError> {
        let phone = valid_phone("customer.phone", &req.customer.phone)?;
        let (member, masked) = (self.member_hash(&phone), mask_phone(&phone));
        let method = req.payment_method.unwrap_or(PaymentMethod::Cash);
        let fp = idempotency::fingerprint(
            "group_buy_commit",
            &(group_buy_id, &member, req.qty, method.as_str()),
        );
        let stamp = self.stamp();
        let now = stamp.at();
        let (staff, gid, qty) = (actor.name.clone(), group_buy_id.to_owned(), req.qty);
        self.write_published(stamp, move |c, p| {
            if let Some(k) = &key
                && let Some(prev) = idempotency::replay(c, &staff, k, "group_buy_commit", &fp)?
            {
                return Ok(prev);
            }
            let terms = terms_of(c, &gid)?.ok_or_else(|| AppError::GroupBuyNotFound(gid.clone()))?;
            let all = taken(c, &gid, None)?;
            let mine = taken(c, &gid, Some(&member))?;
            groupbuy::check_counter(&terms, all, mine, qty, now).map_err(AppError::GroupBuy)?;
            let fact = CounterCommitment {
                commitment_id: linli_sync::ids::ulid().to_string(),
                group_buy_id: gid.clone(),
                member_hash: member.clone(),
                masked_phone: masked.clone(),
                phone: String::new(),
                qty,
                at: ts(now),
                staff: staff.clone(),
                method: Some(method),
            };
            c.execute(
                "INSERT INTO group_buy_commitments(commitment_id, group_buy_id, member_hash, qty, at, staff,
                                                   masked_phone, amount_fen, method)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![fact.commitment_id, gid, member, qty, fact.at, staff, masked, qty * terms.price_fen, method.as_str()],
            )?;
            let out = CounterCommitted {
                commitment_id: fact.commitment_id.clone(),
                group_buy_id: gid.clone(),
                phone: masked.clone(),
                qty,
                amount_fen: qty * terms.price_fen,
                payment_method: method,
                at: fact.at.clone(),
                allotment_left: terms.allotment - all - qty,
            };
            p.fact(LedgerFact::Commitment(fact));
            if let Some(k) = &key {
                idempotency::record(c, &staff, k, "group_buy_commit", &fp, &out, now)?;
            }
            Ok(out)
        })
        .await
    }
}
