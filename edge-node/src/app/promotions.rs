//! Promotions at the counter (DESIGN.md §7): the store's markdowns and the
//! coupons its counter takes, both sent by the hub in the store's orders
//! document and kept here, so the counter prices with the same rules as
//! the hub's online orders, offline too.
//!
//! - **Markdowns** (section `markdowns`, key `current`): the newest version
//!   replaces the store's list; the counter prices every line with it
//!   ([`linli_shared::pricing`]).
//! - **Coupons** (section `coupons`): each campaign's terms and the money
//!   the hub lent this counter (its allotment; the hub only raises it). A
//!   customer shows a signed code (`LC1.…`, claimed at the hub for this
//!   store); the counter verifies it with the hub's key, checks that it is
//!   not in use here (a coupon claimed for this counter is redeemed nowhere
//!   else) and that the discount fits in what is left of the allotment,
//!   then records the redemption with the sale and reports it in its ledger
//!   (section `coupon_redemptions`). A full refund of the sale voids it
//!   once (section `coupon_voids`): the coupon and its money come back.
//!   A partial refund gives back the refunded lines' share of what was
//!   paid (the discount is spread over the lines) and keeps the coupon used.
//! - **Recalls** (a campaign's record arrives with `recalled`): the counter
//!   stops taking the campaign's coupons and gives back, in its ledger
//!   (section `coupon_returns`, keyed by the campaign), everything lent it
//!   has not spent (`returns_due`); a refund after that gives the voided
//!   coupon's money back the same way. The hub counts a return when it
//!   sees it, so the money is never in two places.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use linli_shared::coupon::{
    self, CounterCoupon, CounterRedemption, CounterReturn, CounterVoid, CouponClaim, CouponError,
    CouponTerms,
};
use linli_shared::money::Fen;
use linli_shared::pricing::{self, StoreMarkdowns};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::replication::LedgerFact;
use super::{App, AppError, ts};

/// Keeps the hub's markdowns for this store if they are newer than what
/// the counter has.
pub(crate) fn save_markdowns(c: &Connection, m: &StoreMarkdowns) -> Result<(), AppError> {
    c.execute(
        "INSERT INTO store_markdowns(id, version, markdowns) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET version = excluded.version, markdowns = excluded.markdowns
         WHERE excluded.version > store_markdowns.version",
        params![
            m.version,
            serde_json::to_string(&m.markdowns).unwrap_or_default()
        ],
    )?;
    Ok(())
}

/// Keeps the coupon campaigns this counter takes, with their allotments
/// (never lowered: the hub only raises them) and whether the hub recalled
/// them (never undone; the return is written after the receipt's
/// transaction, by [`App::return_recalled_coupons`]).
pub(crate) fn save_coupons(
    c: &Connection,
    list: &[(String, CounterCoupon)],
) -> Result<(), AppError> {
    for (id, cc) in list {
        c.prepare_cached(
            "INSERT INTO coupons(coupon_id, terms, allotment_fen, recalled) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(coupon_id) DO UPDATE SET terms = excluded.terms,
                 allotment_fen = max(allotment_fen, excluded.allotment_fen),
                 recalled = max(recalled, excluded.recalled)",
        )?
        .execute(params![
            id,
            serde_json::to_string(&cc.terms).unwrap_or_default(),
            cc.allotment.0,
            cc.recalled
        ])?;
    }
    Ok(())
}

/// What recalled campaigns owe the hub now (in the caller's transaction):
/// for each whose unspent allotment is more than it has given back, the
/// new total, recorded here and to be written to the ledger by the caller.
pub(crate) fn returns_due(
    c: &Connection,
    now: DateTime<Utc>,
) -> Result<Vec<CounterReturn>, AppError> {
    let rows: Vec<(String, i64, i64)> = c
        .prepare_cached(
            "SELECT coupon_id, allotment_fen, returned_fen FROM coupons WHERE recalled = 1 ORDER BY coupon_id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, allotment, returned) in rows {
        let total =
            coupon::returned_total(Fen(allotment), Fen(used_here(c, &id)?), Fen(returned)).0;
        if total > returned {
            c.prepare_cached("UPDATE coupons SET returned_fen = ?2 WHERE coupon_id = ?1")?
                .execute(params![id, total])?;
            out.push(CounterReturn {
                coupon_id: id,
                returned_fen: total,
                at: ts(now),
            });
        }
    }
    Ok(out)
}

