//! A customer's profile, export and erasure at the hub (issue 12), through
//! the router: profile figures equal hand-computed values for a seeded set
//! of identities, counter sales (by member hash) and online orders; the
//! export holds the records and rows; an erasure is idempotent, leaves the
//! phone nowhere in the hub's database, asks every store and shows who has
//! not yet confirmed; a store's ledger confirmation is projected.

#![allow(clippy::unwrap_used)] // test code

mod common;

use automerge::AutoCommit;
use common::{TestHub, hub, lend, sync_in};
use linli_shared::docs::ledger::{SaleFact, SaleLineFact, record_sale};
use linli_shared::docs::{DocId, Owner, new_doc};
use reqwest::StatusCode;
use serde_json::{Value, json};

const A_PHONE: &str = "13800000001";
const B_PHONE: &str = "13900000002";
const C_PHONE: &str = "13700000003";

async fn import(h: &TestHub) -> Value {
    let csv = format!(
        "record_id,source,phone,openid,unionid,member_card,nickname,store_id\n\
         R1,pos,{A_PHONE},,,,,S001\n\
         R2,miniapp,+86 138 0000 0001,oA-1,,,阿明,S001\n\
         R3,pos,{B_PHONE},,,,,S002\n"
    );
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/customers/identities/import",
            Some(&h.admin),
            Some(("text/csv", csv.into_bytes())),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn sale(id: &str, at: &str, fen: i64, member_hash: &str) -> SaleFact {
    SaleFact {
        sale_id: id.into(),
        ticket_no: format!("T-{id}"),
        created_at: at.into(),
        cashier: "cashier".into(),
        total_fen: fen,
        lines: vec![SaleLineFact {
            sku: "P00001".into(),
            qty: 1,
            total_fen: fen,
            unit_price_fen: fen,
        }],
        payments: vec![],
        member: !member_hash.is_empty(),
        member_hash: member_hash.into(),
        ..Default::default()
    }
}

/// Counter sales of S002 on 2026-11-20 and 2026-11-25 (business days,
/// UTC+8): A's at 23:30 local, B's, and one without a member.
async fn counter_sales(h: &TestHub) {
    let key = h.member_key();
    let hash = |p: &str| linli_shared::member::member_hash(&key, p);
    for (day, sales) in [
        (
            "2026-11-20",
            vec![sale("s-b", "2026-11-20T02:00:00.000Z", 500, &hash(B_PHONE))],
        ),
        (
            "2026-11-25",
            vec![
                sale("s-a", "2026-11-25T15:30:00.000Z", 1500, &hash(A_PHONE)),
                sale("s-anon", "2026-11-25T03:00:00.000Z", 900, ""),
            ],
        ),
    ] {
        let id = DocId::store_ledger("S002", day.parse().unwrap());
        let mut doc: AutoCommit = new_doc(&id, Owner::Store("S002".into()).actor([9; 8])).unwrap();
        for s in &sales {
            record_sale(&mut doc, s).unwrap();
        }
        doc.commit();
        sync_in(&h.hub, "S002", &id, &mut doc).await;
    }
}

/// A regional manager's login (杭州西区: S001's region).
async fn regional(h: &TestHub) -> String {
    h.regional("west").await
}

async fn order(h: &TestHub, token: &str, key: &str) -> Value {
    let body = json!({"channel": "miniapp", "customer": {}, "fulfilment": "pickup",
        "store_id": "S001", "lines": [{"sku": "P00001", "qty": 1}]});
    let (s, v) = h.post_keyed("/api/v1/orders", token, key, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// A (identity R1+R2, online account by phone): 1 counter sale of 1,500 at
/// S002 and 2 online pickups at S001 today; B (identity R3): 1 counter sale
/// of 500 on 11-20; C (online only): 1 online pickup today.
struct Seeded {
    a: String,
    b: String,
    c_online: String,
    online_total: i64,
}

async fn seed(h: &TestHub) -> Seeded {
    let report = import(h).await;
    let id_of = |r: &str| {
        report["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["record_id"] == r)
            .unwrap()["customer_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (id_of("R1"), id_of("R2"));
    assert_eq!(a, b, "R1 and R2 share a phone");
    let b = id_of("R3");
    counter_sales(h).await;
    lend(&h.hub, "S001", &[("P00001", 10)]).await;
    let ta = h.customer(A_PHONE).await;
    let o1 = order(h, &ta, "a-1").await;
    let o2 = order(h, &ta, "a-2").await;
    let tc = h.customer(C_PHONE).await;
    let o3 = order(h, &tc, "c-1").await;
    let t = o1["total_fen"].as_i64().unwrap();
    assert_eq!(o2["total_fen"].as_i64(), Some(t));
    assert_eq!(o3["total_fen"].as_i64(), Some(t));
    assert!(t > 500, "the hand-computed scores below assume it: {t}");
    let c_online = o3["customer_id"].as_str().unwrap().to_owned();
    Seeded {
        a,
        b,
        c_online,
        online_total: t,
    }
}

#[tokio::test]
async fn profiles_equal_hand_computed_figures() {
    let h = hub().await;
    let s = seed(&h).await;
    let (st, v) = h
        .get(&format!("/api/v1/customers/{}", s.a), Some(&h.admin))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let p = &v["profile"];
    assert_eq!(v["records"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(p["orders"], 3, "{p}");
    assert_eq!(
        (p["counter_orders"].clone(), p["online_orders"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(p["spend_fen"], json!(1500 + 2 * s.online_total));
    // 2026-11-25 (23:30 local) and today
    assert_eq!(p["visits"], 2, "{p}");
    assert_eq!(p["first_purchase_at"], "2026-11-25T15:30:00Z");
    assert_eq!(p["home_store"], "S001");
    assert_eq!(
        (p["pickups"].clone(), p["deliveries"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(p["recency_days"], 0);
    // three customers with purchases: recency {11-20, today, today},
    // orders {3, 1, 1}, spend {1500+2t, 500, t}: quintiles over distinct values
    assert_eq!(p["scored_customers"], 3);
    assert_eq!(
        p["scores"],
        json!({"recency": 3, "frequency": 3, "monetary": 4})
    );
    assert_eq!(p["segment_name"], "重要价值客户");

    let (_, v) = h
        .get(&format!("/api/v1/customers/{}", s.b), Some(&h.admin))
        .await;
    assert_eq!(
        v["profile"]["scores"],
        json!({"recency": 1, "frequency": 1, "monetary": 1})
    );
    assert_eq!(v["profile"]["segment_name"], "一般挽留客户");
    assert_eq!(v["profile"]["home_store"], "S002");
    assert_eq!(v["profile"]["visits"], 1);

    // a customer known only from online sessions is a customer too
    let (st, v) = h
        .get(&format!("/api/v1/customers/{}", s.c_online), Some(&h.admin))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["customer_id"], s.c_online.as_str());
    assert_eq!(v["records"], json!([]));
    assert_eq!(
        v["profile"]["scores"],
        json!({"recency": 3, "frequency": 1, "monetary": 2})
    );
    assert_eq!(v["profile"]["segment_name"], "一般发展客户");

    // only admins see profiles (a store manager's login is not for this API)
    let (st, _) = h
        .get(&format!("/api/v1/customers/{}", s.a), Some("nonsense"))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let m1 = h.manager("m1").await;
    let (st, _) = h
        .get(&format!("/api/v1/customers/{}", s.a), Some(&m1))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // a regional manager sees the customers whose home store is theirs
    let (west, north) = (regional(&h).await, h.regional("north").await);
    for (token, mine, theirs) in [(&west, &s.a, &s.b), (&north, &s.b, &s.a)] {
        for tail in ["", "/export"] {
            let (st, v) = h
                .get(&format!("/api/v1/customers/{mine}{tail}"), Some(token))
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            let (st, v) = h
                .get(&format!("/api/v1/customers/{theirs}{tail}"), Some(token))
                .await;
            assert_eq!(
                (st, v["error"]["code"].clone()),
                (StatusCode::FORBIDDEN, json!("not_your_region")),
                "{v}"
            );
        }
    }
}

#[tokio::test]
async fn the_export_holds_everything_about_the_person() {
    let h = hub().await;
    let s = seed(&h).await;
    let resp = h
        .call(
            "GET",
            &format!("/api/v1/customers/{}/export", s.a),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(resp.0, StatusCode::OK, "{}", resp.1);
    let v = resp.1;
    let ids: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["R1", "R2"]);
    assert_eq!(v["merges"].as_array().unwrap().len(), 1);
    assert_eq!(v["accounts"][0]["phone"], A_PHONE);
    assert_eq!(v["online_orders"].as_array().unwrap().len(), 2);
    assert_eq!(v["online_orders"][0]["fact"]["store_id"], "S001");
    let sales: Vec<&str> = v["counter_sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sale_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        sales,
        ["s-a"],
        "only A's sale, not B's or the anonymous one"
    );
    assert_eq!(v["profile"]["orders"], 3);

    // the download is an attachment
    let req = axum::http::Request::builder()
        .uri(format!("/api/v1/customers/{}/export", s.a))
        .header("authorization", format!("Bearer {}", h.admin))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(linli_hub::http::router(h.hub.clone()), req)
        .await
        .unwrap();
    let cd = resp.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        cd,
        format!("attachment; filename=\"customer-{}.json\"", s.a)
    );
}

/// Every text or blob value in the hub's database that contains `needle`,
/// as `table.column`.
fn held(db: &std::path::Path, needle: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for (i, n) in names.iter().enumerate() {
                let hit = match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        b.windows(needle.len()).any(|w| w == needle.as_bytes())
                    }
                    _ => false,
                };
                if hit {
                    out.push(format!("{t}.{n}"));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn an_erasure_is_idempotent_removes_the_phone_and_waits_for_every_store() {
    let h = hub().await;
    let s = seed(&h).await;
    assert!(!held(&h.db_path(), A_PHONE).is_empty(), "seeded");
    let uri = format!("/api/v1/customers/{}/erase", s.a);
    let (st, v) = h
        .post("/api/v1/customers/x/erase", &h.admin, json!({}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "no Idempotency-Key: {v}");
    let region = regional(&h).await;
    let (st, _) = h.post_keyed(&uri, &region, "e-1", json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "admins only");

    let (st, first) = h.post_keyed(&uri, &h.admin, "e-1", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let eid = first["erasure_id"].as_str().unwrap().to_owned();
    // every store of the chain is asked, none has confirmed yet
    let pending = first["pending_stores"].as_array().unwrap();
    assert!(pending.len() >= 2, "{first}");
    assert!(pending.contains(&json!("S001")) && pending.contains(&json!("S002")));
    assert_eq!(first["complete"], false);

    // a retry, and another request for the same customer, give the same erasure
    let (st, again) = h.post_keyed(&uri, &h.admin, "e-1", json!({})).await;
    assert_eq!(
        (st, again["erasure_id"].clone()),
        (StatusCode::OK, json!(eid))
    );
    let (st, other) = h.post_keyed(&uri, &h.admin, "e-2", json!({})).await;
    assert_eq!(
        (st, other["erasure_id"].clone()),
        (StatusCode::OK, json!(eid))
    );
    let (st, _) = h
        .post_keyed(
            &format!("/api/v1/customers/{}/erase", s.b),
            &h.admin,
            "e-1",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "a key names one request");

    // the phone is nowhere in the hub's database, documents included
    assert_eq!(held(&h.db_path(), A_PHONE), Vec::<String>::new());
    assert_eq!(held(&h.db_path(), "oA-1"), Vec::<String>::new());
    assert_eq!(held(&h.db_path(), "阿明"), Vec::<String>::new());
    // the customer and their online account answer 410 with the erasure
    let (st, v) = h
        .get(&format!("/api/v1/customers/{}", s.a), Some(&h.admin))
        .await;
    assert_eq!(
        (st, v["error"]["code"].clone()),
        (StatusCode::GONE, json!("customer_erased"))
    );
    assert_eq!(v["error"]["details"]["erasure_id"], eid.as_str());
    // amounts stay for the books: the orders, now under the tombstone
    let c = rusqlite::Connection::open(h.db_path()).unwrap();
    let (n, fen): (i64, i64) = c
        .query_row(
            "SELECT count(*), sum(json_extract(fact, '$.total_fen')) FROM online_orders WHERE customer_id = ?1",
            [first["tombstone"].as_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, fen), (2, 2 * s.online_total));
    let sales: i64 = c
        .query_row("SELECT sum(total_fen) FROM hub_sales", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sales, 1500 + 500 + 900);
    // the other customers are untouched
    let (st, v) = h
        .get(&format!("/api/v1/customers/{}", s.b), Some(&h.admin))
        .await;
    assert_eq!(
        (st, v["profile"]["orders"].clone()),
        (StatusCode::OK, json!(1))
    );

    // S002 confirms through its ledger; the hub projects it (once)
    let conf = linli_shared::erasure::ErasureConfirmation {
        erasure_id: eid.clone(),
        rows: 1,
        at: "2026-12-02T01:00:00.000Z".into(),
    };
    let id = DocId::store_ledger("S002", "2026-12-02".parse().unwrap());
    let mut doc: AutoCommit = new_doc(&id, Owner::Store("S002".into()).actor([9; 8])).unwrap();
    linli_shared::docs::json::put_record(&mut doc, "erasures", &eid, &conf).unwrap();
    doc.commit();
    sync_in(&h.hub, "S002", &id, &mut doc).await;
    let (st, v) = h
        .get(&format!("/api/v1/erasures/{eid}"), Some(&h.admin))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let pending = v["pending_stores"].as_array().unwrap();
    assert!(
        !pending.contains(&json!("S002")) && pending.contains(&json!("S001")),
        "{v}"
    );
    let s2 = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store_id"] == "S002")
        .unwrap();
    assert_eq!(s2["confirmed_at"], "2026-12-02T01:00:00.000Z");
    let (st, _) = h.get("/api/v1/erasures/E-nope", Some(&h.admin)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
