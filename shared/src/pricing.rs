//! One pricing rule for every channel: the counter, the customer page, a
//! live session and a group-buy price a basket with this one function, so
//! the same basket at the same moment costs the same everywhere unless a
//! named rule says otherwise.
//!
//! Precedence (written on every receipt and order as [`Applied`] entries,
//! with the rules' version):
//! 1. **A line's unit price** is the lowest of the prices that apply to it
//!    *at that moment* — never a stack of them: the chain price; a store
//!    markdown running at the store's local time of day (e.g. the evening
//!    fresh-food markdown); the live price of a featured product while its
//!    session runs (or in its grace); a group-buy price for a commitment.
//!    It is never below the product's floor (then the rule is `Floor`).
//! 2. **Order-level discounts** come off the sum of the lines *after* step
//!    1: a coupon first (a percentage of the discounted total, never of the
//!    list price; at most the subtotal), then the pickup discount on what is
//!    left (floor division, as the hub has always charged).
//! 3. **The delivery fee** is added last; nothing discounts it.
//!
//! So no total is ever negative and no discount stacks on another line
//! price. Pure: the moment is an input, never read from a clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Fen;
use crate::order::Fulfilment;
use crate::qty::Unit;

/// A price given as a fixed amount or as the percentage paid (88 = 88折,
/// 12% off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferPrice {
    Fixed(Fen),
    PayPercent(u8),
}

impl OfferPrice {
    /// The unit price this offer gives for a chain price (percentages
    /// rounded half up to the fen).
    pub fn apply(self, chain: Fen) -> Fen {
        match self {
            OfferPrice::Fixed(f) => f,
            OfferPrice::PayPercent(p) => Fen((chain.0 * i64::from(p.min(100)) + 50) / 100),
        }
    }
}

/// A store markdown that runs every day between two local times (minutes
/// after midnight, `from` < `to`), for some SKUs or a whole category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Markdown {
    pub name: String,
    pub store_id: String,
    /// Empty: every SKU of `category`.
    pub skus: Vec<String>,
    pub category: Option<String>,
    pub price: OfferPrice,
    pub from_minute: u16,
    pub to_minute: u16,
}

/// A store's markdowns at a version: what the hub keeps and what the
/// store's counter receives (its orders document, section `markdowns`, key
/// `current`). The version is the rules version on orders and receipts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreMarkdowns {
    pub store_id: String,
    pub version: u32,
    #[schema(value_type = Vec<Object>)]
    pub markdowns: Vec<Markdown>,
}

/// A live session's offers: featured SKUs at a live price while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveOffer {
    pub session_id: String,
    pub store_id: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub grace_minutes: u32,
    pub featured: BTreeMap<String, OfferPrice>,
}

impl LiveOffer {
    /// Whether the live prices apply at `at`: from the start, until the end
    /// plus the grace period (the end itself excluded).
    pub fn runs_at(&self, at: DateTime<Utc>) -> bool {
        at >= self.starts_at && at < self.ends_at + Duration::minutes(i64::from(self.grace_minutes))
    }
}

/// A coupon as redeemed on one order (its budget is kept elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    pub coupon_id: String,
    pub off: CouponOff,
    /// The subtotal (after line prices) it needs.
    pub min_spend: Fen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponOff {
    Amount(Fen),
    Percent(u8),
}

/// The chain's rules at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub version: u32,
    pub pickup_discount_pct: i64,
    pub delivery_fee: Fen,
    pub markdowns: Vec<Markdown>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            version: 1,
            pickup_discount_pct: 5,
            delivery_fee: Fen(600),
            markdowns: Vec::new(),
        }
    }
}

/// One line to price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub category: String,
    pub unit: Unit,
    /// Units for `each`, grams for `kg`.
    pub qty: i64,
    /// The chain price, per unit or per kg.
    pub price: Fen,
    /// The lowest unit price any rule may reach (0: none).
    pub floor: Fen,
}

/// Where and when, and how the goods leave.
#[derive(Debug, Clone)]
pub struct Moment<'a> {
    pub at: DateTime<Utc>,
    /// The store's offset from UTC (China: 480), for time-of-day rules.
    pub utc_offset_minutes: i32,
    pub store_id: &'a str,
    /// `None` at the counter.
    pub fulfilment: Option<Fulfilment>,
    pub live: Option<&'a LiveOffer>,
    pub group_buy: Option<(&'a str, &'a str, Fen)>,
    pub coupon: Option<&'a Coupon>,
}

