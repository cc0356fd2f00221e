//! The records of coupons: `coupons` (one row per campaign, its terms, its
//! budget, its stores and their allotment step), `coupon_allotments`
//! (what each store's counter was lent, gave back and whether it was
//! recalled), `coupon_claims` (the coupons customers claimed) and
//! `coupon_redemptions` (online orders' and counters' uses, voided when
//! given back), behind the [`CouponRecords`] trait.
//!
//! The trait is every question and every write the use cases put to these
//! tables, in domain types: no SQL and no database type in its signatures,
//! so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection, so an online order's
//! redemption commits with its order. The rules (what fits in the budget,
//! the per-customer limit, how much a counter is lent or may give back)
//! are [`linli_shared::coupon`] and the use cases': these methods only
//! read and write what they are told.
//!
//! A campaign whose terms or stores do not decode reads as none. A
//! person's export reads their claims and redemptions here, and their
//! erasure files their claims under a tombstone here.

use chrono::{DateTime, Utc};
use linli_shared::coupon::{CounterRedemption, CouponTerms};
use linli_shared::money::Fen;
use serde_json::Value;

use super::StoreError;

mod sqlite;

/// Where a coupon was redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Online,
    Counter,
}

impl Channel {
    /// As `coupon_redemptions.channel` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::Counter => "counter",
        }
    }
}

/// A counter redemption of one claim, with the void its counter reported.
#[derive(Debug, Clone)]
pub struct CounterRow {
    pub redemption_id: String,
    pub redeemed_at: String,
    pub voided_at: Option<String>,
    /// When the counter said it gave the coupon back, if that arrived.
    pub reported_void: Option<String>,
}

/// A campaign as `coupons` holds it.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub terms: CouponTerms,
    pub budget: Fen,
    /// The stores whose counters take it.
    pub store_ids: Vec<String>,
    /// What a counter running low is lent at a time.
    pub step: Fen,
}

/// A campaign to record.
#[derive(Debug, Clone)]
pub struct NewCampaign<'a> {
    pub terms: &'a CouponTerms,
    pub budget: Fen,
    pub store_ids: &'a [String],
    pub step: Fen,
    pub created_by: &'a str,
    pub created_at: DateTime<Utc>,
}

/// A store's allotment of a campaign, with what its counter gave away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allotment {
    pub store_id: String,
    /// Lent in all.
    pub allotted: Fen,
    /// Given back after a recall.
    pub returned: Fen,
    /// When the hub asked for the unspent part back (RFC 3339, as stored).
    pub recalled_at: Option<String>,
    /// Given away at the store's counter (redemptions not voided).
    pub used: Fen,
}

/// A store's allotment as a return is counted against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lending {
    pub allotted: Fen,
    pub returned: Fen,
    pub recalled: bool,
}

/// Whose a claim is and where it is redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOwner {
    pub coupon_id: String,
    pub customer_id: String,
    /// `online` or the store whose counter takes it.
    pub redeem_at: String,
}

/// A claim as its customer is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub coupon_id: String,
    /// `online` or the store whose counter takes it.
    pub redeem_at: String,
    /// Counter coupons: the signed code.
    pub code: Option<String>,
    /// RFC 3339, as stored.
    pub expires_at: String,
}

/// A claim to record.
#[derive(Debug, Clone)]
pub struct NewClaim<'a> {
    pub claim_id: &'a str,
    pub coupon_id: &'a str,
    pub customer_id: &'a str,
    pub redeem_at: &'a str,
    pub code: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub claimed_at: DateTime<Utc>,
}

/// An online order's redemption to record.
#[derive(Debug, Clone)]
pub struct OnlineRedemption<'a> {
    pub redemption_id: &'a str,
    pub claim_id: &'a str,
    pub coupon_id: &'a str,
    pub order_id: &'a str,
    pub discount: Fen,
    /// The version of the terms it was priced with.
    pub version: u32,
    pub at: DateTime<Utc>,
}

/// Every read and write of the coupon tables.
pub trait CouponRecords {
    /// A campaign, if the hub has it (and its row decodes).
    fn campaign(&self, coupon_id: &str) -> Result<Option<Campaign>, StoreError>;

    /// The newest campaigns' ids, newest first (100 at most).
    fn newest_campaigns(&self) -> Result<Vec<String>, StoreError>;

