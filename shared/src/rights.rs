//! Stock rights: the bounded counter that keeps online orders from
//! overselling a store (DESIGN.md §5; Balegas et al., SRDS 2015; O'Neil's
//! escrow method).
//!
//! Per (store, SKU) two replicas hold rights to sell: the store (at the
//! counter) and the hub (online). The store owns the physical count and
//! **lends** the hub rights; only the holder of rights moves them, so the
//! store writes `lent` and the hub writes `returned`. Every figure below is a
//! grow-only total, kept by exactly one writer, so merging replicas is a
//! field-wise maximum ([`StoreRights::join`], [`HubRights::join`], laws tested
//! below) and epochs carry their totals forward.
//!
//! Store-owned totals ([`StoreRights`], in `store/<S>/stock/<epoch>`):
//! - `lent`: units ever lent to the hub;
//! - `recalled`: units ever asked back; from the moment it asks, the store
//!   counts them as its own again;
//! - `overdraft`: lent units the counter sold anyway (a counter sale is never
//!   refused; the store records the overdraft instead);
//! - `delivered`: units of online orders handed over or sent out;
//! - `wanted_met`: how much of the hub's `wanted` the store has answered.
//!
//! Hub-owned totals ([`HubRights`], in `hub/<S>/stock/<epoch>`):
//! - `consumed`: units sold online (an order consumes rights when accepted);
//! - `released`: consumed units given back by cancelled or re-routed orders;
//! - `returned`: rights given back to the store;
//! - `recall_answered`: the store's `recalled` total the hub has answered
//!   (with as much as it still held: the rest it had already sold);
//! - `wanted`: demand the hub could not serve here (pulls more rights).
//!
//! Derived, never stored:
//! - recalls not answered yet: `recalled − recall_answered` ([`unanswered`]);
//! - rights the hub holds: `lent − overdraft − returned − consumed + released
//!   − unanswered` ([`hub_held`]); the hub accepts an online order only within
//!   them, so during an outage it can never promise a unit the store has sold;
//! - units the store keeps for the hub's customers: `lent − overdraft −
//!   returned − delivered − unanswered` ([`outstanding`]) — rights the hub
//!   holds plus online orders not yet handed over;
//! - what the counter may sell without touching lent units:
//!   `on_hand − reserved − outstanding`.
//!
//! A new `overdraft` makes rights held by the hub go negative; the hub first
//! answers pending recalls ([`hub_answer`]), then releases open orders
//! (newest first, by re-routing or refunding them, each flagged) until it
//! holds zero or more ([`orders_to_release`]). Nothing here reads a clock.
//!
//! Why a recall counts as the store's as soon as it is asked: if it only
//! counted once the store *saw* the hub's return, a counter sale in between
//! (the link down) would be recorded as an overdraft of units the hub had
//! already given back, and the hub would take them off twice (found by the
//! outage simulation of these rules, since replaced by the deterministic
//! simulation of the real hub and stores, `linli-sim`). Counting it at once on
//! both sides means a return changes nothing the store computes; a recall
//! the hub can only partly answer (it sold some of those units first) raises
//! what the store keeps for it again, and the store's next step records any
//! shortfall as an overdraft, which the hub settles.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The store's grow-only totals for one SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreRights {
    pub lent: i64,
    pub recalled: i64,
    pub overdraft: i64,
    pub delivered: i64,
    pub wanted_met: i64,
}

/// The hub's grow-only totals for one SKU of one store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct HubRights {
    pub consumed: i64,
    pub released: i64,
    pub returned: i64,
    pub wanted: i64,
    pub recall_answered: i64,
}

impl StoreRights {
    /// The totals' column names, in the order of [`Self::from_totals`].
    pub const COLUMNS: &'static str = "lent, recalled, overdraft, delivered, wanted_met";

    /// From totals in [`Self::COLUMNS`] order (how the query tables store them).
    pub fn from_totals(
        [lent, recalled, overdraft, delivered, wanted_met]: [i64; 5],
    ) -> StoreRights {
        StoreRights {
            lent,
            recalled,
            overdraft,
            delivered,
            wanted_met,
        }
    }

