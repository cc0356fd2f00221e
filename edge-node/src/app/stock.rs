//! Stock: receipts, waste, cycle counts, levels and history.
//!
//! Every change goes through `apply_movement`, which appends to the
//! movement log and adjusts the level in the same statement batch, so the
//! level is always the sum of the log. A counter sale may drive on-hand
//! negative (the goods are in the customer's hand); that is reported, not
//! refused.

use chrono::{DateTime, Utc};
use linli_shared::stock::{MovementKind, WasteReason};
use linli_shared::{Qty, Unit};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use linli_shared::docs::ledger::MovementFact;

use super::books::level;
use super::idempotency::{self, IdempotencyKey};
use super::replication::{LedgerFact, Publish};
use super::{Actor, App, AppError, invalid, parse_ts, ts};
use crate::store::StoreError;

/// One movement about to be written.
pub(crate) struct NewMovement<'a> {
    pub sku: &'a str,
    pub kind: MovementKind,
    /// Signed change of on-hand.
    pub delta: i64,
    pub reason: Option<&'a str>,
    pub ref_id: Option<&'a str>,
    pub staff: &'a str,
    pub at: DateTime<Utc>,
}

/// Appends a movement and updates the level; returns the new on-hand.
pub(crate) fn apply_movement(c: &Connection, m: &NewMovement<'_>) -> Result<i64, AppError> {
    insert_movement(c, m, &linli_sync::ids::ulid().to_string())
}

/// [`apply_movement`], also recording the movement in today's ledger.
pub(crate) fn apply_and_publish(
    c: &Connection,
    p: &mut Publish<'_>,
    m: &NewMovement<'_>,
) -> Result<i64, AppError> {
    let id = linli_sync::ids::ulid().to_string();
    let on_hand = insert_movement(c, m, &id)?;
    let fact = MovementFact {
        movement_id: id,
        sku: m.sku.to_owned(),
        kind: m.kind.as_str().to_owned(),
        delta: m.delta,
        reason: m.reason.unwrap_or_default().to_owned(),
        ref_id: m.ref_id.unwrap_or_default().to_owned(),
        staff: m.staff.to_owned(),
        at: ts(m.at),
    };
    p.fact(LedgerFact::Movement(fact));
    Ok(on_hand)
}

fn insert_movement(c: &Connection, m: &NewMovement<'_>, id: &str) -> Result<i64, AppError> {
    c.prepare_cached(
        "INSERT INTO movements(movement_id, sku, kind, delta, reason, ref_id, staff, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        m.sku,
        m.kind.as_str(),
        m.delta,
        m.reason,
        m.ref_id,
        m.staff,
        ts(m.at)
    ])?;
    let on_hand = c
        .prepare_cached(
            "INSERT INTO stock(sku, on_hand) VALUES (?1, ?2)
             ON CONFLICT(sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand
             RETURNING on_hand",
        )?
        .query_row(params![m.sku, m.delta], |r| r.get(0))?;
    Ok(on_hand)
}

/// Changes the reserved quantity of a SKU (positive to hold, negative to release).
pub(crate) fn adjust_reserved(c: &Connection, sku: &str, delta: i64) -> Result<(), AppError> {
    c.prepare_cached(
        "INSERT INTO stock(sku, on_hand, reserved) VALUES (?1, 0, max(?2, 0))
         ON CONFLICT(sku) DO UPDATE SET reserved = max(reserved + ?2, 0)",
    )?
    .execute(params![sku, delta])?;
    Ok(())
}

