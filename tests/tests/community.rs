//! 一店一群 end to end, with real processes, real QUIC and real HTTP: a
//! store cut off from the hub keeps adding members at its counter (a
//! retried request adds nothing); on heal the joins reach the hub through
//! the store's ledger. A customer belongs to the community of their newest
//! join by the time it was made, so a counter join made before the customer
//! joined another store online is history only, however late it arrives.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::time::Duration;

use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn customer(c: &Cluster, phone: &str) -> String {
    let h = c.hub().unwrap();
    let v: Value = c
        .http
        .post(format!("{}/api/v1/customer/session", h.http))
        .json(&json!({ "phone": phone }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

fn community_of(c: &Cluster, token: &str) -> Value {
    let h = c.hub().unwrap();
    c.http
        .get(format!("{}/api/v1/customer/community", h.http))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn counter_joins_made_offline_reach_the_hub_and_the_newest_join_wins() {
    let mut c = Cluster::new(11).unwrap();
    c.hub_import("/api/v1/catalog/import", "products.csv")
        .unwrap();
    c.hub_import("/api/v1/stores/import", "stores.csv").unwrap();
    c.add_store("S001").unwrap();
    c.add_store("S002").unwrap();
    let (a, b) = ("13800138011", "13900139012");
    let token_a = customer(&c, a);
    let token_b = customer(&c, b);

    c.link("S002", LinkMode::Cut).unwrap();
    // S002's counter adds A while cut off; the retry adds nothing
    let (s, first) = c
        .store_post(
            "S002",
            "/api/v1/community/members",
            Some("join-a"),
            json!({"phone": a}),
        )
        .unwrap();
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["phone"], json!("138****8011"));
    let (s, again) = c
        .store_post(
            "S002",
            "/api/v1/community/members",
            Some("join-a"),
            json!({"phone": a}),
        )
        .unwrap();
    assert_eq!((s, &again["join_id"]), (201, &first["join_id"]));
    let (s, bad) = c
        .store_post(
            "S002",
            "/api/v1/community/members",
            None,
            json!({"phone": "12345"}),
        )
        .unwrap();
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (422, Some("invalid_field")),
        "{bad}"
    );

    // A then joins S001 online by its code: a newer join
    let code = c.hub_get("/api/v1/communities/S001").unwrap()["join_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let h = c.hub().unwrap();
    let r: Value = c
        .http
        .post(format!("{}/api/v1/communities/S001/members", h.http))
        .bearer_auth(&token_a)
        .json(&json!({ "join_code": code }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["outcome"], json!("joined"), "{r}");

    // and S002's counter adds B, still cut off
    let (s, v) = c
        .store_post(
            "S002",
            "/api/v1/community/members",
            Some("join-b"),
            json!({"phone": b}),
        )
        .unwrap();
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        community_of(&c, &token_b),
        Value::Null,
        "nothing reached the hub yet"
    );

    c.link("S002", LinkMode::Up).unwrap();
    wait_for(CONVERGE, "B's counter join to reach the hub", || {
        (community_of(&c, &token_b)["store_id"] == "S002").then_some(())
    })
    .unwrap();
    let mine = community_of(&c, &token_b);
    assert_eq!(mine["via"], json!("counter"));
    // A's counter join arrived too (in the same ledger), but is older than
    // the online join: A stays with S001
    assert_eq!(community_of(&c, &token_a)["store_id"], json!("S001"));
    let s2 = c.hub_get("/api/v1/communities/S002").unwrap();
    assert_eq!(s2["members"], json!(1), "{s2}");
    let members = c.hub_get("/api/v1/communities/S002/members").unwrap();
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members[0]["phone"], json!("139****9012"));
}