/// Which rule changed a price, and by how much (negative: a discount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub rule: Rule,
    pub amount: Fen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    Markdown { name: String },
    Live { session_id: String },
    GroupBuy { group_buy_id: String },
    Floor,
    Coupon { coupon_id: String },
    PickupDiscount { pct: i64 },
    DeliveryFee,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: String,
    pub qty: i64,
    pub unit: Unit,
    /// The chain price the line started from.
    pub list_price: Fen,
    pub unit_price: Fen,
    pub total: Fen,
    /// At most one line rule (the winning one), or `Floor`.
    pub applied: Vec<Applied>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedOrder {
    pub rules_version: u32,
    pub lines: Vec<PricedLine>,
    /// Sum of the line totals.
    pub subtotal: Fen,
    /// Coupon and pickup discount, in that order.
    pub discounts: Vec<Applied>,
    pub fee: Fen,
    pub total: Fen,
}

impl PricedOrder {
    pub fn discount(&self) -> Fen {
        Fen(-self.discounts.iter().map(|a| a.amount.0).sum::<i64>())
    }

    /// The coupon's discount (≥ 0), if a coupon applied.
    pub fn coupon_discount(&self) -> Option<Fen> {
        self.discounts.iter().find_map(|a| match a.rule {
            Rule::Coupon { .. } => Some(Fen(-a.amount.0)),
            _ => None,
        })
    }

    /// What is written on the order or receipt: every rule that changed a
    /// price, by line (`sku`) or on the order (`sku` empty), and the
    /// rules' version.
    pub fn note(&self) -> PricingNote {
        let mut applied = Vec::new();
        for l in &self.lines {
            for a in &l.applied {
                applied.push(NotedRule {
                    sku: Some(l.sku.clone()),
                    applied: a.clone(),
                });
            }
        }
        for a in &self.discounts {
            applied.push(NotedRule {
                sku: None,
                applied: a.clone(),
            });
        }
        PricingNote {
            rules_version: self.rules_version,
            applied,
        }
    }
}

/// Which rules priced an order or a sale, with the rules' version (and a
/// coupon's, in its redemption).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingNote {
    pub rules_version: u32,
    pub applied: Vec<NotedRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotedRule {
    /// The line's SKU; `None` for an order-level rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(flatten)]
    pub applied: Applied,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("line {0}: the amount overflows")]
    Overflow(usize),
    #[error("line {0}: quantity must be positive")]
    Quantity(usize),
}

/// Prices an order (or a counter sale: `fulfilment` = `None`).
pub fn price(items: &[Item], m: &Moment<'_>, rules: &Rules) -> Result<PricedOrder, PricingError> {
    let mut lines = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        if it.qty <= 0 {
            return Err(PricingError::Quantity(i));
        }
        let (unit_price, mut applied) = line_price(it, m, rules);
        let total = match it.unit {
            Unit::Each => unit_price.checked_mul(it.qty),
            Unit::Kg => unit_price.per_kg_times_grams(it.qty),
        }
        .ok_or(PricingError::Overflow(i))?;
        let list_total = match it.unit {
            Unit::Each => it.price.checked_mul(it.qty),
            Unit::Kg => it.price.per_kg_times_grams(it.qty),
        }
        .ok_or(PricingError::Overflow(i))?;
        if let Some(a) = applied.first_mut() {
            a.amount = Fen(total.0 - list_total.0);
        }
        lines.push(PricedLine {
            sku: it.sku.clone(),
            qty: it.qty,
            unit: it.unit,
            list_price: it.price,
            unit_price,
            total,
            applied,
        });
    }
    let subtotal =
        Fen::checked_sum(lines.iter().map(|l| l.total)).ok_or(PricingError::Overflow(0))?;
    let mut discounts = Vec::new();
    let mut left = subtotal.0;
    if let Some(c) = m.coupon
        && subtotal >= c.min_spend
    {
        let off = match c.off {
            CouponOff::Amount(a) => a.0.max(0),
            CouponOff::Percent(p) => left * i64::from(p.min(100)) / 100,
        }
        .min(left);
        if off > 0 {
            left -= off;
            discounts.push(Applied {
                rule: Rule::Coupon {
                    coupon_id: c.coupon_id.clone(),
                },
                amount: Fen(-off),
            });
        }
    }
    if m.fulfilment == Some(Fulfilment::Pickup) {
        let off = left * rules.pickup_discount_pct.clamp(0, 100) / 100;
        if off > 0 {
            left -= off;
            discounts.push(Applied {
                rule: Rule::PickupDiscount {
                    pct: rules.pickup_discount_pct,
                },
                amount: Fen(-off),
            });
        }
    }
    let fee = if m.fulfilment == Some(Fulfilment::Delivery) {
        Fen(rules.delivery_fee.0.max(0))
    } else {
        Fen::ZERO
    };
    Ok(PricedOrder {
        rules_version: rules.version,
        lines,
        subtotal,
        discounts,
        fee,
        total: Fen(left + fee.0),
    })
}

