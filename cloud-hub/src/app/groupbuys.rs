//! Group-buy presales at the hub (以销定采, DESIGN.md §7): campaigns,
//! customers' commitments online, the decision (reached as soon as enough
//! count, failed only after the deadline once every store has reported or
//! the grace has passed) and the supplier order per store. The rules are
//! [`linli_shared::groupbuy`]; this module stores and drives them.
//!
//! - Commitments are rows keyed by id, written with the caller's
//!   `Idempotency-Key` record in one transaction: a retry commits once.
//! - The decision runs in the same transaction as each commitment (so
//!   "reached" is seen at once) and in [`Hub::settle_group_buys`], which the
//!   server calls every few seconds with the wall clock and tests call with
//!   any time they like.
//! - A store "has reported since the deadline" when it sent an index after
//!   the deadline and the hub has since received every change of the
//!   store's own documents that index listed ([`Hub::store_index`]): the
//!   counter commitments it took before the deadline (offline, within an
//!   allotment) are then all at the hub. A link that is merely up proves
//!   nothing (`linli-sim` seed 78: a campaign failed with enough customers
//!   whose commitments were still on their way).
//! - Failure cancels every commitment with its reason, once (the state
//!   moves from open to failed in the same transaction), and queues the
//!   refund of every paid one in that transaction (`paid`).
//! - At a hub that takes payment, an online commitment waits for it
//!   (`awaiting_payment`): it holds the customer's limit but counts only
//!   once paid (`paid`). Counter commitments are paid at the counter and
//!   count as they arrive.
//! - Group-buy products are sold by the unit (`each`): a presale is of
//!   boxes and bags, not of weighed goods.

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::groupbuy::{
    self, CounterCommitment, CounterTerms, Participant, ParticipantList, Progress, State, Terms,
    Threshold, Timing,
};
use linli_shared::money::Fen;
use linli_shared::qty::Unit;
use linli_sync::doc_store::Docs;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::auth::{Role, User};
use crate::error::HubError;
use crate::hub::Hub;
use crate::store;
use crate::store::groupbuys::{CommitmentRecord, GroupBuy as Row, GroupBuyRecords, TotalsChange};
use crate::store::idempotency;
use crate::store::payments::{PaymentView, RefundView};
use crate::time::ts;

mod cancel;
mod failed;
mod paid;

pub(crate) use cancel::project_counter_cancels;
pub use failed::{CounterRefunds, StoreCounterRefunds};

pub use paid::CommitmentPrepayView;
use paid::reason_text;
pub(crate) use paid::store_of_commitment;

/// A campaign as the admin asks for it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroupBuy {
    pub sku: String,
    /// The group-buy price per unit, fen (above 0, at most the chain price).
    pub price_fen: i64,
    pub threshold: Threshold,
    /// Commitments made at or after this instant do not count.
    pub deadline: DateTime<Utc>,
    /// When participants collect (on or after the deadline's day).
    pub pickup_date: NaiveDate,
    pub per_customer_limit: i64,
    pub store_ids: Vec<String>,
    /// How long after the deadline the hub waits for stores that have not
    /// reported before it may decide failure (default 60, at most 1,440).
    #[serde(default)]
    pub grace_minutes: Option<u32>,
    /// Units each store's counter may commit without asking the hub (for
    /// customers committing at the counter, offline too); default 100.
    #[serde(default)]
    pub counter_allotment: Option<i64>,
}

/// A campaign with where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupBuyView {
    pub group_buy_id: String,
    pub sku: String,
    pub name: String,
    pub price_fen: i64,
    /// The chain price per unit, for the saving shown to customers.
    pub list_price_fen: i64,
    pub threshold: Threshold,
    pub deadline: String,
    pub pickup_date: String,
    pub per_customer_limit: i64,
    pub store_ids: Vec<String>,
    pub grace_minutes: u32,
    pub counter_allotment: i64,
    /// `open`, `reached`, `failed` or `fulfilled`.
    pub state: State,
    pub participants: u32,
    pub communities: u32,
    pub qty: i64,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Why it failed, in the customers' words (failed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// A failed campaign's counter commitments (paid in cash at a store's
    /// counter, refunded there): done and still owed, per store (failed
    /// only; `GET /api/v1/group-buys/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_refunds: Option<CounterRefunds>,
}

