//! A coupon campaign in a run (DESIGN §7, DECISIONS "Promotions: markdowns
//! and coupons"): a money budget split like stock rights, each store's
//! counter lent an allotment it redeems from offline, the hub the one
//! place of online redemptions; customers claim coupons at the hub for one
//! place, show counter codes at the counter (sometimes at the wrong store,
//! sometimes a code already used), a whole refund gives a coupon back, a
//! cancelled order too, and the admin may recall the counters' allotments.
//!
//! Checked after every step, against what the counters and the hub
//! answered: no claim redeemed twice at once; a counter's redemptions fit
//! in what the hub lent it less what it gave back; the hub's own money
//! (online redemptions plus what counters hold) never passes the budget.
//! Once idle: the hub counts exactly the counter redemptions the counters
//! answered and did not give back, holds an online coupon exactly on the
//! orders that were not cancelled, and has every recalled counter's
//! unspent money back.

use anyhow::ensure;
use linli_hub::app::coupons::{ClaimRequest, CouponView, NewCoupon, OffRequest, RecallRequest};
use linli_hub::auth::Caller;
use linli_shared::order::OrderStatus;

use super::*;

/// The run's campaign as the counters and the hub answered it.
pub(super) struct Coupons {
    id: String,
    budget: i64,
    /// Claim id → the store whose counter takes it (`None`: online).
    claims: BTreeMap<String, Option<usize>>,
    /// A counter claim's signed code → its claim id.
    codes: BTreeMap<String, String>,
    /// Counter redemptions answered, by sale id.
    at_counters: BTreeMap<String, CounterUse>,
    /// Orders placed with a coupon: the first order id → its claim.
    online: BTreeMap<String, String>,
    /// Customers' hub sessions, by phone.
    customers: BTreeMap<String, Caller>,
    /// Stores whose allotments the admin recalled.
    recalled: BTreeSet<usize>,
    next_key: u64,
    /// Requests refused, by what the counter or the hub said (for the
    /// report: the refusals are part of what a run exercises).
    pub(super) refused: usize,
}

struct CounterUse {
    claim: String,
    store: usize,
    discount: i64,
    /// A whole refund gave the coupon back.
    voided: bool,
}

/// The campaign's coupon: 3 yuan off a basket of 5 or more.
const OFF_FEN: i64 = 300;
const BUDGET_FEN: i64 = 6_000;
const ALLOTMENT_FEN: i64 = 900;
/// What online keeps at least, beside the counters' allotments: a run of
/// more than five stores raises the budget so the hub accepts the
/// campaign (the allotments may not pass it).
const ONLINE_AT_LEAST_FEN: i64 = 1_500;

impl World {
    /// The admin opens a campaign for every store's counter and online.
    pub(super) async fn open_coupons(&mut self) -> anyhow::Result<()> {
        let admin = admin();
        let budget = BUDGET_FEN.max(ALLOTMENT_FEN * self.stores.len() as i64 + ONLINE_AT_LEAST_FEN);
        let v = self
            .hub
            .create_coupon(
                &admin,
                NewCoupon {
                    name: "满5减3".into(),
                    off: OffRequest::AmountFen(OFF_FEN),
                    min_spend_fen: 500,
                    budget_fen: budget,
                    per_customer_limit: 2,
                    valid_from: None,
                    valid_until: self.clock.now() + chrono::Duration::days(2),
                    store_ids: self.stores.iter().map(|s| s.id.clone()).collect(),
                    counter_allotment_fen: Some(ALLOTMENT_FEN),
                },
            )
            .await?;
        self.coupons = Some(Coupons {
            id: v.coupon_id,
            budget,
            claims: BTreeMap::new(),
            codes: BTreeMap::new(),
            at_counters: BTreeMap::new(),
            online: BTreeMap::new(),
            customers: BTreeMap::new(),
            recalled: BTreeSet::new(),
            next_key: 0,
            refused: 0,
        });
        Ok(())
    }

