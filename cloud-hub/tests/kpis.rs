//! The chain's numbers over a real HTTP server on port 0: counter facts
//! synced in as a store's ledger would send them (sales with members and
//! cashiers, a refund, a write-off), an online pickup order placed at the
//! hub and handed over in the store's fulfilment record, a community
//! member; the figures equal hand-computed values per store, in total and
//! per day; a store or region outside the caller's is refused; bad dates
//! are refused in Chinese; the CSV opens in Excel; a person buying at the
//! counter one day and online the next is one repurchasing customer.

#![allow(clippy::unwrap_used)] // test code

mod common;

use automerge::AutoCommit;
use chrono::{DateTime, Days, FixedOffset, NaiveDate, Utc};
use common::sync_in;
use linli_hub::app::kpis::{KpiRefusal, KpiScope};
use linli_hub::app::orders::PlaceOrder;
use linli_hub::auth::Caller;
use linli_hub::auth::{Role, User};
use linli_hub::hub::{HubPaths, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_shared::docs::json::put_record;
use linli_shared::docs::ledger::{
    MovementFact, RefundFact, SaleFact, SaleLineFact, record_movement, record_refund, record_sale,
};
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::online::FulfilmentFact;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BUN_FEN: i64 = 1950; // P00001 in data/products.csv

struct Running {
    dir: tempfile::TempDir,
    server: HubServer,
    base: String,
    admin: String,
    http: reqwest::Client,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().to_owned(),
    };
    {
        let c = open_conn(&paths.db()).unwrap();
        add_user(&c, "admin", Role::Admin, "admin-password").unwrap();
    }
    let server = HubServer::start(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let admin = server.hub.login("admin", "admin-password").await.unwrap();
    let r = Running {
        dir,
        server,
        base,
        admin,
        http,
    };
    for (uri, file) in [
        ("/api/v1/catalog/import", "products.csv"),
        ("/api/v1/stores/import", "stores.csv"),
    ] {
        let body = std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let s = r
            .http
            .post(format!("{}{uri}", r.base))
            .bearer_auth(&r.admin)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, StatusCode::OK, "{uri}");
    }
    r
}

