//! [`CouponRecords`] on SQLite: the coupon tables on the caller's
//! connection. Times are RFC 3339 text (a counter's as it reported them);
//! money is in fen; a campaign's terms and stores are JSON. Every
//! statement but an erasure's runs per request or per synced batch, so each
//! is a cached statement.

use chrono::{DateTime, Utc};
use linli_shared::coupon::CounterRedemption;
use linli_shared::money::Fen;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{
    Allotment, Campaign, Channel, Claim, ClaimOwner, CounterRow, CouponRecords, Lending,
    NewCampaign, NewClaim, OnlineRedemption,
};
use crate::store::StoreError;
use crate::store::json_rows::rows;
use crate::time::ts;

impl CouponRecords for Connection {
    fn campaign(&self, coupon_id: &str) -> Result<Option<Campaign>, StoreError> {
        let row: Option<(String, i64, String, i64)> = self
            .prepare_cached(
                "SELECT terms, budget_fen, store_ids, counter_step_fen FROM coupons WHERE coupon_id = ?1",
            )?
            .query_row([coupon_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        Ok(row.and_then(|(t, budget, s, step)| {
            Some(Campaign {
                terms: serde_json::from_str(&t).ok()?,
                budget: Fen(budget),
                store_ids: serde_json::from_str(&s).ok()?,
                step: Fen(step),
            })
        }))
    }

    fn newest_campaigns(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .prepare_cached("SELECT coupon_id FROM coupons ORDER BY created_at DESC LIMIT 100")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn add_campaign(&self, n: &NewCampaign<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO coupons(coupon_id, terms, budget_fen, store_ids, counter_step_fen, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            n.terms.coupon_id,
            serde_json::to_string(n.terms).unwrap_or_default(),
            n.budget.0,
            serde_json::to_string(n.store_ids).unwrap_or_default(),
            n.step.0,
            n.created_by,
            ts(n.created_at)
        ])?;
        Ok(())
    }

    fn claim_count(&self, coupon_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .prepare_cached("SELECT count(*) FROM coupon_claims WHERE coupon_id = ?1")?
            .query_row([coupon_id], |r| r.get(0))?)
    }

    fn redemption_count(&self, coupon_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT count(*) FROM coupon_redemptions WHERE coupon_id = ?1 AND voided_at IS NULL",
            )?
            .query_row([coupon_id], |r| r.get(0))?)
    }

    fn allotments(&self, coupon_id: &str) -> Result<Vec<Allotment>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT a.store_id, a.allotted_fen, a.returned_fen, a.recalled_at,
                    (SELECT coalesce(sum(discount_fen), 0) FROM coupon_redemptions r
                     WHERE r.coupon_id = a.coupon_id AND r.store_id = a.store_id
                       AND r.channel = 'counter' AND r.voided_at IS NULL)
             FROM coupon_allotments a WHERE a.coupon_id = ?1 ORDER BY a.store_id",
        )?;
        let rows = stmt
            .query_map([coupon_id], |r| {
                Ok(Allotment {
                    store_id: r.get(0)?,
                    allotted: Fen(r.get(1)?),
                    returned: Fen(r.get(2)?),
                    recalled_at: r.get(3)?,
                    used: Fen(r.get(4)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn held(&self, coupon_id: &str) -> Result<Fen, StoreError> {
        Ok(Fen(self
            .prepare_cached(
                "SELECT coalesce(sum(allotted_fen - returned_fen), 0) FROM coupon_allotments WHERE coupon_id = ?1",
            )?
            .query_row([coupon_id], |r| r.get(0))?))
    }

    fn held_by(&self, coupon_id: &str, store_id: &str) -> Result<(Fen, bool), StoreError> {
        let (held, recalled): (i64, bool) = self
            .prepare_cached(
                "SELECT coalesce((SELECT allotted_fen - returned_fen FROM coupon_allotments WHERE coupon_id = ?1 AND store_id = ?2), 0),
                        coalesce((SELECT recalled_at IS NOT NULL FROM coupon_allotments WHERE coupon_id = ?1 AND store_id = ?2), 0)",
            )?
            .query_row(params![coupon_id, store_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((Fen(held), recalled))
    }

    fn lend(&self, coupon_id: &str, store_id: &str, more: Fen) -> Result<(Fen, bool), StoreError> {
        let (total, recalled): (i64, bool) = self
            .prepare_cached(
                "INSERT INTO coupon_allotments(coupon_id, store_id, allotted_fen) VALUES (?1, ?2, ?3)
                 ON CONFLICT(coupon_id, store_id) DO UPDATE SET allotted_fen = allotted_fen + excluded.allotted_fen
                 RETURNING allotted_fen, recalled_at IS NOT NULL",
            )?
            .query_row(params![coupon_id, store_id, more.0], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((Fen(total), recalled))
    }

    fn recall(
        &self,
        coupon_id: &str,
        store_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .prepare_cached(
                "UPDATE coupon_allotments SET recalled_at = ?3
                 WHERE coupon_id = ?1 AND store_id = ?2 AND recalled_at IS NULL",
            )?
            .execute(params![coupon_id, store_id, ts(at)])?;
        Ok(n == 1)
    }

    fn lending(&self, coupon_id: &str, store_id: &str) -> Result<Option<Lending>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT allotted_fen, returned_fen, recalled_at IS NOT NULL FROM coupon_allotments
                 WHERE coupon_id = ?1 AND store_id = ?2",
            )?
            .query_row(params![coupon_id, store_id], |r| {
                Ok(Lending {
                    allotted: Fen(r.get(0)?),
                    returned: Fen(r.get(1)?),
                    recalled: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn set_returned(
        &self,
        coupon_id: &str,
        store_id: &str,
        returned: Fen,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE coupon_allotments SET returned_fen = ?3 WHERE coupon_id = ?1 AND store_id = ?2",
        )?
        .execute(params![coupon_id, store_id, returned.0])?;
        Ok(())
    }

    fn claim_owner(&self, claim_id: &str) -> Result<Option<ClaimOwner>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT coupon_id, customer_id, redeem_at FROM coupon_claims WHERE claim_id = ?1",
            )?
            .query_row([claim_id], |r| {
                Ok(ClaimOwner {
                    coupon_id: r.get(0)?,
                    customer_id: r.get(1)?,
                    redeem_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn claim(&self, claim_id: &str) -> Result<Option<Claim>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT coupon_id, redeem_at, code, expires_at FROM coupon_claims WHERE claim_id = ?1",
            )?
            .query_row([claim_id], |r| {
                Ok(Claim {
                    coupon_id: r.get(0)?,
                    redeem_at: r.get(1)?,
                    code: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn claims_by(&self, coupon_id: &str, customer_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT count(*) FROM coupon_claims WHERE coupon_id = ?1 AND customer_id = ?2",
            )?
            .query_row(params![coupon_id, customer_id], |r| r.get(0))?)
    }

    fn add_claim(&self, n: &NewClaim<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO coupon_claims(claim_id, coupon_id, customer_id, redeem_at, code, expires_at, claimed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            n.claim_id,
            n.coupon_id,
            n.customer_id,
            n.redeem_at,
            n.code,
            ts(n.expires_at),
            ts(n.claimed_at)
        ])?;
        Ok(())
    }

    fn claims_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT claim_id FROM coupon_claims WHERE customer_id = ?1 ORDER BY claimed_at DESC LIMIT 200",
        )?;
        let ids = stmt
            .query_map([customer_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn used(&self, coupon_id: &str, channel: Channel) -> Result<Fen, StoreError> {
        Ok(Fen(self
            .prepare_cached(
                "SELECT coalesce(sum(discount_fen), 0) FROM coupon_redemptions
                 WHERE coupon_id = ?1 AND channel = ?2 AND voided_at IS NULL",
            )?
            .query_row(params![coupon_id, channel.as_str()], |r| {
                r.get(0)
            })?))
    }

    fn counter_used(&self, coupon_id: &str, store_id: &str) -> Result<Fen, StoreError> {
        Ok(Fen(self
            .prepare_cached(
                "SELECT coalesce(sum(discount_fen), 0) FROM coupon_redemptions
                 WHERE coupon_id = ?1 AND store_id = ?2 AND channel = 'counter' AND voided_at IS NULL",
            )?
            .query_row(params![coupon_id, store_id], |r| r.get(0))?))
    }

    fn holder(&self, claim_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT subject_id FROM coupon_redemptions WHERE claim_id = ?1 AND voided_at IS NULL",
            )?
            .query_row([claim_id], |r| r.get(0))
            .optional()?)
    }

    fn redemption_known(&self, redemption_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM coupon_redemptions WHERE redemption_id = ?1)",
            )?
            .query_row([redemption_id], |r| r.get(0))?)
    }

    fn add_online_redemption(&self, r: &OnlineRedemption<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO coupon_redemptions(redemption_id, claim_id, coupon_id, channel, store_id, subject_id,
                discount_fen, version, redeemed_at)
             VALUES (?1, ?2, ?3, 'online', NULL, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            r.redemption_id,
            r.claim_id,
            r.coupon_id,
            r.order_id,
            r.discount.0,
            r.version,
            ts(r.at)
        ])?;
        Ok(())
    }

    fn add_counter_redemption(
        &self,
        store_id: &str,
        r: &CounterRedemption,
        voided: bool,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO coupon_redemptions(redemption_id, claim_id, coupon_id, channel, store_id,
                subject_id, discount_fen, version, redeemed_at, voided_at)
             VALUES (?1, ?2, ?3, 'counter', ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            r.redemption_id,
            r.claim_id,
            r.coupon_id,
            store_id,
            r.sale_id,
            r.discount_fen,
            r.version,
            r.at,
            voided.then_some(&r.at)
        ])?;
        Ok(())
    }

    fn void_subject(&self, subject_id: &str, at: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(
                "UPDATE coupon_redemptions SET voided_at = ?2 WHERE subject_id = ?1 AND voided_at IS NULL",
            )?
            .execute(params![subject_id, ts(at)])?)
    }

    fn counter_redemptions_of(
        &self,
        claim_id: &str,
        store_id: &str,
    ) -> Result<Vec<CounterRow>, StoreError> {
        let rows = self
            .prepare_cached(
                "SELECT r.redemption_id, r.redeemed_at, r.voided_at, v.at FROM coupon_redemptions r
                 LEFT JOIN coupon_counter_voids v ON v.redemption_id = r.redemption_id
                 WHERE r.claim_id = ?1 AND r.channel = 'counter' AND r.store_id = ?2
                 ORDER BY r.redeemed_at, r.redemption_id",
            )?
            .query_map([claim_id, store_id], |r| {
                Ok(CounterRow {
                    redemption_id: r.get(0)?,
                    redeemed_at: r.get(1)?,
                    voided_at: r.get(2)?,
                    reported_void: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn claim_held_elsewhere(&self, claim_id: &str, store_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM coupon_redemptions
                 WHERE claim_id = ?1 AND voided_at IS NULL
                   AND NOT (channel = 'counter' AND store_id = ?2))",
            )?
            .query_row([claim_id, store_id], |r| r.get(0))?)
    }

    fn set_voided(&self, redemption_id: &str, at: Option<&str>) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE coupon_redemptions SET voided_at = ?2 WHERE redemption_id = ?1",
        )?
        .execute(params![redemption_id, at])?;
        Ok(())
    }

    fn record_counter_void(
        &self,
        store_id: &str,
        redemption_id: &str,
        at: &str,
    ) -> Result<Option<String>, StoreError> {
        self.prepare_cached(
            "INSERT INTO coupon_counter_voids(redemption_id, store_id, at) VALUES (?1, ?2, ?3)
             ON CONFLICT(redemption_id) DO NOTHING",
        )?
        .execute([redemption_id, store_id, at])?;
        Ok(self
            .prepare_cached("SELECT claim_id FROM coupon_redemptions WHERE redemption_id = ?1")?
            .query_row([redemption_id], |r| r.get(0))
            .optional()?)
    }

    fn restore_subject(&self, subject_id: &str) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(
                "UPDATE coupon_redemptions SET voided_at = NULL
                 WHERE redemption_id = (
                     SELECT r.redemption_id FROM coupon_redemptions r
                     WHERE r.subject_id = ?1 AND r.channel = 'online' AND r.voided_at IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM coupon_redemptions o
                                       WHERE o.claim_id = r.claim_id AND o.voided_at IS NULL)
                     ORDER BY r.redeemed_at DESC LIMIT 1)",
            )?
            .execute([subject_id])?)
    }

    fn claim_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM coupon_claims WHERE customer_id = ?1 ORDER BY claimed_at",
            &[&customer_id],
        )
    }

    fn redemption_rows_of_claim(&self, claim_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM coupon_redemptions WHERE claim_id = ?1 ORDER BY redeemed_at",
            &[&claim_id],
        )
    }

    fn erase_customer_from_claims(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.execute(
            "UPDATE coupon_claims SET customer_id = ?2 WHERE customer_id = ?1",
            params![customer_id, tombstone],
        )?)
    }
}
