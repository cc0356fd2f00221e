//! The simulated day: what a newcomer sees happen while they look around.
//! Every tick a counter sale at one of the stores; every few ticks a
//! customer orders online for pickup, and the store hands it over by its
//! code; once a delivery goes out with the courier, whose rider picks it
//! up and delivers it; S001 writes off goods past their date; S001's manager runs a
//! live session for a while, viewers order at the live price and the
//! figures grow; S002 marks vegetables down and coupons are used at S001's
//! till and online; once a store loses its
//! link for a while, keeps selling, and catches up when it is back. All of
//! it through the same HTTP APIs a till and a customer's phone use.

use std::collections::VecDeque;
use std::time::Duration;

use linli_shared::Unit;
use linli_shared::catalog::parse_catalog_csv;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::calls::customer;
use crate::chain::Chain;

/// A customer near S001 (30.373276, 120.161971), inside its service area.
const NEAR_S001: (f64, f64) = (30.3752, 120.1631);

/// How the day goes.
#[derive(Debug, Clone, Copy)]
pub struct DayPlan {
    /// Time between two events.
    pub tick: Duration,
    /// The store cut off from tick `cut_at` for `cut_for` ticks (S003).
    pub cut_at: u64,
    pub cut_for: u64,
}

impl Default for DayPlan {
    fn default() -> Self {
        DayPlan {
            tick: Duration::from_secs(3),
            cut_at: 8,
            cut_for: 20,
        }
    }
}

struct Till {
    id: String,
    url: String,
    token: String,
}