impl Running {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sale(id: &str, at: DateTime<Utc>, cashier: &str, buns: i64, member: &str) -> SaleFact {
    SaleFact {
        sale_id: id.into(),
        ticket_no: id.into(),
        created_at: ts(at),
        cashier: cashier.into(),
        total_fen: buns * BUN_FEN,
        lines: vec![SaleLineFact {
            sku: "P00001".into(),
            qty: buns,
            total_fen: buns * BUN_FEN,
            unit_price_fen: BUN_FEN,
        }],
        member_hash: member.into(),
        ..SaleFact::default()
    }
}

/// A store's ledger of `day` with `f` written into it, synced in.
async fn ledger(r: &Running, store: &str, day: NaiveDate, n: u8, f: impl FnOnce(&mut AutoCommit)) {
    let id = DocId::store_ledger(store, day);
    let mut doc = new_doc(&id, Owner::Store(store.into()).actor([n; 8])).unwrap();
    f(&mut doc);
    doc.commit();
    sync_in(&r.server.hub, store, &id, &mut doc).await;
}

#[tokio::test]
async fn figures_per_store_region_and_day_equal_the_hand_computed_ones() {
    let r = start().await;
    let now = Utc::now();
    let today = now.with_timezone(&cst()).date_naive();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap();
    let noon = |d: NaiveDate| {
        d.and_hms_opt(12, 0, 0)
            .unwrap()
            .and_local_timezone(cst())
            .unwrap()
            .to_utc()
    };
    // S001 yesterday: alice sells 1 bun to member h1
    ledger(&r, "S001", yesterday, 1, |d| {
        record_sale(d, &sale("y1", noon(yesterday), "alice", 1, "h1")).unwrap();
    })
    .await;
    // S001 today: alice 2 buns to h1 (a repeat day), bob 3 buns to h2;
    // 500 fen of alice's sale refunded; 2 buns thrown away
    let late = noon(today) + chrono::Duration::hours(2);
    ledger(&r, "S001", today, 2, |d| {
        record_sale(d, &sale("t1", noon(today), "alice", 2, "h1")).unwrap();
        record_sale(d, &sale("t2", noon(today), "bob", 3, "h2")).unwrap();
        record_refund(
            d,
            &RefundFact {
                refund_id: "r1".into(),
                sale_id: "t1".into(),
                amount_fen: 500,
                staff: "bob".into(),
                at: ts(noon(today)),
                ..RefundFact::default()
            },
        )
        .unwrap();
        record_movement(
            d,
            &MovementFact {
                movement_id: "w1".into(),
                sku: "P00001".into(),
                kind: "waste".into(),
                delta: -2,
                reason: "expired".into(),
                ref_id: String::new(),
                staff: "bob".into(),
                at: ts(late),
            },
        )
        .unwrap();
    })
    .await;
    // S002 (杭州北区) today: 1 bun, no member
    ledger(&r, "S002", today, 3, |d| {
        record_sale(d, &sale("n1", noon(today), "carl", 1, "")).unwrap();
    })
    .await;
    // an online pickup order at S001, handed over by alice 10 minutes later
    common::lend(&r.server.hub, "S001", &[("P00001", 10)]).await;
    let admin = Caller::Staff(User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    });
    let req: PlaceOrder = serde_json::from_value(json!({"channel": "community",
        "customer": {"phone": "13800000001"}, "fulfilment": "pickup", "store_id": "S001",
        "lines": [{"sku": "P00001", "qty": 1}]}))
    .unwrap();
    let (order, _) = r
        .server
        .hub
        .place_order(&admin, "k1".into(), req)
        .await
        .unwrap();
    let order = serde_json::to_value(order).unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let online_fen = order["total_fen"].as_i64().unwrap();
    let placed: DateTime<Utc> = order["placed_at"].as_str().unwrap().parse().unwrap();
    let placed_day = placed.with_timezone(&cst()).date_naive();
    let id = DocId::store_fulfilment("S001", placed_day);
    let mut doc = new_doc(&id, Owner::Store("S001".into()).actor([4; 8])).unwrap();
    let handed = placed + chrono::Duration::minutes(10);
    put_record(
        &mut doc,
        "orders",
        &order_id,
        &FulfilmentFact {
            order_id: order_id.clone(),
            ready_at: Some(ts(placed)),
            handed_over_at: Some(ts(handed)),
            handed_over_by: Some("alice".into()),
            ..FulfilmentFact::default()
        },
    )
    .unwrap();
    doc.commit();
    sync_in(&r.server.hub, "S001", &id, &mut doc).await;

