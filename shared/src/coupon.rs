//! Coupons (DESIGN.md §7): a campaign with a money budget and a
//! per-customer limit, claimed by customers at the hub and redeemed either
//! online (at the hub) or at one store's counter, offline too.
//!
//! The rules that keep a budget from being overspent and a coupon from
//! being used twice, with stores cut off:
//! - **Every claimed coupon has one place that may redeem it**, chosen when
//!   it is claimed: the hub (online orders) or one store's counter. So two
//!   places never race for the same coupon, online or not.
//! - **The per-customer limit is checked when claiming**, at the hub, which
//!   is always the one writer of claims.
//! - **The budget is split like stock rights**: each store taking part gets
//!   an allotment (money) it may give away at its counter without asking;
//!   the hub gives the rest online. A redemption whose discount does not fit
//!   in what is left is refused, never cut down. The allotments plus what the
//!   hub gave never exceed the budget.
//! - **A counter coupon is a signed code** (`LC1.<claim>.<signature>`,
//!   Ed25519 with the hub's pickup key over the prefix and the claim's
//!   bytes), so a store accepts a coupon claimed while it was offline.
//! - **A refund restores the coupon and its budget exactly once**: a
//!   redemption is voided once (keyed by its id); the coupon is redeemable
//!   again while no unvoided redemption holds it.
//! - **An allotment comes back the way stock rights do**: only its holder
//!   moves it. The hub *asks* for it (a recall on the store's campaign);
//!   the counter, the one writer of its spending, stops taking the
//!   campaign's coupons and gives back what it has not spent in its own
//!   ledger ([`CounterReturn`], a total that only grows); the hub counts a
//!   return only when it sees it, so a store offline during the recall
//!   keeps redeeming within its allotment and the budget is never passed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::money::Fen;
use crate::pricing::{Coupon, CouponOff};

/// Prefix and version of a counter coupon's code.
pub const CODE_PREFIX: &str = "LC1.";
const MAX_CODE_LEN: usize = 1024;

/// A coupon campaign's terms, as the hub keeps them and sends each store
/// taking part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponTerms {
    pub coupon_id: String,
    /// Shown to customers and on receipts (e.g. "满50减8").
    pub name: String,
    pub off: CouponOff,
    /// The subtotal after line prices it needs.
    pub min_spend: Fen,
    /// RFC 3339.
    pub valid_from: String,
    pub valid_until: String,
    pub per_customer_limit: u32,
    /// Bumped when the hub changes the terms; written on every redemption.
    pub version: u32,
}

impl CouponTerms {
    /// The coupon as the pricing function takes it.
    pub fn as_coupon(&self) -> Coupon {
        Coupon {
            coupon_id: self.coupon_id.clone(),
            off: self.off,
            min_spend: self.min_spend,
        }
    }

    /// Whether the coupon may be used at `now`.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        let parse = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
        matches!(
            (parse(&self.valid_from), parse(&self.valid_until)),
            (Ok(from), Ok(until)) if from <= now && now < until
        )
    }
}

/// What the hub writes for a store taking part: the terms and the money
/// the store's counter may give away in all (the hub only raises it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterCoupon {
    pub terms: CouponTerms,
    pub allotment: Fen,
    /// The hub asks the counter to stop taking this campaign's coupons and
    /// give back what it has not spent (never taken back once asked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
}

/// A counter's return of the allotment it did not spend, once the hub
/// recalled it (ledger section `coupon_returns`, keyed by the campaign):
/// the total given back so far. It only grows: a refund after the recall
/// voids a redemption and gives its money back too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterReturn {
    pub coupon_id: String,
    pub returned_fen: i64,
    pub at: String,
}

/// What a recalled counter has given back in all, with `allotment` lent
/// and `used` spent (redemptions not voided): everything it has not spent.
/// A recalled counter takes no more coupons, so `used` only falls and the
/// allotment only rises: the total only grows (`returned` is the last).
pub fn returned_total(allotment: Fen, used: Fen, returned: Fen) -> Fen {
    Fen(returned.0.max(allotment.0 - used.0).max(0))
}

/// What the hub counts of a store's reported return: the largest seen
/// (reports arrive in any order, each a total), never more than the hub
/// lent it (a report past that would let online orders spend money the
/// counter may still give away).
pub fn counted_return(lent: Fen, seen: Fen, reported: Fen) -> Fen {
    Fen(seen.0.max(reported.0).min(lent.0).max(0))
}

