//! Online orders in a run: customers order pickups at the hub, which sells
//! only within the stock rights each store lent it (DESIGN.md §5); the
//! stores hand them over by code or by the signed QR (offline too), the
//! hub cancels some, goods arrive. The counter keeps selling what is on its
//! shelf, rights or not, so outages make overdrafts the hub must settle.
//!
//! Checked: a shelf never goes below zero; and once the chain is idle,
//! every online unit still open is on its store's shelf (**no oversell
//! beyond rights**), every hand-over a store answered is handed over at the
//! hub too (or flagged as a conflict), and hub and store agree on every
//! order's status.

use linli_edge::app::stock::{ReceiptRequest, StockLineRequest};
use linli_hub::app::orders::{CustomerRef, LineRequest, PlaceOrder};
use linli_hub::auth::Caller;
use linli_hub::error::HubError;
use linli_hub::settings::StockScheme;
use linli_shared::order::{Channel, Fulfilment, OrderStatus};

use super::*;

/// An order the hub accepted.
pub(super) struct Placed {
    order_id: String,
    store: usize,
    lines: Vec<(String, i64)>,
    code: Option<String>,
    qr: Option<String>,
    cancelled: bool,
    handed_over: bool,
}

fn open(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Picked | OrderStatus::Ready
    )
}

pub(super) fn staff() -> Caller {
    Caller::Staff(admin())
}

fn manager() -> Actor {
    Actor {
        name: "sim-manager".into(),
        role: Role::Manager,
    }
}

impl World {
    /// A customer orders a pickup at store `i`.
    pub(super) async fn online_order(&mut self, i: usize) -> anyhow::Result<()> {
        let n = self.rng.gen_range(1..=2);
        let lines: Vec<LineRequest> = (0..n)
            .map(|_| {
                let (sku, kg) = self.skus[self.rng.gen_range(0..self.skus.len())].clone();
                let qty = match kg {
                    true => self.rng.gen_range(200..=1_000),
                    false => self.rng.gen_range(1..=4),
                };
                LineRequest { sku, qty }
            })
            .collect();
        let phone = format!("139{:08}", self.rng.gen_range(0..500));
        let coupon = self.online_coupon(&phone).await?;
        let store_id = self.stores[i].id.clone();
        let req = PlaceOrder {
            channel: Channel::Miniapp,
            customer: CustomerRef {
                phone: Some(phone),
                openid: None,
            },
            fulfilment: Fulfilment::Pickup,
            store_id: Some(store_id.clone()),
            location: None,
            lines,
            live_session_id: None,
            delivery_slot: None,
            address: None,
            coupon: coupon.clone(),
        };
        self.report.online.next_key += 1;
        let key = format!("order-{}", self.report.online.next_key);
        let answer = self.hub.place_order(&staff(), key, req).await;
        if let (Some(_), Err(_), Some(cp)) = (&coupon, &answer, self.coupons.as_mut()) {
            cp.refused += 1;
        }
        let what = match answer {
            Ok((v, _)) => {
                if let Some(claim) = &coupon {
                    self.ordered_with(&v.order_id, claim);
                }
                self.report.online.placed += 1;
                for l in &v.lines {
                    self.report
                        .online
                        .units_placed
                        .add(&self.skus, &l.sku, l.qty);
                }
                let what = format!("hub accepted {} at {store_id}", v.order_id);
                self.placed.push(Placed {
                    lines: v.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect(),
                    order_id: v.order_id,
                    store: i,
                    code: v.pickup_code,
                    qr: v.pickup_qr,
                    cancelled: false,
                    handed_over: false,
                });
                what
            }
            Err(HubError::Unserved(u)) => {
                self.report.online.refused += 1;
                for s in &u.shortages {
                    let short = s.requested - s.available.max(0);
                    self.report
                        .online
                        .units_refused
                        .add(&self.skus, &s.sku, short);
                }
                format!("hub refused an order at {store_id}: {u:?}")
            }
            Err(e) => {
                self.report.online.refused += 1;
                format!("hub refused an order at {store_id}: {e}")
            }
        };
        self.note(what);
        self.pump().await
    }

    /// A customer collects an order at its store, by the short code or the
    /// signed QR, if the shelf has every line.
    pub(super) async fn hand_over(&mut self, i: usize) -> anyhow::Result<()> {
        let waiting: Vec<usize> = (0..self.placed.len())
            .filter(|n| self.placed[*n].store == i && !self.placed[*n].handed_over)
            .collect();
        if waiting.is_empty() {
            return self.online_order(i).await;
        }
        let n = waiting[self.rng.gen_range(0..waiting.len())];
        let by_qr = self.rng.gen_bool(0.5);
        let p = &self.placed[n];
        let Some(code) = (if by_qr { &p.qr } else { &p.code }).clone() else {
            return Ok(());
        };
        let s = &self.stores[i];
        let shelf = self
            .audit
            .store_levels(&linli_edge::config::database_path(&s.dir))?;
        if let Some((sku, qty)) = p
            .lines
            .iter()
            .find(|(sku, qty)| shelf.get(sku).copied().unwrap_or(0) < *qty)
        {
            let what = format!(
                "{}: {qty} of {sku} for {} not on the shelf",
                s.id, p.order_id
            );
            self.note(what);
            return Ok(());
        }
        let answer = s.app.redeem_any(&cashier(), &code).await;
        let what = match answer {
            Ok(_) => {
                self.placed[n].handed_over = true;
                self.report.online.handed_over += 1;
                format!(
                    "{} handed over {} by {}",
                    s.id,
                    self.placed[n].order_id,
                    if by_qr { "QR" } else { "code" }
                )
            }
            Err(e) => format!(
                "{} did not hand over {}: {e}",
                s.id, self.placed[n].order_id
            ),
        };
        self.note(what);
        self.pump().await
    }