/// The winning unit price of one line and the rule that gave it.
fn line_price(it: &Item, m: &Moment<'_>, rules: &Rules) -> (Fen, Vec<Applied>) {
    let mut best = (it.price, None::<Rule>);
    let mut offer = |price: Fen, rule: Rule| {
        if price < best.0 {
            best = (price, Some(rule));
        }
    };
    let minute = local_minute(m.at, m.utc_offset_minutes);
    for md in &rules.markdowns {
        let covers = if md.skus.is_empty() {
            md.category.as_deref() == Some(it.category.as_str())
        } else {
            md.skus.iter().any(|s| s == &it.sku)
        };
        if md.store_id == m.store_id && covers && md.from_minute <= minute && minute < md.to_minute
        {
            offer(
                md.price.apply(it.price),
                Rule::Markdown {
                    name: md.name.clone(),
                },
            );
        }
    }
    if let Some(live) = m.live
        && live.store_id == m.store_id
        && live.runs_at(m.at)
        && let Some(p) = live.featured.get(&it.sku)
    {
        offer(
            p.apply(it.price),
            Rule::Live {
                session_id: live.session_id.clone(),
            },
        );
    }
    if let Some((id, sku, p)) = m.group_buy
        && sku == it.sku
    {
        offer(
            p,
            Rule::GroupBuy {
                group_buy_id: id.to_owned(),
            },
        );
    }
    let (mut price, mut rule) = best;
    if price < it.floor {
        price = it.floor;
        rule = Some(Rule::Floor);
    }
    let price = Fen(price.0.max(0));
    let applied = rule
        .map(|rule| Applied {
            rule,
            amount: Fen::ZERO,
        })
        .into_iter()
        .collect();
    (price, applied)
}

/// Spreads an order-level discount over the lines in proportion to their
/// totals (largest remainders get the odd fen), so each line's net total is
/// what the customer paid for it and a refund of a line gives back its
/// share. The shares sum to `discount` (at most the sum of the totals) and
/// none exceeds its line.
pub fn allocate(discount: Fen, totals: &[Fen]) -> Vec<Fen> {
    let sum: i64 = totals.iter().map(|t| t.0.max(0)).sum();
    let discount = discount.0.clamp(0, sum);
    if sum == 0 {
        return vec![Fen::ZERO; totals.len()];
    }
    let mut shares: Vec<(i64, i64, usize)> = totals
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let exact = i128::from(discount) * i128::from(t.0.max(0));
            let (q, r) = (exact / i128::from(sum), exact % i128::from(sum));
            (q as i64, r as i64, i)
        })
        .collect();
    let mut left = discount - shares.iter().map(|s| s.0).sum::<i64>();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for i in order {
        if left == 0 {
            break;
        }
        if shares[i].0 < totals[i].0 {
            shares[i].0 += 1;
            left -= 1;
        }
    }
    shares.into_iter().map(|(q, _, _)| Fen(q)).collect()
}

