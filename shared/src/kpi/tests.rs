//! Hand-computed figures of a small store, and the laws of the formulas.

use chrono::{FixedOffset, NaiveDate};
use proptest::prelude::*;

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn nov() -> Period {
    Period::new(d("2026-11-01"), d("2026-11-30"), cst())
}

fn prices() -> BTreeMap<String, Price> {
    BTreeMap::from([
        (
            "A".to_owned(),
            Price {
                fen: 100,
                unit: Unit::Each,
            },
        ),
        (
            "K".to_owned(),
            Price {
                fen: 2000,
                unit: Unit::Kg,
            },
        ),
    ])
}

fn sale(
    store: &str,
    id: &str,
    at: &str,
    cashier: &str,
    fen: i64,
    member: Option<&str>,
) -> CounterSale {
    CounterSale {
        store_id: store.into(),
        sale_id: id.into(),
        at: t(at),
        cashier: cashier.into(),
        total_fen: fen,
        member_hash: member.map(str::to_owned),
        person_id: None,
        lines: vec![Sold {
            sku: "A".into(),
            qty: fen / 100,
        }],
    }
}

fn order(store: &str, id: &str, placed: &str, pickup: bool) -> OnlineOrder {
    OnlineOrder {
        store_id: store.into(),
        order_id: id.into(),
        pickup,
        customer_id: format!("C-{id}"),
        total_fen: 1000,
        placed_at: t(placed),
        promised_by: Some(t(placed) + chrono::Duration::hours(4)),
        lines: vec![Sold {
            sku: "K".into(),
            qty: 500,
        }],
        ..OnlineOrder::default()
    }
}

/// One store's November, every figure worked out by hand below.
fn november() -> Facts {
    let mut f = Facts::default();
    // 3 counter sales; the first is on Oct 31 UTC but Nov 1 in Shanghai;
    // member "h1" buys on two days, "h2" once
    f.sales.push(sale(
        "S1",
        "s1",
        "2026-10-31T17:00:00Z",
        "alice",
        1000,
        Some("h1"),
    ));
    f.sales.push(sale(
        "S1",
        "s2",
        "2026-11-05T02:00:00Z",
        "bob",
        500,
        Some("h1"),
    ));
    f.sales.push(sale(
        "S1",
        "s3",
        "2026-11-06T02:00:00Z",
        "alice",
        300,
        Some("h2"),
    ));
    // outside the period: Dec 1 in Shanghai, but h2 comes back within 30 days
    f.sales.push(sale(
        "S1",
        "s4",
        "2026-11-30T16:30:00Z",
        "bob",
        700,
        Some("h2"),
    ));
    f.refunds.push(CounterRefund {
        store_id: "S1".into(),
        refund_id: "r1".into(),
        at: t("2026-11-07T02:00:00Z"),
        amount_fen: 200,
    });
    // online: o1 pickup handed over by carol after 1 h; o2 pickup never
    // collected (overdue); o3 pickup cancelled; o4 delivered on time,
    // o5 delivered late; o6 a live order (pickup, handed over by carol)
    let mut o1 = order("S1", "o1", "2026-11-02T02:00:00Z", true);
    o1.handed_over_at = Some(t("2026-11-02T03:00:00Z"));
    o1.handed_over_by = Some("carol".into());
    let o2 = order("S1", "o2", "2026-11-03T02:00:00Z", true);
    let mut o3 = order("S1", "o3", "2026-11-03T03:00:00Z", true);
    o3.cancelled = true;
    let mut o4 = order("S1", "o4", "2026-11-04T02:00:00Z", false);
    o4.delivered_at = Some(t("2026-11-04T05:00:00Z"));
    let mut o5 = order("S1", "o5", "2026-11-04T03:00:00Z", false);
    o5.delivered_at = Some(t("2026-11-04T08:00:00Z"));
    let mut o6 = order("S1", "o6", "2026-11-08T12:00:00Z", true);
    o6.live_session_id = Some("L1".into());
    o6.handed_over_at = Some(t("2026-11-08T15:00:00Z"));
    o6.handed_over_by = Some("carol".into());
    o6.customer_id = "C-o1".into(); // o1's customer again, another day
    f.orders = vec![o1, o2, o3, o4, o5, o6];
    f.live_sessions.push(LiveSessionInfo {
        session_id: "L1".into(),
        store_id: "S1".into(),
        title: "周末鲜果".into(),
        host: "m1".into(),
    });
    // 1.5 kg of K written off (30 yuan) and 2 units of A (2 yuan)
    f.write_offs.push(WriteOff {
        store_id: "S1".into(),
        at: t("2026-11-09T12:00:00Z"),
        sku: "K".into(),
        qty: 1500,
    });
    f.write_offs.push(WriteOff {
        store_id: "S1".into(),
        at: t("2026-11-09T12:00:00Z"),
        sku: "A".into(),
        qty: 2,
    });
    // 4 members by the end of November (a 5th joins in December), 2 active
    for (c, since) in [
        ("c1", "2026-10-01T00:00:00Z"),
        ("c2", "2026-10-01T00:00:00Z"),
        ("c3", "2026-11-10T00:00:00Z"),
        ("c4", "2026-11-20T00:00:00Z"),
        ("c5", "2026-12-02T00:00:00Z"),
    ] {
        f.members.push(Member {
            store_id: "S1".into(),
            customer_id: c.into(),
            since: t(since),
        });
    }
    for (c, at) in [
        ("c1", "2026-11-03T00:00:00Z"),
        ("c1", "2026-11-04T00:00:00Z"),
        ("c3", "2026-11-10T00:00:00Z"),
        ("c2", "2026-10-15T00:00:00Z"),
        ("c5", "2026-12-02T00:00:00Z"),
        ("stranger", "2026-11-03T00:00:00Z"),
    ] {
        f.activity.push(Activity {
            store_id: "S1".into(),
            customer_id: c.into(),
            at: t(at),
        });
    }
    f.oversells.push(Oversell {
        store_id: "S1".into(),
        order_id: "o3".into(),
        at: t("2026-11-03T03:10:00Z"),
    });
    f.group_buys.push(GroupBuyOutcome {
        group_buy_id: "G1".into(),
        store_ids: vec!["S1".into(), "S2".into()],
        decided_at: t("2026-11-10T00:00:00Z"),
        succeeded: true,
    });
    f.group_buys.push(GroupBuyOutcome {
        group_buy_id: "G2".into(),
        store_ids: vec!["S1".into()],
        decided_at: t("2026-11-11T00:00:00Z"),
        succeeded: false,
    });
    // counter group-buy money: two taken, one given back in November; one
    // taken at 23:00 on Oct 31 in Shanghai (outside)
    for (at, fen) in [
        ("2026-11-02T03:00:00Z", 3990),
        ("2026-11-03T03:00:00Z", 7980),
        ("2026-11-12T03:00:00Z", -3990),
        ("2026-10-31T15:00:00Z", 1000),
    ] {
        f.group_buy_counter_money.push(GroupBuyCounterMoney {
            store_id: "S1".into(),
            at: t(at),
            fen,
        });
    }
    f
}