impl App {
    /// Runs the stock-rights step for every SKU with a level: the store
    /// lends the hub its share (or recalls, or records an overdraft). Done
    /// when the link to the hub starts; afterwards every level change does
    /// it for its own SKUs.
    pub async fn rebalance_rights(&self) -> Result<usize, AppError> {
        self.write_published(self.stamp(), |c, p| {
            let skus: Vec<String> = c
                .prepare("SELECT sku FROM stock ORDER BY sku")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            p.levels(skus.iter().map(String::as_str));
            Ok(skus.len())
        })
        .await
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockLineRequest {
    pub sku: String,
    /// Units for `each` products, grams for `kg` products.
    pub qty: i64,
}

/// Goods received.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub lines: Vec<StockLineRequest>,
    /// Delivery note or supplier reference.
    #[serde(default)]
    pub note: Option<String>,
}

/// Goods written off.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WasteRequest {
    pub lines: Vec<StockLineRequest>,
    pub reason: WasteReason,
    #[serde(default)]
    pub note: Option<String>,
}

/// A cycle count: what is physically on the shelf now.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    pub sku: String,
    /// Counted quantity (units or grams); zero is a valid count.
    pub counted: i64,
}

/// A SKU's level.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockLevelView {
    pub sku: String,
    pub name: String,
    pub unit: Unit,
    /// Physically in the store; negative when more was sold than booked in.
    pub on_hand: i64,
    /// Held for open pickup orders.
    pub reserved: i64,
    /// Units kept for the hub's online customers (rights lent to the hub
    /// plus online orders not handed over yet).
    pub kept_for_hub: i64,
    /// What new pickup orders may still reserve.
    pub available: i64,
    pub negative: bool,
    /// On hand zero or more but at or below [`low_stock_threshold`]: time to
    /// reorder.
    pub low: bool,
}

/// Where stock counts as low: 5 units, or 2 kg (2000 g) of a per-kg
/// product. One threshold for every product: the catalog has no reorder
/// points yet.
pub fn low_stock_threshold(unit: Unit) -> i64 {
    match unit {
        Unit::Kg => 2000,
        Unit::Each => 5,
    }
}