/// One commitment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommitmentView {
    pub commitment_id: String,
    pub group_buy_id: String,
    pub store_id: String,
    pub qty: i64,
    pub amount_fen: i64,
    pub at: String,
    /// `awaiting_payment` (online, at a hub that takes payment: holds the
    /// customer's limit, does not count until paid), `active` (counts) or
    /// `cancelled`.
    pub status: String,
    /// `group_buy_failed`, `unpaid`, `after_deadline`,
    /// `store_not_in_group_buy`, `group_buy_closed` (paid after the
    /// campaign closed), `customer_cancelled` or `counter_cancelled`
    /// (cancelled and refunded at the store's counter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// When it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// `online` (the shop; the customer may cancel it while the campaign
    /// is open) or `counter` (a store's counter).
    #[serde(default)]
    pub source: String,
    /// Once the goods are at the store: the pickup order's 6-digit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_code: Option<String>,
    /// An online commitment's payment (hubs that take payment): pay it
    /// with `POST /api/v1/group-buys/{id}/commitments/{cid}/pay` by
    /// `pay_by`, or it is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    /// The refund of a paid commitment that was cancelled (`state`:
    /// `pending`, then `succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundView>,
    /// Why it was cancelled, in the customer's words (Chinese first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// A commitment's answer: the commitment and the campaign after it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Committed {
    pub commitment: CommitmentView,
    pub group_buy: GroupBuyView,
}

/// What the supplier is asked for: units per store.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SupplierOrder {
    pub group_buy_id: String,
    pub sku: String,
    pub name: String,
    pub pickup_date: String,
    pub total_qty: i64,
    pub stores: Vec<SupplierLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SupplierLine {
    pub store_id: String,
    pub store_name: String,
    pub qty: i64,
    pub participants: u32,
}

fn invalid(msg: &str) -> HubError {
    HubError::Invalid(msg.to_owned())
}

fn load(c: &Connection, id: &str) -> Result<Option<Row>, HubError> {
    Ok(c.group_buy(id)?)
}

/// Counts a new active commitment made before the deadline into the
/// campaign's running totals, before its row is inserted: one indexed look
/// per question (is the customer new to the campaign, new to the store?),
/// so a commitment costs the same at the 5,000th as at the first. The
/// totals equal [`groupbuy::progress`] over the rows (tested).
fn count_in(
    c: &Connection,
    gid: &str,
    store: &str,
    customer: &str,
    qty: i64,
) -> Result<(), HubError> {
    let new_here = i64::from(!c.has_counting_commitment(gid, customer, Some(store))?);
    let new_anywhere = i64::from(!c.has_counting_commitment(gid, customer, None)?);
    c.add_to_totals(
        gid,
        store,
        TotalsChange {
            store_participants: new_here,
            participants: new_anywhere,
            qty,
        },
    )?;
    Ok(())
}

/// Takes a counting commitment out of the campaign's running totals, once
/// its row no longer says `active` (the inverse of [`count_in`]): the
/// customer stops being a participant of the campaign, or of the store,
/// when no other counting commitment of theirs is left there.
fn count_out(
    c: &Connection,
    gid: &str,
    store: &str,
    customer: &str,
    qty: i64,
) -> Result<(), HubError> {
    let gone_here = i64::from(!c.has_counting_commitment(gid, customer, Some(store))?);
    let gone_anywhere = i64::from(!c.has_counting_commitment(gid, customer, None)?);
    c.take_from_totals(
        gid,
        store,
        TotalsChange {
            store_participants: gone_here,
            participants: gone_anywhere,
            qty,
        },
    )?;
    Ok(())
}

impl From<CommitmentRecord> for CommitmentView {
    /// A commitment as its customer sees it, without its payment
    /// (`with_payment`) or the words for its cancel.
    fn from(k: CommitmentRecord) -> Self {
        CommitmentView {
            commitment_id: k.commitment_id,
            group_buy_id: k.group_buy_id,
            store_id: k.store_id,
            qty: k.qty,
            amount_fen: k.amount_fen,
            at: k.at,
            status: k.status,
            cancel_reason: k.cancel_reason,
            pickup_code: k.pickup_code,
            source: k.source,
            cancelled_at: k.cancelled_at,
            payment: None,
            refund: None,
            failure_reason: None,
        }
    }
}