/// Runs the day until `cancel`. Each event is printed as one line.
pub async fn run(chain: &Chain, plan: DayPlan, cancel: CancellationToken) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut tills = Vec::new();
    for s in &chain.stores {
        let v: Value = http
            .post(format!("{}/api/v1/login", s.url))
            .json(&json!({"name": "manager", "pin": "9999"}))
            .send()
            .await?
            .json()
            .await?;
        let token = v["token"].as_str().unwrap_or_default().to_owned();
        tills.push(Till {
            id: s.id.clone(),
            url: s.url.clone(),
            token,
        });
    }
    // everyday goods sold by the piece, under ¥30
    let goods: Vec<String> = parse_catalog_csv(linli_edge::demo::SAMPLE_CATALOG)?
        .products
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.unit == Unit::Each && p.price.0 <= 3_000)
        .map(|p| p.sku.to_string())
        .collect();
    anyhow::ensure!(!goods.is_empty(), "no everyday goods in the catalog");
    let mut rng = StdRng::seed_from_u64(2026);
    // idempotency keys unique to this run (a second run reuses the data)
    let run: u32 = rand::thread_rng().r#gen();
    let mut pickups: VecDeque<(usize, String)> = VecDeque::new();
    let mut delivery: Option<String> = None;
    // the courier's reference of the delivery out with it, until delivered
    let mut riding: Option<String> = None;
    let mut wasted = false;
    let cut = &tills[tills.len() - 1].id;
    let mut tick: u64 = 0;
    let mut live: Option<crate::live_day::LiveRun> = None;
    let mut community: Option<crate::community_day::Community> = None;
    let mut promo: Option<crate::promo_day::Promo> = None;
    let mut counter_done = false;
    let mut received = [false, false];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(plan.tick) => {}
        }
        tick += 1;
        if tick == plan.cut_at {
            chain.set_link(cut, false);
            say(&format!(
                "{cut} 断网：继续收银，恢复后自动补传 (link cut; it keeps selling)"
            ));
        }
        if tick == plan.cut_at + plan.cut_for {
            chain.set_link(cut, true);
            say(&format!("{cut} 恢复联网 (link back)"));
        }
        // the community: a poll and a group-buy (tick 1), a counter
        // commitment at S002 that reaches it, the goods in at both stores
        if tick == 1 {
            match crate::community_day::start(&http, &chain.hub_url, run).await {
                Ok(c) => {
                    say(
                        "S001 店长发起投票“明天店播，大家最想看哪款？”，3 位邻居加入社群并投票；S001/S002 团购：冻虾仁 ¥39.90，满 3 人成团，已有 2 人在线参团 (poll and group-buy opened)",
                    );
                    community = Some(c);
                }
                Err(e) => say(&format!("社群活动未开始 (community part not started): {e}")),
            }
        }
        if let Some(c) = &community {
            if tick == 3
                && let Ok(r) =
                    crate::community_day::poll_ranking(&http, &chain.hub_url, &c.poll).await
            {
                say(&format!("投票结果 (poll): {r}"));
            }
            if !counter_done
                && tick >= 3
                && tills.len() > 1
                && let Ok(true) = crate::community_day::counter_commit(
                    &http,
                    &tills[1].url,
                    &tills[1].token,
                    &c.group_buy,
                    run,
                )
                .await
            {
                counter_done = true;
                say("S002 收银台为一位顾客参团（断网也能收） (counter commitment at S002)");
            }
            if counter_done && received.iter().any(|r| !r) {
                let state = crate::community_day::state(&http, &chain.hub_url, &c.group_buy)
                    .await
                    .ok();
                let reached = state
                    .as_ref()
                    .is_some_and(|g| g["state"] == "reached" || g["state"] == "fulfilled");
                if reached {
                    for (i, done) in received.iter_mut().enumerate() {
                        if *done {
                            continue;
                        }
                        if let Ok(codes) = crate::community_day::receive(
                            &http,
                            &tills[i].url,
                            &tills[i].token,
                            &c.group_buy,
                        )
                        .await
                            && !codes.is_empty()
                        {
                            *done = true;
                            say(&format!(
                                "{} 团购到货：为参团顾客生成取货码 {} (group-buy goods in, pickup codes made)",
                                tills[i].id,
                                codes.join("、")
                            ));
                        }
                    }
                    if received.iter().all(|r| *r) {
                        say(
                            "团购成团并到货，顾客凭取货码到店自提 (group-buy reached and fulfilled)",
                        );
                    }
                }
            }
        }
        // promotions: S002's markdown and a coupon campaign (tick 1); the
        // coupon at S001's till (tick 4) and on an online order (tick 6); a
        // marked-down sale at S002 (tick 7)
        if tick == 1 {
            match crate::promo_day::start(&http, &chain.hub_url, run).await {
                Ok(p) => {
                    say(
                        "S002 晚间鲜食蔬菜 7 折；全链优惠券“满20减3”，S001 收银台可用，两位顾客已领券 (markdown and coupons)",
                    );
                    promo = Some(p);
                }
                Err(e) => say(&format!("优惠活动未开始 (promotions not started): {e}")),
            }
        }
        if let Some(p) = &mut promo {
            if tick >= 4 && !p.counter_done {
                let t = &tills[0];
                match post(
                    &http,
                    &t.url,
                    &t.token,
                    "/api/v1/sales",
                    Some(format!("day-{run:08x}-coupon-sale")),
                    json!({"lines": [{"sku": "P00001", "qty": 2}], "coupon": p.counter_code,
                           "payments": [{"method": "cash", "amount_fen": 5_000}]}),
                )
                .await
                {
                    Ok((201, v)) => {
                        p.counter_done = true;
                        say(&format!(
                            "{} 收银用券：满20减3，实收 ¥{:.2} (counter sale with a coupon)",
                            t.id,
                            v["total_fen"].as_i64().unwrap_or(0) as f64 / 100.0
                        ))
                    }
                    // the campaign has not reached the store yet: next tick
                    Ok((422, v)) if v["error"]["code"] == "coupon_not_here" => {}
                    Ok((s, v)) => {
                        p.counter_done = true;
                        say(&format!("{} 用券未成 {s}: {v}", t.id))
                    }
                    Err(e) => say(&format!("{} 用券未成: {e}", t.id)),
                }
            }
            if tick == 6 {
                let (phone, token, claim) = &p.online;
                let placed = post(&http, &chain.hub_url, token, "/api/v1/orders", Some(format!("day-{run:08x}-coupon-order")),
                    json!({"channel": "miniapp", "customer": {"phone": phone}, "fulfilment": "pickup",
                           "store_id": "S001", "lines": [{"sku": "P00001", "qty": 2}], "coupon": claim})).await;
                match placed {
                    Ok((201 | 200, v)) => match pay(&http, &chain.hub_url, token, v).await {
                        Ok(v) => {
                            say(&format!(
                                "顾客 {phone} 线上用券下单：优惠 ¥{:.2}，实付 ¥{:.2} (online order with a coupon)",
                                v["discount_fen"].as_i64().unwrap_or(0) as f64 / 100.0,
                                v["total_fen"].as_i64().unwrap_or(0) as f64 / 100.0
                            ));
                            if let Some(code) = v["pickup_code"].as_str() {
                                pickups.push_back((0, code.to_owned()));
                            }
                        }
                        Err(e) => say(&format!("用券订单未付 (not paid): {e}")),
                    },
                    Ok((s, v)) => say(&format!("线上用券未成 {s}: {v}")),
                    Err(e) => say(&format!("线上用券未成: {e}")),
                }
            }
            if tick >= 7 && !p.markdown_done && tills.len() > 1 {
                let t = &tills[1];
                match post(
                    &http,
                    &t.url,
                    &t.token,
                    "/api/v1/sales",
                    Some(format!("day-{run:08x}-markdown-sale")),
                    json!({"lines": [{"sku": "P00003", "qty": 1000}],
                           "payments": [{"method": "cash", "amount_fen": 5_000}]}),
                )
                .await
                {
                    Ok((201, v)) => {
                        p.markdown_done = true;
                        let marked = v["pricing"]["applied"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|r| r["rule"]["kind"] == "markdown"));
                        say(&format!(
                            "{} 晚间鲜食：土豆 1 kg ¥{:.2}{} (marked-down sale)",
                            t.id,
                            v["total_fen"].as_i64().unwrap_or(0) as f64 / 100.0,
                            if marked {
                                "（7 折）"
                            } else {
                                "（折扣还没同步到本店）"
                            }
                        ))
                    }
                    Ok((s, v)) => {
                        p.markdown_done = true;
                        say(&format!("{} 收银未成 {s}: {v}", t.id))
                    }
                    Err(e) => say(&format!("{} 收银未成: {e}", t.id)),
                }
            }
        }
        // S001's live session: on air from tick 2 to tick 14, a viewer's
        // order every tick, the figures every third
        if tick == 2 {
            match crate::live_day::start(&http, &chain.hub_url, &tills[0].id, &goods).await {
                Ok(l) => {
                    say(&format!(
                        "{} 店长开播，直播商品 88 折 (live session {} on air)",
                        tills[0].id, l.session_id
                    ));
                    live = Some(l);
                }
                Err(e) => say(&format!("开播未成 (live session not started): {e}")),
            }
        }
        if let Some(l) = &live {
            if (3..14).contains(&tick) {
                let phone = format!("1370000{:04}", tick % 10_000);
                let key = format!("day-{run:08x}-live-{tick}");
                match l
                    .order(
                        &http,
                        &chain.hub_url,
                        &tills[0].id,
                        &phone,
                        tick as usize,
                        &key,
                    )
                    .await
                {
                    Ok(price) => say(&format!(
                        "直播间顾客 {phone} 下单，直播价 ¥{:.2} (live order)",
                        price as f64 / 100.0
                    )),
                    Err(e) => say(&format!("直播下单未成 (live order refused): {e}")),
                }
            }
            if (tick.is_multiple_of(3) || tick == 14)
                && let Ok(f) = l.figures(&http, &chain.hub_url).await
            {
                say(&format!(
                    "直播数据：{} 单，{} 位买家，成交 ¥{:.2} (live figures)",
                    f["orders"],
                    f["buyers"],
                    f["gmv_fen"].as_i64().unwrap_or(0) as f64 / 100.0
                ));
            }
            if tick == 14 {
                if l.end(&http, &chain.hub_url).await.is_ok() {
                    say(&format!("{} 直播结束 (live session ended)", tills[0].id));
                }
                live = None;
            }
        }
        // a counter sale
        let till = &tills[(tick as usize) % tills.len()];
        let n = rng.gen_range(1..=3);
        let picked: Vec<String> = goods.choose_multiple(&mut rng, n).cloned().collect();
        let lines: Vec<Value> = picked
            .iter()
            .map(|sku| json!({"sku": sku, "qty": rng.gen_range(1..=2)}))
            .collect();
        let r = post(
            &http,
            &till.url,
            &till.token,
            "/api/v1/sales",
            Some(format!("day-{run:08x}-sale-{tick}")),
            json!({"lines": lines, "payments": [{"method": "cash", "amount_fen": 50_000}]}),
        )
        .await;
        match r {
            Ok((201, v)) => say(&format!(
                "{} 收银 ¥{:.2} 小票 {} (counter sale)",
                till.id,
                v["total_fen"].as_i64().unwrap_or(0) as f64 / 100.0,
                v["ticket_no"].as_str().unwrap_or("?")
            )),
            Ok((s, v)) => say(&format!("{} 收银未成 {s}: {v}", till.id)),
            Err(e) => say(&format!("{} 收银未成: {e}", till.id)),
        }
        // an online order for pickup at one of the stores that are linked
        if tick % 4 == 1 {
            let at = (tick as usize / 4) % (tills.len() - 1);
            let phone = format!("1380000{:04}", tick % 10_000);
            let key = format!("day-{run:08x}-order-{tick}");
            match online_order(
                &http,
                &chain.hub_url,
                &phone,
                &tills[at].id,
                &goods,
                &mut rng,
                &key,
            )
            .await
            {
                Ok(code) => {
                    say(&format!(
                        "顾客 {phone} 线上下单，{} 自提 (online order for pickup)",
                        tills[at].id
                    ));
                    pickups.push_back((at, code));
                }
                Err(e) => say(&format!("线上下单未成 (online order refused): {e}")),
            }
        }
        // the oldest waiting pickup is collected once the store has it
        if let Some((at, code)) = pickups.front().cloned() {
            let t = &tills[at];
            match post(
                &http,
                &t.url,
                &t.token,
                "/api/v1/pickups/redeem",
                None,
                json!({"code": code}),
            )
            .await
            {
                Ok((200, v)) => {
                    say(&format!(
                        "{} 自提核销 {} (handed over)",
                        t.id,
                        v["order_id"].as_str().unwrap_or("?")
                    ));
                    pickups.pop_front();
                }
                Ok((409 | 410, _)) => {
                    pickups.pop_front();
                }
                _ => {} // not at the store yet
            }
        }
        // one delivery, dispatched once the store has it (no rider: the courier)
        if tick == 5 {
            match delivery_order(
                &http,
                &chain.hub_url,
                &goods,
                &format!("day-{run:08x}-delivery"),
            )
            .await
            {
                Ok(id) => {
                    say("顾客下单配送，S001 发货 (a delivery order)");
                    delivery = Some(id);
                }
                Err(e) => say(&format!("配送下单未成: {e}")),
            }
        }
        if let Some(id) = delivery.clone() {
            let t = &tills[0];
            if let Ok((200, v)) = post(
                &http,
                &t.url,
                &t.token,
                &format!("/api/v1/online-orders/{id}/dispatch"),
                None,
                json!({}),
            )
            .await
            {
                say(&format!(
                    "{} 配送交给 {} (out for delivery)",
                    t.id,
                    v["fulfilment_record"]["courier"].as_str().unwrap_or("骑手")
                ));
                riding = v["fulfilment_record"]["courier_ref"]
                    .as_str()
                    .map(str::to_owned);
                delivery = None;
            }
        } else if let Some(r) = riding.clone()
            && tick.is_multiple_of(2)
        {
            // the courier's rider reports a step (picked up, then delivered)
            // from their app, as the courier simulator's control endpoint
            // stands for; the store sees it at its next courier poll
            match courier_step(&http, &chain.courier_url, chain.courier_key(), &r).await {
                Ok(state) if state == "delivered" => {
                    say("骑手已送达 (delivered)");
                    riding = None;
                }
                Ok(state) if state == "picked_up" => say("骑手已取货 (picked up)"),
                Ok(_) => {}
                Err(e) => {
                    say(&format!("配送未能更新 (courier step failed): {e}"));
                    riding = None;
                }
            }
        }
        // goods past their date written off at S001 (the Stock screen's 报损)
        if tick >= 10 && !wasted {
            let t = &tills[0];
            match post(
                &http,
                &t.url,
                &t.token,
                "/api/v1/stock/waste",
                Some(format!("day-{run:08x}-waste")),
                json!({"lines": [{"sku": goods[goods.len() - 1], "qty": 2}], "reason": "expired"}),
            )
            .await
            {
                Ok((200 | 201, _)) => say(&format!("{} 报损：过期商品 2 件 (write-off)", t.id)),
                Ok((s, v)) => say(&format!("{} 报损未成 {s}: {v}", t.id)),
                Err(e) => say(&format!("{} 报损未成: {e}", t.id)),
            }
            wasted = true;
        }
    }
}