#[test]
fn a_month_of_one_store_by_hand() {
    let f = compute(&november(), &nov(), t("2026-12-01T00:00:00Z"), &prices());
    assert_eq!(f.counter_sales_fen, 1800);
    assert_eq!(f.counter_refunds_fen, 200);
    assert_eq!(f.counter_gmv_fen, 1600);
    assert_eq!(f.counter_orders, 3);
    // fulfilled online: o1, o4, o5, o6
    assert_eq!(f.online_orders, 4);
    assert_eq!(f.online_gmv_fen, 4000);
    assert_eq!(f.gmv_fen, 5600);
    assert_eq!(f.orders, 7);
    assert_eq!(f.online_order_share, Some(4.0 / 7.0));
    assert_eq!(f.online_gmv_share, Some(4000.0 / 5800.0));
    assert_eq!(f.live_gmv_fen, 1000);
    assert_eq!(f.live_sessions.len(), 1);
    assert_eq!(f.live_sessions[0].title, "周末鲜果");
    // pickups o1 o2 o6 of 5 orders not cancelled; 2 of the 4 pickups handed over
    assert_eq!(f.pickup_rate, Some(3.0 / 5.0));
    assert_eq!(f.pickup_completion_rate, Some(2.0 / 4.0));
    assert_eq!(f.overdue_pickups, 1);
    // 1 h and 3 h
    assert_eq!(f.avg_handover_secs, Some(7200.0));
    assert_eq!(f.on_time_delivery_rate, Some(0.5));
    // buyers m:h1 (2 days), m:h2 (1 day in Nov, back Dec 1), c:C-o1 (2 days),
    // c:C-o4, c:C-o5
    assert_eq!(f.repurchase_rate, Some(2.0 / 5.0));
    assert_eq!(f.repurchase_30d_rate, Some(3.0 / 5.0));
    // sold: counter 18 units of A = 1800; online 4 x 0.5 kg of K = 4000
    assert_eq!(f.sold_value_fen, 5800);
    assert_eq!(f.waste_value_fen, 3200);
    assert_eq!(f.waste_rate, Some(3200.0 / 9000.0));
    assert_eq!(f.community_members, 4);
    assert_eq!(f.community_active_members, 2);
    assert_eq!(f.community_mau_rate, Some(0.5));
    assert_eq!(f.oversell_rate, Some(1.0 / 6.0));
    assert_eq!(f.groupbuy_success_rate, Some(0.5));
    assert_eq!(f.groupbuy_counter_fen, 7980);
    // presale money stays out of 总成交额
    assert_eq!(f.gmv_fen, f.counter_gmv_fen + f.online_gmv_fen);
    let staff: Vec<_> = f
        .staff
        .iter()
        .map(|s| {
            (
                s.staff.as_str(),
                s.sales,
                s.sales_fen,
                s.handovers,
                s.live_gmv_fen,
            )
        })
        .collect();
    assert_eq!(
        staff,
        [
            ("alice", 2, 1300, 0, 0),
            ("bob", 1, 500, 0, 0),
            ("carol", 0, 0, 2, 0),
            ("m1", 0, 0, 0, 1000)
        ]
    );
}

