//! Coupons at the hub (DESIGN.md §7; the rules in
//! [`linli_shared::coupon`]): an admin opens a campaign with a money
//! budget; customers claim coupons, each for one place (online, or one
//! store's counter) within the per-customer limit; online orders redeem
//! them here in the order's own transaction, counters redeem theirs offline
//! within the allotment the hub lends each store, and report them in their
//! ledgers. A cancelled order or a refunded counter sale voids its
//! redemption once, which gives the coupon and its budget back.
//!
//! Money: `budget = Σ allotments + online budget`; the hub's online
//! redemptions fit in `budget − Σ allotments`, a store's counter in its
//! allotment, so the whole never exceeds the budget. A store running low
//! gets another step of allotment when its redemptions reach the hub.
//!
//! Recalls: an admin recalls the counters' allotments of a campaign (all
//! its stores or some). The hub only *asks* (the record in the store's
//! orders document gets `recalled`, and the store is lent no more); the
//! counter stops taking the campaign and gives back what it has not spent
//! in its own ledger (`coupon_returns`, a growing total), and only when
//! that arrives does the hub count it: a store's allotment in the money
//! above is `allotted − returned`, so online orders get the money back
//! then, never while the counter might still give it away.

use chrono::{DateTime, Duration, Utc};
use linli_shared::coupon::{
    self, CounterCoupon, CounterRedemption, CounterReturn, CounterVoid, CouponClaim, CouponError,
    CouponTerms,
};
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::money::Fen;
use linli_shared::pricing::CouponOff;
use linli_sync::doc_store::Docs;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::auth::{Role, User};
use crate::error::HubError;
use crate::error::invalid;
use crate::hub::Hub;
use crate::store::coupons::{
    Campaign, Channel, CouponRecords, NewCampaign, NewClaim, OnlineRedemption,
};
use crate::store::idempotency;
use crate::time::ts;

/// What an admin sends to open a campaign.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// Shown to customers and on receipts, e.g. "满50减8".
    pub name: String,
    /// `{"amount_fen": 800}` or `{"percent": 10}` (10% off).
    pub off: OffRequest,
    #[serde(default)]
    pub min_spend_fen: i64,
    /// The most money the campaign gives away in all.
    pub budget_fen: i64,
    pub per_customer_limit: u32,
    /// Default: now.
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: DateTime<Utc>,
    /// Stores whose counters take coupons of this campaign (default none:
    /// online only).
    #[serde(default)]
    pub store_ids: Vec<String>,
    /// Money each of those counters may give away before asking again
    /// (default: a tenth of the budget split between them).
    #[serde(default)]
    pub counter_allotment_fen: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OffRequest {
    AmountFen(i64),
    Percent(u8),
}

/// A campaign with its money.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CouponView {
    pub coupon_id: String,
    pub name: String,
    pub off: OffRequest,
    pub min_spend_fen: i64,
    pub per_customer_limit: u32,
    pub valid_from: String,
    pub valid_until: String,
    pub store_ids: Vec<String>,
    pub version: u32,
    pub budget_fen: i64,
    /// Lent to counters in all.
    pub allotted_fen: i64,
    /// Given back by counters after a recall (counted when it reached the
    /// hub); `allotted − returned` is what counters hold.
    pub returned_fen: i64,
    /// Given away online (redemptions not voided).
    pub online_used_fen: i64,
    /// Given away at counters, as far as the hub knows.
    pub counter_used_fen: i64,
    /// What online orders may still take: budget − (allotted − returned)
    /// − online used.
    pub online_left_fen: i64,
    pub claims: i64,
    pub redemptions: i64,
    /// Each taking-part store's allotment.
    pub allotments: Vec<AllotmentView>,
}

/// A store's allotment of a campaign.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllotmentView {
    pub store_id: String,
    /// Lent in all.
    pub allotted_fen: i64,
    /// Given back after a recall, as far as the hub knows.
    pub returned_fen: i64,
    /// Given away at the store's counter, as far as the hub knows.
    pub used_fen: i64,
    /// When the hub asked for the unspent part back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalled_at: Option<String>,
}

/// What an admin sends to recall counters' allotments.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallRequest {
    /// The stores whose allotments come back (default: every store of the
    /// campaign).
    #[serde(default)]
    pub store_ids: Option<Vec<String>>,
}

/// A customer's claim.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// `online` (the default) or `counter` (with `store_id`).
    #[serde(default)]
    pub r#use: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
}

