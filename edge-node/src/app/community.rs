//! 一店一群 at the counter: a cashier adds a customer to the store's
//! community by phone, offline too (DESIGN.md §7).
//!
//! The join is a fact of the store's ledger (section `members`, keyed by a
//! fresh id) written in the same transaction as the idempotency record, so
//! a retried request adds nothing and an acknowledged join reaches the hub
//! whenever the link is back. The store does not decide membership: a
//! customer belongs to one community at a time, the newest join by the time
//! it was made (`linli_shared::community::join`), and only the hub sees
//! every store's joins. So a join is always recorded, even for a customer
//! this counter added before (they may have moved to another store since).
//!
//! The ledger carries the phone because the hub must find the customer by
//! it; the store keeps no member table of its own.

use linli_shared::community::MemberFact;
use linli_shared::member::mask_phone;
use serde::{Deserialize, Serialize};

use super::idempotency::{self, IdempotencyKey};
use super::replication::LedgerFact;
use super::{Actor, App, AppError, ts, valid_phone};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The customer's 11-digit mobile number.
    pub phone: String,
}

/// A join as recorded at the counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterJoin {
    pub join_id: String,
    /// `138****1234`.
    pub phone: String,
    pub at: String,
    pub staff: String,
}

impl App {
    /// Adds the customer with this phone to the store's community.
    pub async fn add_member(
        &self,
        actor: &Actor,
        key: Option<IdempotencyKey>,
        req: JoinRequest,
    ) -> Result<CounterJoin, AppError> {
        let phone = valid_phone("phone", &req.phone)?;
        // the phone itself goes nowhere: not the ledger, not the replay
        let (member, masked) = (self.member_hash(&phone), mask_phone(&phone));
        let fp = idempotency::fingerprint("community_join", &member);
        let stamp = self.stamp();
        let now = stamp.at();
        let staff = actor.name.clone();
        self.write_published(stamp, move |c, p| {
            if let Some(k) = &key
                && let Some(prev) = idempotency::replay(c, &staff, k, "community_join", &fp)?
            {
                return Ok(prev);
            }
            let fact = MemberFact {
                join_id: linli_sync::ids::ulid().to_string(),
                member_hash: member.clone(),
                masked_phone: masked.clone(),
                phone: String::new(),
                at: ts(now),
                staff: staff.clone(),
            };
            let out = CounterJoin {
                join_id: fact.join_id.clone(),
                phone: masked.clone(),
                at: fact.at.clone(),
                staff: staff.clone(),
            };
            p.fact(LedgerFact::Member(fact));
            if let Some(k) = &key {
                idempotency::record(c, &staff, k, "community_join", &fp, &out, now)?;
            }
            Ok(out)
        })
        .await
    }
}