    /// Records a campaign.
    fn add_campaign(&self, campaign: &NewCampaign<'_>) -> Result<(), StoreError>;

    /// How many coupons of a campaign were claimed.
    fn claim_count(&self, coupon_id: &str) -> Result<i64, StoreError>;

    /// How many redemptions of a campaign are not voided.
    fn redemption_count(&self, coupon_id: &str) -> Result<i64, StoreError>;

    /// A campaign's allotments, by store.
    fn allotments(&self, coupon_id: &str) -> Result<Vec<Allotment>, StoreError>;

    /// What the counters hold of a campaign: lent, less what they gave
    /// back.
    fn held(&self, coupon_id: &str) -> Result<Fen, StoreError>;

    /// What one store's counter holds of a campaign (zero if it was lent
    /// nothing), and whether it was recalled.
    fn held_by(&self, coupon_id: &str, store_id: &str) -> Result<(Fen, bool), StoreError>;

    /// Lends `more` to a store; its allotment now, and whether it was
    /// recalled.
    fn lend(&self, coupon_id: &str, store_id: &str, more: Fen) -> Result<(Fen, bool), StoreError>;

    /// Marks a store's allotment recalled at `at` unless it was; whether
    /// it was marked now.
    fn recall(
        &self,
        coupon_id: &str,
        store_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// A store's allotment, if it was lent any.
    fn lending(&self, coupon_id: &str, store_id: &str) -> Result<Option<Lending>, StoreError>;

    /// Counts `returned` as given back by a store in all.
    fn set_returned(
        &self,
        coupon_id: &str,
        store_id: &str,
        returned: Fen,
    ) -> Result<(), StoreError>;

    /// Whose a claim is and where it is redeemed, if it exists.
    fn claim_owner(&self, claim_id: &str) -> Result<Option<ClaimOwner>, StoreError>;

    /// A claim, if it exists.
    fn claim(&self, claim_id: &str) -> Result<Option<Claim>, StoreError>;

    /// How many coupons of a campaign a customer claimed.
    fn claims_by(&self, coupon_id: &str, customer_id: &str) -> Result<i64, StoreError>;

    /// Records a claim.
    fn add_claim(&self, claim: &NewClaim<'_>) -> Result<(), StoreError>;

    /// A customer's claims' ids, newest first (200 at most).
    fn claims_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError>;

    /// What a campaign gave away through `channel` (redemptions not
    /// voided).
    fn used(&self, coupon_id: &str, channel: Channel) -> Result<Fen, StoreError>;

    /// What one store's counter gave away of a campaign (redemptions not
    /// voided).
    fn counter_used(&self, coupon_id: &str, store_id: &str) -> Result<Fen, StoreError>;

    /// The order or sale whose redemption (not voided) holds a claim.
    fn holder(&self, claim_id: &str) -> Result<Option<String>, StoreError>;

    /// Whether redemption `redemption_id` is recorded, voided or not.
    fn redemption_known(&self, redemption_id: &str) -> Result<bool, StoreError>;

    /// Records an online order's redemption.
    fn add_online_redemption(&self, r: &OnlineRedemption<'_>) -> Result<(), StoreError>;

    /// A counter's redemptions of claim `claim_id` at `store_id`, each with
    /// the void the counter reported for it, if one arrived.
    fn counter_redemptions_of(
        &self,
        claim_id: &str,
        store_id: &str,
    ) -> Result<Vec<CounterRow>, StoreError>;

    /// Whether a redemption not voided holds the claim anywhere but at
    /// `store_id`'s counter.
    fn claim_held_elsewhere(&self, claim_id: &str, store_id: &str) -> Result<bool, StoreError>;

    /// Sets a redemption's `voided_at` (`None`: it counts).
    fn set_voided(&self, redemption_id: &str, at: Option<&str>) -> Result<(), StoreError>;

    /// Keeps a counter's void as it reported it (once); the claim it gave
    /// back, if its redemption is known.
    fn record_counter_void(
        &self,
        store_id: &str,
        redemption_id: &str,
        at: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Records a store's counter redemption as it reported it, voided at
    /// its own time if `voided`.
    fn add_counter_redemption(
        &self,
        store_id: &str,
        r: &CounterRedemption,
        voided: bool,
    ) -> Result<(), StoreError>;

    /// Voids the redemption of an order or sale unless it is voided; how
    /// many were voided now.
    fn void_subject(&self, subject_id: &str, at: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Takes back the latest voided online redemption of order
    /// `subject_id`, unless its claim is in use by another; how many were
    /// taken back (0 or 1).
    fn restore_subject(&self, subject_id: &str) -> Result<usize, StoreError>;

    /// The customer's claims as the table holds them (column → value),
    /// oldest first: a person's export.
    fn claim_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError>;

    /// A claim's redemptions as the table holds them, oldest first: a
    /// person's export.
    fn redemption_rows_of_claim(&self, claim_id: &str) -> Result<Vec<Value>, StoreError>;

    /// Files the customer's claims under `tombstone`; the rows changed.
    fn erase_customer_from_claims(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError>;
}