/// A claimed coupon, as its customer sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimView {
    pub claim_id: String,
    pub coupon_id: String,
    pub name: String,
    /// `online` or the store whose counter takes it.
    pub redeem_at: String,
    /// Counter coupons: the signed code the counter scans (works offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub expires_at: String,
    /// `available`, `used` or `expired`.
    pub state: String,
    /// The order or sale that used it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

fn off_view(o: CouponOff) -> OffRequest {
    match o {
        CouponOff::Amount(f) => OffRequest::AmountFen(f.0),
        CouponOff::Percent(p) => OffRequest::Percent(p),
    }
}

fn allotments(c: &Connection, id: &str) -> Result<Vec<AllotmentView>, HubError> {
    Ok(c.allotments(id)?
        .into_iter()
        .map(|a| AllotmentView {
            store_id: a.store_id,
            allotted_fen: a.allotted.0,
            returned_fen: a.returned.0,
            used_fen: a.used.0,
            recalled_at: a.recalled_at,
        })
        .collect())
}

fn view(c: &Connection, row: &Campaign) -> Result<CouponView, HubError> {
    let id = &row.terms.coupon_id;
    let allotments = allotments(c, id)?;
    let lent: i64 = allotments.iter().map(|a| a.allotted_fen).sum();
    let returned: i64 = allotments.iter().map(|a| a.returned_fen).sum();
    let online = c.used(id, Channel::Online)?.0;
    Ok(CouponView {
        coupon_id: id.clone(),
        name: row.terms.name.clone(),
        off: off_view(row.terms.off),
        min_spend_fen: row.terms.min_spend.0,
        per_customer_limit: row.terms.per_customer_limit,
        valid_from: row.terms.valid_from.clone(),
        valid_until: row.terms.valid_until.clone(),
        store_ids: row.store_ids.clone(),
        version: row.terms.version,
        budget_fen: row.budget.0,
        allotted_fen: lent,
        returned_fen: returned,
        online_used_fen: online,
        counter_used_fen: c.used(id, Channel::Counter)?.0,
        online_left_fen: row.budget.0 - (lent - returned) - online,
        claims: c.claim_count(id)?,
        redemptions: c.redemption_count(id)?,
        allotments,
    })
}

/// Lends `more` to `store` and writes its counter's terms and allotment
/// into the store's orders document of `day`.
fn lend(
    c: &Connection,
    docs: &mut Docs,
    row: &Campaign,
    store: &str,
    more: i64,
    day: chrono::NaiveDate,
) -> Result<DocId, HubError> {
    let (total, recalled) = c.lend(&row.terms.coupon_id, store, Fen(more))?;
    let doc = DocId::hub_orders(store, day);
    let rec = CounterCoupon {
        terms: row.terms.clone(),
        allotment: total,
        recalled,
    };
    docs.change(c, &doc, |d| {
        put_record(d, "coupons", &row.terms.coupon_id, &rec)?;
        Ok(())
    })?;
    Ok(doc)
}