    /// The totals in [`Self::COLUMNS`] order.
    pub fn totals(&self) -> [i64; 5] {
        [
            self.lent,
            self.recalled,
            self.overdraft,
            self.delivered,
            self.wanted_met,
        ]
    }

    /// Merge of two replicas' views: every total only grows.
    pub fn join(self, o: StoreRights) -> StoreRights {
        StoreRights {
            lent: self.lent.max(o.lent),
            recalled: self.recalled.max(o.recalled),
            overdraft: self.overdraft.max(o.overdraft),
            delivered: self.delivered.max(o.delivered),
            wanted_met: self.wanted_met.max(o.wanted_met),
        }
    }
}

impl HubRights {
    /// The totals' column names, in the order of [`Self::from_totals`].
    pub const COLUMNS: &'static str = "consumed, released, returned, wanted, recall_answered";

    /// From totals in [`Self::COLUMNS`] order.
    pub fn from_totals(
        [consumed, released, returned, wanted, recall_answered]: [i64; 5],
    ) -> HubRights {
        HubRights {
            consumed,
            released,
            returned,
            wanted,
            recall_answered,
        }
    }

    /// The totals in [`Self::COLUMNS`] order.
    pub fn totals(&self) -> [i64; 5] {
        [
            self.consumed,
            self.released,
            self.returned,
            self.wanted,
            self.recall_answered,
        ]
    }

    /// Merge of two replicas' views: every total only grows.
    pub fn join(self, o: HubRights) -> HubRights {
        HubRights {
            consumed: self.consumed.max(o.consumed),
            released: self.released.max(o.released),
            returned: self.returned.max(o.returned),
            wanted: self.wanted.max(o.wanted),
            recall_answered: self.recall_answered.max(o.recall_answered),
        }
    }
}

/// Units the store asked back that the hub has not answered yet.
pub fn unanswered(s: &StoreRights, h: &HubRights) -> i64 {
    (s.recalled - h.recall_answered).max(0)
}

/// Rights the hub holds: what it may still sell online at this store.
/// Negative once the hub learns of an overdraft it has to settle.
pub fn hub_held(s: &StoreRights, h: &HubRights) -> i64 {
    s.lent - s.overdraft - h.returned - h.consumed + h.released - unanswered(s, h)
}

/// Units the store keeps for the hub: rights the hub holds plus online
/// orders not handed over yet. Computed from the hub's totals as the store
/// last saw them; consumption moves units between the two parts without
/// changing the sum, so a store cut off from the hub still knows it exactly
/// (only `returned` can make it smaller, and only the hub moves that).
pub fn outstanding(s: &StoreRights, h: &HubRights) -> i64 {
    (s.lent - s.overdraft - h.returned - s.delivered - unanswered(s, h)).max(0)
}

/// What the counter may sell without touching units promised elsewhere.
pub fn counter_free(on_hand: i64, reserved: i64, s: &StoreRights, h: &HubRights) -> i64 {
    on_hand - reserved - outstanding(s, h)
}

/// How the store shares its stock with the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Percent of on-hand kept for walk-in customers, never lent.
    pub safety_pct: i64,
    /// Least safety stock in the SKU's unit (units, or grams for `kg`).
    pub safety_min: i64,
    /// Percent of on-hand the hub should hold for online sale.
    pub online_pct: i64,
}

impl Policy {
    /// Defaults for a product sold by the piece.
    pub const EACH: Policy = Policy {
        safety_pct: 30,
        safety_min: 2,
        online_pct: 40,
    };
    /// Defaults for a product sold by weight (quantities in grams).
    pub const KG: Policy = Policy {
        safety_pct: 30,
        safety_min: 1_000,
        online_pct: 40,
    };

    /// Walk-in safety stock for a level.
    pub fn safety(&self, on_hand: i64) -> i64 {
        (on_hand.max(0) * self.safety_pct / 100).max(self.safety_min)
    }