/// Puts back what a recovering store's ledgers say it gave back of
/// recalled campaigns (the largest total of each): the campaign stays
/// closed here. Returns the campaigns touched.
pub(crate) fn restore_returns(
    c: &Connection,
    returns: &[CounterReturn],
) -> Result<usize, AppError> {
    let mut n = 0;
    for r in returns {
        n += c
            .prepare_cached(
                "UPDATE coupons SET recalled = 1, returned_fen = max(returned_fen, ?2)
                 WHERE coupon_id = ?1 AND (recalled = 0 OR returned_fen < ?2)",
            )?
            .execute(params![r.coupon_id, r.returned_fen])?;
    }
    Ok(n)
}

/// Puts back the counter's redemptions and voids a recovering store finds
/// in its recovered ledgers (`recovery::rebuild`): rows already here are
/// left, a redemption is added once (keyed by its id), a void applied once.
/// A void names its redemption, so it applies whatever the order of their
/// stamps: a redemption given back goes in voided, holding no claim, and
/// then the ones still in use (at most one per claim: the counter took a
/// claim again only once it was free). Ordering them by time instead lost
/// voids whose stamp came before their redemption's (`linli-sim` seed
/// 30366 at 5 stores × 1,000 steps: a replaced PC's time stood before a
/// sale the old one made, so the refund's void was stamped earlier, and
/// the next recovery left the coupon in use and its money never returned
/// after a recall). Returns the redemptions added and the voids applied.
pub(crate) fn restore_redemptions(
    c: &Connection,
    redemptions: &[CounterRedemption],
    voids: &[CounterVoid],
) -> Result<(usize, usize), AppError> {
    let mut given_back: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for v in voids {
        let at = given_back.entry(v.redemption_id.as_str()).or_insert(&v.at);
        *at = (*at).min(v.at.as_str());
    }
    let (mut taken, mut back) = (0, 0);
    // voids of rows already here (a restored backup's), so a claim they
    // held is free for the use that followed
    for (id, at) in &given_back {
        back += c
            .prepare_cached(
                "UPDATE coupon_redemptions SET voided_at = ?2 WHERE redemption_id = ?1 AND voided_at IS NULL",
            )?
            .execute(params![id, at])?;
    }
    let (done, in_use): (Vec<&CounterRedemption>, Vec<&CounterRedemption>) = redemptions
        .iter()
        .partition(|r| given_back.contains_key(r.redemption_id.as_str()));
    for r in done.into_iter().chain(in_use) {
        let voided_at = given_back.get(r.redemption_id.as_str());
        // OR IGNORE: a claim this database holds in use under another
        // redemption (a restored backup's) stays as it is
        let n = c
            .prepare_cached(
                "INSERT OR IGNORE INTO coupon_redemptions(redemption_id, claim_id, coupon_id, sale_id, discount_fen, at, voided_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.redemption_id,
                r.claim_id,
                r.coupon_id,
                r.sale_id,
                r.discount_fen,
                r.at,
                voided_at
            ])?;
        taken += n;
        if voided_at.is_some() {
            back += n;
        }
    }
    Ok((taken, back))
}

/// The counter's pricing rules: the chain's defaults and the store's
/// markdowns at their version.
pub(crate) fn load_rules(c: &Connection) -> Result<pricing::Rules, AppError> {
    let row: Option<(u32, String)> = c
        .query_row(
            "SELECT version, markdowns FROM store_markdowns WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (version, markdowns) = match row {
        Some((v, m)) => (v, serde_json::from_str(&m).unwrap_or_default()),
        None => (0, Vec::new()),
    };
    Ok(pricing::Rules {
        version,
        markdowns,
        ..pricing::Rules::default()
    })
}

/// A coupon campaign as the counter sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterCouponView {
    pub coupon_id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub off: pricing::CouponOff,
    pub min_spend_fen: i64,
    pub valid_until: String,
    /// The money the hub lent this counter in all.
    pub allotment_fen: i64,
    /// Given away here (redemptions not voided).
    pub used_fen: i64,
    /// What the counter may still give away (0 once recalled).
    pub left_fen: i64,
    /// The hub recalled the allotment: the counter takes no more of these.
    pub recalled: bool,
    /// Given back to the hub after the recall.
    pub returned_fen: i64,
}