/// Adds a commitment's payment and its newest refund (normally its only
/// one: GBF, GBC or GBL; a second payment's GBD comes on top).
fn with_payment(c: &Connection, k: &mut CommitmentView) -> Result<(), HubError> {
    let (payment, refunds) = crate::store::payments::views(c, &k.commitment_id)?;
    k.payment = payment;
    k.refund = refunds.into_iter().last();
    Ok(())
}

/// The campaign's progress from its running totals.
fn progress_of(c: &Connection, row: &Row) -> Result<Progress, HubError> {
    let totals = c.running_totals(&row.id)?;
    Ok(groupbuy::progress_from_totals(
        row.threshold,
        u32::try_from(totals.participants).unwrap_or(0),
        totals.qty,
        totals.per_store,
    ))
}

/// Why a failed campaign failed: as written when decided, or rebuilt (a
/// campaign decided before the reason was kept names the counts now).
fn reason_of(row: &Row, p: &Progress) -> String {
    row.failure_reason
        .clone()
        .unwrap_or_else(|| failure_reason(row, p))
}

fn failure_reason(row: &Row, p: &Progress) -> String {
    match row.threshold {
        Threshold::Participants { count } => format!(
            "截止时参团人数未达到 {count} 人（实际 {} 人），团购未成，款项原路退回 (fewer than {count} participants by the deadline: {}; the group-buy did not go ahead and payments are refunded)",
            p.participants, p.participants
        ),
        Threshold::Communities {
            count,
            min_per_community,
        } => format!(
            "截止时达到 {min_per_community} 人的社群不足 {count} 个（实际 {} 个），团购未成，款项原路退回 (fewer than {count} communities with {min_per_community} participants each by the deadline: {}; the group-buy did not go ahead and payments are refunded)",
            p.communities, p.communities
        ),
    }
}

impl Hub {
    fn view_of(&self, row: &Row, p: Progress) -> GroupBuyView {
        let dir = self.directory();
        let product = dir.products.get(&row.sku);
        GroupBuyView {
            group_buy_id: row.id.clone(),
            sku: row.sku.clone(),
            name: product.map(|p| p.name.clone()).unwrap_or_default(),
            price_fen: row.price_fen,
            list_price_fen: product.map(|p| p.price.0).unwrap_or_default(),
            threshold: row.threshold,
            deadline: ts(row.deadline),
            pickup_date: row.pickup_date.clone(),
            per_customer_limit: row.per_customer_limit,
            store_ids: row.store_ids.clone(),
            grace_minutes: row.grace_minutes,
            counter_allotment: row.counter_allotment,
            state: row.state,
            participants: p.participants,
            communities: p.communities,
            qty: p.qty,
            failure_reason: (row.state == State::Failed).then(|| reason_of(row, &p)),
            counter_refunds: None,
            progress: p,
            reached_at: row.reached_at.clone(),
            decided_at: row.decided_at.clone(),
        }
    }

    /// Whether each of these stores has been heard from since `t`.
    fn all_reported_since(&self, stores: &[String], t: DateTime<Utc>) -> bool {
        let links = self.links();
        stores.iter().all(|s| {
            links
                .get(s)
                .and_then(|l| l.reported_at)
                .is_some_and(|r| r >= t)
        })
    }

