//! A customer's profile figures and recency / frequency / monetary scores
//! (issue 12; DESIGN.md §8). Pure: the hub gathers the purchases, this
//! module counts and scores them, with no clock (the business day's offset
//! and "today" are inputs).
//!
//! **Quintiles over distinct values.** Each of R, F and M is scored 1–5 over
//! all customers with at least one purchase. The distinct values of the
//! figure are sorted (worst first) and the i-th of d distinct values scores
//! `1 + ⌊5·i / d⌋`. So equal figures always score the same (a tie is never
//! split by an arbitrary order: the result does not depend on the order the
//! customers came in), the five scores hold numbers of distinct values
//! within one of each other, and a better figure never scores lower
//! (monotone). With fewer than five distinct values some scores go unused
//! (two values score 1 and 3). Recency is ranked by the last purchase's
//! business day (later is better), frequency by the number of orders,
//! monetary by net spend in fen.
//!
//! **Segments** are the classic eight RFM groups: each score is *high* when
//! it is 3 or more (the middle quintile and up), and the three highs and
//! lows name the segment ([`Segment`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Where a purchase was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A sale at a store's till (matched by the member's phone hash).
    Counter,
    /// An online or live order.
    Online,
}

/// How an online order reached the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handover {
    Pickup,
    Delivery,
}

/// One purchase of one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub at: DateTime<Utc>,
    pub store_id: String,
    pub channel: Channel,
    /// Net of refunds, in fen.
    pub amount_fen: i64,
    /// Online orders only.
    pub handover: Option<Handover>,
}

/// What a customer's purchases add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub orders: u32,
    pub counter_orders: u32,
    pub online_orders: u32,
    pub spend_fen: i64,
    /// Distinct business days (store local time) with a purchase.
    pub visits: u32,
    pub first_purchase_at: Option<DateTime<Utc>>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    /// The business day of the last purchase.
    pub last_day: Option<NaiveDate>,
    /// The store with the most purchases; a tie goes to the store of the
    /// latest purchase among the tied, then to the smaller id.
    pub home_store: Option<String>,
    pub pickups: u32,
    pub deliveries: u32,
}

/// Adds up one customer's purchases; `offset` is the stores' local time
/// (UTC+8), which decides the business day of a purchase.
pub fn summarize(purchases: &[Purchase], offset: FixedOffset) -> Summary {
    let mut days = BTreeSet::new();
    let mut per_store: BTreeMap<&str, (u32, DateTime<Utc>)> = BTreeMap::new();
    let mut s = Summary {
        orders: 0,
        counter_orders: 0,
        online_orders: 0,
        spend_fen: 0,
        visits: 0,
        first_purchase_at: None,
        last_purchase_at: None,
        last_day: None,
        home_store: None,
        pickups: 0,
        deliveries: 0,
    };
    for p in purchases {
        s.orders += 1;
        match p.channel {
            Channel::Counter => s.counter_orders += 1,
            Channel::Online => s.online_orders += 1,
        }
        match p.handover {
            Some(Handover::Pickup) => s.pickups += 1,
            Some(Handover::Delivery) => s.deliveries += 1,
            None => {}
        }
        s.spend_fen += p.amount_fen;
        days.insert(business_day(p.at, offset));
        s.first_purchase_at = Some(s.first_purchase_at.map_or(p.at, |f| f.min(p.at)));
        s.last_purchase_at = Some(s.last_purchase_at.map_or(p.at, |l| l.max(p.at)));
        let e = per_store.entry(&p.store_id).or_insert((0, p.at));
        e.0 += 1;
        e.1 = e.1.max(p.at);
    }
    s.visits = days.len() as u32;
    s.last_day = s.last_purchase_at.map(|at| business_day(at, offset));
    // most purchases, then the latest, then the smaller id (the map's order)
    s.home_store = per_store
        .iter()
        .fold(
            None::<(&str, u32, DateTime<Utc>)>,
            |best, (id, (n, at))| match best {
                Some((_, bn, bat)) if (bn, bat) >= (*n, *at) => best,
                _ => Some((id, *n, *at)),
            },
        )
        .map(|(id, _, _)| id.to_owned());
    s
}