/// What the counter's pricing knows: the markdowns and the coupons.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PromotionsView {
    pub rules_version: u32,
    #[schema(value_type = Vec<Object>)]
    pub markdowns: Vec<pricing::Markdown>,
    pub coupons: Vec<CounterCouponView>,
}

/// A scanned coupon, checked against its signature and the campaign's
/// terms (before the sale's transaction).
#[derive(Debug, Clone)]
pub(crate) struct SaleCoupon {
    pub claim: CouponClaim,
    pub terms: CouponTerms,
}

fn used_here(c: &Connection, coupon_id: &str) -> Result<i64, AppError> {
    Ok(c.prepare_cached(
        "SELECT coalesce(sum(discount_fen), 0) FROM coupon_redemptions
         WHERE coupon_id = ?1 AND voided_at IS NULL",
    )?
    .query_row([coupon_id], |r| r.get(0))?)
}

/// Records a sale's redemption in its transaction: refused if the coupon
/// is in use here or the discount does not fit in the allotment's rest.
pub(crate) fn redeem(
    c: &Connection,
    sc: &SaleCoupon,
    sale_id: &str,
    discount: Fen,
    now: DateTime<Utc>,
) -> Result<CounterRedemption, AppError> {
    let busy: bool = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM coupon_redemptions WHERE claim_id = ?1 AND voided_at IS NULL)",
        )?
        .query_row([&sc.claim.claim_id], |r| r.get(0))?;
    if busy {
        return Err(AppError::Coupon(CouponError::AlreadyUsed));
    }
    let (allotment, recalled): (i64, bool) = c
        .prepare_cached("SELECT allotment_fen, recalled FROM coupons WHERE coupon_id = ?1")?
        .query_row([&sc.terms.coupon_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| AppError::Coupon(CouponError::NotHere(sc.terms.coupon_id.clone())))?;
    if recalled {
        return Err(AppError::Coupon(CouponError::Recalled(
            sc.terms.coupon_id.clone(),
        )));
    }
    coupon::fits(
        Fen(allotment),
        Fen(used_here(c, &sc.terms.coupon_id)?),
        discount,
    )
    .map_err(AppError::Coupon)?;
    let r = CounterRedemption {
        redemption_id: linli_sync::ids::ulid().to_string(),
        claim_id: sc.claim.claim_id.clone(),
        coupon_id: sc.terms.coupon_id.clone(),
        sale_id: sale_id.to_owned(),
        discount_fen: discount.0,
        version: sc.terms.version,
        at: ts(now),
    };
    c.prepare_cached(
        "INSERT INTO coupon_redemptions(redemption_id, claim_id, coupon_id, sale_id, discount_fen, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        r.redemption_id,
        r.claim_id,
        r.coupon_id,
        r.sale_id,
        r.discount_fen,
        r.at
    ])?;
    Ok(r)
}