    let (s, v) = r
        .get(&format!("/api/v1/kpis?from={yesterday}&to={today}&by=day"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["from"], json!(yesterday.to_string()));
    assert!(v["scope"]["region"].is_null());
    let t = &v["totals"];
    let counter = (1 + 2 + 3 + 1) * BUN_FEN;
    assert_eq!(t["counter_gmv_fen"], json!(counter - 500));
    assert_eq!(t["online_gmv_fen"], json!(online_fen));
    assert_eq!(t["gmv_fen"], json!(counter - 500 + online_fen));
    assert_eq!(t["orders"], json!(5));
    assert_eq!(
        v["stores"].as_array().unwrap().len(),
        20,
        "an admin sees every store"
    );
    let s1 = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store_id"] == "S001")
        .unwrap();
    assert_eq!(s1["region"], json!("杭州西区"));
    assert_eq!(s1["counter_gmv_fen"], json!(6 * BUN_FEN - 500));
    assert_eq!(s1["orders"], json!(4));
    assert_eq!(s1["online_order_share"], json!(0.25));
    assert_eq!(s1["pickup_rate"], json!(1.0));
    assert_eq!(s1["pickup_completion_rate"], json!(1.0));
    assert_eq!(s1["overdue_pickups"], json!(0));
    assert_eq!(s1["avg_handover_secs"], json!(600.0));
    assert!(
        s1["on_time_delivery_rate"].is_null(),
        "no delivery: nothing to divide by"
    );
    // h1 on two days, h2 once, the online customer once
    assert_eq!(s1["repurchase_rate"], json!(1.0 / 3.0));
    // 2 buns wasted; 6 sold at the counter and 1 online, all at the catalog price
    assert_eq!(s1["waste_rate"], json!(2.0 / 9.0));
    let staff: Vec<(String, i64, i64, i64)> = s1["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["staff"].as_str().unwrap().to_owned(),
                s["sales"].as_i64().unwrap(),
                s["sales_fen"].as_i64().unwrap(),
                s["handovers"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        staff,
        [
            ("alice".to_owned(), 2, 3 * BUN_FEN, 1),
            ("bob".to_owned(), 1, 3 * BUN_FEN, 0)
        ]
    );
    assert_eq!(s1["freshness"]["newest_fact_at"], json!(ts(late)));
    assert_eq!(v["freshness"]["S001"], json!(ts(late)));
    assert!(v["freshness"]["S003"].is_null());
    // the series: yesterday's one bun, today's rest
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["period"], json!(yesterday.to_string()));
    assert_eq!(series[0]["gmv_fen"], json!(BUN_FEN));
    if placed_day == today {
        assert_eq!(
            series[1]["gmv_fen"],
            json!(counter - BUN_FEN - 500 + online_fen)
        );
    }
    assert!(
        v["formulas"]["community_mau_rate"]
            .as_str()
            .unwrap()
            .starts_with("本月有至少一次有效行为的社群成员数 ÷ 月末社群成员数")
    );

    // one store, one region
    let (s, v) = r
        .get(&format!(
            "/api/v1/kpis?store_id=S002&from={today}&to={today}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stores"].as_array().unwrap().len(), 1);
    assert_eq!(v["totals"]["gmv_fen"], json!(BUN_FEN));
    assert_eq!(v["series"], json!([]));
    let (s, v) = r
        .get(&format!(
            "/api/v1/kpis?region=杭州北区&from={today}&to={today}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["S002", "S008", "S014", "S020"]);
    assert_eq!(v["totals"]["gmv_fen"], json!(BUN_FEN));
    assert_eq!(v["scope"]["region"], json!("杭州北区"));

    // refusals
    for (q, status, code) in [
        (
            "from=2026-13-01&to=2026-12-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "to=2026-12-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "from=2026-12-02&to=2026-12-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "from=2025-01-01&to=2026-12-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "from=2026-12-01&to=2026-12-01&by=year",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "store_id=S999&from=2026-12-01&to=2026-12-01",
            StatusCode::NOT_FOUND,
            "store_not_found",
        ),
        (
            "region=火星&from=2026-12-01&to=2026-12-01",
            StatusCode::NOT_FOUND,
            "region_not_found",
        ),
    ] {
        let (s, v) = r.get(&format!("/api/v1/kpis?{q}")).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{q}: {v}"
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.chars().next().is_some_and(|c| !c.is_ascii()),
            "Chinese first: {msg}"
        );
    }
    let anon = r
        .http
        .get(format!("{}/api/v1/kpis?from={today}&to={today}", r.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(anon, StatusCode::UNAUTHORIZED);

    // the CSV: a BOM, a Chinese header, one row per store and the total
    let resp = r
        .http
        .get(format!(
            "{}/api/v1/kpis.csv?region=杭州西区&from={yesterday}&to={today}",
            r.base
        ))
        .bearer_auth(&r.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    let body = resp.bytes().await.unwrap();
    assert!(body.starts_with(&[0xEF, 0xBB, 0xBF]), "a UTF-8 BOM");
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("门店编号,门店名称,区域,总成交额(元)"),
        "{}",
        rows[0]
    );
    assert_eq!(
        rows.len(),
        1 + 7 + 1,
        "header, the region's 7 stores, the total"
    );
    let s1 = rows.iter().find(|r| r.starts_with("S001,")).unwrap();
    let yuan = (6 * BUN_FEN - 500 + online_fen) as f64 / 100.0;
    assert!(s1.contains(&format!(",杭州西区,{yuan:.2},")), "{s1}");
    r.server.shutdown().await;
}

/// One person buys at S004's counter yesterday as a member (the store
/// sends the phone's hash under the chain's member key) and online today
/// for pickup (the hub knows the phone from the order): the hub counts one
/// customer who bought on two days, 1/1; a store, which cannot tie the
/// two, would count two customers of one day each. An answer asked before
/// the order shows that the persons a query keeps are read again when a
/// customer changes.
#[tokio::test]
async fn a_person_at_the_counter_one_day_and_online_the_next_repurchases() {
    let r = start().await;
    let phone = "13800000077";
    let key = linli_hub::signing::load_or_create_secret(&r.dir.path().join("member.key")).unwrap();
    let member = linli_shared::member::member_hash(&key, phone);
    let now = Utc::now();
    let today = now.with_timezone(&cst()).date_naive();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap();
    let noon = yesterday
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_local_timezone(cst())
        .unwrap()
        .to_utc();
    ledger(&r, "S004", yesterday, 5, |d| {
        record_sale(d, &sale("c1", noon, "dora", 2, &member)).unwrap();
    })
    .await;
    // an answer before the hub knows the phone: the persons it read are
    // kept for the next answers, and must be read again once the order
    // below makes the phone known (else two customers of one day each)
    let (s, v) = r
        .get(&format!(
            "/api/v1/kpis?store_id=S004&from={yesterday}&to={yesterday}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stores"][0]["counter_orders"], json!(1), "{v}");
    common::lend(&r.server.hub, "S004", &[("P00001", 10)]).await;
    let admin = Caller::Staff(User {
        name: "admin".into(),
        role: Role::Admin,
        store_id: None,
        region: None,
    });
    let req: PlaceOrder = serde_json::from_value(json!({"channel": "miniapp",
        "customer": {"phone": phone}, "fulfilment": "pickup", "store_id": "S004",
        "lines": [{"sku": "P00001", "qty": 1}]}))
    .unwrap();
    let (order, _) = r
        .server
        .hub
        .place_order(&admin, "k-person".into(), req)
        .await
        .unwrap();
    let order = serde_json::to_value(order).unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let placed: DateTime<Utc> = order["placed_at"].as_str().unwrap().parse().unwrap();
    let placed_day = placed.with_timezone(&cst()).date_naive();
    let id = DocId::store_fulfilment("S004", placed_day);
    let mut doc = new_doc(&id, Owner::Store("S004".into()).actor([6; 8])).unwrap();
    put_record(
        &mut doc,
        "orders",
        &order_id,
        &FulfilmentFact {
            order_id: order_id.clone(),
            ready_at: Some(ts(placed)),
            handed_over_at: Some(ts(placed + chrono::Duration::minutes(5))),
            handed_over_by: Some("dora".into()),
            ..FulfilmentFact::default()
        },
    )
    .unwrap();
    doc.commit();
    sync_in(&r.server.hub, "S004", &id, &mut doc).await;

    let (s, v) = r
        .get(&format!(
            "/api/v1/kpis?store_id=S004&from={yesterday}&to={placed_day}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let f = &v["stores"][0];
    assert_eq!(f["counter_orders"], json!(1), "{f}");
    assert_eq!(f["online_orders"], json!(1), "{f}");
    assert_eq!(
        f["repurchase_rate"],
        json!(1.0),
        "one person, two days: {f}"
    );
    assert_eq!(f["repurchase_30d_rate"], json!(1.0), "{f}");
    assert!(
        v["formulas"]["repurchase_rate"]
            .as_str()
            .unwrap()
            .contains("门店自算时不知道线上顾客的手机号"),
        "the page says the store cannot join channels"
    );
    r.server.shutdown().await;
}

#[tokio::test]
async fn a_store_or_region_outside_the_callers_is_refused() {
    let r = start().await;
    let hub = &r.server.hub;
    let mine = vec!["S001".to_owned(), "S006".to_owned()];
    let ask = |store: Option<&str>, region: Option<&str>| KpiScope {
        store_id: store.map(str::to_owned),
        region: region.map(str::to_owned),
    };
    assert_eq!(
        hub.kpi_stores(&mine, &ask(Some("S002"), None)).unwrap(),
        Err(KpiRefusal::NotYourRegion("S002".into()))
    );
    assert_eq!(
        hub.kpi_stores(&mine, &ask(None, Some("杭州北区"))).unwrap(),
        Err(KpiRefusal::NotYourRegion("杭州北区".into()))
    );
    assert_eq!(
        hub.kpi_stores(&mine, &ask(Some("S001"), None)).unwrap(),
        Ok(vec!["S001".to_owned()])
    );
    assert_eq!(
        hub.kpi_stores(&mine, &ask(None, None)).unwrap(),
        Ok(mine.clone())
    );
    r.server.shutdown().await;
}
