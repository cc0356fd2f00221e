//! 一店一群 at the hub (issue 11): a customer joins a store's community by
//! its join code or by a location it serves, moves when joining another,
//! and is added at a store's counter through the store's ledger, where a
//! join made earlier but synced later never pulls the customer back. Polls:
//! staff ask, members vote once each, results rank the options.

#![allow(clippy::unwrap_used)] // test code

mod common;

use axum::http::StatusCode;
use common::{TestHub, hub, sync_in};
use linli_shared::community::MemberFact;
use linli_shared::docs::json::put_record;
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::member::{mask_phone, member_hash};
use serde_json::{Value, json};

/// A store's ledger of one day with counter joins in it, synced in: each
/// names the member by the chain's member hash and the masked phone, as a
/// store writes them (never the phone).
async fn counter_joins(h: &TestHub, store: &str, actor: u8, joins: &[(&str, &str, &str)]) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let id = DocId::store_ledger(store, day);
    let mut doc = new_doc(&id, Owner::Store(store.into()).actor([actor; 8])).unwrap();
    let key = h.hub.chain_member_key();
    for (join_id, phone, at) in joins {
        let f = MemberFact {
            join_id: (*join_id).into(),
            member_hash: member_hash(&key, phone),
            masked_phone: mask_phone(phone),
            phone: String::new(),
            at: (*at).into(),
            staff: "cashier".into(),
        };
        put_record(&mut doc, "members", join_id, &f).unwrap();
    }
    doc.commit();
    let json = serde_json::to_string(&linli_shared::docs::json::records::<Value>(&doc, "members"))
        .unwrap();
    for (_, phone, _) in joins {
        assert!(!json.contains(phone), "the ledger holds no phone: {json}");
    }
    sync_in(&h.hub, store, &id, &mut doc).await;
}

/// A counter join as stores wrote them before issue 12 (the phone in the
/// clear), synced in: such entries still project.
async fn old_counter_join(
    h: &TestHub,
    store: &str,
    actor: u8,
    join_id: &str,
    phone: &str,
    at: &str,
) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let id = DocId::store_ledger(store, day);
    let mut doc = new_doc(&id, Owner::Store(store.into()).actor([actor; 8])).unwrap();
    let f = json!({"join_id": join_id, "phone": phone, "at": at, "staff": "cashier"});
    put_record(&mut doc, "members", join_id, &f).unwrap();
    doc.commit();
    sync_in(&h.hub, store, &id, &mut doc).await;
}

