//! The simulated day's community: S001's manager asks a poll before the
//! stream and neighbours join S001's community by its join code and vote;
//! a group-buy at S001 and S002 fills with two customers online (paying at
//! the simulator's cashier when the hub takes payment) and one at S002's
//! counter, is reached, and once the goods arrive both stores make
//! each participant a pickup order with a code. The same HTTP calls the
//! shop, the console and a manager make.

use reqwest::Client;
use serde_json::{Value, json};

use crate::calls::{admin_token, customer, send};

/// What the day's community part set up.
#[derive(Debug)]
pub(crate) struct Community {
    pub poll: String,
    pub group_buy: String,
}

/// Customers of the community part (phones 1366000000x).
fn phone(i: u32) -> String {
    format!("1366000{i:04}")
}

/// The poll, three members voting, and the group-buy with two online
/// commitments. `run` makes the idempotency keys unique to this run.
pub(crate) async fn start(http: &Client, hub: &str, run: u32) -> anyhow::Result<Community> {
    let admin = admin_token(http, hub).await?;
    let closes = chrono::Utc::now() + chrono::Duration::hours(12);
    let poll = send(
        http.post(format!("{hub}/api/v1/communities/S001/polls"))
            .bearer_auth(&admin)
            .json(&json!({
                "question": "明天店播，大家最想看哪款？",
                "options": ["P00001", "P00007", "P00009"],
                "closes_at": closes.to_rfc3339(),
            })),
    )
    .await?;
    let poll_id = poll["poll_id"].as_str().unwrap_or_default().to_owned();
    let code = send(
        http.get(format!("{hub}/api/v1/communities/S001"))
            .bearer_auth(&admin),
    )
    .await?["join_code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (i, vote) in [(1, 2), (2, 2), (3, 0)] {
        let t = customer(http, hub, &phone(i)).await?;
        send(
            http.post(format!("{hub}/api/v1/communities/S001/members"))
                .bearer_auth(&t)
                .json(&json!({ "join_code": code })),
        )
        .await?;
        send(
            http.post(format!(
                "{hub}/api/v1/communities/S001/polls/{poll_id}/votes"
            ))
            .bearer_auth(&t)
            .json(&json!({ "option": vote })),
        )
        .await?;
    }
    let deadline = chrono::Utc::now() + chrono::Duration::hours(2);
    let g = send(
        http.post(format!("{hub}/api/v1/group-buys"))
            .bearer_auth(&admin)
            .json(&json!({
                "sku": "P00009", "price_fen": 3990,
                "threshold": {"kind": "participants", "count": 3},
                "deadline": deadline.to_rfc3339(),
                "pickup_date": (deadline + chrono::Duration::days(1)).date_naive().to_string(),
                "per_customer_limit": 2, "store_ids": ["S001", "S002"],
                "counter_allotment": 20,
            })),
    )
    .await?;
    let gid = g["group_buy_id"].as_str().unwrap_or_default().to_owned();
    for i in [1, 2] {
        let t = customer(http, hub, &phone(i)).await?;
        let k = send(
            http.post(format!("{hub}/api/v1/group-buys/{gid}/commitments"))
                .bearer_auth(&t)
                .header("Idempotency-Key", format!("day-{run:08x}-gb-{i}"))
                .json(&json!({"store_id": "S001", "qty": 1})),
        )
        .await?;
        pay(http, hub, &t, &gid, &k["commitment"]).await?;
    }
    Ok(Community {
        poll: poll_id,
        group_buy: gid,
    })
}

/// Pays an online commitment the way a phone does when the hub takes
/// payment (the prepay, "confirm" at the simulator's cashier), and waits
/// until the hub counts it; one that needs no payment counts already.
async fn pay(
    http: &Client,
    hub: &str,
    token: &str,
    gid: &str,
    commitment: &Value,
) -> anyhow::Result<()> {
    if commitment["status"] != "awaiting_payment" {
        return Ok(());
    }
    let cid = commitment["commitment_id"].as_str().unwrap_or_default();
    let prepay = send(
        http.post(format!(
            "{hub}/api/v1/group-buys/{gid}/commitments/{cid}/pay"
        ))
        .bearer_auth(token),
    )
    .await?;
    let cashier = prepay["cashier_url"].as_str().unwrap_or_default();
    let r = http.post(format!("{cashier}/confirm")).send().await?;
    anyhow::ensure!(
        r.status().is_success(),
        "confirm at the cashier: {}",
        r.status()
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mine = send(
            http.get(format!("{hub}/api/v1/customer/group-buys"))
                .bearer_auth(token),
        )
        .await?;
        let paid = mine.as_array().is_some_and(|a| {
            a.iter().any(|m| {
                m["commitment"]["commitment_id"] == cid && m["commitment"]["status"] == "active"
            })
        });
        if paid {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "commitment {cid} not paid in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The poll's ranking, for the day's log.
pub(crate) async fn poll_ranking(http: &Client, hub: &str, poll: &str) -> anyhow::Result<String> {
    let p = send(http.get(format!("{hub}/api/v1/communities/S001/polls/{poll}"))).await?;
    let names: Vec<String> = p["options"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    format!(
                        "{} {} 票",
                        o["name"].as_str().unwrap_or_default(),
                        o["votes"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(names.join("，"))
}

/// S002's counter commits a customer (once the terms reached it); `Ok(true)`
/// when done.
pub(crate) async fn counter_commit(
    http: &Client,
    store: &str,
    token: &str,
    gid: &str,
    run: u32,
) -> anyhow::Result<bool> {
    let r = http
        .post(format!("{store}/api/v1/group-buys/{gid}/commitments"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("day-{run:08x}-gb-counter"))
        .json(&json!({"customer": {"phone": phone(4)}, "qty": 1}))
        .send()
        .await?;
    Ok(r.status().as_u16() == 201)
}

/// The campaign's state at the hub.
pub(crate) async fn state(http: &Client, hub: &str, gid: &str) -> anyhow::Result<Value> {
    send(http.get(format!("{hub}/api/v1/group-buys/{gid}"))).await
}

/// The goods arrive at a store: its manager books them in; returns the
/// pickup codes made (none until the store knows its participants).
pub(crate) async fn receive(
    http: &Client,
    store: &str,
    token: &str,
    gid: &str,
) -> anyhow::Result<Vec<String>> {
    // not before the store knows its participants (they come from the hub)
    let list = send(
        http.get(format!("{store}/api/v1/group-buys"))
            .bearer_auth(token),
    )
    .await?;
    let participants = list
        .as_array()
        .and_then(|a| a.iter().find(|g| g["group_buy_id"] == gid))
        .and_then(|g| g["participants"].as_i64())
        .unwrap_or(0);
    if participants == 0 {
        return Ok(Vec::new());
    }
    // the supplier delivers what was ordered: at most the limit of 2 each
    let v = send(
        http.post(format!("{store}/api/v1/group-buys/{gid}/receipts"))
            .bearer_auth(token)
            .json(&json!({ "qty": participants * 2 })),
    )
    .await?;
    Ok(v["orders"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["pickup_code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}
