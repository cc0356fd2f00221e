//! What each hub user sees: the chain admin every store, a regional manager
//! the stores of their region (the store directory's `region`), and nothing
//! of another region: its stores, sales, stock, live sessions and
//! exceptions are refused or left out.

#![allow(clippy::unwrap_used)] // test code

mod common;

use axum::http::StatusCode;
use serde_json::{Value, json};

fn ids(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s[key].as_str().unwrap().to_owned())
        .collect()
}

fn west_stores() -> Vec<String> {
    let csv = std::fs::read_to_string(format!("{}/../data/stores.csv", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let mut out: Vec<String> = csv
        .lines()
        .skip(1)
        .filter(|l| l.ends_with(",杭州西区"))
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_regional_manager_sees_only_their_regions_stores() {
    let h = common::hub().await;
    let west = h.regional("west").await;
    let expected = west_stores();
    assert!(expected.contains(&"S001".to_owned()) && !expected.contains(&"S002".to_owned()));

    // who am I, and which stores
    let (s, me) = h.get("/api/v1/me", Some(&west)).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "regional");
    assert_eq!(me["region"], "杭州西区");
    let mine: Vec<String> = serde_json::from_value(me["stores"].clone()).unwrap();
    assert_eq!(mine, expected);
    let (_, me) = h.get("/api/v1/me", Some(&h.admin)).await;
    assert_eq!(me["stores"].as_array().unwrap().len(), 20, "{me}");
    let (s, _) = h.get("/api/v1/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // the store list: the region's stores, with their link state
    let (s, stores) = h.get("/api/v1/stores", Some(&west)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&stores, "store_id"), expected);
    assert!(stores[0].get("sync_state").is_some(), "{stores}");
    let (_, all) = h.get("/api/v1/stores", None).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        20,
        "customers see every store"
    );

    // another region's sales and stock are refused, with a message to read
    let day = chrono::Utc::now().date_naive();
    let (s, v) = h
        .get(&format!("/api/v1/stores/S002/sales?day={day}"), Some(&west))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "not_your_region");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("S002 不在您负责的大区内")
    );
    let (s, _) = h
        .get(&format!("/api/v1/stores/S001/sales?day={day}"), Some(&west))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h.get("/api/v1/stores/S002/stock/P00001", Some(&west)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn live_sessions_are_seen_within_the_region() {
    let h = common::hub().await;
    let (west, north) = (h.regional("west").await, h.regional("north").await);
    let now = chrono::Utc::now();
    for (store, manager) in [("S001", "m1"), ("S002", "m2")] {
        let token = h.manager(manager).await;
        let (s, v) = h
            .post(
                "/api/v1/live-sessions",
                &token,
                json!({"store_id": store, "title": format!("{store} 晚间直播"),
                    "starts_at": now - chrono::Duration::minutes(1),
                    "ends_at": now + chrono::Duration::minutes(60),
                    "featured": [{"sku": "P00001", "discount_pct": 88}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["session_id"].as_str().unwrap().to_owned();
        let (s, v) = h
            .post(
                &format!("/api/v1/live-sessions/{id}/start"),
                &token,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let recent = |token: String| {
        let h = &h;
        async move {
            let (s, v) = h.get("/api/v1/live-sessions/recent", Some(&token)).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let mut stores = ids(&v, "store_id");
            stores.sort();
            (stores, v)
        }
    };
    let (stores, v) = recent(west.clone()).await;
    assert_eq!(stores, ["S001"]);
    assert_eq!(v[0]["status"], "started");
    assert_eq!(v[0]["orders"], 0, "with its figures");
    assert_eq!(recent(north.clone()).await.0, ["S002"]);
    assert_eq!(recent(h.admin.clone()).await.0, ["S001", "S002"]);
    assert_eq!(recent(h.manager("m2").await).await.0, ["S002"]);

    let (s, v) = h
        .get("/api/v1/live-sessions?store_id=S002", Some(&west))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "not_your_region");
    let (s, v) = h
        .get("/api/v1/live-sessions?store_id=S001", Some(&west))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_regional_manager_needs_a_region() {
    let dir = tempfile::tempdir().unwrap();
    let c = linli_hub::hub::open_conn(&dir.path().join("hub.db")).unwrap();
    let e = linli_hub::hub::add_user(&c, "r", linli_hub::auth::Role::Regional, "password-1")
        .unwrap_err();
    assert!(e.to_string().contains("--region"), "{e}");
    linli_hub::hub::add_regional_manager(&c, "r", "杭州西区", "password-1").unwrap();
}