    /// How much the hub should hold.
    pub fn online_target(&self, on_hand: i64) -> i64 {
        on_hand.max(0) * self.online_pct / 100
    }
}

/// What the store writes after a change of its level or of what it knows of
/// the hub: increments of its own totals (each ≥ 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStep {
    pub lend: i64,
    pub recall: i64,
    pub overdraft: i64,
    /// New value of `wanted_met` (the hub's `wanted` seen).
    pub wanted_met: i64,
}

impl StoreStep {
    pub fn is_noop(&self, s: &StoreRights) -> bool {
        self.lend == 0 && self.recall == 0 && self.overdraft == 0 && self.wanted_met == s.wanted_met
    }

    /// The store's totals after this step.
    pub fn apply(&self, s: &StoreRights) -> StoreRights {
        StoreRights {
            lent: s.lent + self.lend,
            recalled: s.recalled + self.recall,
            overdraft: s.overdraft + self.overdraft,
            delivered: s.delivered,
            wanted_met: self.wanted_met.max(s.wanted_met),
        }
    }
}

/// The store's decision for one SKU, a pure function of its books and the
/// hub's totals as last seen:
///
/// 1. **Overdraft.** If on-hand no longer covers local reservations plus the
///    units kept for the hub, the shortfall (at most what is lent out) is
///    recorded as overdraft: the hub must give those units up.
/// 2. **Recall.** If the counter's own stock is below safety stock and the
///    hub holds rights not already asked back, ask back the difference.
/// 3. **Lend.** Otherwise top the hub up to its target (plus any demand it
///    could not serve here, `wanted`), never lending safety stock.
pub fn store_step(
    on_hand: i64,
    reserved: i64,
    s: &StoreRights,
    h: &HubRights,
    policy: &Policy,
) -> StoreStep {
    let mut step = StoreStep {
        wanted_met: s.wanted_met,
        ..StoreStep::default()
    };
    let out = outstanding(s, h);
    let shortfall = reserved + out - on_hand;
    if shortfall > 0 && out > 0 {
        step.overdraft = shortfall.min(out);
    }
    let s1 = step.apply(s);
    let free = counter_free(on_hand, reserved, &s1, h);
    let safety = policy.safety(on_hand);
    // what the hub holds already excludes what the store asked back
    let held = hub_held(&s1, h).max(0);
    if free < safety {
        if held > 0 {
            step.recall = held.min(safety - free);
        }
        return step;
    }
    let extra_demand = (h.wanted - s.wanted_met).max(0);
    let want = (policy.online_target(on_hand) - held).max(0) + extra_demand;
    let lend = want.min(free - safety);
    if lend > 0 {
        step.lend = lend;
    }
    if extra_demand > 0 {
        step.wanted_met = h.wanted;
    }
    step
}

/// Rights the hub gives back for the store's pending recalls: as many as
/// it still holds of them (the rest it had sold before it saw the recall).
pub fn hub_return(s: &StoreRights, h: &HubRights) -> i64 {
    let pending = unanswered(s, h);
    pending.min(hub_held(s, h) + pending).max(0)
}

/// The hub's totals after answering the store's pending recalls.
pub fn hub_answer(s: &StoreRights, h: &HubRights) -> HubRights {
    HubRights {
        returned: h.returned + hub_return(s, h),
        recall_answered: h.recall_answered.max(s.recalled),
        ..*h
    }
}

/// An online order not yet handed over, as far as settlement cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOrder {
    pub order_id: String,
    /// Quantity per SKU.
    pub lines: BTreeMap<String, i64>,
}