#[test]
fn a_person_at_the_counter_and_online_is_one_repurchasing_customer() {
    // one person: a counter sale as member h9 on the 3rd, an online pickup
    // handed over on the 5th
    let mut f = Facts::default();
    f.sales.push(sale(
        "S1",
        "s1",
        "2026-11-03T02:00:00Z",
        "alice",
        1000,
        Some("h9"),
    ));
    let mut o = order("S1", "o1", "2026-11-05T02:00:00Z", true);
    o.handed_over_at = Some(t("2026-11-05T03:00:00Z"));
    f.orders.push(o);
    let as_of = t("2026-12-01T00:00:00Z");
    // a store cannot tie them: two customers, each on one day
    let own = compute(&f, &nov(), as_of, &prices());
    assert_eq!(own.repurchase_rate, Some(0.0));
    assert_eq!(own.repurchase_30d_rate, Some(0.0));
    // the hub ties both to the person: one customer on two days
    f.sales[0].person_id = Some("P1".into());
    f.orders[0].person_id = Some("P1".into());
    let hub = compute(&f, &nov(), as_of, &prices());
    assert_eq!(hub.repurchase_rate, Some(1.0));
    assert_eq!(hub.repurchase_30d_rate, Some(1.0));
    // every other figure is the same
    let strip = |mut x: Figures| {
        x.repurchase_rate = None;
        x.repurchase_30d_rate = None;
        x
    };
    assert_eq!(strip(own), strip(hub));
}

#[test]
fn nothing_to_divide_by_is_null_not_zero() {
    let f = compute(
        &Facts::default(),
        &nov(),
        t("2026-12-01T00:00:00Z"),
        &prices(),
    );
    assert_eq!(f, Figures::default());
    let json = serde_json::to_value(&f).unwrap();
    assert!(json["pickup_rate"].is_null());
    assert!(json["community_mau_rate"].is_null());
}

#[test]
fn every_formula_has_its_text() {
    let json = serde_json::to_value(Figures::default()).unwrap();
    for (key, text) in FORMULAS {
        assert!(json.get(key).is_some(), "{key} is not a figure");
        assert!(!text.is_empty());
    }
    assert_eq!(
        FORMULAS
            .iter()
            .find(|(k, _)| *k == "community_mau_rate")
            .unwrap()
            .1
            .split('（')
            .next(),
        Some("本月有至少一次有效行为的社群成员数 ÷ 月末社群成员数")
    );
}