/// One step of a delivery at the courier (the rider's report); its state
/// after it.
async fn courier_step(
    http: &reqwest::Client,
    courier: &str,
    key: &str,
    courier_ref: &str,
) -> anyhow::Result<String> {
    let (s, v) = post(
        http,
        courier,
        key,
        &format!("/v1/deliveries/{courier_ref}/advance"),
        None,
        json!({}),
    )
    .await?;
    if s == 200 {
        return Ok(v["state"].as_str().unwrap_or_default().to_owned());
    }
    // the simulator's own clock may have moved it on already
    let r = http
        .get(format!("{courier}/v1/deliveries/{courier_ref}"))
        .bearer_auth(key)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{s}: {v}");
    let now: Value = r.json().await?;
    Ok(now["state"].as_str().unwrap_or_default().to_owned())
}

fn say(line: &str) {
    println!("[模拟] {line}");
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    key: Option<String>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Pays a just-placed order the way a phone does: the prepay from the hub,
/// the customer's "confirm" at the payment simulator's cashier, then the
/// order as the hub shows it once the notification marked it paid. An
/// order that needs no payment is returned as it is.
pub(crate) async fn pay(
    http: &reqwest::Client,
    hub: &str,
    token: &str,
    order: Value,
) -> anyhow::Result<Value> {
    if order["payment"].is_null() {
        return Ok(order);
    }
    let id = order["order_id"].as_str().unwrap_or_default().to_owned();
    let (s, prepay) = post(
        http,
        hub,
        token,
        &format!("/api/v1/orders/{id}/pay"),
        None,
        json!({}),
    )
    .await?;
    anyhow::ensure!(s == 200, "pay {s}: {prepay}");
    let cashier = prepay["cashier_url"].as_str().unwrap_or_default();
    let r = http.post(format!("{cashier}/confirm")).send().await?;
    anyhow::ensure!(
        r.status().is_success(),
        "confirm at the cashier: {}",
        r.status()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v: Value = http
            .get(format!("{hub}/api/v1/orders/{id}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if v["payment"]["state"] == "paid" {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "order {id} not paid in time: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Places a pickup order and pays it; returns its pickup code.
async fn online_order(
    http: &reqwest::Client,
    hub: &str,
    phone: &str,
    store: &str,
    goods: &[String],
    rng: &mut StdRng,
    key: &str,
) -> anyhow::Result<String> {
    let token = customer(http, hub, phone).await?;
    let sku = goods.choose(rng).cloned().unwrap_or_default();
    let (s, v) = post(
        http,
        hub,
        &token,
        "/api/v1/orders",
        Some(key.to_owned()),
        json!({"channel": "miniapp", "customer": {"phone": phone}, "fulfilment": "pickup",
               "store_id": store, "lines": [{"sku": sku, "qty": 1}]}),
    )
    .await?;
    anyhow::ensure!(s == 201 || s == 200, "{s}: {v}");
    let v = pay(http, hub, &token, v).await?;
    v["pickup_code"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no pickup code: {v}"))
}

/// Places a delivery order near S001; returns its id.
async fn delivery_order(
    http: &reqwest::Client,
    hub: &str,
    goods: &[String],
    key: &str,
) -> anyhow::Result<String> {
    let phone = "13800009999";
    let token = customer(http, hub, phone).await?;
    let (s, v) = post(
        http,
        hub,
        &token,
        "/api/v1/orders",
        Some(key.to_owned()),
        json!({"channel": "miniapp", "customer": {"phone": phone}, "fulfilment": "delivery",
               "location": {"lat": NEAR_S001.0, "lon": NEAR_S001.1},
               "lines": [{"sku": goods[0], "qty": 1}]}),
    )
    .await?;
    anyhow::ensure!(s == 201 || s == 200, "{s}: {v}");
    let v = pay(http, hub, &token, v).await?;
    v["order_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no order id: {v}"))
}
