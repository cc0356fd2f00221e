//! The hub on a manual clock (issue 9): every business time it reads comes
//! from the clock it was opened with, so a test moves the hub's time by
//! hand and nothing sleeps. The clock starts in the past (June 2025): a hub
//! that read the system time instead would stamp the wrong times, refuse
//! the campaign's deadline as past and find every session expired.

#![allow(clippy::unwrap_used)] // test code

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{TestHub, hub_on, lend};
use linli_hub::app::groupbuys::NewGroupBuy;
use linli_hub::app::orders::PlaceOrder;
use linli_hub::auth::Caller;
use linli_hub::auth::{Role, User};
use linli_hub::error::HubError;
use linli_shared::groupbuy::{State, Threshold};
use linli_shared::order::OrderStatus;
use linli_sync::clock::ManualClock;
use serde_json::json;

/// 2025-06-02 10:00 in the chain's UTC+8: long before any system time the
/// test runs at.
fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-02T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

async fn hub_at_start() -> (TestHub, ManualClock) {
    let clock = ManualClock::new(start());
    let h = hub_on(clock.clock()).await;
    (h, clock)
}

fn admin() -> User {
    User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    }
}

#[tokio::test]
async fn an_uncollected_pickup_order_expires_by_the_hubs_clock() {
    let (h, clock) = hub_at_start().await;
    assert_eq!(h.hub.now(), start());
    lend(&h.hub, "S001", &[("P00001", 10)]).await;
    let staff = Caller::Staff(admin());
    let req: PlaceOrder = serde_json::from_value(json!({
        "channel": "community", "customer": {"phone": "13800000001"},
        "fulfilment": "pickup", "store_id": "S001", "lines": [{"sku": "P00001", "qty": 3}]
    }))
    .unwrap();
    let (order, _) = h
        .hub
        .place_order(&staff, "clock-1".into(), req)
        .await
        .unwrap();
    // stamped with the manual time: placed now, held 48 h from it
    assert_eq!(order.timeline[0].status, OrderStatus::Placed);
    assert_eq!(at(&order.timeline[0].at), start());
    assert_eq!(at(&order.expires_at), start() + Duration::hours(48));

    assert_eq!(h.hub.expire_orders(h.hub.now()).await.unwrap(), 0);
    clock.advance(Duration::hours(47));
    assert_eq!(h.hub.expire_orders(h.hub.now()).await.unwrap(), 0);
    clock.advance(Duration::hours(2));
    assert_eq!(h.hub.expire_orders(h.hub.now()).await.unwrap(), 1);
    let v = h.hub.order(&staff, &order.order_id).await.unwrap();
    assert_eq!(v.status, OrderStatus::Cancelled);
    assert_eq!(v.cancel_reason.as_deref(), Some("expired"));
    let cancelled = v.timeline.last().unwrap();
    assert_eq!(
        (cancelled.status, at(&cancelled.at)),
        (OrderStatus::Cancelled, start() + Duration::hours(49))
    );
}

#[tokio::test]
async fn a_group_buy_fails_only_after_its_deadline_and_grace_on_the_hubs_clock() {
    let (h, clock) = hub_at_start().await;
    let (gid, deadline) = campaign_for_s001(&h, 5).await;
    assert_eq!(deadline, start() + Duration::minutes(10));
    let token = h.customer("13800138111").await;
    let customer = h.hub.authenticate_customer(&token).await.unwrap();
    h.hub
        .commit(&customer, "a-1".into(), &gid, "S001", 1)
        .await
        .unwrap();

    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 0);
    // past the deadline, S001 has not reported (no link): the hub waits
    // for the grace (60 min)
    clock.set(deadline + Duration::minutes(1));
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 0);
    clock.set(deadline + Duration::minutes(61));
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 1);
    let g = h.hub.group_buy(&gid).await.unwrap();
    assert_eq!(g.state, State::Failed);
    // the reason names the one customer who had committed at the
    // deadline, not the zero left after failing cancelled them
    let reason = g.failure_reason.unwrap_or_default();
    assert!(reason.contains("实际 1 人"), "{reason}");
    assert_eq!((g.participants, g.qty), (0, 0));
    assert_eq!(
        g.decided_at.as_deref().map(at),
        Some(deadline + Duration::minutes(61))
    );
}