fn arb_facts() -> impl Strategy<Value = Facts> {
    let store = prop_oneof![Just("S1"), Just("S2"), Just("S3")];
    let at =
        (0i64..40 * 86_400).prop_map(|s| t("2026-10-25T00:00:00Z") + chrono::Duration::seconds(s));
    let sale = (
        store.clone(),
        at.clone(),
        1i64..5000,
        prop::option::of(0u8..6),
        0u8..3,
    )
        .prop_map(|(s, at, fen, m, c)| CounterSale {
            store_id: s.into(),
            sale_id: String::new(),
            at,
            cashier: format!("c{c}"),
            total_fen: fen,
            member_hash: m.map(|m| format!("h{m}")),
            person_id: None,
            lines: vec![Sold {
                sku: "A".into(),
                qty: fen / 100 + 1,
            }],
        });
    let order = (
        store.clone(),
        at.clone(),
        any::<bool>(),
        0u8..4,
        0u8..8,
        0i64..20_000,
        prop::option::of(0u8..2),
    )
        .prop_map(|(s, at, pickup, fate, cust, later, live)| {
            let mut o = OnlineOrder {
                store_id: s.into(),
                pickup,
                customer_id: format!("C{cust}"),
                total_fen: 700,
                placed_at: at,
                promised_by: Some(at + chrono::Duration::seconds(10_000)),
                live_session_id: live.map(|l| format!("L{s}{l}")),
                lines: vec![Sold {
                    sku: "K".into(),
                    qty: 300,
                }],
                ..OnlineOrder::default()
            };
            let then = Some(at + chrono::Duration::seconds(later));
            match (fate, pickup) {
                (0, true) => o.handed_over_at = then,
                (0, false) => o.delivered_at = then,
                (1, _) => o.cancelled = true,
                (2, true) => {
                    o.cancelled = true;
                    o.handed_over_at = then;
                }
                _ => {}
            }
            o
        });
    let waste = (store.clone(), at.clone(), 1i64..3000).prop_map(|(s, at, qty)| WriteOff {
        store_id: s.into(),
        at,
        sku: "K".into(),
        qty,
    });
    let member = (store.clone(), 0u8..10, at.clone()).prop_map(|(s, c, since)| Member {
        store_id: s.into(),
        customer_id: format!("C{c}{s}"),
        since,
    });
    let act = (store.clone(), 0u8..10, at.clone()).prop_map(|(s, c, at)| Activity {
        store_id: s.into(),
        customer_id: format!("C{c}{s}"),
        at,
    });
    let refund = (store.clone(), at.clone(), 1i64..900).prop_map(|(s, at, fen)| CounterRefund {
        store_id: s.into(),
        refund_id: String::new(),
        at,
        amount_fen: fen,
    });
    let group_buy =
        (0u8..4, store.clone(), at.clone(), any::<bool>()).prop_map(|(g, s, at, won)| {
            GroupBuyOutcome {
                group_buy_id: format!("G{g}"),
                store_ids: vec![s.into(), "S1".into()],
                decided_at: at,
                succeeded: won,
            }
        });
    let money = (store.clone(), at, -4000i64..8000).prop_map(|(s, at, fen)| GroupBuyCounterMoney {
        store_id: s.into(),
        at,
        fen,
    });
    (
        prop::collection::vec(sale, 0..30),
        prop::collection::vec(order, 0..30),
        prop::collection::vec(waste, 0..5),
        prop::collection::vec(member, 0..10),
        prop::collection::vec(act, 0..20),
        prop::collection::vec(refund, 0..5),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        prop::collection::vec(group_buy, 0..4),
        prop::collection::vec(money, 0..6),
    )
        .prop_map(
            |(
                sales,
                orders,
                write_offs,
                mut members,
                activity,
                refunds,
                oversells,
                mut group_buys,
                group_buy_counter_money,
            )| {
                // one outcome per group-buy, as the hub decides it once
                group_buys.sort_by(|a, b| a.group_buy_id.cmp(&b.group_buy_id));
                group_buys.dedup_by(|a, b| a.group_buy_id == b.group_buy_id);
                // an oversell is an order of the store, found when it was placed
                let mut oversells: Vec<Oversell> = oversells
                    .iter()
                    .filter(|_| !orders.is_empty())
                    .map(|i| {
                        let o: &OnlineOrder = &orders[i.index(orders.len())];
                        Oversell {
                            store_id: o.store_id.clone(),
                            order_id: o.order_id.clone(),
                            at: o.placed_at,
                        }
                    })
                    .collect();
                oversells.sort_by_key(|o| o.at);
                oversells.dedup();
                let live_sessions = vec![LiveSessionInfo {
                    session_id: "LS10".into(),
                    store_id: "S1".into(),
                    title: "早市直播".into(),
                    host: "c1".into(),
                }];
                // one membership per customer, as the hub keeps it
                members.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
                members.dedup_by(|a, b| a.customer_id == b.customer_id);
                Facts {
                    sales,
                    orders,
                    write_offs,
                    members,
                    activity,
                    refunds,
                    oversells,
                    group_buys,
                    group_buy_counter_money,
                    live_sessions,
                }
            },
        )
}

