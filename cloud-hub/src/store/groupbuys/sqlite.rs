//! [`GroupBuyRecords`] on SQLite: the group-buy tables on the caller's
//! connection. A campaign's threshold and store ids are JSON text; times
//! are RFC 3339 text. Every statement but the erasure's runs per request
//! or per synced batch, so each is a cached statement.

use chrono::{DateTime, Utc};
use linli_shared::groupbuy::{
    Commitment, CounterCancel, Participant, State, StoreProgress, Threshold,
};
use linli_shared::payment::PaymentState;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{
    CommitmentHolding, CommitmentRecord, DecidedGroupBuy, GroupBuy, GroupBuyRecords,
    NewCounterCommitment, NewGroupBuy, NewOnlineCommitment, PaidCommitment, RunningTotals,
    StoreSum, TotalsChange,
};
use crate::store::StoreError;
use crate::store::json_rows::rows;
use crate::time::{parse_ts, ts};

/// The columns [`group_buy_of_row`] reads.
const ROW_COLUMNS: &str = "group_buy_id, sku, price_fen, threshold, deadline, pickup_date, per_customer_limit, store_ids, grace_minutes, state, reached_at, decided_at, counter_allotment, failure_reason";

/// The columns [`commitment_of_row`] reads.
const COMMITMENT_COLUMNS: &str = "commitment_id, group_buy_id, store_id, qty, amount_fen, at, status, cancel_reason, pickup_code, source, cancelled_at";

fn group_buy_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupBuy> {
    let threshold: String = r.get(3)?;
    let stores: String = r.get(7)?;
    let state: String = r.get(9)?;
    Ok(GroupBuy {
        id: r.get(0)?,
        sku: r.get(1)?,
        price_fen: r.get(2)?,
        threshold: serde_json::from_str(&threshold)
            .unwrap_or(Threshold::Participants { count: u32::MAX }),
        deadline: parse_ts(&r.get::<_, String>(4)?),
        pickup_date: r.get(5)?,
        per_customer_limit: r.get(6)?,
        store_ids: serde_json::from_str(&stores).unwrap_or_default(),
        grace_minutes: r.get(8)?,
        state: State::parse(&state).unwrap_or(State::Open),
        reached_at: r.get(10)?,
        decided_at: r.get(11)?,
        counter_allotment: r.get(12)?,
        failure_reason: r.get(13)?,
    })
}

fn commitment_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CommitmentRecord> {
    Ok(CommitmentRecord {
        commitment_id: r.get(0)?,
        group_buy_id: r.get(1)?,
        store_id: r.get(2)?,
        qty: r.get(3)?,
        amount_fen: r.get(4)?,
        at: r.get(5)?,
        status: r.get(6)?,
        cancel_reason: r.get(7)?,
        pickup_code: r.get(8)?,
        source: r.get(9)?,
        cancelled_at: r.get(10)?,
    })
}

