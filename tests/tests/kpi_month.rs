//! The chain's numbers at the hub equal the stores' own (issue 12): three
//! in-process store nodes on a manual clock sell through a simulated
//! November (seeded: members coming back, refunds whole and partial, some
//! thrown away, write-offs), syncing to an in-process hub over real QUIC;
//! S003's link is cut for five days and heals. While cut, the hub's figures
//! of S003 lag the store's; after the heal every figure the store's data
//! decides is the same at the hub and at the store
//! (`GET /api/v1/kpis` vs `App::kpis`, the same shared formulas).
//!
//! Online orders are placed at the hub on its own clock, so they are not
//! part of this month; `cloud-hub/tests/kpis.rs` checks their figures.

#![allow(clippy::unwrap_used)] // test code

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use linli_chain::link::{LinkMode, UdpProxy};
use linli_edge::app::{Actor, Role as StaffRole};
use linli_edge::config::Config;
use linli_edge::node::Node;
use linli_hub::hub::{HubPaths, Role, add_user, open_conn};
use linli_hub::server::HubServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const STORES: [&str; 3] = ["S001", "S002", "S003"];
const SKUS: [&str; 4] = ["P00001", "P00007", "P00009", "P00010"]; // `each` products

/// The figures a store's own data decides.
const STORE_DECIDED: [&str; 12] = [
    "gmv_fen",
    "counter_gmv_fen",
    "counter_sales_fen",
    "counter_refunds_fen",
    "counter_orders",
    "orders",
    "online_gmv_fen",
    "waste_value_fen",
    "sold_value_fen",
    "waste_rate",
    "repurchase_rate",
    "repurchase_30d_rate",
];

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn at(day: NaiveDate, minutes: i64) -> DateTime<Utc> {
    day.and_hms_opt(8, 0, 0)
        .unwrap()
        .and_local_timezone(cst())
        .unwrap()
        .to_utc()
        + chrono::Duration::minutes(minutes)
}

fn staff(name: &str, role: StaffRole) -> Actor {
    Actor {
        name: name.into(),
        role,
    }
}

fn key(s: String) -> linli_edge::app::idempotency::IdempotencyKey {
    linli_edge::app::idempotency::IdempotencyKey::parse(&s).unwrap()
}

