//! A group-buy presale in a run (issue 11): one campaign across the
//! stores, committed to at the counters (offline too, within each store's
//! allotment) while links are cut around its deadline, decided by the
//! hub's settlement sweep.
//!
//! Checked after every step: once the hub says "reached", it never says
//! otherwise. Once idle: the hub counts exactly the units the counters
//! answered (a commitment made before the deadline counts even if it synced
//! after; a repeated request counts once), it is reached exactly when
//! enough distinct customers committed, and it failed only after its
//! deadline and never with enough customers.

use chrono::{DateTime, Utc};
use linli_edge::app::groupbuy::{CommitRequest, CounterCustomer};
use linli_hub::app::groupbuys::NewGroupBuy;
use linli_shared::groupbuy::{State, Threshold};

use super::*;

/// The run's campaign as the counters answered it.
pub(super) struct Campaign {
    id: String,
    deadline: DateTime<Utc>,
    threshold: u32,
    /// Units the counters answered, by commitment id.
    answered: BTreeMap<String, i64>,
    /// Customers the counters answered.
    people: BTreeSet<String>,
    /// The store that took each commitment.
    taken_at: BTreeMap<String, usize>,
    /// Commitments given back at their counter after the campaign failed.
    refunded: BTreeSet<String>,
    /// Whether the hub has said "reached".
    reached: bool,
    next_key: u64,
}

impl World {
    /// The hub opens a campaign for every store: a piece product at a
    /// group-buy price, 3-8 customers needed, a deadline 2-10 s away.
    pub(super) async fn open_campaign(&mut self) -> anyhow::Result<()> {
        let (sku, price) = self
            .skus
            .iter()
            .zip(&self.prices)
            .find(|((_, kg), _)| !kg)
            .map(|((sku, _), p)| (sku.clone(), *p))
            .ok_or_else(|| anyhow::anyhow!("no product sold by the piece"))?;
        let threshold = self.rng.gen_range(3..=8);
        let deadline = self.clock.now() + chrono::Duration::seconds(self.rng.gen_range(2..=10));
        let local = chrono::FixedOffset::east_opt(8 * 3600)
            .ok_or_else(|| anyhow::anyhow!("UTC+8 is an offset"))?;
        let admin = admin();
        let view = self
            .hub
            .create_group_buy(
                &admin,
                NewGroupBuy {
                    sku,
                    price_fen: (price - 100).max(1),
                    threshold: Threshold::Participants { count: threshold },
                    deadline,
                    pickup_date: deadline.with_timezone(&local).date_naive() + chrono::Days::new(1),
                    per_customer_limit: 2,
                    store_ids: self.stores.iter().map(|s| s.id.clone()).collect(),
                    grace_minutes: Some(1),
                    counter_allotment: Some(6),
                },
            )
            .await?;
        self.campaign = Some(Campaign {
            id: view.group_buy_id,
            deadline,
            threshold,
            answered: BTreeMap::new(),
            people: BTreeSet::new(),
            taken_at: BTreeMap::new(),
            refunded: BTreeSet::new(),
            reached: false,
            next_key: 0,
        });
        Ok(())
    }

    /// A neighbour commits one unit at store `i`'s counter; sometimes the
    /// cashier's screen sends it twice.
    pub(super) async fn commit_at_counter(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(c) = self.campaign.as_mut() else {
            return Ok(());
        };
        c.next_key += 1;
        let key = format!("{}-commit-{}", self.stores[i].id, c.next_key);
        let phone = format!("137{:08}", self.rng.gen_range(0..12));
        let twice = self.rng.gen_bool(0.1);
        let gid = c.id.clone();
        let mut first: Option<String> = None;
        for _ in 0..if twice { 2 } else { 1 } {
            let idem = linli_edge::app::idempotency::IdempotencyKey::parse(&key)?;
            let r = self.stores[i]
                .app
                .commit_at_counter(
                    &cashier(),
                    Some(idem),
                    &gid,
                    CommitRequest {
                        customer: CounterCustomer {
                            phone: phone.clone(),
                        },
                        qty: 1,
                        payment_method: None,
                    },
                )
                .await;
            let what = match r {
                Ok(k) => {
                    if let Some(f) = &first {
                        anyhow::ensure!(
                            *f == k.commitment_id,
                            "a repeated commitment {key} answered {} after {f}",
                            k.commitment_id
                        );
                    }
                    first = Some(k.commitment_id.clone());
                    let c = self
                        .campaign
                        .as_mut()
                        .ok_or_else(|| anyhow::anyhow!("campaign"))?;
                    c.answered.insert(k.commitment_id.clone(), k.qty);
                    c.taken_at.insert(k.commitment_id.clone(), i);
                    c.people.insert(phone.clone());
                    format!(
                        "{} took commitment {} of {phone}",
                        self.stores[i].id, k.commitment_id
                    )
                }
                Err(e) => format!("{} refused a commitment of {phone}: {e}", self.stores[i].id),
            };
            self.note(what);
        }
        self.pump().await
    }