/// Minutes after local midnight.
fn local_minute(at: DateTime<Utc>, offset: i32) -> u16 {
    let secs = at.timestamp() + i64::from(offset) * 60;
    (secs.rem_euclid(86_400) / 60) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(h: u32, min: u32) -> DateTime<Utc> {
        // local (UTC+8) time h:min on 2026-12-01
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
            + Duration::minutes(i64::from(h * 60 + min) - 480)
    }

    fn item(sku: &str, price: i64, qty: i64) -> Item {
        Item {
            sku: sku.into(),
            category: "produce".into(),
            unit: Unit::Each,
            qty,
            price: Fen(price),
            floor: Fen::ZERO,
        }
    }

    fn moment<'a>(at: DateTime<Utc>, f: Option<Fulfilment>) -> Moment<'a> {
        Moment {
            at,
            utc_offset_minutes: 480,
            store_id: "S001",
            fulfilment: f,
            live: None,
            group_buy: None,
            coupon: None,
        }
    }

    fn live() -> LiveOffer {
        LiveOffer {
            session_id: "L1".into(),
            store_id: "S001".into(),
            starts_at: at(20, 0),
            ends_at: at(21, 0),
            grace_minutes: 10,
            featured: [("P1".to_owned(), OfferPrice::PayPercent(88))].into(),
        }
    }

    fn evening() -> Markdown {
        Markdown {
            name: "晚间鲜食".into(),
            store_id: "S001".into(),
            skus: vec![],
            category: Some("produce".into()),
            price: OfferPrice::PayPercent(70),
            from_minute: 20 * 60,
            to_minute: 22 * 60,
        }
    }

    #[test]
    fn the_hubs_pickup_discount_and_fee_are_unchanged() {
        let r = Rules::default();
        let p = price(
            &[item("P1", 1950, 3)],
            &moment(at(10, 0), Some(Fulfilment::Pickup)),
            &r,
        )
        .unwrap();
        assert_eq!(
            (p.subtotal, p.discount(), p.fee, p.total),
            (Fen(5850), Fen(292), Fen(0), Fen(5558))
        );
        let d = price(
            &[item("P1", 1950, 3)],
            &moment(at(10, 0), Some(Fulfilment::Delivery)),
            &r,
        )
        .unwrap();
        assert_eq!(
            (d.discount(), d.fee, d.total),
            (Fen(0), Fen(600), Fen(6450))
        );
    }

    #[test]
    fn a_live_price_applies_from_the_start_to_the_end_of_the_grace_only() {
        let l = live();
        let r = Rules::default();
        let unit = |t| {
            let mut m = moment(t, None);
            m.live = Some(&l);
            price(&[item("P1", 1000, 1)], &m, &r).unwrap().lines[0].unit_price
        };
        assert_eq!(unit(at(19, 59)), Fen(1000), "before the start");
        assert_eq!(unit(at(20, 0)), Fen(880), "at the start");
        assert_eq!(unit(at(21, 9)), Fen(880), "in the grace");
        assert_eq!(unit(at(21, 10)), Fen(1000), "after the grace");
    }

    #[test]
    fn the_lowest_line_price_wins_and_nothing_stacks() {
        let l = live();
        let r = Rules {
            markdowns: vec![evening()],
            ..Rules::default()
        };
        let mut m = moment(at(20, 30), None);
        m.live = Some(&l);
        let p = price(&[item("P1", 1000, 2)], &m, &r).unwrap();
        // markdown 70% beats live 88%: 700, not 0.7 * 0.88
        assert_eq!(p.lines[0].unit_price, Fen(700));
        assert_eq!(
            p.lines[0].applied,
            vec![Applied {
                rule: Rule::Markdown {
                    name: "晚间鲜食".into()
                },
                amount: Fen(-600)
            }]
        );
    }

    #[test]
    fn a_percentage_coupon_takes_off_the_discounted_total_then_pickup() {
        let r = Rules {
            markdowns: vec![evening()],
            ..Rules::default()
        };
        let c = Coupon {
            coupon_id: "C1".into(),
            off: CouponOff::Percent(10),
            min_spend: Fen(1000),
        };
        let mut m = moment(at(20, 30), Some(Fulfilment::Pickup));
        m.coupon = Some(&c);
        let p = price(&[item("P1", 1000, 2)], &m, &r).unwrap();
        // 1400 after the markdown; coupon 140; pickup 5% of 1260 = 63
        assert_eq!(
            (p.subtotal, p.discount(), p.total),
            (Fen(1400), Fen(203), Fen(1197))
        );
    }

    #[test]
    fn a_floor_holds_against_any_rule() {
        let r = Rules {
            markdowns: vec![evening()],
            ..Rules::default()
        };
        let mut it = item("P1", 1000, 1);
        it.floor = Fen(800);
        let p = price(&[it], &moment(at(21, 0), None), &r).unwrap();
        assert_eq!(p.lines[0].unit_price, Fen(800));
        assert_eq!(p.lines[0].applied[0].rule, Rule::Floor);
    }

    fn arb_offer() -> impl Strategy<Value = OfferPrice> {
        prop_oneof![
            (0i64..5_000).prop_map(|f| OfferPrice::Fixed(Fen(f))),
            (0u8..=120).prop_map(OfferPrice::PayPercent)
        ]
    }

    proptest! {
        /// Shares sum to the discount, none is negative or above its line.
        #[test]
        fn an_order_discount_spreads_over_the_lines_exactly(
            totals in proptest::collection::vec(0i64..100_000, 1..12),
            discount in 0i64..200_000,
        ) {
            let totals: Vec<Fen> = totals.into_iter().map(Fen).collect();
            let shares = allocate(Fen(discount), &totals);
            let sum: i64 = totals.iter().map(|t| t.0).sum();
            prop_assert_eq!(shares.iter().map(|s| s.0).sum::<i64>(), discount.min(sum));
            for (s, t) in shares.iter().zip(&totals) {
                prop_assert!(s.0 >= 0 && s.0 <= t.0);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Never negative, never below a floor; the counter and a pickup
        /// order at the same moment price the lines alike, and differ only
        /// by named order-level rules; pricing again from the recorded list
        /// prices gives the same order.
        #[test]
        fn prices_hold_their_laws(
            lines in proptest::collection::vec((1i64..10_000, 1i64..20, 0i64..5_000, any::<bool>()), 1..8),
            live_price in arb_offer(),
            md_price in arb_offer(),
            minute in 0u32..1440,
            coupon_off in prop_oneof![(0i64..20_000).prop_map(|a| CouponOff::Amount(Fen(a))), (0u8..=150).prop_map(CouponOff::Percent)],
            pct in 0i64..=100,
        ) {
            let items: Vec<Item> = lines.iter().enumerate().map(|(i, (p, q, floor, kg))| Item {
                sku: format!("P{}", i % 3),
                category: "produce".into(),
                unit: if *kg { Unit::Kg } else { Unit::Each },
                qty: if *kg { q * 137 } else { *q },
                price: Fen(*p),
                floor: Fen(*floor),
            }).collect();
            let mut l = live();
            l.featured.insert("P1".into(), live_price);
            let mut md = evening();
            md.price = md_price;
            let rules = Rules { pickup_discount_pct: pct, markdowns: vec![md], ..Rules::default() };
            let coupon = Coupon { coupon_id: "C".into(), off: coupon_off, min_spend: Fen(0) };
            let t = at(minute / 60, minute % 60);
            let mut counter = moment(t, None);
            counter.live = Some(&l);
            let mut online = counter.clone();
            online.fulfilment = Some(Fulfilment::Pickup);
            online.coupon = Some(&coupon);
            let a = price(&items, &counter, &rules).unwrap();
            let b = price(&items, &online, &rules).unwrap();
            for (it, line) in items.iter().zip(&a.lines) {
                prop_assert!(line.unit_price >= it.floor && line.unit_price.0 >= 0);
                prop_assert!(line.unit_price <= it.price || line.unit_price == it.floor);
                prop_assert!(line.applied.len() <= 1);
            }
            prop_assert_eq!(&a.lines, &b.lines);
            prop_assert!(b.total.0 >= 0 && b.total <= b.subtotal);
            prop_assert_eq!(b.subtotal.0 - b.discount().0 + b.fee.0, b.total.0);
            prop_assert_eq!(a.total, a.subtotal);
            let again: Vec<Item> = b.lines.iter().zip(&items).map(|(l, it)| Item { price: l.list_price, ..it.clone() }).collect();
            prop_assert_eq!(price(&again, &online, &rules).unwrap(), b);
        }
    }
}