    /// Moves the campaign on if the rules say so (in the caller's
    /// transaction); returns the row as it now stands, its progress, and
    /// the documents written: a reached campaign's participants go to each
    /// store that will hand their goods over.
    fn settle(
        &self,
        c: &Connection,
        docs: &mut Docs,
        mut row: Row,
        now: DateTime<Utc>,
        changed_store: Option<&str>,
    ) -> Result<(Row, Progress, Vec<DocId>), HubError> {
        let was = row.state;
        let p = progress_of(c, &row)?;
        let timing = Timing {
            deadline: row.deadline,
            grace: chrono::Duration::minutes(i64::from(row.grace_minutes)),
        };
        let reported = now >= row.deadline && self.all_reported_since(&row.store_ids, row.deadline);
        let next = groupbuy::decide(row.state, &p, now, timing, reported);
        let at = ts(now);
        match (row.state, next) {
            (State::Open, State::Reached) => {
                c.mark_reached(&row.id, &at)?;
                row.reached_at = Some(at);
            }
            (State::Open, State::Failed) => {
                // the reason names the counts at the deadline, before
                // failing zeroes them
                let reason = failure_reason(&row, &p);
                c.mark_failed(&row.id, &at, &reason)?;
                row.failure_reason = Some(reason);
                // the paid ones are refunded, in this transaction: the
                // state moves once, so the refunds are queued once
                paid::on_failure(c, &row.id, &self.refund_limits(), now, self.now())?;
                c.cancel_commitments_of_failed(&row.id, &at)?;
                // nothing counts any more
                c.zero_totals(&row.id)?;
                row.decided_at = Some(at);
            }
            _ => {}
        }
        let p = if next == State::Failed && p.qty != 0 {
            progress_of(c, &row)?
        } else {
            p
        };
        row.state = next;
        let day = now
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        // on failing, every store learns it (its counter refunds its own)
        if (was, next) == (State::Open, State::Failed) {
            let decided = row.decided_at.clone().unwrap_or_else(|| ts(now));
            let touched = failed::tell_stores(c, docs, &row, &decided, &reason_of(&row, &p), day)?;
            failed::mark_told(c, &row.id, now)?;
            return Ok((row, p, touched));
        }
        // on reaching, every store learns its participants; afterwards only
        // the store whose commitments changed
        let touched = match (was, next, changed_store) {
            (State::Open, State::Reached, _) | (State::Reached, State::Reached, Some(_)) => {
                let only = if was == State::Reached {
                    changed_store
                } else {
                    None
                };
                publish_participants(c, docs, &row, day, only)?
            }
            _ => Vec::new(),
        };
        Ok((row, p, touched))
    }

    /// Opens a campaign: an admin for any stores, a store manager for their
    /// own store alone (`store_ids` naming only it).
    pub async fn create_group_buy(
        &self,
        user: &User,
        req: NewGroupBuy,
    ) -> Result<GroupBuyView, HubError> {
        match user.role {
            Role::Admin => {}
            Role::Manager => {
                let own = user.store_id.as_deref().unwrap_or_default();
                // an empty or repeated list of their own store is refused
                // below like an admin's (invalid_field)
                if let Some(other) = req.store_ids.iter().find(|s| s.as_str() != own) {
                    return Err(HubError::NotYourStore(other.clone()));
                }
            }
            Role::Regional => return Err(HubError::Forbidden),
        }
        let now = self.now();
        let dir = self.directory();
        let product = dir
            .products
            .get(&req.sku)
            .ok_or_else(|| HubError::UnknownSku(req.sku.clone()))?;
        if product.unit != Unit::Each {
            return Err(invalid(
                "团购商品须按件销售（称重商品请用按份包装的商品） (a group-buy product must be sold by the unit, not by weight)",
            ));
        }
        if req.price_fen <= 0 || Fen(req.price_fen) > product.price {
            return Err(HubError::Invalid(format!(
                "团购价须大于 0 且不高于门店价 {} 分 (price_fen must be above 0 and at most the chain price {})",
                product.price.0, product.price.0
            )));
        }
        match req.threshold {
            Threshold::Participants { count } if (1..=1_000_000).contains(&count) => {}
            Threshold::Communities {
                count,
                min_per_community,
            } if (1..=100_000).contains(&count) && (1..=100_000).contains(&min_per_community) => {}
            _ => {
                return Err(invalid(
                    "成团门槛须为 1 以上的人数或社群数 (threshold.count and min_per_community must be at least 1)",
                ));
            }
        }
        if req.deadline <= now {
            return Err(invalid(
                "截止时间必须在现在之后 (deadline must be in the future)",
            ));
        }
        if req.pickup_date < req.deadline.date_naive() {
            return Err(invalid(
                "提货日期不能早于截止日期 (pickup_date must be on or after the deadline's day)",
            ));
        }
        if !(1..=10_000).contains(&req.per_customer_limit) {
            return Err(invalid(
                "每人限购须在 1 到 10000 之间 (per_customer_limit must be 1-10000)",
            ));
        }
        let grace = req.grace_minutes.unwrap_or(60);
        if grace > 1_440 {
            return Err(invalid(
                "宽限时间最多 1440 分钟 (grace_minutes must be at most 1440)",
            ));
        }
        let mut stores = req.store_ids.clone();
        stores.sort();
        stores.dedup();
        if stores.is_empty() || stores.len() != req.store_ids.len() {
            return Err(invalid(
                "请列出参加的门店，每家一次 (store_ids must list each taking part store once)",
            ));
        }
        if let Some(s) = stores.iter().find(|s| dir.stores.get(s).is_none()) {
            return Err(HubError::UnknownStore(s.clone()));
        }
        let allotment = req.counter_allotment.unwrap_or(100);
        if !(0..=10_000).contains(&allotment) {
            return Err(invalid(
                "每店柜台份数须在 0 到 10000 之间 (counter_allotment must be 0-10000)",
            ));
        }
        let id = format!("G{}", linli_sync::ids::ulid());
        let (gid, by) = (id.clone(), user.name.clone());
        let name = product.name.clone();
        let day = now
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        let this = self.clone();
        let (view, touched) = self
            .with_docs(move |c, docs| {
                c.insert_group_buy(&store::groupbuys::NewGroupBuy {
                    id: &gid,
                    sku: &req.sku,
                    price_fen: req.price_fen,
                    threshold: req.threshold,
                    deadline: req.deadline,
                    pickup_date: req.pickup_date.to_string(),
                    per_customer_limit: req.per_customer_limit,
                    store_ids: &stores,
                    grace_minutes: grace,
                    counter_allotment: allotment,
                    created_by: &by,
                    created_at: now,
                })?;
                // every store's counter learns the terms and its allotment
                // with its orders of the day (it keeps them in its tables)
                let terms = CounterTerms {
                    group_buy_id: gid.clone(),
                    sku: req.sku.clone(),
                    name,
                    price_fen: req.price_fen,
                    deadline: ts(req.deadline),
                    pickup_date: req.pickup_date.to_string(),
                    per_customer_limit: req.per_customer_limit,
                    allotment,
                };
                let mut touched = Vec::with_capacity(stores.len());
                for s in &stores {
                    let doc = DocId::hub_orders(s, day);
                    docs.change(c, &doc, |d| {
                        put_record(d, "group_buys", &gid, &terms)?;
                        Ok(())
                    })?;
                    touched.push(doc);
                }
                let row = load(c, &gid)?.ok_or_else(|| HubError::GroupBuyNotFound(gid.clone()))?;
                let p = groupbuy::progress(row.threshold, row.deadline, &[]);
                Ok::<_, HubError>((this.view_of(&row, p), touched))
            })
            .await?;
        self.announce(touched);
        Ok(view)
    }