/// A store's report of a coupon its counter took (ledger section
/// `coupon_redemptions`), or gave back on a refund (section `coupon_voids`,
/// keyed by the redemption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRedemption {
    pub redemption_id: String,
    pub claim_id: String,
    pub coupon_id: String,
    pub sale_id: String,
    pub discount_fen: i64,
    pub version: u32,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterVoid {
    pub redemption_id: String,
    pub at: String,
}

/// What a counter coupon's code promises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponClaim {
    /// The claimed coupon's id (one per claim).
    #[serde(rename = "i")]
    pub claim_id: String,
    #[serde(rename = "c")]
    pub coupon_id: String,
    /// The one store whose counter may redeem it.
    #[serde(rename = "s")]
    pub store_id: String,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl CouponClaim {
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.expires, 0)
            .single()
            .unwrap_or_default()
    }
}

/// Why a coupon is refused (the message is what the cashier or customer
/// reads: Chinese first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouponError {
    #[error("这不是有效的优惠券码，请重新扫描 (not a Linli coupon code; scan it again)")]
    Malformed,
    #[error("优惠券码签名不符，可能被伪造或篡改 (the coupon code is not signed by the hub)")]
    BadSignature,
    #[error("这张券只能在门店 {store} 使用 (this coupon is for store {store})")]
    WrongStore { store: String },
    #[error("这张券已于 {at} 过期 (this coupon expired at {at})")]
    Expired { at: DateTime<Utc> },
    #[error("本店不参加这个优惠活动 (this store does not take part in coupon {0})")]
    NotHere(String),
    #[error("这张券已使用过 (this coupon was already used)")]
    AlreadyUsed,
    #[error("未满 {min} 元，不能用这张券 (the order must come to at least {min} yuan)")]
    BelowMinSpend { min: String },
    #[error("优惠活动预算已用完 (the campaign's budget is used up)")]
    BudgetExhausted,
    #[error(
        "本店的这个优惠活动已结束，额度已交回总部 (the hub recalled this counter's allotment of coupon {0}: it takes no more)"
    )]
    Recalled(String),
}

impl CouponError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            CouponError::Malformed | CouponError::BadSignature => "coupon_invalid",
            CouponError::WrongStore { .. } => "coupon_wrong_store",
            CouponError::Expired { .. } => "coupon_expired",
            CouponError::NotHere(_) => "coupon_not_here",
            CouponError::AlreadyUsed => "coupon_used",
            CouponError::BelowMinSpend { .. } => "coupon_min_spend",
            CouponError::BudgetExhausted => "coupon_budget_exhausted",
            CouponError::Recalled(_) => "coupon_recalled",
        }
    }
}

/// Signs a counter coupon's claim into its code.
pub fn sign(claim: &CouponClaim, key: &SigningKey) -> String {
    let bytes = serde_json::to_vec(claim).unwrap_or_default();
    let sig = key.sign(&signed_bytes(&bytes));
    format!(
        "{CODE_PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(&bytes),
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    )
}

/// The prefix is signed too, so no other signed payload of the same key
/// (a pickup code) can pass for a coupon.
fn signed_bytes(claim: &[u8]) -> Vec<u8> {
    let mut b = CODE_PREFIX.as_bytes().to_vec();
    b.extend_from_slice(claim);
    b
}

/// Whether `s` looks like a counter coupon's code.
pub fn is_code(s: &str) -> bool {
    s.trim().starts_with(CODE_PREFIX)
}

/// Verifies a scanned code for `store_id` at `now`: signature, store,
/// expiry.
pub fn verify(
    code: &str,
    key: &VerifyingKey,
    store_id: &str,
    now: DateTime<Utc>,
) -> Result<CouponClaim, CouponError> {
    let code = code.trim();
    if code.len() > MAX_CODE_LEN {
        return Err(CouponError::Malformed);
    }
    let rest = code
        .strip_prefix(CODE_PREFIX)
        .ok_or(CouponError::Malformed)?;
    let (claim_b64, sig_b64) = rest.split_once('.').ok_or(CouponError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(claim_b64)
        .map_err(|_| CouponError::Malformed)?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| CouponError::Malformed)?
        .try_into()
        .map_err(|_| CouponError::Malformed)?;
    key.verify(&signed_bytes(&bytes), &Signature::from_bytes(&sig))
        .map_err(|_| CouponError::BadSignature)?;
    let claim: CouponClaim = serde_json::from_slice(&bytes).map_err(|_| CouponError::Malformed)?;
    if claim.store_id != store_id {
        return Err(CouponError::WrongStore {
            store: claim.store_id,
        });
    }
    if now.timestamp() >= claim.expires {
        return Err(CouponError::Expired {
            at: claim.expires_at(),
        });
    }
    Ok(claim)
}