/// The store-decided figures of a KPI answer, staff included (live GMV is
/// the hub's: a session's host is a hub user).
fn decided(f: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in STORE_DECIDED {
        // a rate read back from the hub's JSON may differ in its last bit
        let v = match f[k].as_f64() {
            Some(x) if f[k].is_f64() => json!((x * 1e12).round() / 1e12),
            _ => f[k].clone(),
        };
        out.insert(k.into(), v);
    }
    let staff: Vec<Value> = f["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["staff"], s["sales"], s["sales_fen"], s["handovers"]]))
        .collect();
    out.insert("staff".into(), json!(staff));
    Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_figures_equal_the_stores_after_an_outage_and_refunds() {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().join("hub"),
    };
    linli_sync::db::create_private_dir(&paths.data_dir).unwrap();
    {
        let c = open_conn(&paths.db()).unwrap();
        add_user(&c, "admin", Role::Admin, "admin-password").unwrap();
    }
    let hub = HubServer::start(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
    )
    .await
    .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let http = reqwest::Client::new();
    let admin = hub.hub.login("admin", "admin-password").await.unwrap();
    for (uri, file) in [
        ("/api/v1/catalog/import", "products.csv"),
        ("/api/v1/stores/import", "stores.csv"),
    ] {
        let body = std::fs::read(format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let s = http
            .post(format!("{base}{uri}"))
            .bearer_auth(&admin)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(s.is_success(), "{uri}: {s}");
    }

    let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let clock_ms = Arc::new(AtomicI64::new(at(first, 0).timestamp_millis()));
    let cancel = CancellationToken::new();
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for (i, id) in STORES.iter().enumerate() {
        let store_dir = dir.path().join(id);
        let identity = store_dir.join("identity");
        linli_sync::db::create_private_dir(&store_dir).unwrap();
        linli_sync::tls::Ca::load_or_create(&paths.ca_dir())
            .unwrap()
            .issue_store(id, &identity)
            .unwrap();
        let signing = linli_hub::signing::load_or_create(&paths.signing_key()).unwrap();
        linli_hub::signing::write_public(&signing, &identity).unwrap();
        let link = UdpProxy::start(hub.quic_addr, i as u64 + 1).unwrap();
        let config = Config {
            store_id: (*id).to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(store_dir.clone()),
            hub: Some(link.addr().to_string()),
            identity: Some(identity),
            ..Config::default()
        };
        let ms = clock_ms.clone();
        let clock: linli_edge::app::Clock =
            Arc::new(move || DateTime::from_timestamp_millis(ms.load(Ordering::SeqCst)).unwrap());
        let node = Node::start_with_clock(config, store_dir, cancel.child_token(), clock)
            .await
            .unwrap();
        assert!(node.app.wait_recovered(Duration::from_secs(30)).await);
        nodes.push(node);
        links.push(link);
    }
    // the catalog reaches every store from the hub
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.iter().any(|n| n.app.catalog().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the catalog did not reach the stores"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut rng = StdRng::seed_from_u64(12);
    let manager = staff("manager", StaffRole::Manager);
    let cashiers = [
        staff("alice", StaffRole::Cashier),
        staff("bob", StaffRole::Cashier),
    ];
    let mut refunds = 0;
    for d in 0..30u64 {
        let day = first + chrono::Days::new(d);
        // S003 is offline on the 10th to the 14th
        let s3_up = !(9..14).contains(&d);
        links[2].set_mode(if s3_up { LinkMode::Up } else { LinkMode::Cut });
        for (i, node) in nodes.iter().enumerate() {
            let sales = rng.gen_range(3..7);
            for n in 0..sales {
                clock_ms.store(
                    at(day, 30 * n + i as i64).timestamp_millis(),
                    Ordering::SeqCst,
                );
                let lines: Vec<Value> = (0..rng.gen_range(1..3))
                    .map(|_| json!({"sku": SKUS[rng.gen_range(0..SKUS.len())], "qty": rng.gen_range(1..4)}))
                    .collect();
                let member = rng
                    .gen_bool(0.6)
                    .then(|| format!("1380000{:04}", rng.gen_range(0..12)));
                let req = serde_json::from_value(json!({"lines": lines, "member_phone": member,
                    "payments": [{"method": "cash", "amount_fen": 50_000}]}))
                .unwrap();
                let cashier = &cashiers[rng.gen_range(0..2)];
                let (receipt, _) = node
                    .app
                    .record_sale(cashier, key(format!("{}-{d}-{n}", STORES[i])), req)
                    .await
                    .unwrap();
                if rng.gen_bool(0.15) {
                    // a whole refund the same day, or the first line thrown away
                    let body = if rng.gen_bool(0.5) {
                        json!({})
                    } else {
                        json!({"lines": [{"line_no": 1, "qty": 1, "disposition": "waste"}]})
                    };
                    clock_ms.store(
                        at(day, 30 * n + i as i64 + 10).timestamp_millis(),
                        Ordering::SeqCst,
                    );
                    node.app
                        .refund_sale(
                            &manager,
                            key(format!("r-{}-{d}-{n}", STORES[i])),
                            &receipt.sale_id,
                            serde_json::from_value(body).unwrap(),
                        )
                        .await
                        .unwrap();
                    refunds += 1;
                }
            }
            if d % 3 == i as u64 {
                clock_ms.store(at(day, 600).timestamp_millis(), Ordering::SeqCst);
                let req = serde_json::from_value(
                    json!({"lines": [{"sku": "P00007", "qty": 2}], "reason": "expired"}),
                )
                .unwrap();
                node.app
                    .record_waste(&cashiers[0], Some(key(format!("w-{}-{d}", STORES[i]))), req)
                    .await
                    .unwrap();
            }
        }
        if d == 13 {
            // still cut: the hub lags S003's own figures
            let hub_s3 = hub_figures(&http, &base, &admin, "S003").await;
            let own = store_figures(&nodes[2]).await;
            assert_ne!(
                decided(&hub_s3),
                decided(&own),
                "the hub cannot know the offline days"
            );
        }
    }
    assert!(refunds > 5, "the month has refunds ({refunds})");

    // healed: every store's figures reach the hub
    for (i, node) in nodes.iter().enumerate() {
        let own = decided(&store_figures(node).await);
        assert!(own["counter_refunds_fen"].as_i64().unwrap() >= 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let at_hub = decided(&hub_figures(&http, &base, &admin, STORES[i]).await);
            if at_hub == own {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: hub {at_hub} != store {own}",
                STORES[i]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // the hub's own facts are not the store's to know
        let f = store_figures(node).await;
        assert!(f["community_mau_rate"].is_null() && f["groupbuy_success_rate"].is_null());
    }
    // and the three stores add up to their total at the hub
    let v: Value = http
        .get(format!(
            "{base}/api/v1/kpis?store_id=&from=2026-11-01&to=2026-11-30"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut sum = 0;
    for node in &nodes {
        sum += store_figures(node).await["gmv_fen"].as_i64().unwrap();
    }
    assert_eq!(v["totals"]["gmv_fen"].as_i64().unwrap(), sum);

    cancel.cancel();
    for n in nodes {
        n.shutdown().await;
    }
    hub.shutdown().await;
}

async fn hub_figures(http: &reqwest::Client, base: &str, token: &str, store: &str) -> Value {
    let v: Value = http
        .get(format!(
            "{base}/api/v1/kpis?store_id={store}&from=2026-11-01&to=2026-11-30"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["stores"][0].clone()
}

async fn store_figures(node: &Node) -> Value {
    let f = node
        .app
        .kpis(
            &staff("manager", StaffRole::Manager),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        )
        .await
        .unwrap();
    serde_json::to_value(f).unwrap()
}