/// A campaign for S001 alone, `count` customers needed, deadline in 10 minutes.
async fn campaign_for_s001(h: &TestHub, count: u32) -> (String, DateTime<Utc>) {
    let deadline = h.hub.now() + Duration::minutes(10);
    let gb = h
        .hub
        .create_group_buy(
            &admin(),
            NewGroupBuy {
                sku: "P00009".into(),
                price_fen: 3990,
                threshold: Threshold::Participants { count },
                deadline,
                pickup_date: (deadline + Duration::days(2)).date_naive(),
                per_customer_limit: 2,
                store_ids: vec!["S001".into()],
                grace_minutes: None,
                counter_allotment: None,
            },
        )
        .await
        .unwrap();
    (gb.group_buy_id, deadline)
}

/// Found by `linli-sim` (seed 78): a store whose link came up after the
/// deadline counted as "reported" before the counter commitments it took
/// offline had arrived, so a campaign with enough customers failed and
/// their commitments arrived cancelled. A store has reported only once the
/// hub holds everything the index it sent after the deadline listed.
#[tokio::test]
async fn a_store_reports_only_once_the_hub_holds_what_its_index_listed() {
    use linli_shared::docs::json::put_record;
    use linli_shared::docs::{DocId, Owner, new_doc};
    use linli_shared::sync::{Index, IndexEntry};

    let (h, clock) = hub_at_start().await;
    let (gid, deadline) = campaign_for_s001(&h, 1).await;
    // S001's counter takes a commitment offline, five minutes before the deadline
    let id = DocId::store_ledger("S001", start().date_naive());
    let mut ledger: automerge::AutoCommit =
        new_doc(&id, Owner::Store("S001".into()).actor([7; 8])).unwrap();
    let commitment = json!({"commitment_id": "K1", "group_buy_id": gid,
        "member_hash": linli_shared::member::member_hash(&h.member_key(), "13800138131"),
        "masked_phone": "138****8131", "qty": 1,
        "at": (deadline - Duration::minutes(5)).to_rfc3339(), "staff": "ana"});
    put_record(&mut ledger, "commitments", "K1", &commitment).unwrap();
    ledger.commit();
    let heads = |d: &mut automerge::AutoCommit| d.get_heads().iter().map(|h| h.0).collect();

    // after the deadline S001 connects and sends its index: the link is up,
    // but what it listed is not here yet, so nothing is decided
    clock.set(deadline + Duration::minutes(2));
    h.hub.link_up("S001", None);
    let index = Index::of(vec![IndexEntry {
        doc: id.clone(),
        heads: heads(&mut ledger),
    }]);
    h.hub.store_index("S001", index).await.unwrap();
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 0);
    assert_eq!(h.hub.group_buy(&gid).await.unwrap().state, State::Open);
    // the ledger arrives: the commitment counts and the campaign is reached
    common::sync_in(&h.hub, "S001", &id, &mut ledger).await;
    h.hub.check_report("S001").await.unwrap();
    let g = h.hub.group_buy(&gid).await.unwrap();
    assert_eq!((g.state, g.participants), (State::Reached, 1));

    // a campaign nobody joined: S001's next index lists only what the hub
    // holds, so S001 has reported at once and the hub fails it before the grace
    let (empty, deadline) = campaign_for_s001(&h, 1).await;
    clock.set(deadline + Duration::minutes(1));
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 0);
    let index = Index::of(vec![IndexEntry {
        doc: id.clone(),
        heads: heads(&mut ledger),
    }]);
    h.hub.store_index("S001", index).await.unwrap();
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 1);
    assert_eq!(h.hub.group_buy(&empty).await.unwrap().state, State::Failed);
}