/// The business day of a moment at a store `offset` from UTC.
pub fn business_day(at: DateTime<Utc>, offset: FixedOffset) -> NaiveDate {
    at.with_timezone(&offset).date_naive()
}

/// One customer's R, F and M scores, each 1–5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scores {
    pub recency: u8,
    pub frequency: u8,
    pub monetary: u8,
}

/// What the scores are computed from, per customer with a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub last_day: NaiveDate,
    pub orders: u32,
    pub spend_fen: i64,
}

/// Scores every customer against all the others (same order as `all`).
pub fn score_all(all: &[Figures]) -> Vec<Scores> {
    let r = quintiles(
        &all.iter()
            .map(|f| i64::from(f.last_day.num_days_from_ce()))
            .collect::<Vec<_>>(),
    );
    let f = quintiles(&all.iter().map(|f| i64::from(f.orders)).collect::<Vec<_>>());
    let m = quintiles(&all.iter().map(|f| f.spend_fen).collect::<Vec<_>>());
    r.into_iter()
        .zip(f)
        .zip(m)
        .map(|((recency, frequency), monetary)| Scores {
            recency,
            frequency,
            monetary,
        })
        .collect()
}

/// Scores 1–5 by quintiles over the distinct values (higher value, higher
/// score); see the module docs.
pub fn quintiles(values: &[i64]) -> Vec<u8> {
    let distinct: Vec<i64> = values
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let d = distinct.len();
    values
        .iter()
        .map(|v| {
            let i = distinct.partition_point(|x| x < v);
            // i < d, so 5·i / d < 5
            1 + (5 * i / d) as u8
        })
        .collect()
}

/// The eight classic RFM segments (high = score ≥ 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// R high, F high, M high: 重要价值客户.
    ImportantValue,
    /// R high, F low, M high: 重要发展客户.
    ImportantDevelop,
    /// R low, F high, M high: 重要保持客户.
    ImportantKeep,
    /// R low, F low, M high: 重要挽留客户.
    ImportantWinBack,
    /// R high, F high, M low: 一般价值客户.
    GeneralValue,
    /// R high, F low, M low: 一般发展客户.
    GeneralDevelop,
    /// R low, F high, M low: 一般保持客户.
    GeneralKeep,
    /// R low, F low, M low: 一般挽留客户.
    GeneralWinBack,
}

impl Segment {
    pub fn of(s: Scores) -> Segment {
        let high = |x: u8| x >= 3;
        match (high(s.recency), high(s.frequency), high(s.monetary)) {
            (true, true, true) => Segment::ImportantValue,
            (true, false, true) => Segment::ImportantDevelop,
            (false, true, true) => Segment::ImportantKeep,
            (false, false, true) => Segment::ImportantWinBack,
            (true, true, false) => Segment::GeneralValue,
            (true, false, false) => Segment::GeneralDevelop,
            (false, true, false) => Segment::GeneralKeep,
            (false, false, false) => Segment::GeneralWinBack,
        }
    }

    /// The segment's name as the chain's staff say it.
    pub fn name_zh(self) -> &'static str {
        match self {
            Segment::ImportantValue => "重要价值客户",
            Segment::ImportantDevelop => "重要发展客户",
            Segment::ImportantKeep => "重要保持客户",
            Segment::ImportantWinBack => "重要挽留客户",
            Segment::GeneralValue => "一般价值客户",
            Segment::GeneralDevelop => "一般发展客户",
            Segment::GeneralKeep => "一般保持客户",
            Segment::GeneralWinBack => "一般挽留客户",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn p(when: &str, store: &str, channel: Channel, fen: i64, h: Option<Handover>) -> Purchase {
        Purchase {
            at: at(when),
            store_id: store.into(),
            channel,
            amount_fen: fen,
            handover: h,
        }
    }

    #[test]
    fn a_summary_counts_business_days_in_local_time() {
        let cst = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| panic!("offset"));
        let s = summarize(
            &[
                // 23:30 local on the 1st and 00:30 local on the 2nd: two days,
                // though both are the 1st in UTC
                p("2026-12-01T15:30:00Z", "S001", Channel::Counter, 1000, None),
                p(
                    "2026-12-01T16:30:00Z",
                    "S002",
                    Channel::Online,
                    2500,
                    Some(Handover::Pickup),
                ),
                p(
                    "2026-12-02T03:00:00Z",
                    "S002",
                    Channel::Online,
                    500,
                    Some(Handover::Delivery),
                ),
                p("2026-12-02T04:00:00Z", "S001", Channel::Counter, 700, None),
            ],
            cst,
        );
        assert_eq!((s.orders, s.counter_orders, s.online_orders), (4, 2, 2));
        assert_eq!(s.spend_fen, 4700);
        assert_eq!(s.visits, 2);
        assert_eq!((s.pickups, s.deliveries), (1, 1));
        // two each: S001's latest (04:00) is later than S002's (03:00)
        assert_eq!(s.home_store.as_deref(), Some("S001"));
        assert_eq!(s.first_purchase_at, Some(at("2026-12-01T15:30:00Z")));
        assert_eq!(s.last_day, NaiveDate::from_ymd_opt(2026, 12, 2));
    }