    /// A customer whose campaign failed comes back to store `i`'s counter
    /// for their money (refused until the store has heard of the failure);
    /// sometimes a refunded one comes again.
    pub(super) async fn refund_failed(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(c) = self.campaign.as_ref() else {
            return Ok(());
        };
        let here: Vec<String> = c
            .taken_at
            .iter()
            .filter(|(_, s)| **s == i)
            .map(|(k, _)| k.clone())
            .collect();
        if here.is_empty() {
            return self.commit_at_counter(i).await;
        }
        let cid = here[self.rng.gen_range(0..here.len())].clone();
        let gid = c.id.clone();
        let again = c.refunded.contains(&cid);
        let r = self.stores[i]
            .app
            .refund_failed_at_counter(&cashier(), &gid, &cid)
            .await;
        let what = match r {
            Ok(_) => {
                if let Some(c) = self.campaign.as_mut() {
                    c.refunded.insert(cid.clone());
                }
                format!(
                    "{} refunded failed commitment {cid}{}",
                    self.stores[i].id,
                    if again { " (again: same refund)" } else { "" }
                )
            }
            Err(e) => format!("{} did not refund {cid}: {e}", self.stores[i].id),
        };
        self.note(what);
        self.pump().await
    }

    /// The hub's periodic sweeps (the server runs them on timers):
    /// campaigns past their deadline are decided, pickups past theirs expire.
    pub(super) async fn hub_sweeps(&mut self) -> anyhow::Result<()> {
        let now = self.hub.now();
        let decided = self.hub.settle_group_buys(now).await?;
        let expired = self.hub.expire_orders(now).await?;
        self.note(format!(
            "hub sweeps: {decided} campaigns decided, {expired} orders expired"
        ));
        self.pump().await
    }

    /// "Reached" never goes back.
    pub(super) async fn check_campaign(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.campaign.as_mut() else {
            return Ok(());
        };
        let v = self.hub.group_buy(&c.id).await?;
        let reached = matches!(v.state, State::Reached | State::Fulfilled);
        anyhow::ensure!(
            reached || !c.reached,
            "campaign {} was reached and is now {:?}",
            c.id,
            v.state
        );
        if v.state == State::Failed {
            anyhow::ensure!(
                self.clock.now() >= c.deadline,
                "campaign {} failed before its deadline",
                c.id
            );
        }
        c.reached |= reached;
        Ok(())
    }

    /// Once idle: the hub holds every commitment the counters answered,
    /// once, and counts exactly those (all cancelled if it failed).
    pub(super) async fn check_campaign_settled(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.campaign.as_ref() else {
            return Ok(());
        };
        let v = self.hub.group_buy(&c.id).await?;
        let at_hub = self.audit.hub_counter_commitments(&self.hub_db(), &c.id)?;
        let ids: BTreeSet<&str> = at_hub
            .keys()
            .filter_map(|k| k.split_once('/').map(|(_, id)| id))
            .collect();
        let answered: BTreeSet<&str> = c.answered.keys().map(String::as_str).collect();
        anyhow::ensure!(
            ids == answered && at_hub.len() == answered.len(),
            "campaign {}: the hub holds counter commitments {ids:?}, the counters answered {answered:?}",
            c.id
        );
        let enough = c.people.len() >= c.threshold as usize;
        let reached = matches!(v.state, State::Reached | State::Fulfilled);
        anyhow::ensure!(
            reached == enough,
            "campaign {}: {} customers of {} needed, and it is {:?}",
            c.id,
            c.people.len(),
            c.threshold,
            v.state
        );
        if v.state == State::Failed {
            let counting: Vec<_> = at_hub.iter().filter(|(_, (s, _))| s == "active").collect();
            anyhow::ensure!(
                counting.is_empty(),
                "campaign {} failed with commitments still counting: {counting:?}",
                c.id
            );
            // every counter refund once, the rest owed
            let r = v.counter_refunds.as_ref().ok_or_else(|| {
                anyhow::anyhow!("campaign {} failed with no refund figures", c.id)
            })?;
            let done = c.refunded.len() as i64;
            anyhow::ensure!(
                r.done == done && r.owed == c.answered.len() as i64 - done,
                "campaign {}: the hub counts {} refunded and {} owed at the counters, they refunded {done} of {}",
                c.id,
                r.done,
                r.owed,
                c.answered.len()
            );
        } else {
            anyhow::ensure!(
                c.refunded.is_empty(),
                "campaign {} is {:?} and counters refunded {:?} as failed",
                c.id,
                v.state,
                c.refunded
            );
        }
        if v.state != State::Failed {
            let units: i64 = c.answered.values().sum();
            anyhow::ensure!(
                v.qty == units && v.participants as usize == c.people.len(),
                "campaign {}: the hub counts {} units of {} customers, the counters answered {units} of {}",
                c.id,
                v.qty,
                v.participants,
                c.people.len()
            );
        }
        self.report.group_buy = Some(format!(
            "{:?} with {} of {} customers, {} refunded at counters",
            v.state,
            c.people.len(),
            c.threshold,
            c.refunded.len()
        ));
        Ok(())
    }
}