    /// A customer (one of a few dozen neighbours) claims a coupon at the
    /// hub for `at` (a store's counter, or online). `None` when the hub
    /// refuses (the per-customer limit, say).
    async fn claim(&mut self, phone: &str, at: Option<usize>) -> anyhow::Result<Option<String>> {
        let Some(cp) = self.coupons.as_mut() else {
            return Ok(None);
        };
        let caller = match cp.customers.get(phone) {
            Some(c) => c.clone(),
            None => {
                let (_, id) = self
                    .hub
                    .customer_session(Some(phone.to_owned()), None)
                    .await?;
                let c = Caller::Customer {
                    customer_id: id,
                    phone: phone.to_owned(),
                };
                cp.customers.insert(phone.to_owned(), c.clone());
                c
            }
        };
        cp.next_key += 1;
        let key = format!("claim-{}", cp.next_key);
        let req = ClaimRequest {
            r#use: Some(if at.is_some() { "counter" } else { "online" }.into()),
            store_id: at.map(|i| self.stores[i].id.clone()),
        };
        let id = cp.id.clone();
        match self.hub.claim_coupon(&caller, key, &id, req).await {
            Ok((v, _)) => {
                let cp = self.coupons.as_mut().context("coupons")?;
                cp.claims.insert(v.claim_id.clone(), at);
                if let Some(code) = &v.code {
                    cp.codes.insert(code.clone(), v.claim_id.clone());
                }
                let place = at.map_or("online".into(), |i| self.stores[i].id.clone());
                self.note(format!("{phone} claimed {} for {place}", v.claim_id));
                Ok(Some(match at {
                    Some(_) => v.code.context("a counter claim without its code")?,
                    None => v.claim_id,
                }))
            }
            Err(e) => {
                self.note(format!("hub refused a claim of {phone}: {e}"));
                Ok(None)
            }
        }
    }

    /// The code a walk-in at store `i` shows, if any: mostly one claimed
    /// now for this counter; sometimes one claimed for another store's
    /// counter (to be refused), sometimes one this counter already took.
    pub(super) async fn counter_code(&mut self, i: usize) -> anyhow::Result<Option<String>> {
        let Some(cp) = self.coupons.as_ref() else {
            return Ok(None);
        };
        if !self.rng.gen_bool(0.3) {
            return Ok(None);
        }
        let used: Vec<String> = cp
            .at_counters
            .values()
            .filter(|u| u.store == i)
            .map(|u| u.claim.clone())
            .collect();
        let roll = self.rng.gen_range(0..10);
        if roll == 0 && !used.is_empty() {
            let claim = &used[self.rng.gen_range(0..used.len())];
            return Ok(cp
                .codes
                .iter()
                .find(|(_, c)| *c == claim)
                .map(|(code, _)| code.clone()));
        }
        let at = match roll {
            1 if self.stores.len() > 1 => (i + 1) % self.stores.len(),
            _ => i,
        };
        let phone = format!("136{:08}", self.rng.gen_range(0..30));
        self.claim(&phone, Some(at)).await
    }

    /// An online coupon for `phone`'s order, sometimes.
    pub(super) async fn online_coupon(&mut self, phone: &str) -> anyhow::Result<Option<String>> {
        if self.coupons.is_none() || !self.rng.gen_bool(0.3) {
            return Ok(None);
        }
        self.claim(phone, None).await
    }

    /// What a counter answered for a sale that showed `code`.
    pub(super) fn counter_answered(
        &mut self,
        i: usize,
        code: &str,
        receipt: &linli_edge::app::sales::SaleReceipt,
    ) -> anyhow::Result<()> {
        let Some(cp) = self.coupons.as_mut() else {
            return Ok(());
        };
        let discount: i64 = receipt.lines.iter().map(|l| l.coupon_fen).sum();
        let claim = cp
            .codes
            .get(code)
            .cloned()
            .context("a code no claim gave")?;
        let here = cp.claims.get(&claim).copied().flatten();
        ensure!(
            here == Some(i) || discount == 0,
            "{} redeemed {claim}, claimed for {:?}",
            self.stores[i].id,
            here.map(|s| &self.stores[s].id)
        );
        if discount == 0 {
            return Ok(());
        }
        if let Some(u) = cp.at_counters.get(&receipt.sale_id) {
            // a replay answers the same redemption
            ensure!(
                u.claim == claim && u.discount == discount,
                "{}: sale {} answered another coupon on a replay",
                self.stores[i].id,
                receipt.sale_id
            );
            return Ok(());
        }
        if let Some((sale, _)) = cp
            .at_counters
            .iter()
            .find(|(_, u)| u.claim == claim && !u.voided)
        {
            bail!(
                "{}: coupon {claim} redeemed by sale {} while sale {sale} holds it",
                self.stores[i].id,
                receipt.sale_id
            );
        }
        cp.at_counters.insert(
            receipt.sale_id.clone(),
            CounterUse {
                claim,
                store: i,
                discount,
                voided: false,
            },
        );
        Ok(())
    }

    /// A refund answered: a whole refund gave the sale's coupon back.
    pub(super) fn refund_answered(
        &mut self,
        sale: &str,
        receipt: &linli_edge::app::sales::RefundReceipt,
    ) -> anyhow::Result<()> {
        let Some(cp) = self.coupons.as_mut() else {
            return Ok(());
        };
        if let Some(u) = cp.at_counters.get_mut(sale) {
            ensure!(
                receipt.coupon_restored || u.voided,
                "sale {sale} refunded whole and its coupon {} not given back",
                u.claim
            );
            u.voided = true;
        }
        Ok(())
    }