/// Voids a sale's redemption (its full refund): once; `None` if there is
/// none or it was voided before.
pub(crate) fn void_for_sale(
    c: &Connection,
    sale_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<CounterVoid>, AppError> {
    let id: Option<String> = c
        .prepare_cached(
            "UPDATE coupon_redemptions SET voided_at = ?2 WHERE sale_id = ?1 AND voided_at IS NULL
             RETURNING redemption_id",
        )?
        .query_row(params![sale_id, ts(now)], |r| r.get(0))
        .optional()?;
    Ok(id.map(|redemption_id| CounterVoid {
        redemption_id,
        at: ts(now),
    }))
}

impl App {
    /// The counter's pricing rules now.
    pub(crate) fn rules(&self) -> Arc<pricing::Rules> {
        match self.rules.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the pricing rules after the hub's markdowns arrived.
    pub(crate) async fn reload_rules(&self) -> Result<(), AppError> {
        let rules = Arc::new(self.store.read(load_rules).await?);
        match self.rules.write() {
            Ok(mut g) => *g = rules,
            Err(p) => *p.into_inner() = rules,
        }
        Ok(())
    }

    /// Checks a scanned coupon code: the hub's signature, this store,
    /// expiry, a campaign this counter takes and still valid.
    pub(crate) async fn check_coupon(&self, code: &str) -> Result<SaleCoupon, AppError> {
        let key = self.pickup_key().ok_or_else(|| {
            AppError::Coupon(CouponError::NotHere(
                "(本店尚未收到总部的验证密钥 / the hub's key is not installed)".into(),
            ))
        })?;
        let claim = coupon::verify(code, &key, &self.settings.store_id, self.now())
            .map_err(AppError::Coupon)?;
        let id = claim.coupon_id.clone();
        let row: Option<(String, bool)> = self
            .store
            .read(move |c| {
                Ok::<_, AppError>(
                    c.query_row(
                        "SELECT terms, recalled FROM coupons WHERE coupon_id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?,
                )
            })
            .await?;
        // refused before pricing too, so a quote shows no discount the
        // sale would refuse
        if let Some((_, true)) = row {
            return Err(AppError::Coupon(CouponError::Recalled(
                claim.coupon_id.clone(),
            )));
        }
        let terms: CouponTerms = row
            .and_then(|(t, _)| serde_json::from_str(&t).ok())
            .ok_or_else(|| AppError::Coupon(CouponError::NotHere(claim.coupon_id.clone())))?;
        if !terms.valid_at(self.now()) {
            return Err(AppError::Coupon(CouponError::Expired {
                at: claim.expires_at(),
            }));
        }
        Ok(SaleCoupon { claim, terms })
    }

    /// Gives back what recalled campaigns' allotments hold unspent, in the
    /// ledger (after the hub's recall arrived, and at start for one that
    /// arrived before a crash). Returns how many returns it wrote.
    pub async fn return_recalled_coupons(&self) -> Result<usize, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        self.write_published(stamp, move |c, p| {
            let due = returns_due(c, now)?;
            let n = due.len();
            for r in due {
                tracing::info!(coupon = %r.coupon_id, returned_fen = r.returned_fen, "coupon allotment given back to the hub");
                p.fact(LedgerFact::CouponReturn(r));
            }
            Ok(n)
        })
        .await
    }

    /// The markdowns and coupons the counter prices with.
    pub async fn promotions(&self) -> Result<PromotionsView, AppError> {
        let rules = self.rules();
        let coupons = self
            .store
            .read(|c| {
                let rows: Vec<(String, String, i64, bool, i64)> = c
                    .prepare(
                        "SELECT coupon_id, terms, allotment_fen, recalled, returned_fen FROM coupons ORDER BY coupon_id",
                    )?
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for (id, terms, allotment, recalled, returned) in rows {
                    let Ok(t) = serde_json::from_str::<CouponTerms>(&terms) else {
                        continue;
                    };
                    let used = used_here(c, &id)?;
                    out.push(CounterCouponView {
                        coupon_id: id,
                        name: t.name,
                        off: t.off,
                        min_spend_fen: t.min_spend.0,
                        valid_until: t.valid_until,
                        allotment_fen: allotment,
                        used_fen: used,
                        left_fen: if recalled { 0 } else { allotment - used },
                        recalled,
                        returned_fen: returned,
                    });
                }
                Ok::<_, AppError>(out)
            })
            .await?;
        Ok(PromotionsView {
            rules_version: rules.version,
            markdowns: rules.markdowns.clone(),
            coupons,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use linli_shared::pricing::CouponOff;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        c
    }

    fn campaign(allotment: i64, recalled: bool) -> (String, CounterCoupon) {
        let terms = CouponTerms {
            coupon_id: "C1".into(),
            name: "满30减5".into(),
            off: CouponOff::Amount(Fen(500)),
            min_spend: Fen(3000),
            valid_from: "2026-01-01T00:00:00Z".into(),
            valid_until: "2027-01-01T00:00:00Z".into(),
            per_customer_limit: 3,
            version: 1,
        };
        (
            "C1".into(),
            CounterCoupon {
                terms,
                allotment: Fen(allotment),
                recalled,
            },
        )
    }

    fn taken(id: &str, claim: &str, d: i64, at: &str) -> CounterRedemption {
        CounterRedemption {
            redemption_id: id.into(),
            claim_id: claim.into(),
            coupon_id: "C1".into(),
            sale_id: format!("SALE-{id}"),
            discount_fen: d,
            version: 1,
            at: at.into(),
        }
    }

    fn back(id: &str, at: &str) -> CounterVoid {
        CounterVoid {
            redemption_id: id.into(),
            at: at.into(),
        }
    }

    #[test]
    fn recovered_redemptions_are_taken_in_the_counters_order_once() {
        let c = db();
        // one claim used, given back, used again; another used
        let r = [
            taken("R3", "Q1", 500, "2026-12-01T10:02:00Z"),
            taken("R1", "Q1", 500, "2026-12-01T10:00:00Z"),
            taken("R2", "Q2", 300, "2026-12-01T10:00:30Z"),
        ];
        let v = [back("R1", "2026-12-01T10:01:00Z")];
        assert_eq!(restore_redemptions(&c, &r, &v).unwrap(), (3, 1));
        assert_eq!(used_here(&c, "C1").unwrap(), 800);
        // a second recovery over the same rows adds nothing
        assert_eq!(restore_redemptions(&c, &r, &v).unwrap(), (0, 0));
        assert_eq!(used_here(&c, "C1").unwrap(), 800);
    }

    /// A sale's coupon given back by a refund and taken again by the next
    /// sale in the same millisecond: recovered, the newer use holds the
    /// claim (taken first, it was ignored as the claim in use, and the
    /// claim then left free to be used twice).
    #[test]
    fn a_claim_given_back_and_taken_again_in_one_millisecond_is_recovered_in_use() {
        let c = db();
        let at = "2026-12-01T10:00:00.500Z";
        let r = [
            taken("R2", "Q1", 500, at),
            taken("R1", "Q1", 500, "2026-12-01T10:00:00.100Z"),
        ];
        let v = [back("R1", at)];
        assert_eq!(restore_redemptions(&c, &r, &v).unwrap(), (2, 1));
        assert_eq!(used_here(&c, "C1").unwrap(), 500);
        // and a use given back in the millisecond it was taken
        let c = db();
        let r = [taken("R1", "Q1", 500, at)];
        assert_eq!(
            restore_redemptions(&c, &r, &[back("R1", at)]).unwrap(),
            (1, 1)
        );
        assert_eq!(used_here(&c, "C1").unwrap(), 0);
    }

    /// A void stamped before its redemption (the PC's time stood behind
    /// the sale, as a replaced PC's did) still gives the coupon back.
    #[test]
    fn a_void_stamped_before_its_redemption_still_gives_it_back() {
        let c = db();
        let r = [
            taken("R1", "Q1", 300, "2026-12-01T10:00:31.160Z"),
            taken("R2", "Q2", 300, "2026-12-01T10:00:29.178Z"),
        ];
        let v = [back("R1", "2026-12-01T10:00:29.178Z")];
        assert_eq!(restore_redemptions(&c, &r, &v).unwrap(), (2, 1));
        assert_eq!(used_here(&c, "C1").unwrap(), 300);
    }

    #[test]
    fn a_recalled_campaign_gives_back_what_is_left_and_only_more_later() {
        let c = db();
        save_coupons(&c, &[campaign(1200, false)]).unwrap();
        restore_redemptions(
            &c,
            &[
                taken("R1", "Q1", 500, "2026-12-01T10:00:00Z"),
                taken("R2", "Q2", 300, "2026-12-01T10:01:00Z"),
            ],
            &[],
        )
        .unwrap();
        let now = Utc::now();
        assert!(returns_due(&c, now).unwrap().is_empty(), "not recalled");
        // the recall, with a raised allotment, arrives: never lowered back
        save_coupons(&c, &[campaign(1500, true)]).unwrap();
        save_coupons(&c, &[campaign(1200, false)]).unwrap();
        let due = returns_due(&c, now).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].returned_fen, 700);
        assert!(returns_due(&c, now).unwrap().is_empty(), "given once");
        // a refund gives a coupon back: its money follows
        void_for_sale(&c, "SALE-R2", now).unwrap();
        assert_eq!(returns_due(&c, now).unwrap()[0].returned_fen, 1000);
        // a recovery finds the returns in the ledger: nothing given twice
        let fresh = db();
        save_coupons(&fresh, &[campaign(1500, false)]).unwrap();
        restore_redemptions(
            &fresh,
            &[taken("R1", "Q1", 500, "2026-12-01T10:00:00Z")],
            &[],
        )
        .unwrap();
        let given = [CounterReturn {
            coupon_id: "C1".into(),
            returned_fen: 1000,
            at: "2026-12-01T11:00:00Z".into(),
        }];
        assert_eq!(restore_returns(&fresh, &given).unwrap(), 1);
        assert_eq!(restore_returns(&fresh, &given).unwrap(), 0);
        assert!(returns_due(&fresh, now).unwrap().is_empty());
    }
}