/// An online order's coupon, checked: the claim is the customer's, for
/// online use, valid now and not in use by another order (`replaces`: the
/// order this one takes over from, whose redemption moves to it).
pub(crate) fn online_coupon(
    c: &Connection,
    claim_id: &str,
    customer_id: &str,
    replaces: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CouponTerms, HubError> {
    let Some(claim) = c.claim_owner(claim_id)? else {
        return Err(HubError::CouponNotFound(claim_id.to_owned()));
    };
    if claim.customer_id != customer_id {
        return Err(HubError::CouponNotFound(claim_id.to_owned()));
    }
    if claim.redeem_at != "online" {
        return Err(HubError::Coupon(CouponError::WrongStore {
            store: claim.redeem_at,
        }));
    }
    let row = c
        .campaign(&claim.coupon_id)?
        .ok_or_else(|| HubError::CouponNotFound(claim_id.to_owned()))?;
    // a re-routed order keeps its coupon whatever the time
    if replaces.is_none() && !row.terms.valid_at(now) {
        return Err(HubError::Coupon(CouponError::Expired {
            at: DateTime::parse_from_rfc3339(&row.terms.valid_until)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        }));
    }
    match c.holder(claim_id)? {
        Some(h) if Some(h.as_str()) != replaces => Err(HubError::Coupon(CouponError::AlreadyUsed)),
        _ => Ok(row.terms),
    }
}

/// Records an online order's redemption of `discount` (the pricing
/// function's coupon amount), refusing what does not fit in the online
/// budget. A replacement order takes its predecessor's redemption over.
pub(crate) fn redeem_online(
    c: &Connection,
    claim_id: &str,
    terms: &CouponTerms,
    order_id: &str,
    replaces: Option<&str>,
    discount: Fen,
    now: DateTime<Utc>,
) -> Result<(), HubError> {
    let row = c
        .campaign(&terms.coupon_id)?
        .ok_or_else(|| HubError::CouponNotFound(claim_id.to_owned()))?;
    let id = &terms.coupon_id;
    match replaces {
        // a re-routed order takes its predecessor's redemption over
        Some(old) => {
            void(c, old, now)?;
        }
        None => coupon::fits(
            Fen(row.budget.0 - c.held(id)?.0),
            c.used(id, Channel::Online)?,
            discount,
        )
        .map_err(HubError::Coupon)?,
    }
    c.add_online_redemption(&OnlineRedemption {
        redemption_id: &format!("R{}", linli_sync::ids::ulid()),
        claim_id,
        coupon_id: id,
        order_id,
        discount,
        version: terms.version,
        at: now,
    })?;
    Ok(())
}

/// Gives back the coupon of a cancelled order or refunded sale: voids its
/// redemption once (a second call changes nothing).
pub(crate) fn void(
    c: &Connection,
    subject_id: &str,
    now: DateTime<Utc>,
) -> Result<usize, HubError> {
    Ok(c.void_subject(subject_id, now)?)
}

/// An order the hub cancelled whose goods went out at the store anyway
/// (a hand-over offline; the order's conflict says "settle payment")
/// stands at its price, coupon included: its redemption is taken back,
/// unless the claim has gone to another order since. The budget counts
/// the money given, even past its limit: like a unit sold twice, a
/// conflict for a manager, never hidden.
pub(crate) fn restore(c: &Connection, order_id: &str) -> Result<usize, HubError> {
    Ok(c.restore_subject(order_id)?)
}

/// What a store's counter reported in its ledger about coupons.
#[derive(Debug, Default)]
pub(crate) struct CounterReport {
    pub redemptions: Vec<(String, CounterRedemption)>,
    pub voids: Vec<(String, CounterVoid)>,
    pub returns: Vec<(String, CounterReturn)>,
}

/// Takes a store's counter redemptions, voids and returns into the
/// tables, and lends the store another step where it runs low (never
/// after a recall). Returns the documents written.
pub(crate) fn project_counter(
    c: &Connection,
    docs: &mut Docs,
    store: &str,
    report: &CounterReport,
    day: chrono::NaiveDate,
) -> Result<Vec<DocId>, HubError> {
    // Redemptions and voids arrive in any order: in one message or in
    // two, a void before its redemption (they are in different ledger
    // parts when a part rolled between the sale and its refund), a claim
    // taken again before the void of its last use. Each is kept as the
    // counter reported it, and every claim they touch is then decided
    // from all the facts the hub has of it (`settle_counter_claim`): the
    // order they came in changes nothing.
    let mut claims = std::collections::BTreeSet::new();
    let mut campaigns = std::collections::BTreeSet::new();
    for (_, r) in &report.redemptions {
        campaigns.insert(r.coupon_id.clone());
        claims.insert(r.claim_id.clone());
        if !c.redemption_known(&r.redemption_id)? {
            // counted once its claim is settled
            c.add_counter_redemption(store, r, true)?;
        }
    }
    for (_, v) in &report.voids {
        if let Some(claim) = c.record_counter_void(store, &v.redemption_id, &v.at)? {
            claims.insert(claim);
        }
    }
    for claim in &claims {
        settle_counter_claim(c, store, claim)?;
    }
    // returns, each a total: the largest counts, never past what was lent
    for (_, r) in &report.returns {
        let Some(here) = c.lending(&r.coupon_id, store)? else {
            continue;
        };
        if !here.recalled {
            // a counter gives back only what the hub asked for
            tracing::warn!(store, coupon = %r.coupon_id, "a counter returned an allotment not recalled; ignored");
            continue;
        }
        let counted = coupon::counted_return(here.allotted, here.returned, Fen(r.returned_fen));
        c.set_returned(&r.coupon_id, store, counted)?;
    }
    let mut touched = Vec::new();
    for id in campaigns {
        let Some(row) = c.campaign(&id)? else {
            continue;
        };
        let (lent, recalled) = c.held_by(&id, store)?;
        if recalled {
            continue;
        }
        let spent = c.counter_used(&id, store)?;
        let unallotted = row.budget.0 - c.held(&id)?.0 - c.used(&id, Channel::Online)?.0;
        let more = coupon::top_up(row.step, Fen(lent.0 - spent.0), Fen(unallotted));
        if more.0 > 0 {
            touched.push(lend(c, docs, &row, store, more.0, day)?);
        }
    }
    Ok(touched)
}

/// Decides which of a counter's redemptions of one claim counts, from
/// every fact the hub has of them. A counter takes a claim again only once
/// it gave it back (its own unique index), so at most one counts: the
/// latest, by the counter's time (which never goes back; a tie by id),
/// whose void has not been reported. The others are void, at their
/// reported void's time or, until that arrives, at the time the later one
/// was taken. None counts while the claim is held elsewhere (online or at
/// another counter: only a store restored from a backup can do that),
/// kept for a manager and never counted twice.
fn settle_counter_claim(c: &Connection, store: &str, claim: &str) -> Result<(), HubError> {
    let rows = c.counter_redemptions_of(claim, store)?;
    let open = rows
        .iter()
        .filter(|r| r.reported_void.is_none())
        .max_by(|a, b| (&a.redeemed_at, &a.redemption_id).cmp(&(&b.redeemed_at, &b.redemption_id)));
    let counts = match open {
        Some(_) if c.claim_held_elsewhere(claim, store)? => {
            tracing::warn!(store, claim, "a counter redeemed a coupon already in use");
            None
        }
        open => open,
    };
    // the others first: one redemption of a claim counts at a time
    for r in rows
        .iter()
        .filter(|r| counts.is_none_or(|k| k.redemption_id != r.redemption_id))
    {
        let at = r
            .reported_void
            .as_ref()
            .or(r.voided_at.as_ref())
            .or(counts.map(|k| &k.redeemed_at))
            .unwrap_or(&r.redeemed_at);
        if r.voided_at.as_ref() != Some(at) {
            c.set_voided(&r.redemption_id, Some(at))?;
        }
    }
    if let Some(k) = counts
        && k.voided_at.is_some()
    {
        c.set_voided(&k.redemption_id, None)?;
    }
    Ok(())
}

/// A claim as its customer sees it at `now` (expired or not).
fn claim_view(
    c: &Connection,
    claim_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<ClaimView>, HubError> {
    let Some(claim) = c.claim(claim_id)? else {
        return Ok(None);
    };
    let name = c
        .campaign(&claim.coupon_id)?
        .map(|r| r.terms.name)
        .unwrap_or_default();
    let used_by = c.holder(claim_id)?;
    let expired = DateTime::parse_from_rfc3339(&claim.expires_at).map_or(true, |e| e <= now);
    let state = match (&used_by, expired) {
        (Some(_), _) => "used",
        (None, true) => "expired",
        (None, false) => "available",
    };
    Ok(Some(ClaimView {
        claim_id: claim_id.to_owned(),
        coupon_id: claim.coupon_id,
        name,
        redeem_at: claim.redeem_at,
        code: claim.code,
        expires_at: claim.expires_at,
        state: state.into(),
        used_by,
    }))
}

impl Hub {
    /// Opens a coupon campaign (admin) and lends each taking-part store
    /// its first allotment.
    pub async fn create_coupon(&self, user: &User, req: NewCoupon) -> Result<CouponView, HubError> {
        if user.role != Role::Admin {
            return Err(HubError::Forbidden);
        }
        let now = self.now();
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 40 {
            return Err(invalid("券名须 1–40 个字 (name must be 1-40 characters)"));
        }
        let off = match req.off {
            OffRequest::AmountFen(a) if a > 0 => CouponOff::Amount(Fen(a)),
            OffRequest::Percent(p) if (1..=90).contains(&p) => CouponOff::Percent(p),
            _ => {
                return Err(invalid(
                    "优惠须为大于 0 的金额或 1–90 的百分比 (off must be an amount_fen above 0 or a percent of 1-90)",
                ));
            }
        };
        if req.min_spend_fen < 0 {
            return Err(invalid(
                "min_spend_fen 不能为负 (min_spend_fen must not be negative)",
            ));
        }
        if let CouponOff::Amount(a) = off
            && a.0 > req.min_spend_fen.max(0)
            && req.min_spend_fen > 0
        {
            return Err(invalid(
                "满减金额不能高于门槛 (amount_fen must not exceed min_spend_fen)",
            ));
        }
        if !(1..=10_000_000_000).contains(&req.budget_fen) {
            return Err(invalid("预算须大于 0 (budget_fen must be above 0)"));
        }
        if !(1..=100).contains(&req.per_customer_limit) {
            return Err(invalid(
                "每人限领须在 1 到 100 之间 (per_customer_limit must be 1-100)",
            ));
        }
        let from = req.valid_from.unwrap_or(now);
        if req.valid_until <= from || req.valid_until <= now {
            return Err(invalid(
                "有效期结束须晚于开始和现在 (valid_until must be after valid_from and now)",
            ));
        }
        let mut stores = req.store_ids.clone();
        stores.sort();
        stores.dedup();
        if stores.len() != req.store_ids.len() {
            return Err(invalid(
                "门店不能重复 (store_ids must list each store once)",
            ));
        }
        let dir = self.directory();
        if let Some(s) = stores.iter().find(|s| dir.stores.get(s).is_none()) {
            return Err(HubError::UnknownStore(s.clone()));
        }
        let step = match req.counter_allotment_fen {
            Some(a) if a >= 0 => a,
            Some(_) => {
                return Err(invalid(
                    "counter_allotment_fen 不能为负 (counter_allotment_fen must not be negative)",
                ));
            }
            None if stores.is_empty() => 0,
            None => req.budget_fen / 10 / stores.len() as i64,
        };
        if step * stores.len() as i64 > req.budget_fen {
            return Err(invalid(
                "各店额度之和超过预算 (counter_allotment_fen times the stores exceeds budget_fen)",
            ));
        }
        let id = format!("C{}", linli_sync::ids::ulid());
        let terms = CouponTerms {
            coupon_id: id.clone(),
            name,
            off,
            min_spend: Fen(req.min_spend_fen),
            valid_from: ts(from),
            valid_until: ts(req.valid_until),
            per_customer_limit: req.per_customer_limit,
            version: 1,
        };
        let by = user.name.clone();
        let day = now
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        let (v, touched) = self
            .with_docs(move |c, docs| {
                c.add_campaign(&NewCampaign {
                    terms: &terms,
                    budget: Fen(req.budget_fen),
                    store_ids: &stores,
                    step: Fen(step),
                    created_by: &by,
                    created_at: now,
                })?;
                let row = c
                    .campaign(&id)?
                    .ok_or_else(|| HubError::CouponNotFound(id.clone()))?;
                let mut touched = Vec::new();
                for s in &stores {
                    touched.push(lend(c, docs, &row, s, step, day)?);
                }
                Ok::<_, HubError>((view(c, &row)?, touched))
            })
            .await?;
        self.announce(touched);
        Ok(v)
    }

    /// Recalls counters' allotments of a campaign (admin): every store of
    /// it, or `store_ids`. The hub asks, in each store's orders document;
    /// each counter stops taking the campaign and gives back what it has
    /// not spent, which the hub counts (and online orders may spend) when
    /// the store's return reaches it. Recalling again changes nothing.
    pub async fn recall_coupon(
        &self,
        user: &User,
        id: &str,
        req: RecallRequest,
    ) -> Result<CouponView, HubError> {
        if user.role != Role::Admin {
            return Err(HubError::Forbidden);
        }
        let now = self.now();
        let day = now
            .with_timezone(&self.order_settings.utc_offset)
            .date_naive();
        let id = id.to_owned();
        let (v, touched) = self
            .with_docs(move |c, docs| {
                let row = c
                    .campaign(&id)?
                    .ok_or_else(|| HubError::CouponNotFound(id.clone()))?;
                let stores = match req.store_ids {
                    Some(list) => {
                        if let Some(s) = list.iter().find(|s| !row.store_ids.contains(s)) {
                            return Err(HubError::Coupon(CouponError::NotHere(format!(
                                "{id} @ {s}"
                            ))));
                        }
                        list
                    }
                    None => row.store_ids.clone(),
                };
                let mut touched = Vec::new();
                for s in &stores {
                    if c.recall(&id, s, now)? {
                        touched.push(lend(c, docs, &row, s, 0, day)?);
                    }
                }
                Ok::<_, HubError>((view(c, &row)?, touched))
            })
            .await?;
        self.announce(touched);
        Ok(v)
    }

    /// A campaign with its money.
    pub async fn coupon(&self, id: &str) -> Result<CouponView, HubError> {
        let id = id.to_owned();
        self.store
            .read(move |c| {
                let row = c
                    .campaign(&id)?
                    .ok_or_else(|| HubError::CouponNotFound(id.clone()))?;
                view(c, &row)
            })
            .await
    }

    /// Campaigns valid now (newest first, 100 at most).
    pub async fn coupons(&self) -> Result<Vec<CouponView>, HubError> {
        let now = self.now();
        self.store
            .read(move |c| {
                let mut out = Vec::new();
                for id in c.newest_campaigns()? {
                    if let Some(row) = c.campaign(&id)?
                        && row.terms.valid_at(now)
                    {
                        out.push(view(c, &row)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// A customer claims a coupon for online use or for one store's
    /// counter, within the per-customer limit. Retried with the same
    /// Idempotency-Key, returns the first claim.
    pub async fn claim_coupon(
        &self,
        caller: &Caller,
        key: String,
        id: &str,
        req: ClaimRequest,
    ) -> Result<(ClaimView, bool), HubError> {
        let Caller::Customer { customer_id, .. } = caller else {
            return Err(invalid(
                "领券需要顾客登录 (a customer session claims coupons)",
            ));
        };
        let redeem_at = match (req.r#use.as_deref().unwrap_or("online"), &req.store_id) {
            ("online", None) => "online".to_owned(),
            ("counter", Some(s)) => s.clone(),
            _ => {
                return Err(invalid(
                    "use 须为 online，或 counter 并给出 store_id (use must be online, or counter with store_id)",
                ));
            }
        };
        let now = self.now();
        let (record_key, sent_key) = idempotency::idempotency_record_key(caller, &key);
        let fingerprint = format!("coupon_claim\u{1f}{id}\u{1f}{redeem_at}");
        let (cid, cu, signing) = (id.to_owned(), customer_id.clone(), self.signing.clone());
        self.store
            .write(move |c| {
                if let Some((h, resp)) = idempotency::replay(c, &record_key)? {
                    if h != fingerprint {
                        return Err(HubError::IdempotencyKeyReused(sent_key));
                    }
                    let v: ClaimView = serde_json::from_str(&resp)
                        .map_err(|e| HubError::Invalid(e.to_string()))?;
                    return Ok((v, true));
                }
                let row = c
                    .campaign(&cid)?
                    .ok_or_else(|| HubError::CouponNotFound(cid.clone()))?;
                if !row.terms.valid_at(now) {
                    return Err(HubError::Coupon(CouponError::Expired {
                        at: DateTime::parse_from_rfc3339(&row.terms.valid_until)
                            .map(|t| t.with_timezone(&Utc))
                            .unwrap_or_default(),
                    }));
                }
                if redeem_at != "online" && !row.store_ids.contains(&redeem_at) {
                    return Err(HubError::Coupon(CouponError::NotHere(cid.clone())));
                }
                let had = c.claims_by(&cid, &cu)?;
                if had >= i64::from(row.terms.per_customer_limit) {
                    return Err(HubError::CouponLimit(row.terms.per_customer_limit));
                }
                let claim_id = format!("Q{}", linli_sync::ids::ulid());
                let expires = DateTime::parse_from_rfc3339(&row.terms.valid_until)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(now + Duration::days(1));
                let code = (redeem_at != "online").then(|| {
                    coupon::sign(
                        &CouponClaim {
                            claim_id: claim_id.clone(),
                            coupon_id: cid.clone(),
                            store_id: redeem_at.clone(),
                            expires: expires.timestamp(),
                        },
                        &signing,
                    )
                });
                c.add_claim(&NewClaim {
                    claim_id: &claim_id,
                    coupon_id: &cid,
                    customer_id: &cu,
                    redeem_at: &redeem_at,
                    code: code.as_deref(),
                    expires_at: expires,
                    claimed_at: now,
                })?;
                let v = claim_view(c, &claim_id, now)?
                    .ok_or_else(|| HubError::CouponNotFound(claim_id.clone()))?;
                idempotency::record(
                    c,
                    &record_key,
                    &fingerprint,
                    &serde_json::to_string(&v).unwrap_or_default(),
                    now,
                )?;
                Ok((v, false))
            })
            .await
    }

    /// A customer's claimed coupons, newest first.
    pub async fn my_coupons(&self, customer_id: &str) -> Result<Vec<ClaimView>, HubError> {
        let cu = customer_id.to_owned();
        let now = self.now();
        self.store
            .read(move |c| {
                let mut out = Vec::new();
                for id in c.claims_of(&cu)? {
                    out.extend(claim_view(c, &id, now)?);
                }
                Ok(out)
            })
            .await
    }
}
