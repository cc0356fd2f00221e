//! The simulated day's promotions: S002's manager runs the evening
//! fresh-food markdown (all day in the demo), the chain opens a coupon
//! campaign 满20减3 with S001's counter taking part; one customer claims a
//! coupon for S001's till and another for online orders, and both are used:
//! one at the counter, one on a paid pickup order. The same HTTP calls the
//! console, the shop and an admin make.

use reqwest::Client;
use serde_json::{Value, json};

use crate::calls::{admin_token, customer, send};

/// What the promotions part set up.
#[derive(Debug)]
pub(crate) struct Promo {
    /// The code a customer shows at S001's till.
    pub counter_code: String,
    /// The online customer's phone, session and claimed coupon.
    pub online: (String, String, String),
    pub counter_done: bool,
    pub markdown_done: bool,
}

/// Customers of the promotions part (phones 1365000000x).
fn phone(i: u32) -> String {
    format!("1365000{i:04}")
}

/// The markdown at S002, the campaign, and two customers' claims. `run`
/// makes the idempotency keys unique to this run.
pub(crate) async fn start(http: &Client, hub: &str, run: u32) -> anyhow::Result<Promo> {
    let admin = admin_token(http, hub).await?;
    send(
        http.put(format!("{hub}/api/v1/stores/S002/markdowns"))
            .bearer_auth(&admin)
            .json(
                &json!({"markdowns": [{"name": "晚间鲜食", "category": "vegetable",
                "pay_percent": 70, "from": "00:00", "to": "24:00"}]}),
            ),
    )
    .await?;
    let coupon = send(
        http.post(format!("{hub}/api/v1/coupons"))
            .bearer_auth(&admin)
            .json(
                &json!({"name": "满20减3", "off": {"amount_fen": 300}, "min_spend_fen": 2000,
                "budget_fen": 50_000, "per_customer_limit": 2,
                "valid_until": (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339(),
                "store_ids": ["S001"], "counter_allotment_fen": 3_000}),
            ),
    )
    .await?;
    let cid = coupon["coupon_id"].as_str().unwrap_or_default().to_owned();
    let claim = |token: String, key: String, body: Value| {
        let url = format!("{hub}/api/v1/coupons/{cid}/claims");
        async move {
            send(
                http.post(url)
                    .bearer_auth(token)
                    .header("Idempotency-Key", key)
                    .json(&body),
            )
            .await
        }
    };
    let a = customer(http, hub, &phone(1)).await?;
    let at_till = claim(
        a,
        format!("day-{run:08x}-coupon-1"),
        json!({"use": "counter", "store_id": "S001"}),
    )
    .await?;
    let b = customer(http, hub, &phone(2)).await?;
    let online = claim(
        b.clone(),
        format!("day-{run:08x}-coupon-2"),
        json!({"use": "online"}),
    )
    .await?;
    Ok(Promo {
        counter_code: at_till["code"].as_str().unwrap_or_default().to_owned(),
        online: (
            phone(2),
            b,
            online["claim_id"].as_str().unwrap_or_default().to_owned(),
        ),
        counter_done: false,
        markdown_done: false,
    })
}