fn rates(f: &Figures) -> Vec<Option<f64>> {
    vec![
        f.community_mau_rate,
        f.online_order_share,
        f.online_gmv_share,
        f.pickup_rate,
        f.pickup_completion_rate,
        f.repurchase_rate,
        f.repurchase_30d_rate,
        f.waste_rate,
        f.on_time_delivery_rate,
        f.oversell_rate,
        f.groupbuy_success_rate,
    ]
}

proptest! {
    #[test]
    fn every_rate_is_a_fraction(facts in arb_facts()) {
        let f = compute(&facts, &nov(), t("2026-12-01T00:00:00Z"), &prices());
        for r in rates(&f).into_iter().flatten() {
            prop_assert!((0.0..=1.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn splitting_by_store_in_one_pass_gives_each_stores_figures(facts in arb_facts()) {
        let (p, as_of) = (nov(), t("2026-11-20T00:00:00Z"));
        let split = Timeline::by_store(&facts, cst());
        let none = Facts::default();
        for s in ["S1", "S2", "S3"] {
            let one_pass = split
                .get(s)
                .map_or_else(|| compute(&none, &p, as_of, &prices()), |t| t.figures(&p, as_of, &prices()));
            prop_assert_eq!(one_pass, compute(&facts.of_store(s), &p, as_of, &prices()));
        }
    }

    #[test]
    fn stores_add_up_to_the_region(facts in arb_facts()) {
        let p = nov();
        let as_of = t("2026-11-20T00:00:00Z");
        let all = compute(&facts, &p, as_of, &prices());
        let parts: Vec<Figures> = ["S1", "S2", "S3"]
            .iter()
            .map(|s| compute(&facts.of_store(s), &p, as_of, &prices()))
            .collect();
        let sum = |g: fn(&Figures) -> i64| parts.iter().map(g).sum::<i64>();
        prop_assert_eq!(all.gmv_fen, sum(|f| f.gmv_fen));
        prop_assert_eq!(all.counter_gmv_fen, sum(|f| f.counter_gmv_fen));
        prop_assert_eq!(all.online_gmv_fen, sum(|f| f.online_gmv_fen));
        prop_assert_eq!(all.live_gmv_fen, sum(|f| f.live_gmv_fen));
        prop_assert_eq!(all.groupbuy_counter_fen, sum(|f| f.groupbuy_counter_fen));
        prop_assert_eq!(all.orders, sum(|f| f.orders));
        prop_assert_eq!(all.overdue_pickups, sum(|f| f.overdue_pickups));
        prop_assert_eq!(all.community_members, sum(|f| f.community_members));
        prop_assert_eq!(all.community_active_members, sum(|f| f.community_active_members));
        prop_assert_eq!(all.waste_value_fen, sum(|f| f.waste_value_fen));
        prop_assert_eq!(all.sold_value_fen, sum(|f| f.sold_value_fen));
        let staff_sales: i64 = parts.iter().flat_map(|f| &f.staff).map(|s| s.sales_fen).sum();
        prop_assert_eq!(all.staff.iter().map(|s| s.sales_fen).sum::<i64>(), staff_sales);
    }

    #[test]
    fn days_add_up_to_the_month(facts in arb_facts()) {
        let p = nov();
        let as_of = t("2026-12-01T00:00:00Z");
        let month = compute(&facts, &p, as_of, &prices());
        let days: Vec<Figures> = buckets(&p, By::Day)
            .iter()
            .map(|(_, d)| compute(&facts, d, as_of, &prices()))
            .collect();
        prop_assert_eq!(days.len(), 30);
        prop_assert_eq!(month.gmv_fen, days.iter().map(|f| f.gmv_fen).sum::<i64>());
        prop_assert_eq!(month.orders, days.iter().map(|f| f.orders).sum::<i64>());
        prop_assert_eq!(
            month.groupbuy_counter_fen,
            days.iter().map(|f| f.groupbuy_counter_fen).sum::<i64>()
        );
        // each day's buyers are among the month's; a month's repeat buyer
        // may be a one-time buyer every single day
        prop_assert!(days.iter().all(|f| f.repurchase_rate.unwrap_or(0.0) == 0.0));
    }
}