    #[test]
    fn segments_follow_the_highs() {
        let s = |r, f, m| {
            Segment::of(Scores {
                recency: r,
                frequency: f,
                monetary: m,
            })
        };
        assert_eq!(s(5, 5, 5).name_zh(), "重要价值客户");
        assert_eq!(s(3, 2, 4).name_zh(), "重要发展客户");
        assert_eq!(s(1, 3, 3).name_zh(), "重要保持客户");
        assert_eq!(s(2, 2, 5).name_zh(), "重要挽留客户");
        assert_eq!(s(4, 4, 1).name_zh(), "一般价值客户");
        assert_eq!(s(5, 1, 2).name_zh(), "一般发展客户");
        assert_eq!(s(1, 5, 2).name_zh(), "一般保持客户");
        assert_eq!(s(1, 1, 1).name_zh(), "一般挽留客户");
    }

    #[test]
    fn quintiles_of_ten_distinct_values_pair_up() {
        let v: Vec<i64> = (0..10).rev().collect();
        assert_eq!(quintiles(&v), vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
        assert_eq!(quintiles(&[7, 7, 7]), vec![1, 1, 1]);
        assert_eq!(quintiles(&[1, 2]), vec![1, 3]);
    }

    proptest! {
        #[test]
        fn scores_are_1_to_5_and_balanced(values in proptest::collection::vec(-1000i64..1000, 1..200)) {
            let q = quintiles(&values);
            prop_assert!(q.iter().all(|s| (1..=5).contains(s)));
            let distinct: BTreeMap<i64, u8> = values.iter().copied().zip(q.iter().copied()).collect();
            let mut per = [0usize; 5];
            for s in distinct.values() {
                per[usize::from(*s - 1)] += 1;
            }
            if distinct.len() >= 5 {
                let (lo, hi) = (per.iter().min(), per.iter().max());
                prop_assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{per:?}");
            }
            // ties score alike
            for (v, s) in values.iter().zip(&q) {
                prop_assert_eq!(distinct.get(v), Some(s));
            }
        }

        #[test]
        fn more_spend_never_lowers_m(
            spends in proptest::collection::vec(0i64..100_000, 1..100),
            who in 0usize..100,
            more in 1i64..50_000,
        ) {
            let who = who % spends.len();
            let figs = |sp: &[i64]| -> Vec<Figures> {
                sp.iter()
                    .map(|s| Figures { last_day: NaiveDate::MIN, orders: 1, spend_fen: *s })
                    .collect()
            };
            let before = score_all(&figs(&spends))[who].monetary;
            let mut raised = spends.clone();
            raised[who] += more;
            let after = score_all(&figs(&raised))[who].monetary;
            prop_assert!(after >= before, "{before} -> {after}");
            // and within one run, a larger figure never scores lower
            let q = quintiles(&spends);
            for i in 0..spends.len() {
                for j in 0..spends.len() {
                    if spends[i] > spends[j] {
                        prop_assert!(q[i] >= q[j]);
                    }
                }
            }
        }
    }
}