/// Found by `linli-sim` (seed 622): a store's counter commitment waits in
/// its outbox until a drain writes it to the ledger, and after a restart
/// until the store's first session has shown its database is not behind.
/// An index the store sent meanwhile listed documents without it, the hub
/// held all they listed, and took the index as the store's report: the
/// campaign failed with enough customers. An index reports only what the
/// store had committed before its oldest waiting fact.
#[tokio::test]
async fn an_index_sent_while_facts_wait_reports_only_what_came_before_them() {
    use linli_shared::sync::Index;

    let (h, clock) = hub_at_start().await;
    let (gid, deadline) = campaign_for_s001(&h, 1).await;
    clock.set(deadline + Duration::minutes(2));
    h.hub.link_up("S001", None);
    // a fact committed 5 minutes before the deadline still waits
    let waiting = Index {
        entries: vec![],
        facts_waiting: std::time::Duration::from_secs(7 * 60),
        sent_at: None,
    };
    h.hub.store_index("S001", waiting).await.unwrap();
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 0);
    assert_eq!(h.hub.group_buy(&gid).await.unwrap().state, State::Open);
    // drained (and nothing in it for the campaign): the next index reports
    let drained = Index {
        entries: vec![],
        facts_waiting: std::time::Duration::from_millis(15),
        sent_at: None,
    };
    h.hub.store_index("S001", drained).await.unwrap();
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 1);
    assert_eq!(h.hub.group_buy(&gid).await.unwrap().state, State::Failed);
}

/// A store whose clock is behind the chain's (set back, or slow) still
/// takes commitments at its counter after the hub's deadline, stamped
/// before it: its index reports for the deadline only once its own time
/// has passed it (linli-sim's clock steps: a campaign with enough
/// customers failed).
#[tokio::test]
async fn an_index_from_a_store_whose_clock_is_behind_reports_only_up_to_its_own_time() {
    use linli_shared::sync::Index;

    let (h, clock) = hub_at_start().await;
    let (gid, deadline) = campaign_for_s001(&h, 1).await;
    clock.set(deadline + Duration::minutes(2));
    h.hub.link_up("S001", None);
    // nothing waits, but the store's clock reads 7 minutes behind
    let behind = Index {
        facts_waiting: std::time::Duration::ZERO,
        sent_at: Some(h.hub.now() - Duration::minutes(7)),
        ..Index::default()
    };
    h.hub.store_index("S001", behind).await.unwrap();
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 0);
    assert_eq!(h.hub.group_buy(&gid).await.unwrap().state, State::Open);
    // its time past the deadline (the hub's index raised it): a report
    let past = Index {
        sent_at: Some(deadline + Duration::seconds(1)),
        ..Index::default()
    };
    h.hub.store_index("S001", past).await.unwrap();
    assert_eq!(h.hub.settle_group_buys(h.hub.now()).await.unwrap(), 1);
    assert_eq!(h.hub.group_buy(&gid).await.unwrap().state, State::Failed);
}

#[tokio::test]
async fn sessions_and_lockouts_run_on_the_hubs_clock() {
    let (h, clock) = hub_at_start().await;
    // a customer's session lasts 30 days, a staff member's 12 h
    let token = h.customer("13800138121").await;
    assert!(h.hub.authenticate_customer(&token).await.is_ok());
    assert!(h.hub.authenticate(&h.admin).await.is_ok());
    clock.advance(Duration::hours(13));
    assert!(matches!(
        h.hub.authenticate(&h.admin).await,
        Err(HubError::Unauthenticated)
    ));
    assert!(h.hub.authenticate_customer(&token).await.is_ok());
    clock.advance(Duration::days(30));
    assert!(matches!(
        h.hub.authenticate_customer(&token).await,
        Err(HubError::Unauthenticated)
    ));

    // five wrong passwords lock the name for 15 minutes of the hub's time
    for _ in 0..5 {
        assert!(matches!(
            h.hub.login("admin", "wrong-password").await,
            Err(HubError::BadCredentials)
        ));
    }
    assert!(matches!(
        h.hub.login("admin", "admin-password").await,
        Err(HubError::LockedOut { .. })
    ));
    clock.advance(Duration::minutes(14));
    assert!(matches!(
        h.hub.login("admin", "admin-password").await,
        Err(HubError::LockedOut { .. })
    ));
    clock.advance(Duration::minutes(2));
    let fresh = h.hub.login("admin", "admin-password").await.unwrap();
    assert!(h.hub.authenticate(&fresh).await.is_ok());
}