/// Which open orders the hub must release (re-route or refund) so that it
/// holds no negative rights: `deficits` maps each SKU to how far below zero
/// the hub's rights are; `open` lists orders newest first (the customers who
/// ordered last lose their place first). Deterministic for equal inputs.
pub fn orders_to_release(deficits: &BTreeMap<String, i64>, open: &[OpenOrder]) -> Vec<String> {
    let mut left: BTreeMap<&str, i64> = deficits
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(k, d)| (k.as_str(), *d))
        .collect();
    let mut out = Vec::new();
    for o in open {
        if left.is_empty() {
            break;
        }
        let helps = o.lines.keys().any(|k| left.contains_key(k.as_str()));
        if !helps {
            continue;
        }
        for (sku, qty) in &o.lines {
            if let Some(d) = left.get_mut(sku.as_str()) {
                *d -= qty;
            }
        }
        left.retain(|_, d| *d > 0);
        out.push(o.order_id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Policy = Policy::EACH;

    #[test]
    fn a_fresh_store_lends_its_online_share_and_keeps_safety() {
        let s = StoreRights::default();
        let h = HubRights::default();
        let step = store_step(100, 0, &s, &h, &P);
        assert_eq!(step.lend, 40);
        let s = step.apply(&s);
        assert_eq!(hub_held(&s, &h), 40);
        assert_eq!(counter_free(100, 0, &s, &h), 60);
        // nothing more to do
        assert!(store_step(100, 0, &s, &h, &P).is_noop(&s));
    }

    #[test]
    fn online_demand_pulls_more_rights_but_never_safety_stock() {
        let s = StoreRights {
            lent: 40,
            ..Default::default()
        };
        // the hub sold 30 online and could not serve 50 more here
        let h = HubRights {
            consumed: 30,
            wanted: 50,
            ..Default::default()
        };
        let step = store_step(100, 0, &s, &h, &P);
        // free is 60, safety 30: at most 30 more
        assert_eq!(step.lend, 30);
        assert_eq!(step.wanted_met, 50);
        let s = step.apply(&s);
        assert_eq!(counter_free(100, 0, &s, &h), 30);
    }

    #[test]
    fn counter_sales_below_safety_recall_idle_rights() {
        let s = StoreRights {
            lent: 40,
            ..Default::default()
        };
        let h = HubRights::default();
        // the counter sold 50 of 100: 50 left, 40 kept for the hub, 10 free < safety 15
        let step = store_step(50, 0, &s, &h, &P);
        assert_eq!(step.recall, 5);
        assert_eq!(step.overdraft, 0);
        let s = step.apply(&s);
        assert_eq!(hub_return(&s, &h), 5);
        let h = hub_answer(&s, &h);
        assert_eq!((h.returned, h.recall_answered), (5, 5));
        assert_eq!(counter_free(50, 0, &s, &h), 15);
        assert_eq!(hub_held(&s, &h), 35);
    }

    #[test]
    fn a_counter_sale_into_lent_units_is_an_overdraft_the_hub_settles() {
        let s = StoreRights {
            lent: 40,
            ..Default::default()
        };
        // the hub sold 35 online during an outage (within its 40)
        let hub = HubRights {
            consumed: 35,
            ..Default::default()
        };
        // the store, cut off, sold 100 - 20 = 80 at the counter; it saw none of the hub's sales
        let seen = HubRights::default();
        let step = store_step(20, 0, &s, &seen, &P);
        assert_eq!(step.overdraft, 20);
        let s = step.apply(&s);
        // the store also asked back its safety stock; the hub, holding
        // nothing, answers with nothing before it settles
        let hub = hub_answer(&s, &hub);
        assert_eq!(hub.returned, 0);
        // after reconnect the hub holds 40 - 20 - 35 = -15: it must release 15 units
        assert_eq!(hub_held(&s, &hub), -15);
        let open = vec![
            OpenOrder {
                order_id: "new".into(),
                lines: [("P1".to_string(), 10)].into(),
            },
            OpenOrder {
                order_id: "other-sku".into(),
                lines: [("P2".to_string(), 10)].into(),
            },
            OpenOrder {
                order_id: "mid".into(),
                lines: [("P1".to_string(), 10)].into(),
            },
            OpenOrder {
                order_id: "old".into(),
                lines: [("P1".to_string(), 15)].into(),
            },
        ];
        let deficits = [("P1".to_string(), 15)].into();
        assert_eq!(orders_to_release(&deficits, &open), vec!["new", "mid"]);
        // releasing 20 leaves the hub at +5 and the store's 20 on hand cover the 15 still open
        let hub = HubRights {
            released: 20,
            ..hub
        };
        assert_eq!(hub_held(&s, &hub), 5);
        assert_eq!(outstanding(&s, &hub), 20);
    }

    /// The race the simulation found: the hub answers a recall, the link
    /// fails before the store hears of it, and the counter sells. The
    /// store's figures do not depend on having seen the answer, so no
    /// overdraft is recorded for units already given back.
    #[test]
    fn a_return_the_store_has_not_seen_changes_nothing_it_computes() {
        let s = StoreRights {
            lent: 12,
            recalled: 2,
            ..Default::default()
        };
        let answered = hub_answer(&s, &HubRights::default());
        assert_eq!((answered.returned, answered.recall_answered), (2, 2));
        let unseen = HubRights::default();
        assert_eq!(outstanding(&s, &unseen), outstanding(&s, &answered));
        assert_eq!(hub_held(&s, &unseen), hub_held(&s, &answered));
        // a counter sale that leaves exactly the 10 kept for the hub: no overdraft
        assert_eq!(store_step(10, 0, &s, &unseen, &P).overdraft, 0);
        // a recall the hub could answer only in part (it sold 1 first):
        // the store keeps that unit for the hub again
        let sold_first = HubRights {
            consumed: 11,
            ..Default::default()
        };
        let partly = hub_answer(&s, &sold_first);
        assert_eq!(partly.returned, 1);
        assert_eq!(outstanding(&s, &partly), 11);
        assert_eq!(hub_held(&s, &partly), 0);
    }

    #[test]
    fn weighed_goods_keep_a_kilo() {
        let p = Policy::KG;
        assert_eq!(p.safety(500), 1_000);
        let step = store_step(2_500, 0, &StoreRights::default(), &HubRights::default(), &p);
        assert_eq!(step.lend, 1_000);
    }

    fn store_rights() -> impl Strategy<Value = StoreRights> {
        (0..1000i64, 0..1000i64, 0..1000i64, 0..1000i64, 0..1000i64).prop_map(
            |(lent, recalled, overdraft, delivered, wanted_met)| StoreRights {
                lent,
                recalled,
                overdraft,
                delivered,
                wanted_met,
            },
        )
    }

    fn hub_rights() -> impl Strategy<Value = HubRights> {
        (0..1000i64, 0..1000i64, 0..1000i64, 0..1000i64, 0..1000i64).prop_map(
            |(consumed, released, returned, wanted, recall_answered)| HubRights {
                consumed,
                released,
                returned,
                wanted,
                recall_answered,
            },
        )
    }

    proptest! {
        /// Merging views is a join: commutative, associative, idempotent.
        #[test]
        fn joins_are_laws(a in store_rights(), b in store_rights(), c in store_rights(),
                          x in hub_rights(), y in hub_rights(), z in hub_rights()) {
            prop_assert_eq!(a.join(b), b.join(a));
            prop_assert_eq!(a.join(b).join(c), a.join(b.join(c)));
            prop_assert_eq!(a.join(a), a);
            prop_assert_eq!(x.join(y), y.join(x));
            prop_assert_eq!(x.join(y).join(z), x.join(y.join(z)));
            prop_assert_eq!(x.join(x), x);
        }

        /// The store's step never lends safety stock, never records more
        /// overdraft than it has lent out, and leaves nothing to overdraw.
        #[test]
        fn store_step_keeps_its_promises(on_hand in -50..500i64, reserved in 0..100i64,
                                          s in store_rights(), h in hub_rights()) {
            let step = store_step(on_hand, reserved, &s, &h, &P);
            prop_assert!(step.lend >= 0 && step.recall >= 0 && step.overdraft >= 0);
            prop_assert!(step.overdraft <= outstanding(&s, &h));
            let s2 = step.apply(&s);
            if step.lend > 0 {
                prop_assert!(counter_free(on_hand, reserved, &s2, &h) >= P.safety(on_hand));
            }
            let out = outstanding(&s2, &h);
            prop_assert!(out == 0 || reserved + out <= on_hand);
        }
    }
}