    /// A campaign and where it stands.
    pub async fn group_buy(&self, id: &str) -> Result<GroupBuyView, HubError> {
        let (gid, this) = (id.to_owned(), self.clone());
        self.store
            .read(move |c| {
                let row = load(c, &gid)?.ok_or_else(|| HubError::GroupBuyNotFound(gid.clone()))?;
                let p = progress_of(c, &row)?;
                let mut v = this.view_of(&row, p);
                v.counter_refunds = failed::counter_refunds(c, &row)?;
                Ok::<_, HubError>(v)
            })
            .await
    }

    /// Campaigns, newest first (100 at most); `open_only` leaves out the
    /// decided ones (the shop's list).
    pub async fn group_buys(&self, open_only: bool) -> Result<Vec<GroupBuyView>, HubError> {
        let this = self.clone();
        self.store
            .read(move |c| {
                let rows = c.recent_group_buys(open_only)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let p = progress_of(c, &row)?;
                    out.push(this.view_of(&row, p));
                }
                Ok::<_, HubError>(out)
            })
            .await
    }

    /// A customer commits to a campaign at a store (idempotent by the
    /// caller's key).
    pub async fn commit(
        &self,
        caller: &Caller,
        key: String,
        id: &str,
        store_id: &str,
        qty: i64,
    ) -> Result<(Committed, bool), HubError> {
        let Caller::Customer { customer_id, .. } = caller else {
            return Err(HubError::Invalid(
                "参团需要顾客登录；门店收银台请在门店系统为顾客参团 (a customer session commits; a counter commits through its store node)".into(),
            ));
        };
        let now = self.now();
        let (record_key, sent_key) = idempotency::idempotency_record_key(caller, &key);
        let fingerprint = format!("group_buy_commit\u{1f}{id}\u{1f}{store_id}\u{1f}{qty}");
        let (gid, sid, cu, this) = (
            id.to_owned(),
            store_id.to_owned(),
            customer_id.clone(),
            self.clone(),
        );
        let (out, touched) = self
            .with_docs(move |c, docs| {
                if let Some((h, resp)) = idempotency::replay(c, &record_key)? {
                    if h != fingerprint {
                        return Err(HubError::IdempotencyKeyReused(sent_key));
                    }
                    let v: Committed = serde_json::from_str(&resp)
                        .map_err(|e| HubError::Invalid(e.to_string()))?;
                    return Ok(((v, true), Vec::new()));
                }
                let row = load(c, &gid)?.ok_or_else(|| HubError::GroupBuyNotFound(gid.clone()))?;
                let already = c.committed_qty(&gid, &cu)?;
                groupbuy::check_commitment(
                    &Terms {
                        state: row.state,
                        deadline: row.deadline,
                        store_ids: &row.store_ids,
                        per_customer_limit: row.per_customer_limit,
                    },
                    &sid,
                    already,
                    qty,
                    now,
                )?;
                let commitment_id = format!("K{}", linli_sync::ids::ulid());
                let amount = qty * row.price_fen;
                // paid online: it waits for its payment (by the chain's time
                // to pay, and never past the deadline) and counts once paid
                let payment = match &this.order_settings.payment {
                    Some(pay) => Some(paid::open_payment(
                        c,
                        &commitment_id,
                        amount,
                        now,
                        (now + pay.unpaid_timeout).min(row.deadline),
                    )?),
                    None => {
                        count_in(c, &gid, &sid, &cu, qty)?;
                        None
                    }
                };
                let status = if payment.is_some() {
                    "awaiting_payment"
                } else {
                    "active"
                };
                c.insert_online_commitment(&store::groupbuys::NewOnlineCommitment {
                    commitment_id: &commitment_id,
                    group_buy_id: &gid,
                    store_id: &sid,
                    customer_id: &cu,
                    qty,
                    amount_fen: amount,
                    at: now,
                    status,
                })?;
                let (row, p, touched) = this.settle(c, docs, row, now, Some(&sid))?;
                let out = Committed {
                    commitment: CommitmentView {
                        commitment_id,
                        group_buy_id: gid.clone(),
                        store_id: sid,
                        qty,
                        amount_fen: amount,
                        at: ts(now),
                        status: status.into(),
                        cancel_reason: None,
                        cancelled_at: None,
                        source: "online".into(),
                        pickup_code: None,
                        payment,
                        refund: None,
                        failure_reason: None,
                    },
                    group_buy: this.view_of(&row, p),
                };
                idempotency::record(
                    c,
                    &record_key,
                    &fingerprint,
                    &serde_json::to_string(&out).unwrap_or_default(),
                    now,
                )?;
                Ok(((out, false), touched))
            })
            .await?;
        self.announce(touched);
        Ok(out)
    }

    /// Decides these campaigns at `now`, in the caller's transaction.
    pub(crate) fn settle_group_buys_of(
        &self,
        c: &Connection,
        docs: &mut Docs,
        store: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<DocId>, HubError> {
        let mut touched = Vec::new();
        for id in ids {
            if let Some(row) = load(c, id)? {
                touched.extend(self.settle(c, docs, row, now, Some(store))?.2);
            }
        }
        Ok(touched)
    }

    /// Whether a campaign's running totals equal the rules' count over its
    /// commitment rows (for tests and benchmarks).
    pub async fn group_buy_totals_agree(&self, id: &str) -> Result<bool, HubError> {
        let gid = id.to_owned();
        self.store
            .read(move |c| {
                let row = load(c, &gid)?.ok_or_else(|| HubError::GroupBuyNotFound(gid.clone()))?;
                let kept = progress_of(c, &row)?;
                let counted =
                    groupbuy::progress(row.threshold, row.deadline, &c.commitments_of(&gid)?);
                Ok::<_, HubError>(kept == counted)
            })
            .await
    }

    /// Decides every undecided campaign at `now`; returns how many moved.
    /// Tells the stores of any failed campaign they were never told of (one
    /// failed before the hub told stores).
    pub async fn settle_group_buys(&self, now: DateTime<Utc>) -> Result<usize, HubError> {
        let this = self.clone();
        let (moved, touched) = self
            .with_docs(move |c, docs| {
                let rows = c.open_group_buys()?;
                let (mut moved, mut touched) = (0, Vec::new());
                // campaigns failed before the stores were told of failures
                let day = now
                    .with_timezone(&this.order_settings.utc_offset)
                    .date_naive();
                for row in failed::untold(c)? {
                    let p = progress_of(c, &row)?;
                    let decided = row.decided_at.clone().unwrap_or_else(|| ts(now));
                    touched.extend(failed::tell_the_untold(
                        c,
                        docs,
                        &row,
                        &decided,
                        &reason_of(&row, &p),
                        day,
                        now,
                    )?);
                }
                for row in rows {
                    let before = row.state;
                    let (row, _, t) = this.settle(c, docs, row, now, None)?;
                    touched.extend(t);
                    if row.state != before {
                        tracing::info!(group_buy = %row.id, state = row.state.as_str(), "group-buy decided");
                        moved += 1;
                    }
                }
                Ok::<_, HubError>((moved, touched))
            })
            .await?;
        self.announce(touched);
        if moved > 0 && self.takes_payment() {
            self.wake_refunds();
        }
        Ok(moved)
    }

    /// The units to order from the supplier, per store (reached campaigns
    /// only): every store's for an admin, a store manager's own store's
    /// line for a campaign their store takes part in.
    pub async fn supplier_order(&self, user: &User, id: &str) -> Result<SupplierOrder, HubError> {
        let only = match user.role {
            Role::Admin => None,
            Role::Manager => Some(user.store_id.clone().unwrap_or_default()),
            Role::Regional => return Err(HubError::Forbidden),
        };
        let mut view = self.group_buy(id).await?;
        if let Some(own) = &only {
            if !view.store_ids.contains(own) {
                return Err(HubError::NotYourStore(view.store_ids.join("、")));
            }
            view.progress.per_store.retain(|s, _| s == own);
            view.qty = view.progress.per_store.values().map(|p| p.qty).sum();
        }
        if !matches!(view.state, State::Reached | State::Fulfilled) {
            return Err(HubError::GroupBuyNotReached(view.state.as_str()));
        }
        let dir = self.directory();
        let stores = view
            .progress
            .per_store
            .iter()
            .map(|(s, p)| SupplierLine {
                store_id: s.clone(),
                store_name: dir
                    .stores
                    .get(s)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
                qty: p.qty,
                participants: p.participants,
            })
            .collect();
        Ok(SupplierOrder {
            group_buy_id: view.group_buy_id,
            sku: view.sku,
            name: view.name,
            pickup_date: view.pickup_date,
            total_qty: view.qty,
            stores,
        })
    }

    /// The customer's commitments with their campaigns, newest first.
    pub async fn my_commitments(&self, customer_id: &str) -> Result<Vec<Committed>, HubError> {
        let cu = customer_id.to_owned();
        let rows: Vec<CommitmentView> = self
            .store
            .read(move |c| {
                let mut rows: Vec<CommitmentView> = c
                    .commitments_of_customer(&cu)?
                    .into_iter()
                    .map(CommitmentView::from)
                    .collect();
                for k in &mut rows {
                    with_payment(c, k)?;
                    // paid in cash at a counter: given back there
                    k.failure_reason = failed::counter_refund_text(c, k)?;
                }
                Ok::<_, HubError>(rows)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for mut commitment in rows {
            let group_buy = self.group_buy(&commitment.group_buy_id).await?;
            if commitment.failure_reason.is_none() {
                commitment.failure_reason = reason_text(
                    commitment.cancel_reason.as_deref(),
                    group_buy.failure_reason.as_deref(),
                );
            }
            out.push(Committed {
                commitment,
                group_buy,
            });
        }
        Ok(out)
    }
}

/// Writes, for each store with active commitments of a reached campaign,
/// who collects what there: the store turns each into a pickup order when
/// the goods arrive ([`ParticipantList`]).
fn publish_participants(
    c: &Connection,
    docs: &mut Docs,
    row: &Row,
    day: chrono::NaiveDate,
    only: Option<&str>,
) -> Result<Vec<DocId>, HubError> {
    let rows = c.active_participants(&row.id, only)?;
    let mut by_store: std::collections::BTreeMap<String, Vec<Participant>> = Default::default();
    for (store, p) in rows {
        by_store.entry(store).or_default().push(p);
    }
    let mut touched = Vec::new();
    for (store, participants) in by_store {
        let list = ParticipantList {
            group_buy_id: row.id.clone(),
            sku: row.sku.clone(),
            price_fen: row.price_fen,
            pickup_date: row.pickup_date.clone(),
            participants,
        };
        let id = DocId::hub_orders(&store, day);
        let changed = docs.change(c, &id, |d| {
            put_record(d, "group_buy_participants", &row.id, &list)?;
            Ok(())
        })?;
        if changed {
            touched.push(id);
        }
    }
    Ok(touched)
}

/// Records the pickup orders stores made for group-buy participants (ledger
/// orders with ids `GB-<commitment>`), and marks a campaign fulfilled once
/// every active commitment has one (decided at `now`).
pub(crate) fn project_group_buy_orders(
    c: &Connection,
    store: &str,
    orders: &[linli_shared::docs::ledger::OrderFact],
    now: DateTime<Utc>,
) -> Result<(), HubError> {
    for o in orders {
        let Some(commitment) = groupbuy::commitment_of_order(&o.order_id) else {
            continue;
        };
        let code = o
            .detail
            .as_ref()
            .map(|d| d.pickup_code.clone())
            .unwrap_or_default();
        let n = c.set_pickup_order(&commitment, store, &o.order_id, &code, &o.status)?;
        if n == 0 {
            continue;
        }
        let gid = c.group_buy_of_commitment(&commitment)?;
        c.mark_fulfilled_if_collected(&gid, now)?;
    }
    Ok(())
}

/// Projects commitments taken at a store's counter (from its ledger,
/// section `commitments`): each is recorded once under `<store>/<id>`, for
/// the customer its member hash resolves to (one known by the hash alone
/// until the phone logs in), at the time the store took it. One
/// made at or after the deadline, or arriving once the campaign has failed
/// (after the grace), is kept but cancelled with the reason, so nothing a
/// store acknowledged is lost and nothing counts that should not.
pub(crate) fn project_counter_commitments(
    c: &Connection,
    key: &[u8; 32],
    store: &str,
    facts: &[(String, CounterCommitment)],
    now: DateTime<Utc>,
) -> Result<Vec<String>, HubError> {
    let mut campaigns = Vec::new();
    for (id, f) in facts {
        let Some(row) = load(c, &f.group_buy_id)? else {
            tracing::warn!(store, commitment = %id, group_buy = %f.group_buy_id, "counter commitment for an unknown group-buy ignored");
            continue;
        };
        // the member hash (a commitment written before issue 12: its phone's)
        let Some(hash) = f.hash(key) else {
            tracing::warn!(store, commitment = %id, "counter commitment naming no customer ignored");
            continue;
        };
        let customer = crate::store::members::resolve_member(c, &hash, &f.masked(), now)?;
        let at = DateTime::parse_from_rfc3339(&f.at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        let key = format!("{store}/{id}");
        // its counter's cancel may have come first (a later day's ledger
        // synced before this one): it arrives cancelled, never counted
        let cancelled_here = cancel::counting_cancel_of(c, &key)?;
        let cancel = if at >= row.deadline {
            Some("after_deadline")
        } else if matches!(row.state, State::Failed) {
            Some("group_buy_failed")
        } else if !row.store_ids.iter().any(|s| s == store) {
            Some("store_not_in_group_buy")
        } else if cancelled_here.is_some() {
            Some("counter_cancelled")
        } else {
            None
        };
        if c.commitment_exists(&key)? {
            continue;
        }
        if cancel.is_none() {
            count_in(c, &f.group_buy_id, store, &customer, f.qty.max(1))?;
        }
        let n = c.insert_counter_commitment(&store::groupbuys::NewCounterCommitment {
            commitment_id: &key,
            group_buy_id: &f.group_buy_id,
            store_id: store,
            customer_id: &customer,
            qty: f.qty.max(1),
            amount_fen: f.qty.max(1) * row.price_fen,
            at,
            cancel_reason: cancel,
            cancelled_at: match (cancel, cancelled_here) {
                (Some("counter_cancelled"), Some(when)) => Some(when),
                (Some(_), _) => Some(ts(now)),
                (None, _) => None,
            },
            recorded_at: now,
        })?;
        if n == 1 && !campaigns.contains(&f.group_buy_id) {
            campaigns.push(f.group_buy_id.clone());
        }
    }
    Ok(campaigns)
}

impl From<groupbuy::CommitError> for HubError {
    fn from(e: groupbuy::CommitError) -> Self {
        HubError::Commit(e)
    }
}