#[tokio::test]
async fn customers_join_by_code_or_location_and_move_between_communities() {
    let h = hub().await;
    let me = h.customer("13800138001").await;

    // the join code is staff's to show; the public sees the counts only
    let (s, public) = h.get("/api/v1/communities/S001", None).await;
    assert_eq!(s, StatusCode::OK, "{public}");
    assert!(public.get("join_code").is_none(), "{public}");
    let (_, staff) = h.get("/api/v1/communities/S001", Some(&h.admin)).await;
    let code = staff["join_code"].as_str().unwrap().to_owned();
    assert_eq!(
        staff["join_path"],
        json!(format!("/?store=S001&join={code}"))
    );
    let (_, again) = h.get("/api/v1/communities/S001", Some(&h.admin)).await;
    assert_eq!(again["join_code"], json!(code), "the code is stable");

    // a wrong code is refused and joins nothing
    let (s, e) = h
        .post(
            "/api/v1/communities/S001/members",
            &me,
            json!({"join_code": "ZZZZZZ"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("wrong_join_code")),
        "{e}"
    );
    assert_eq!(h.community_of(&me).await, Value::Null);
    let (s, e) = h
        .post("/api/v1/communities/S001/members", &me, json!({}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // by code, typed in lower case with a dash
    let typed = format!("{}-{}", &code[..3], &code[3..]).to_lowercase();
    let (s, j) = h
        .post(
            "/api/v1/communities/S001/members",
            &me,
            json!({"join_code": typed}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(
        (j["outcome"].as_str(), j["store_id"].as_str()),
        (Some("joined"), Some("S001"))
    );
    let mine = h.community_of(&me).await;
    assert_eq!(
        (mine["store_id"].as_str(), mine["via"].as_str()),
        (Some("S001"), Some("code"))
    );

    // by location: a point no store serves is refused; S002's own site is
    // served by S002, and joining there moves the customer
    let (s, e) = h
        .post(
            "/api/v1/communities/S001/members",
            &me,
            json!({"lat": 31.5, "lon": 121.9}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("outside_service_area")),
        "{e}"
    );
    assert_eq!(e["error"]["details"]["serving"], json!([]));
    let (s, j) = h
        .post(
            "/api/v1/communities/S002/members",
            &me,
            json!({"lat": 30.326166, "lon": 120.169368}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(
        (j["outcome"].as_str(), j["moved_from"].as_str()),
        (Some("moved"), Some("S001"))
    );
    assert_eq!(h.community_of(&me).await["store_id"], json!("S002"));

    let (_, s1) = h.get("/api/v1/communities/S001", None).await;
    let (_, s2) = h.get("/api/v1/communities/S002", None).await;
    assert_eq!(
        (s1["members"].as_i64(), s2["members"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(s2["active_this_month"], json!(1));
    let (s, list) = h
        .get("/api/v1/communities/S002/members", Some(&h.admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list[0]["phone"], json!("138****8001"));
    // members are staff's to see
    let (s, _) = h.get("/api/v1/communities/S002/members", Some(&me)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = h.get("/api/v1/communities/S999", None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("store_not_found"))
    );
}

#[tokio::test]
async fn a_counter_join_synced_late_is_history_and_does_not_pull_a_customer_back() {
    let h = hub().await;
    let me = h.customer("13800138002").await;
    let (_, staff) = h.get("/api/v1/communities/S002", Some(&h.admin)).await;
    let code = staff["join_code"].as_str().unwrap().to_owned();
    // online at S002 now
    let (s, _) = h
        .post(
            "/api/v1/communities/S002/members",
            &me,
            json!({"join_code": code}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // S001's counter added the same phone an hour ago, during an outage;
    // it arrives now: recorded, but the customer stays with S002
    let earlier = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    old_counter_join(&h, "S001", 1, "01JOIN0001", "13800138002", &earlier).await;
    assert_eq!(h.community_of(&me).await["store_id"], json!("S002"));

    // a new customer added at S001's counter exists at the hub as a member
    counter_joins(
        &h,
        "S001",
        2,
        &[(
            "01JOIN0002",
            "13900139002",
            &chrono::Utc::now().to_rfc3339(),
        )],
    )
    .await;
    let other = h.customer("13900139002").await;
    let mine = h.community_of(&other).await;
    assert_eq!(
        (mine["store_id"].as_str(), mine["via"].as_str()),
        (Some("S001"), Some("counter"))
    );

    // a later counter join moves the first customer back to S001, once,
    // however often the same ledger arrives
    let later = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    for actor in [3, 4] {
        counter_joins(&h, "S001", actor, &[("01JOIN0003", "13800138002", &later)]).await;
    }
    assert_eq!(h.community_of(&me).await["store_id"], json!("S001"));
    let joins: Vec<(String, String)> = h
        .hub
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT j.store_id, j.outcome FROM community_joins j JOIN customers cu ON cu.customer_id = j.customer_id
                 WHERE cu.phone = '13800138002' ORDER BY j.recorded_at, j.join_id",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, linli_sync::db::StoreError>(rows)
        })
        .await
        .unwrap();
    let joins: Vec<(&str, &str)> = joins
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        joins,
        vec![
            ("S002", "joined"),
            ("S001", "superseded"),
            ("S001", "moved")
        ]
    );
}

#[tokio::test]
async fn members_vote_once_in_their_communitys_poll_and_the_results_rank_the_options() {
    let h = hub().await;
    let closes = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let poll =
        |q: &str, options: Value| json!({"question": q, "options": options, "closes_at": closes});

    // bad polls write nothing
    for (body, code) in [
        (poll("", json!(["P00001", "P00002"])), "invalid_field"),
        (poll("q", json!(["P00001"])), "invalid_field"),
        (poll("q", json!(["P00001", "P00001"])), "invalid_field"),
        (poll("q", json!(["P00001", "X99999"])), "unknown_sku"),
        (
            json!({"question": "q", "options": ["P00001", "P00002"], "closes_at": "2020-01-01T00:00:00Z"}),
            "invalid_field",
        ),
    ] {
        let (s, e) = h
            .post("/api/v1/communities/S001/polls", &h.admin, body.clone())
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}: {e}"
        );
    }
    let a = h.customer("13800138003").await;
    let (s, _) = h
        .post(
            "/api/v1/communities/S001/polls",
            &a,
            poll("q", json!(["P00001", "P00002"])),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "customers do not make polls");

    let (s, p) = h
        .post(
            "/api/v1/communities/S001/polls",
            &h.admin,
            poll(
                "明天店播，大家最想看哪款？",
                json!(["P00001", "P00002", "P00003"]),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let pid = p["poll_id"].as_str().unwrap().to_owned();
    assert_eq!(p["options"][0]["name"], json!("本地全麦面包（浙江）"));
    let votes = format!("/api/v1/communities/S001/polls/{pid}/votes");

    // not a member yet
    let (s, e) = h.post(&votes, &a, json!({"option": 1})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_a_member")),
        "{e}"
    );
    let (_, staff) = h.get("/api/v1/communities/S001", Some(&h.admin)).await;
    let code = staff["join_code"].as_str().unwrap().to_owned();
    let b = h.customer("13800138004").await;
    let c = h.customer("13800138005").await;
    for t in [&a, &b, &c] {
        let (s, _) = h
            .post(
                "/api/v1/communities/S001/members",
                t,
                json!({"join_code": code}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, e) = h.post(&votes, &a, json!({"option": 3})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_such_option")),
        "{e}"
    );
    for (t, option) in [(&a, 1), (&b, 2), (&c, 1)] {
        let (s, v) = h.post(&votes, t, json!({"option": option})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["my_vote"], json!(option));
    }
    let (s, e) = h.post(&votes, &a, json!({"option": 2})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{e}"
    );

    let (s, p) = h
        .get(&format!("/api/v1/communities/S001/polls/{pid}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let counts: Vec<i64> = p["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["votes"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 2, 1]);
    assert_eq!(p["votes"], json!(3));
    assert_eq!(p["ranking"], json!(["P00002", "P00003", "P00001"]));
    assert!(p.get("my_vote").is_none());

    // the member's page lists the poll with their vote
    let mine = h.community_of(&b).await;
    assert_eq!(mine["polls"][0]["my_vote"], json!(2));
    // another store's poll id under this store is not found
    let (s, _) = h
        .get(&format!("/api/v1/communities/S002/polls/{pid}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // a member of another community may not vote here
    let (_, staff2) = h.get("/api/v1/communities/S002", Some(&h.admin)).await;
    let (s, _) = h
        .post(
            "/api/v1/communities/S002/members",
            &c,
            json!({"join_code": staff2["join_code"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let d = h.customer("13800138006").await;
    let (s, _) = h
        .post(
            "/api/v1/communities/S002/members",
            &d,
            json!({"join_code": staff2["join_code"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, e) = h.post(&votes, &d, json!({"option": 0})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_a_member")),
        "{e}"
    );
}

#[tokio::test]
async fn a_store_manager_runs_polls_and_sees_members_of_their_own_store_only() {
    let h = hub().await;
    h.hub
        .store
        .write(|c| linli_hub::hub::add_store_manager(c, "S001-manager", "S001", "manager-password"))
        .await
        .unwrap();
    let m = h
        .hub
        .login("S001-manager", "manager-password")
        .await
        .unwrap();
    let closes = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let poll = json!({"question": "明天店播看哪款？", "options": ["P00001", "P00002"], "closes_at": closes});
    let (s, p) = h
        .post("/api/v1/communities/S001/polls", &m, poll.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, e) = h.post("/api/v1/communities/S002/polls", &m, poll).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_your_store")),
        "{e}"
    );
    let (_, mine) = h.get("/api/v1/communities/S001", Some(&m)).await;
    assert!(mine["join_code"].is_string(), "{mine}");
    let (_, other) = h.get("/api/v1/communities/S002", Some(&m)).await;
    assert!(other.get("join_code").is_none(), "{other}");
    let (s, _) = h.get("/api/v1/communities/S001/members", Some(&m)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h.get("/api/v1/communities/S002/members", Some(&m)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // the public reads take a manager's token too (the console sends it)
    let (s, polls) = h.get("/api/v1/communities/S001/polls", Some(&m)).await;
    assert_eq!(
        (s, polls[0]["poll_id"].clone()),
        (StatusCode::OK, p["poll_id"].clone()),
        "{polls}"
    );
}