/// The result of a stock write: one entry per line.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockChange {
    pub kind: MovementKind,
    pub levels: Vec<MovedLevel>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MovedLevel {
    pub sku: String,
    pub delta: i64,
    pub on_hand: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MovementView {
    pub movement_id: String,
    pub sku: String,
    pub kind: MovementKind,
    pub delta: i64,
    pub reason: Option<String>,
    pub ref_id: Option<String>,
    pub staff: String,
    pub at: DateTime<Utc>,
}

const MAX_STOCK_LINES: usize = 500;

/// Validated lines of one stock write, with what identifies the request.
struct MovementBatch {
    scope: &'static str,
    fingerprint: String,
    kind: MovementKind,
    reason: Option<String>,
    lines: Vec<(String, i64)>,
}

impl App {
    fn validate_stock_lines(
        &self,
        lines: &[StockLineRequest],
    ) -> Result<Vec<(String, i64)>, AppError> {
        if lines.is_empty() {
            return Err(invalid("lines", "at least one line is needed"));
        }
        if lines.len() > MAX_STOCK_LINES {
            return Err(invalid("lines", format!("at most {MAX_STOCK_LINES} lines")));
        }
        let cat = self.catalog();
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let p = cat
                    .by_sku(&l.sku)
                    .ok_or_else(|| AppError::UnknownSku(l.sku.clone()))?;
                let q = Qty::for_movement(l.qty, p.unit).map_err(|source| {
                    AppError::InvalidQuantity {
                        field: format!("lines[{i}].qty"),
                        source,
                    }
                })?;
                Ok((l.sku.clone(), q.get()))
            })
            .collect()
    }

    async fn write_movements(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        batch: MovementBatch,
    ) -> Result<StockChange, AppError> {
        let MovementBatch {
            scope,
            fingerprint,
            kind,
            reason,
            lines,
        } = batch;
        let stamp = self.stamp();
        let now = stamp.at();
        let staff = actor.name.clone();
        let change = self
            .write_published(stamp, move |c, p| {
                if let Some(k) = &key
                    && let Some(prev) = idempotency::replay(c, &staff, k, scope, &fingerprint)?
                {
                    return Ok(prev);
                }
                let mut levels = Vec::with_capacity(lines.len());
                for (sku, qty) in &lines {
                    let delta = kind.sign() * qty;
                    let on_hand = apply_and_publish(
                        c,
                        p,
                        &NewMovement {
                            sku,
                            kind,
                            delta,
                            reason: reason.as_deref(),
                            ref_id: None,
                            staff: &staff,
                            at: now,
                        },
                    )?;
                    levels.push(MovedLevel {
                        sku: sku.clone(),
                        delta,
                        on_hand,
                    });
                }
                let change = StockChange { kind, levels };
                if let Some(k) = &key {
                    idempotency::record(c, &staff, k, scope, &fingerprint, &change, now)?;
                }
                p.levels(lines.iter().map(|(s, _)| s.as_str()));
                Ok(change)
            })
            .await?;
        Ok(change)
    }

    /// Books goods in. Any staff member may receive goods.
    pub async fn receive_stock(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        req: ReceiptRequest,
    ) -> Result<StockChange, AppError> {
        let lines = self.validate_stock_lines(&req.lines)?;
        let fp = idempotency::fingerprint("receipt", &req);
        let note = req.note.map(|n| n.chars().take(200).collect());
        self.write_movements(
            actor,
            key,
            MovementBatch {
                scope: "receipt",
                fingerprint: fp,
                kind: MovementKind::Receipt,
                reason: note,
                lines,
            },
        )
        .await
    }

    /// Writes goods off with a reason. Any staff member may record waste: it
    /// is a physical fact at closing time, and the record says who.
    pub async fn record_waste(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        req: WasteRequest,
    ) -> Result<StockChange, AppError> {
        let lines = self.validate_stock_lines(&req.lines)?;
        let fp = idempotency::fingerprint("waste", &req);
        let reason = match &req.note {
            Some(n) => format!(
                "{}: {}",
                req.reason.as_str(),
                n.chars().take(200).collect::<String>()
            ),
            None => req.reason.as_str().to_owned(),
        };
        self.write_movements(
            actor,
            key,
            MovementBatch {
                scope: "waste",
                fingerprint: fp,
                kind: MovementKind::Waste,
                reason: Some(reason),
                lines,
            },
        )
        .await
    }

    /// Sets a SKU's on-hand to the counted quantity and records the
    /// difference. A correction, so it needs a manager.
    pub async fn cycle_count(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        req: CountRequest,
    ) -> Result<StockChange, AppError> {
        actor.require_manager("a cycle count")?;
        let p = self
            .catalog()
            .by_sku(&req.sku)
            .cloned()
            .ok_or_else(|| AppError::UnknownSku(req.sku.clone()))?;
        if req.counted < 0 || req.counted > p.unit.max_movement_qty() {
            return Err(invalid(
                "counted",
                format!("must be between 0 and {}", p.unit.max_movement_qty()),
            ));
        }
        let fp = idempotency::fingerprint("count", &req);
        let stamp = self.stamp();
        let now = stamp.at();
        let staff = actor.name.clone();
        let change = self
            .write_published(stamp, move |c, p| {
                if let Some(k) = &key
                    && let Some(prev) = idempotency::replay(c, &staff, k, "count", &fp)?
                {
                    return Ok(prev);
                }
                let (on_hand, _) = level(c, &req.sku)?;
                let delta = req.counted - on_hand;
                let after = apply_and_publish(
                    c,
                    p,
                    &NewMovement {
                        sku: &req.sku,
                        kind: MovementKind::Count,
                        delta,
                        reason: Some(&format!("counted {} (books said {on_hand})", req.counted)),
                        ref_id: None,
                        staff: &staff,
                        at: now,
                    },
                )?;
                let change = StockChange {
                    kind: MovementKind::Count,
                    levels: vec![MovedLevel {
                        sku: req.sku.clone(),
                        delta,
                        on_hand: after,
                    }],
                };
                if let Some(k) = &key {
                    idempotency::record(c, &staff, k, "count", &fp, &change, now)?;
                }
                p.levels([req.sku.as_str()]);
                Ok(change)
            })
            .await?;
        Ok(change)
    }

    /// The level of one SKU.
    pub async fn stock_level(&self, sku: &str) -> Result<StockLevelView, AppError> {
        let p = self
            .catalog()
            .by_sku(sku)
            .cloned()
            .ok_or_else(|| AppError::UnknownSku(sku.to_owned()))?;
        let s = sku.to_owned();
        let (on_hand, reserved, kept) = self
            .store
            .read(move |c| {
                let (on_hand, reserved) = level(c, &s)?;
                Ok::<_, AppError>((on_hand, reserved, super::rights::kept_for_hub(c, &s)?))
            })
            .await?;
        Ok(StockLevelView {
            sku: p.sku.to_string(),
            name: p.name.clone(),
            unit: p.unit,
            on_hand,
            reserved,
            kept_for_hub: kept,
            available: on_hand - reserved - kept,
            negative: on_hand < 0,
            low: on_hand >= 0 && on_hand <= low_stock_threshold(p.unit),
        })
    }

    /// Levels of every SKU that has stock history, optionally only negative ones.
    pub async fn stock_levels(&self, only_negative: bool) -> Result<Vec<StockLevelView>, AppError> {
        let cat = self.catalog();
        let rows: Vec<(String, i64, i64, i64)> = self
            .store
            .read(move |c| {
                let sql = if only_negative {
                    "SELECT s.sku, s.on_hand, s.reserved, max(coalesce(r.lent - r.overdraft - r.delivered - h.returned, r.lent - r.overdraft - r.delivered, 0), 0)
                     FROM stock s LEFT JOIN rights r ON r.sku = s.sku LEFT JOIN hub_rights h ON h.sku = s.sku
                     WHERE s.on_hand < 0 ORDER BY s.sku"
                } else {
                    "SELECT s.sku, s.on_hand, s.reserved, max(coalesce(r.lent - r.overdraft - r.delivered - h.returned, r.lent - r.overdraft - r.delivered, 0), 0)
                     FROM stock s LEFT JOIN rights r ON r.sku = s.sku LEFT JOIN hub_rights h ON h.sku = s.sku
                     ORDER BY s.sku"
                };
                let mut stmt = c.prepare(sql)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, StoreError>(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(sku, on_hand, reserved, kept)| {
                let p = cat.by_sku(&sku)?;
                Some(StockLevelView {
                    sku,
                    name: p.name.clone(),
                    unit: p.unit,
                    on_hand,
                    reserved,
                    kept_for_hub: kept,
                    available: on_hand - reserved - kept,
                    negative: on_hand < 0,
                    low: on_hand >= 0 && on_hand <= low_stock_threshold(p.unit),
                })
            })
            .collect())
    }

    /// A SKU's movements, newest first.
    pub async fn movements(&self, sku: &str, limit: u32) -> Result<Vec<MovementView>, AppError> {
        if self.catalog().by_sku(sku).is_none() {
            return Err(AppError::UnknownSku(sku.to_owned()));
        }
        let s = sku.to_owned();
        let limit = limit.clamp(1, 1000);
        let rows = self
            .store
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT movement_id, sku, kind, delta, reason, ref_id, staff, at
                     FROM movements WHERE sku = ?1 ORDER BY seq DESC LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![s, limit], |r| {
                        let kind: String = r.get(2)?;
                        let at: String = r.get(7)?;
                        Ok(MovementView {
                            movement_id: r.get(0)?,
                            sku: r.get(1)?,
                            kind: MovementKind::parse(&kind).unwrap_or(MovementKind::Count),
                            delta: r.get(3)?,
                            reason: r.get(4)?,
                            ref_id: r.get(5)?,
                            staff: r.get(6)?,
                            at: parse_ts(&at),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, StoreError>(rows)
            })
            .await?;
        Ok(rows)
    }
}