/// Whether a discount of `discount` fits in what is left of `available`
/// after `used` (budget or allotment): refused, never cut down.
pub fn fits(available: Fen, used: Fen, discount: Fen) -> Result<(), CouponError> {
    if discount.0 <= available.0 - used.0 {
        Ok(())
    } else {
        Err(CouponError::BudgetExhausted)
    }
}

/// How much of the budget the hub may still lend to a store whose counter
/// has `left` of its allotment: a store running low (under a quarter of
/// `step`) gets another `step`, as far as the budget's unallotted part goes.
pub fn top_up(step: Fen, left: Fen, unallotted: Fen) -> Fen {
    if step.0 <= 0 || left.0 * 4 >= step.0 {
        return Fen::ZERO;
    }
    Fen(step.0.min(unallotted.0.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claim() -> CouponClaim {
        CouponClaim {
            claim_id: "CL1".into(),
            coupon_id: "CP1".into(),
            store_id: "S001".into(),
            expires: 2_000_000_000,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000, 0).single().unwrap()
    }

    #[test]
    fn a_signed_code_verifies_at_its_store_only_until_it_expires() {
        let k = key(7);
        let code = sign(&claim(), &k);
        assert!(is_code(&code));
        assert_eq!(
            verify(&code, &k.verifying_key(), "S001", now()),
            Ok(claim())
        );
        assert!(matches!(
            verify(&code, &k.verifying_key(), "S002", now()),
            Err(CouponError::WrongStore { .. })
        ));
        let late = Utc.timestamp_opt(2_000_000_000, 0).single().unwrap();
        assert!(matches!(
            verify(&code, &k.verifying_key(), "S001", late),
            Err(CouponError::Expired { .. })
        ));
        assert_eq!(
            verify(&code, &key(8).verifying_key(), "S001", now()),
            Err(CouponError::BadSignature)
        );
    }

    #[test]
    fn an_altered_code_or_a_pickup_signature_is_refused() {
        let k = key(7);
        let code = sign(&claim(), &k);
        let mut other = claim();
        other.store_id = "S002".into();
        let forged_claim = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        let sig = code.rsplit('.').next().unwrap();
        let forged = format!("{CODE_PREFIX}{forged_claim}.{sig}");
        assert_eq!(
            verify(&forged, &k.verifying_key(), "S002", now()),
            Err(CouponError::BadSignature)
        );
        // the same bytes signed without the prefix (as a pickup code is)
        let bytes = serde_json::to_vec(&claim()).unwrap();
        let plain = k.sign(&bytes);
        let reused = format!(
            "{CODE_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&bytes),
            URL_SAFE_NO_PAD.encode(plain.to_bytes())
        );
        assert_eq!(
            verify(&reused, &k.verifying_key(), "S001", now()),
            Err(CouponError::BadSignature)
        );
        assert_eq!(
            verify("LP1.abc.def", &k.verifying_key(), "S001", now()),
            Err(CouponError::Malformed)
        );
    }

    proptest! {
        /// Redemptions admitted one by one by `fits`, each with whatever
        /// discount, never add up past the budget; top-ups never lend more
        /// than the budget's unallotted part.
        #[test]
        fn a_budget_is_never_overspent(
            budget in 0i64..100_000,
            discounts in proptest::collection::vec(0i64..5_000, 0..60),
            step in 0i64..20_000,
        ) {
            let mut used = 0;
            for d in discounts {
                if fits(Fen(budget), Fen(used), Fen(d)).is_ok() {
                    used += d;
                }
                prop_assert!(used <= budget);
            }
            let mut allotted = 0;
            let mut left = 0;
            for _ in 0..10 {
                let more = top_up(Fen(step), Fen(left), Fen(budget - allotted));
                prop_assert!(more.0 >= 0);
                allotted += more.0;
                left += more.0;
                prop_assert!(allotted <= budget);
                left /= 2; // the counter spends half
            }
        }
    }

    /// One store's counter in the money-law model below.
    #[derive(Debug, Clone, Default)]
    struct Counter {
        // the hub's side
        lent: i64,
        recalled: bool,
        seen_used: i64,
        seen_returned: i64,
        // the store's side
        allotment: i64,
        closed: bool,
        redemptions: Vec<i64>,
        returned: i64,
        // what is on the wire, each way (a snapshot taken earlier)
        down: Option<(i64, bool)>,
        up: Option<(i64, i64)>,
    }

    impl Counter {
        fn used(&self) -> i64 {
            self.redemptions.iter().sum()
        }
        fn give_back(&mut self) {
            if self.closed {
                self.returned =
                    returned_total(Fen(self.allotment), Fen(self.used()), Fen(self.returned)).0;
            }
        }
    }

    proptest! {
        /// The money law with recalls: under any interleaving of counter
        /// and online redemptions, voids, top-ups, recalls, returns, and
        /// syncs each way that arrive late (a store offline during a
        /// recall), what online orders and counters gave away never passes
        /// the budget, and no counter gives away plus gives back more than
        /// it was lent.
        #[test]
        fn recalls_and_returns_never_overspend_a_budget(
            budget in 1i64..50_000,
            step in 0i64..10_000,
            ops in proptest::collection::vec((0u8..11, 0usize..2, 0i64..3_000), 0..200),
        ) {
            let mut stores = vec![Counter::default(), Counter::default()];
            let mut online: Vec<i64> = Vec::new();
            let lent_now = |st: &[Counter]| -> i64 {
                st.iter().map(|s| s.lent - s.seen_returned).sum()
            };
            for (op, i, amount) in ops {
                match op {
                    // a counter redeems, within what it knows of its allotment
                    0 => {
                        let s = &mut stores[i];
                        if !s.closed && fits(Fen(s.allotment), Fen(s.used()), Fen(amount)).is_ok() {
                            s.redemptions.push(amount);
                        }
                    }
                    // a refund voids a counter redemption
                    1 => {
                        let s = &mut stores[i];
                        if !s.redemptions.is_empty() {
                            let k = amount as usize % s.redemptions.len();
                            s.redemptions.remove(k);
                            s.give_back();
                        }
                    }
                    // an online order redeems, within the unlent budget
                    2 => {
                        let used: i64 = online.iter().sum();
                        if fits(Fen(budget - lent_now(&stores)), Fen(used), Fen(amount)).is_ok() {
                            online.push(amount);
                        }
                    }
                    3 => {
                        if !online.is_empty() {
                            let k = amount as usize % online.len();
                            online.remove(k);
                        }
                    }
                    // the hub lends a store running low another step
                    4 => {
                        let unlent = budget - lent_now(&stores) - online.iter().sum::<i64>();
                        let s = &stores[i];
                        if !s.recalled {
                            let left = s.lent - s.seen_returned - s.seen_used;
                            let more = top_up(Fen(step), Fen(left), Fen(unlent)).0;
                            stores[i].lent += more;
                        }
                    }
                    // an admin recalls a store's allotment
                    5 => stores[i].recalled = true,
                    // the hub's document leaves for the store ...
                    6 => stores[i].down = Some((stores[i].lent, stores[i].recalled)),
                    // ... and arrives
                    7 => {
                        let s = &mut stores[i];
                        if let Some((lent, recalled)) = s.down.take() {
                            s.allotment = s.allotment.max(lent);
                            s.closed |= recalled;
                            s.give_back();
                        }
                    }
                    // the store's ledger leaves for the hub ...
                    8 => stores[i].up = Some((stores[i].used(), stores[i].returned)),
                    // ... and arrives
                    9 => {
                        let s = &mut stores[i];
                        if let Some((used, returned)) = s.up.take() {
                            s.seen_used = used;
                            s.seen_returned =
                                counted_return(Fen(s.lent), Fen(s.seen_returned), Fen(returned)).0;
                        }
                    }
                    // both directions at once, in full
                    _ => {
                        let s = &mut stores[i];
                        s.allotment = s.allotment.max(s.lent);
                        s.closed |= s.recalled;
                        s.give_back();
                        s.seen_used = s.used();
                        s.seen_returned =
                            counted_return(Fen(s.lent), Fen(s.seen_returned), Fen(s.returned)).0;
                    }
                }
                let given: i64 =
                    online.iter().sum::<i64>() + stores.iter().map(Counter::used).sum::<i64>();
                prop_assert!(given <= budget, "given {} of {}", given, budget);
                prop_assert!(lent_now(&stores) + online.iter().sum::<i64>() <= budget);
                for s in &stores {
                    prop_assert!(s.allotment <= s.lent);
                    prop_assert!(s.used() + s.returned <= s.allotment);
                    prop_assert!(s.seen_returned <= s.returned.max(0));
                }
            }
            // once every recall has reached its store and every return the
            // hub, what the stores did not spend is back in the budget
            for s in &mut stores {
                s.recalled = true;
                s.allotment = s.allotment.max(s.lent);
                s.closed = true;
                s.give_back();
                s.seen_used = s.used();
                s.seen_returned = counted_return(Fen(s.lent), Fen(s.seen_returned), Fen(s.returned)).0;
                prop_assert_eq!(s.lent - s.seen_returned, s.used());
            }
        }
    }
}