    /// The hub cancels an order (the customer changed their mind).
    pub(super) async fn cancel_online(&mut self) -> anyhow::Result<()> {
        let live: Vec<usize> = (0..self.placed.len())
            .filter(|n| !self.placed[*n].cancelled && !self.placed[*n].handed_over)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let n = live[self.rng.gen_range(0..live.len())];
        let id = self.placed[n].order_id.clone();
        let what = match self.hub.cancel_order(&staff(), &id).await {
            Ok(_) => {
                self.placed[n].cancelled = true;
                self.report.online.cancelled += 1;
                format!("hub cancelled {id}")
            }
            Err(e) => format!("hub did not cancel {id}: {e}"),
        };
        self.note(what);
        self.pump().await
    }

    /// Goods arrive at store `i`.
    pub(super) async fn goods_in(&mut self, i: usize) -> anyhow::Result<()> {
        let (sku, kg) = self.skus[self.rng.gen_range(0..self.skus.len())].clone();
        let qty = match kg {
            true => self.rng.gen_range(2_000..=10_000),
            false => self.rng.gen_range(5..=20),
        };
        let s = &self.stores[i];
        let r = s
            .app
            .receive_stock(
                &manager(),
                None,
                ReceiptRequest {
                    lines: vec![StockLineRequest {
                        sku: sku.clone(),
                        qty,
                    }],
                    note: None,
                },
            )
            .await;
        let what = match r {
            Ok(_) => format!("{} received {qty} of {sku}", s.id),
            Err(e) => format!("{} could not receive {sku}: {e}", s.id),
        };
        self.note(what);
        self.pump().await
    }

    /// Once idle: nothing open online that is not on its shelf, every
    /// hand-over known at the hub, hub and store agreeing on each order.
    pub(super) async fn check_online_settled(&mut self) -> anyhow::Result<()> {
        let mut open_units: BTreeMap<(usize, String), i64> = BTreeMap::new();
        for p in &self.placed {
            let at_hub = self.hub.order(&staff(), &p.order_id).await?;
            if open(at_hub.status) {
                for l in &at_hub.lines {
                    *open_units.entry((p.store, l.sku.clone())).or_default() += l.qty;
                }
            }
            if at_hub.status == OrderStatus::Cancelled && !p.cancelled {
                self.report.online.released += 1;
                for l in &at_hub.lines {
                    self.report
                        .online
                        .units_released
                        .add(&self.skus, &l.sku, l.qty);
                }
            }
            if p.handed_over && at_hub.status != OrderStatus::HandedOver {
                anyhow::ensure!(
                    at_hub.conflict.is_some(),
                    "{} was handed over at {} but the hub says {:?} with no conflict",
                    p.order_id,
                    self.stores[p.store].id,
                    at_hub.status
                );
            }
            if at_hub.conflict.is_some() {
                self.report.online.conflicts += 1;
            }
            let at_store = self.stores[p.store]
                .app
                .get_online_order(&p.order_id)
                .await?;
            anyhow::ensure!(
                at_store.status == at_hub.status,
                "{}: the hub says {:?}, {} says {:?}",
                p.order_id,
                at_hub.status,
                self.stores[p.store].id,
                at_store.status
            );
        }
        let mut oversold = Units::default();
        for (i, s) in self.stores.iter().enumerate() {
            let levels = self
                .audit
                .store_levels(&linli_edge::config::database_path(&s.dir))?;
            for ((store, sku), units) in open_units.range((i, String::new())..) {
                if *store != i {
                    break;
                }
                let shelf = levels.get(sku).copied().unwrap_or(0);
                anyhow::ensure!(
                    *units <= shelf || self.settings.scheme == StockScheme::Naive,
                    "{}: {units} units of {sku} open online, {shelf} on the shelf (oversold)",
                    s.id
                );
                oversold.add(&self.skus, sku, (*units - shelf).max(0));
            }
        }
        self.report.online.oversold = oversold;
        Ok(())
    }
}

/// What the online side of a run did.
#[derive(Debug, Default, Clone)]
pub struct OnlineReport {
    next_key: u64,
    /// Orders the hub accepted.
    pub placed: usize,
    /// Orders the hub refused (no rights left at that store, say).
    pub refused: usize,
    pub handed_over: usize,
    pub cancelled: usize,
    /// Orders settlement released (an overdraft of the store's counter).
    pub released: usize,
    /// Orders flagged as conflicts (cancelled at the hub, handed over at
    /// the store).
    pub conflicts: usize,
    /// What the accepted orders asked for.
    pub units_placed: Units,
    /// What refused orders asked for beyond what the hub could sell.
    pub units_refused: Units,
    /// What the orders settlement released had asked for.
    pub units_released: Units,
    /// Open online units no shelf covers once the chain is idle: always
    /// none under rights; what a naive counter oversold.
    pub oversold: Units,
}

/// Quantities of `each` products (units) and of `kg` products (grams),
/// kept apart.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    pub each: i64,
    pub grams: i64,
}

impl Units {
    /// Adds `qty` of `sku`, one of the run's `(sku, sold by kg)`.
    fn add(&mut self, skus: &[(String, bool)], sku: &str, qty: i64) {
        match skus.iter().any(|(s, kg)| s == sku && *kg) {
            true => self.grams += qty,
            false => self.each += qty,
        }
    }

    pub fn sum(&mut self, other: &Units) {
        self.each += other.each;
        self.grams += other.grams;
    }
}

impl std::fmt::Display for Units {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} units + {:.1} kg",
            self.each,
            self.grams as f64 / 1000.0
        )
    }
}