    /// An order placed with coupon `claim`.
    pub(super) fn ordered_with(&mut self, order_id: &str, claim: &str) {
        if let Some(cp) = self.coupons.as_mut() {
            cp.online.insert(order_id.to_owned(), claim.to_owned());
        }
    }

    /// Sometimes the admin recalls one store's allotment (once a store).
    pub(super) async fn maybe_recall(&mut self) -> anyhow::Result<()> {
        let Some(cp) = self.coupons.as_ref() else {
            return Ok(());
        };
        if !self.rng.gen_bool(0.1) {
            return Ok(());
        }
        let i = self.rng.gen_range(0..self.stores.len());
        if cp.recalled.contains(&i) {
            return Ok(());
        }
        let admin = admin();
        let id = cp.id.clone();
        let req = RecallRequest {
            store_ids: Some(vec![self.stores[i].id.clone()]),
        };
        self.hub.recall_coupon(&admin, &id, req).await?;
        if let Some(cp) = self.coupons.as_mut() {
            cp.recalled.insert(i);
        }
        let sid = self.stores[i].id.clone();
        self.note(format!("admin recalled {sid}'s coupon allotment"));
        Ok(())
    }

    /// The money, after every step (and once idle, every count).
    pub(super) async fn check_coupons(&mut self, idle: bool) -> anyhow::Result<()> {
        let Some(cp) = self.coupons.as_ref() else {
            return Ok(());
        };
        let v: CouponView = self.hub.coupon(&cp.id).await?;
        // the hub's money: online redemptions and what counters hold; past
        // the budget only by coupons on orders the hub cancelled and a
        // store handed over anyway (given, and a manager's conflict)
        let held: i64 = v
            .allotments
            .iter()
            .map(|a| a.allotted_fen - a.returned_fen)
            .sum();
        let conflicted = self
            .audit
            .hub_conflicted_coupon_fen(&self.hub_db(), &cp.id)?;
        ensure!(
            v.online_used_fen + held <= cp.budget + conflicted,
            "coupon {}: online {} + counters' {held} pass the budget {} (+ {conflicted} on conflicts)",
            cp.id,
            v.online_used_fen,
            cp.budget
        );
        for (i, s) in self.stores.iter().enumerate() {
            let a = v
                .allotments
                .iter()
                .find(|a| a.store_id == s.id)
                .with_context(|| format!("coupon {} has no allotment for {}", cp.id, s.id))?;
            let used: i64 = cp
                .at_counters
                .values()
                .filter(|u| u.store == i && !u.voided)
                .map(|u| u.discount)
                .sum();
            ensure!(
                used + a.returned_fen <= a.allotted_fen,
                "{}: redeemed {used} and gave back {} of an allotment of {}",
                s.id,
                a.returned_fen,
                a.allotted_fen
            );
            if idle {
                ensure!(
                    a.used_fen == used,
                    "{}: idle, the hub counts {} redeemed at its counter, the counter answered {used}",
                    s.id,
                    a.used_fen
                );
                if cp.recalled.contains(&i) {
                    ensure!(
                        a.returned_fen + used == a.allotted_fen,
                        "{}: idle after a recall, {} given back and {used} redeemed of {}",
                        s.id,
                        a.returned_fen,
                        a.allotted_fen
                    );
                }
            }
        }
        if idle {
            // an online coupon is held by exactly the orders not cancelled
            // (a re-routed order's successor holds its predecessor's)
            let mut want = BTreeMap::new();
            for (first, claim) in &cp.online {
                let mut o = self.hub.order(&online::staff(), first).await?;
                while let Some(next) = o.replaced_by.clone() {
                    o = self.hub.order(&online::staff(), &next).await?;
                }
                if o.status != OrderStatus::Cancelled {
                    want.insert(o.order_id.clone(), claim.clone());
                }
            }
            let holders = self.audit.hub_online_coupons(&self.hub_db(), &cp.id)?;
            ensure!(
                holders == want,
                "coupon {}: idle, online coupons held by {holders:?}, orders not cancelled {want:?}",
                cp.id
            );
            let redeemed = cp.at_counters.values().filter(|u| !u.voided).count();
            self.report.coupons_used = redeemed + want.len();
            self.report.coupons = Some(format!(
                "{} claims, {redeemed} held at counters, {} online, {} refused, {} of {} fen given, {} recalled",
                cp.claims.len(),
                want.len(),
                cp.refused,
                v.online_used_fen + v.counter_used_fen,
                cp.budget,
                cp.recalled.len()
            ));
        }
        Ok(())
    }
}