/// The campaigns a query of [`ROW_COLUMNS`] gives, in its order.
fn group_buys(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<GroupBuy>, StoreError> {
    Ok(c.prepare_cached(sql)?
        .query_map(params, group_buy_of_row)?
        .collect::<Result<_, _>>()?)
}

/// Whether a query gives a row.
fn any(c: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<bool, StoreError> {
    Ok(c.prepare_cached(sql)?
        .query_row(params, |_| Ok(()))
        .optional()?
        .is_some())
}

/// The per-store sums a query of `store_id, count, fen` gives.
fn store_sums(c: &Connection, sql: &str, id: &str) -> Result<Vec<StoreSum>, StoreError> {
    Ok(c.prepare_cached(sql)?
        .query_map([id], |r| {
            Ok(StoreSum {
                store_id: r.get(0)?,
                count: r.get(1)?,
                fen: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

impl GroupBuyRecords for Connection {
    fn group_buy(&self, id: &str) -> Result<Option<GroupBuy>, StoreError> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM group_buys WHERE group_buy_id = ?1"
            ))?
            .query_row([id], group_buy_of_row)
            .optional()?)
    }

    fn recent_group_buys(&self, open_only: bool) -> Result<Vec<GroupBuy>, StoreError> {
        group_buys(
            self,
            &format!(
                "SELECT {ROW_COLUMNS} FROM group_buys
                 WHERE (?1 = 0 OR state IN ('open', 'reached'))
                 ORDER BY created_at DESC, rowid DESC LIMIT 100"
            ),
            params![i64::from(open_only)],
        )
    }

    fn open_group_buys(&self) -> Result<Vec<GroupBuy>, StoreError> {
        group_buys(
            self,
            &format!("SELECT {ROW_COLUMNS} FROM group_buys WHERE state = 'open'"),
            params![],
        )
    }

    fn untold_failed_group_buys(&self) -> Result<Vec<GroupBuy>, StoreError> {
        group_buys(
            self,
            &format!(
                "SELECT {ROW_COLUMNS} FROM group_buys WHERE state = 'failed' AND stores_told_at IS NULL"
            ),
            params![],
        )
    }

    fn insert_group_buy(&self, new: &NewGroupBuy<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO group_buys(group_buy_id, sku, price_fen, threshold, deadline, pickup_date, per_customer_limit,
                store_ids, grace_minutes, counter_allotment, state, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open', ?11, ?12)",
        )?
        .execute(params![
            new.id,
            new.sku,
            new.price_fen,
            serde_json::to_string(&new.threshold).unwrap_or_default(),
            ts(new.deadline),
            new.pickup_date,
            new.per_customer_limit,
            serde_json::to_string(new.store_ids).unwrap_or_default(),
            new.grace_minutes,
            new.counter_allotment,
            new.created_by,
            ts(new.created_at)
        ])?;
        Ok(())
    }

    fn mark_reached(&self, id: &str, at: &str) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buys SET state = 'reached', reached_at = ?2 WHERE group_buy_id = ?1 AND state = 'open'",
        )?
        .execute(params![id, at])?;
        Ok(())
    }

    fn mark_failed(&self, id: &str, at: &str, reason: &str) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buys SET state = 'failed', decided_at = ?2, failure_reason = ?3 WHERE group_buy_id = ?1 AND state = 'open'",
        )?
        .execute(params![id, at, reason])?;
        Ok(())
    }

    fn mark_fulfilled_if_collected(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buys SET state = 'fulfilled', decided_at = ?2 WHERE group_buy_id = ?1 AND state = 'reached'
               AND NOT EXISTS (SELECT 1 FROM group_buy_commitments
                               WHERE group_buy_id = ?1 AND status = 'active' AND pickup_order_id IS NULL)",
        )?
        .execute(params![id, ts(now)])?;
        Ok(())
    }

    fn mark_stores_told(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.prepare_cached("UPDATE group_buys SET stores_told_at = ?2 WHERE group_buy_id = ?1")?
            .execute(params![id, ts(now)])?;
        Ok(())
    }

    fn running_totals(&self, id: &str) -> Result<RunningTotals, StoreError> {
        let (participants, qty): (i64, i64) = self
            .prepare_cached("SELECT participants, qty FROM group_buys WHERE group_buy_id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut stmt = self.prepare_cached(
            "SELECT store_id, participants, qty FROM group_buy_progress
             WHERE group_buy_id = ?1 AND participants > 0 ORDER BY store_id",
        )?;
        let per_store = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    StoreProgress {
                        participants: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        qty: r.get(2)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(RunningTotals {
            participants,
            qty,
            per_store,
        })
    }

    fn add_to_totals(&self, id: &str, store: &str, by: TotalsChange) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO group_buy_progress(group_buy_id, store_id, participants, qty) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(group_buy_id, store_id) DO UPDATE SET participants = participants + ?3, qty = qty + ?4",
        )?
        .execute(params![id, store, by.store_participants, by.qty])?;
        self.prepare_cached(
            "UPDATE group_buys SET participants = participants + ?2, qty = qty + ?3 WHERE group_buy_id = ?1",
        )?
        .execute(params![id, by.participants, by.qty])?;
        Ok(())
    }

    fn take_from_totals(&self, id: &str, store: &str, by: TotalsChange) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buy_progress SET participants = participants - ?3, qty = qty - ?4
             WHERE group_buy_id = ?1 AND store_id = ?2",
        )?
        .execute(params![id, store, by.store_participants, by.qty])?;
        self.prepare_cached(
            "UPDATE group_buys SET participants = participants - ?2, qty = qty - ?3 WHERE group_buy_id = ?1",
        )?
        .execute(params![id, by.participants, by.qty])?;
        Ok(())
    }

    fn zero_totals(&self, id: &str) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buys SET participants = 0, qty = 0 WHERE group_buy_id = ?1",
        )?
        .execute([id])?;
        self.prepare_cached(
            "UPDATE group_buy_progress SET participants = 0, qty = 0 WHERE group_buy_id = ?1",
        )?
        .execute([id])?;
        Ok(())
    }

    fn commitments_of(&self, id: &str) -> Result<Vec<Commitment>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT commitment_id, store_id, customer_id, qty, at, status FROM group_buy_commitments WHERE group_buy_id = ?1",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(Commitment {
                    commitment_id: r.get(0)?,
                    store_id: r.get(1)?,
                    customer: r.get(2)?,
                    qty: r.get(3)?,
                    at: parse_ts(&r.get::<_, String>(4)?),
                    cancelled: r.get::<_, String>(5)? != "active",
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn has_counting_commitment(
        &self,
        id: &str,
        customer: &str,
        store: Option<&str>,
    ) -> Result<bool, StoreError> {
        any(
            self,
            "SELECT 1 FROM group_buy_commitments
             WHERE customer_id = ?1 AND group_buy_id = ?2 AND status = 'active' AND (?3 IS NULL OR store_id = ?3)
             LIMIT 1",
            params![customer, id, store],
        )
    }

    fn committed_qty(&self, id: &str, customer: &str) -> Result<i64, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT coalesce(sum(qty), 0) FROM group_buy_commitments
                 WHERE group_buy_id = ?1 AND customer_id = ?2 AND status IN ('active', 'awaiting_payment')",
            )?
            .query_row(params![id, customer], |r| r.get(0))?)
    }

    fn insert_online_commitment(&self, new: &NewOnlineCommitment<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO group_buy_commitments(commitment_id, group_buy_id, store_id, customer_id, qty, amount_fen, at, source, status, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'online', ?8, ?7)",
        )?
        .execute(params![
            new.commitment_id,
            new.group_buy_id,
            new.store_id,
            new.customer_id,
            new.qty,
            new.amount_fen,
            ts(new.at),
            new.status
        ])?;
        Ok(())
    }

    fn insert_counter_commitment(
        &self,
        new: &NewCounterCommitment<'_>,
    ) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(
                "INSERT OR IGNORE INTO group_buy_commitments(commitment_id, group_buy_id, store_id, customer_id, qty, amount_fen, at,
                    source, status, cancel_reason, cancelled_at, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'counter', ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                new.commitment_id,
                new.group_buy_id,
                new.store_id,
                new.customer_id,
                new.qty,
                new.amount_fen,
                ts(new.at),
                if new.cancel_reason.is_some() {
                    "cancelled"
                } else {
                    "active"
                },
                new.cancel_reason,
                new.cancelled_at,
                ts(new.recorded_at)
            ])?)
    }

    fn commitment_exists(&self, commitment_id: &str) -> Result<bool, StoreError> {
        any(
            self,
            "SELECT 1 FROM group_buy_commitments WHERE commitment_id = ?1",
            params![commitment_id],
        )
    }

    fn commitments_of_customer(&self, customer: &str) -> Result<Vec<CommitmentRecord>, StoreError> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {COMMITMENT_COLUMNS} FROM group_buy_commitments WHERE customer_id = ?1 ORDER BY at DESC LIMIT 100"
            ))?
            .query_map([customer], commitment_of_row)?
            .collect::<Result<_, _>>()?)
    }

    fn cancel_commitments_of_failed(&self, id: &str, at: &str) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buy_commitments SET status = 'cancelled', cancel_reason = 'group_buy_failed', cancelled_at = ?2
             WHERE group_buy_id = ?1 AND status IN ('active', 'awaiting_payment')",
        )?
        .execute(params![id, at])?;
        Ok(())
    }

    fn active_participants(
        &self,
        id: &str,
        only: Option<&str>,
    ) -> Result<Vec<(String, Participant)>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT k.store_id, k.commitment_id, coalesce(cu.member_hash, ''), coalesce(cu.masked_phone, ''), k.qty
             FROM group_buy_commitments k LEFT JOIN customers cu ON cu.customer_id = k.customer_id
             WHERE k.group_buy_id = ?1 AND k.status = 'active' AND (?2 IS NULL OR k.store_id = ?2)
             ORDER BY k.store_id, k.at, k.commitment_id",
        )?;
        Ok(stmt
            .query_map(params![id, only], |r| {
                Ok((
                    r.get(0)?,
                    Participant {
                        commitment_id: r.get(1)?,
                        member_hash: r.get(2)?,
                        masked_phone: r.get(3)?,
                        phone: String::new(),
                        qty: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?)
    }

    fn set_pickup_order(
        &self,
        commitment_id: &str,
        store: &str,
        order_id: &str,
        pickup_code: &str,
        pickup_status: &str,
    ) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(
                "UPDATE group_buy_commitments SET pickup_order_id = ?2, pickup_code = ?3, pickup_status = ?4
                 WHERE commitment_id = ?1 AND store_id = ?5",
            )?
            .execute(params![
                commitment_id,
                order_id,
                pickup_code,
                pickup_status,
                store
            ])?)
    }

    fn group_buy_of_commitment(&self, commitment_id: &str) -> Result<String, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT group_buy_id FROM group_buy_commitments WHERE commitment_id = ?1",
            )?
            .query_row([commitment_id], |r| r.get(0))?)
    }

    fn has_counter_commitments(&self, id: &str) -> Result<bool, StoreError> {
        any(
            self,
            "SELECT 1 FROM group_buy_commitments WHERE group_buy_id = ?1 AND source = 'counter' LIMIT 1",
            params![id],
        )
    }

    fn counter_refunds_done(&self, id: &str) -> Result<Vec<StoreSum>, StoreError> {
        store_sums(
            self,
            "SELECT store_id, count(*), coalesce(sum(refund_fen), 0) FROM group_buy_counter_cancels
             WHERE group_buy_id = ?1 AND reason = 'group_buy_failed' GROUP BY store_id",
            id,
        )
    }

    fn counter_refunds_owed(&self, id: &str) -> Result<Vec<StoreSum>, StoreError> {
        store_sums(
            self,
            "SELECT k.store_id, count(*), coalesce(sum(k.amount_fen), 0) FROM group_buy_commitments k
             WHERE k.group_buy_id = ?1 AND k.source = 'counter'
               AND NOT EXISTS (SELECT 1 FROM group_buy_counter_cancels x WHERE x.commitment_id = k.commitment_id)
             GROUP BY k.store_id",
            id,
        )
    }

    fn counter_cancel_recorded(&self, commitment_id: &str) -> Result<bool, StoreError> {
        any(
            self,
            "SELECT 1 FROM group_buy_counter_cancels WHERE commitment_id = ?1",
            params![commitment_id],
        )
    }

    fn commitment_with_owner(
        &self,
        commitment_id: &str,
    ) -> Result<Option<(CommitmentRecord, String)>, StoreError> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {COMMITMENT_COLUMNS}, customer_id FROM group_buy_commitments WHERE commitment_id = ?1"
            ))?
            .query_row([commitment_id], |r| {
                Ok((commitment_of_row(r)?, r.get::<_, String>(11)?))
            })
            .optional()?)
    }

    fn commitment(&self, commitment_id: &str) -> Result<CommitmentRecord, StoreError> {
        Ok(self
            .prepare_cached(&format!(
                "SELECT {COMMITMENT_COLUMNS} FROM group_buy_commitments WHERE commitment_id = ?1"
            ))?
            .query_row([commitment_id], commitment_of_row)?)
    }

    fn commitment_holding(
        &self,
        commitment_id: &str,
    ) -> Result<Option<CommitmentHolding>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT group_buy_id, store_id, customer_id, qty, status FROM group_buy_commitments WHERE commitment_id = ?1",
            )?
            .query_row([commitment_id], |r| {
                Ok(CommitmentHolding {
                    group_buy_id: r.get(0)?,
                    store_id: r.get(1)?,
                    customer_id: r.get(2)?,
                    qty: r.get(3)?,
                    status: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn paid_commitments_of(&self, id: &str) -> Result<Vec<PaidCommitment>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT k.commitment_id, p.amount_fen FROM group_buy_commitments k
                   JOIN payments p ON p.order_id = k.commitment_id
                 WHERE k.group_buy_id = ?1 AND k.status = 'active' AND p.state = ?2",
            )?
            .query_map(params![id, PaymentState::Paid.as_str()], |r| {
                Ok(PaidCommitment {
                    commitment_id: r.get(0)?,
                    amount_fen: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    fn activate_commitment(&self, commitment_id: &str) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buy_commitments SET status = 'active' WHERE commitment_id = ?1",
        )?
        .execute([commitment_id])?;
        Ok(())
    }

    fn cancel_by_customer(
        &self,
        commitment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buy_commitments SET status = 'cancelled', cancel_reason = 'customer_cancelled', cancelled_at = ?2
             WHERE commitment_id = ?1 AND status IN ('active', 'awaiting_payment')",
        )?
        .execute(params![commitment_id, ts(now)])?;
        Ok(())
    }

    fn cancel_paid_after_close(
        &self,
        commitment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buy_commitments SET status = 'cancelled', cancel_reason = 'group_buy_closed', cancelled_at = ?2
             WHERE commitment_id = ?1 AND status = 'awaiting_payment'",
        )?
        .execute(params![commitment_id, ts(now)])?;
        Ok(())
    }

    fn cancel_unpaid(&self, commitment_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE group_buy_commitments SET status = 'cancelled', cancel_reason = 'unpaid', cancelled_at = ?2
             WHERE commitment_id = ?1 AND status = 'awaiting_payment'",
        )?
        .execute(params![commitment_id, ts(now)])?;
        Ok(())
    }

    fn counting_counter_cancel_at(
        &self,
        commitment_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT at FROM group_buy_counter_cancels WHERE commitment_id = ?1 AND counts = 1",
            )?
            .query_row([commitment_id], |r| r.get(0))
            .optional()?)
    }

    fn insert_counter_cancel(
        &self,
        commitment_id: &str,
        store: &str,
        cancel: &CounterCancel,
        counts: bool,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(
                "INSERT OR IGNORE INTO group_buy_counter_cancels(commitment_id, store_id, group_buy_id, refund_id,
                    refund_fen, at, staff, counts, recorded_at, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                commitment_id,
                store,
                cancel.group_buy_id,
                cancel.refund_id,
                cancel.refund_fen,
                cancel.at,
                cancel.staff,
                counts,
                ts(now),
                cancel.reason.as_str()
            ])?)
    }

    fn counter_commitment_holding(
        &self,
        commitment_id: &str,
        store: &str,
    ) -> Result<Option<(String, String, i64)>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT group_buy_id, customer_id, qty FROM group_buy_commitments
                 WHERE commitment_id = ?1 AND store_id = ?2 AND source = 'counter'",
            )?
            .query_row(params![commitment_id, store], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?)
    }

    fn cancel_at_counter(&self, commitment_id: &str, at: &str) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(
                "UPDATE group_buy_commitments SET status = 'cancelled', cancel_reason = 'counter_cancelled', cancelled_at = ?2
                 WHERE commitment_id = ?1 AND status = 'active'",
            )?
            .execute(params![commitment_id, at])?)
    }

    fn counter_money_between(
        &self,
        store: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT at, amount_fen FROM group_buy_commitments
                 WHERE store_id = ?1 AND source = 'counter' AND at >= ?2 AND at < ?3
                 UNION ALL
                 SELECT at, -refund_fen FROM group_buy_counter_cancels
                 WHERE store_id = ?1 AND at >= ?2 AND at < ?3",
            )?
            .query_map(params![store, start, end], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<_, _>>()?)
    }

    fn decided_between(&self, start: &str, end: &str) -> Result<Vec<DecidedGroupBuy>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT group_buy_id, store_ids, state,
                    CASE state WHEN 'failed' THEN decided_at ELSE coalesce(reached_at, decided_at) END AS at
             FROM group_buys WHERE state IN ('reached', 'fulfilled', 'failed') AND at >= ?1 AND at < ?2",
        )?;
        let rows = stmt.query_map(params![start, end], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (group_buy_id, store_ids, state, at) = row?;
            out.push(DecidedGroupBuy {
                group_buy_id,
                store_ids: serde_json::from_str(&store_ids).unwrap_or_default(),
                state,
                at,
            });
        }
        Ok(out)
    }

    fn commitment_ids_of_customer(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT commitment_id FROM group_buy_commitments WHERE customer_id = ?1",
            )?
            .query_map([customer_id], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?)
    }

    fn commitment_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM group_buy_commitments WHERE customer_id = ?1 ORDER BY at",
            &[&customer_id],
        )
    }

    fn erase_customer_from_commitments(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.execute(
            "UPDATE group_buy_commitments SET customer_id = ?2 WHERE customer_id = ?1",
            params![customer_id, tombstone],
        )?)
    }
}
