//! 一店一群 at the hub: each store's community (its join code and members),
//! joins from the shop (by code or by location) and from store counters
//! (projected from the store's ledger), and the polls a store's manager
//! runs before a live stream (DESIGN.md §7; the rules are
//! [`linli_shared::community`]).
//!
//! A customer belongs to one community at a time: the newest join wins,
//! by the time it was made, so a counter join synced late never pulls a
//! customer back from a store joined since. Every join is kept in
//! `community_joins` with what it did (joined, moved from, already a
//! member, superseded): the moves are the history the issue asks for.
//!
//! Who may manage a community (see its members and join code, run polls):
//! a hub admin, or the store's manager with the hub account bound to it.

use chrono::{DateTime, Utc};
use linli_shared::community::{self, JoinOutcome, JoinVia, MemberFact, PollDraft, PollError};
use linli_shared::geo::GeoPoint;
use rand::RngCore;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::auth::{Role, User};
use crate::error::HubError;
use crate::hub::Hub;
use crate::store::communities::{CommunityRecords, JoinRecord, NewPoll};
use crate::time::parse_ts;

/// A store's community as anyone may see it; the join code only for staff.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommunityView {
    pub store_id: String,
    pub store_name: String,
    pub members: i64,
    /// Members with an action this calendar month (UTC): a join, a vote, an
    /// online or live order (the `member_activity` view). Counter sales are
    /// not linked to customers yet (their member hash is the store's own).
    pub active_this_month: i64,
    /// The code the store shows (QR) for customers to join; staff only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_code: Option<String>,
    /// The shop link that joins this community (staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_path: Option<String>,
}

/// What a join did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinView {
    pub join_id: String,
    pub customer_id: String,
    /// The community the customer belongs to now.
    pub store_id: String,
    /// `joined`, `moved`, `already` or `superseded`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
}

/// A member as staff see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub customer_id: String,
    /// Masked (`138****1234`).
    pub phone: String,
    pub since: String,
    pub via: String,
}

/// A customer's own community and what is open in it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MyCommunity {
    pub store_id: String,
    pub store_name: String,
    pub since: String,
    pub via: String,
    pub polls: Vec<PollView>,
}

/// A poll with its results.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollView {
    pub poll_id: String,
    pub store_id: String,
    pub question: String,
    pub closes_at: String,
    pub open: bool,
    pub options: Vec<PollOptionView>,
    pub votes: u64,
    /// The options' SKUs, most votes first (ties in the manager's order):
    /// the featured list a live session starts from.
    pub ranking: Vec<String>,
    /// The caller's own vote (customers), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_vote: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollOptionView {
    pub option: usize,
    pub sku: String,
    pub name: String,
    pub votes: u64,
}

/// How a customer asks to join from the shop.
#[derive(Debug, Clone)]
pub enum OnlineJoin {
    Code(String),
    Location(GeoPoint),
}

/// A hub admin, or the store's own manager (a hub account bound to it).
pub(crate) fn may_manage(user: &User, store_id: &str) -> Result<(), HubError> {
    match user.role {
        Role::Admin => Ok(()),
        Role::Manager if user.store_id.as_deref() == Some(store_id) => Ok(()),
        Role::Manager => Err(HubError::NotYourStore(store_id.to_owned())),
        Role::Regional => Err(HubError::Forbidden),
    }
}

/// The store's join code, made on first use (at `now`).
fn join_code_of(c: &Connection, store_id: &str, now: DateTime<Utc>) -> Result<String, HubError> {
    if let Some(code) = c.join_code(store_id)? {
        return Ok(code);
    }
    loop {
        let mut raw = [0u8; community::JOIN_CODE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let code = community::join_code(raw);
        if c.put_join_code(store_id, &code, now)? {
            return Ok(code);
        }
    }
}

/// Records one join (idempotent by `join_id`) and moves the membership if
/// it is the newest. `at`: when the customer joined; `now`: when the hub
/// records it.
pub(crate) fn record_join(
    c: &Connection,
    join_id: &str,
    customer_id: &str,
    store_id: &str,
    via: JoinVia,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<JoinView, HubError> {
    if let Some(j) = c.recorded_join(join_id)? {
        return Ok(JoinView {
            join_id: join_id.to_owned(),
            customer_id: j.customer_id,
            store_id: j.store_id,
            outcome: j.outcome,
            moved_from: j.moved_from,
        });
    }
    let current = c.membership(customer_id)?;
    let outcome = community::join(current.as_ref(), store_id, at, join_id);
    let (name, moved_from) = match &outcome {
        JoinOutcome::Joined => ("joined", None),
        JoinOutcome::Moved { from } => ("moved", Some(from.clone())),
        JoinOutcome::Already { .. } => ("already", None),
        JoinOutcome::Superseded { .. } => ("superseded", None),
    };
    match &outcome {
        JoinOutcome::Joined | JoinOutcome::Moved { .. } => {
            c.set_member(customer_id, store_id, via, at, join_id)?;
        }
        JoinOutcome::Already { renews: true } => c.renew_member(customer_id, at, join_id)?,
        JoinOutcome::Already { renews: false } | JoinOutcome::Superseded { .. } => {}
    }
    c.add_join(&JoinRecord {
        join_id: join_id.to_owned(),
        customer_id: customer_id.to_owned(),
        store_id: store_id.to_owned(),
        via,
        at,
        outcome: name.to_owned(),
        moved_from: moved_from.clone(),
        recorded_at: now,
    })?;
    let now_in = match &outcome {
        JoinOutcome::Superseded { current } => current.clone(),
        _ => store_id.to_owned(),
    };
    Ok(JoinView {
        join_id: join_id.to_owned(),
        customer_id: customer_id.to_owned(),
        store_id: now_in,
        outcome: name.to_owned(),
        moved_from,
    })
}

/// Projects counter joins from a store's ledger (section `members`): the
/// customer is the one whose phone hashes to the join's member hash, or one
/// known by the hash alone until the phone logs in.
pub(crate) fn project_counter_joins(
    c: &Connection,
    key: &[u8; 32],
    store_id: &str,
    joins: &[(String, MemberFact)],
    now: DateTime<Utc>,
) -> Result<(), HubError> {
    for (join_id, m) in joins {
        // the member hash (a join written before issue 12: its phone's)
        let Some(hash) = m.hash(key) else {
            tracing::warn!(store_id, join_id, "counter join naming no member ignored");
            continue;
        };
        let customer = crate::store::members::resolve_member(c, &hash, &m.masked(), now)?;
        let at = DateTime::parse_from_rfc3339(&m.at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        record_join(
            c,
            &format!("{store_id}/{join_id}"),
            &customer,
            store_id,
            JoinVia::Counter,
            at,
            now,
        )?;
    }
    Ok(())
}

fn month_start(now: DateTime<Utc>) -> String {
    format!("{}", now.format("%Y-%m-01T00:00:00"))
}

fn poll_view(
    c: &Connection,
    hub: &Hub,
    poll_id: &str,
    customer: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<PollView>, HubError> {
    let Some(poll) = c.poll(poll_id)? else {
        return Ok(None);
    };
    let (store_id, question, options, closes_at) =
        (poll.store_id, poll.question, poll.options, poll.closes_at);
    let counts = community::tally(options.len(), c.votes(poll_id)?);
    let my_vote = match customer {
        Some(cu) => c.vote_of(poll_id, cu)?,
        None => None,
    };
    let dir = hub.directory();
    Ok(Some(PollView {
        poll_id: poll_id.to_owned(),
        store_id,
        question,
        open: parse_ts(&closes_at) > now,
        closes_at,
        votes: counts.iter().sum(),
        ranking: community::ranking(&options, &counts)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        options: options
            .iter()
            .enumerate()
            .map(|(i, sku)| PollOptionView {
                option: i,
                sku: sku.clone(),
                name: dir
                    .products
                    .get(sku)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                votes: counts[i],
            })
            .collect(),
        my_vote,
    }))
}

fn polls_of(
    c: &Connection,
    hub: &Hub,
    store_id: &str,
    customer: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<PollView>, HubError> {
    let ids = c.recent_polls(store_id, 50)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = poll_view(c, hub, &id, customer, now)? {
            out.push(p);
        }
    }
    Ok(out)
}

impl Hub {
    /// Refuses a store id the directory does not know.
    fn known_store(&self, store_id: &str) -> Result<String, HubError> {
        self.directory()
            .stores
            .get(store_id)
            .map(|s| s.name.clone())
            .ok_or_else(|| HubError::StoreNotFound(store_id.to_owned()))
    }

    /// A store's community: members, this month's active members, and the
    /// join code for staff (made on first use).
    pub async fn community(&self, store_id: &str, staff: bool) -> Result<CommunityView, HubError> {
        let store_name = self.known_store(store_id)?;
        let sid = store_id.to_owned();
        let now = self.now();
        let month = month_start(now);
        let (members, active, code) = self
            .store
            .write(move |c| {
                let (members, active) = c.member_counts(&sid, &month)?;
                let code = if staff {
                    Some(join_code_of(c, &sid, now)?)
                } else {
                    None
                };
                Ok::<_, HubError>((members, active, code))
            })
            .await?;
        Ok(CommunityView {
            store_id: store_id.to_owned(),
            store_name,
            members,
            active_this_month: active,
            join_path: code
                .as_ref()
                .map(|c| format!("/?store={store_id}&join={c}")),
            join_code: code,
        })
    }

    /// A customer joins a store's community from the shop, by the store's
    /// join code or by a location the store serves.
    pub async fn join_online(
        &self,
        customer_id: &str,
        store_id: &str,
        how: OnlineJoin,
    ) -> Result<JoinView, HubError> {
        self.known_store(store_id)?;
        let via = match &how {
            OnlineJoin::Code(_) => JoinVia::Code,
            OnlineJoin::Location(at) => {
                let dir = self.directory();
                let serving: Vec<String> = dir
                    .stores
                    .serving(*at)
                    .map(|(s, _)| s.store_id.clone())
                    .collect();
                if !serving.iter().any(|s| s == store_id) {
                    return Err(HubError::OutsideServiceArea {
                        store_id: store_id.to_owned(),
                        serving,
                    });
                }
                JoinVia::Location
            }
        };
        let code = match how {
            OnlineJoin::Code(raw) => {
                Some(community::read_join_code(&raw).ok_or(HubError::WrongJoinCode)?)
            }
            OnlineJoin::Location(_) => None,
        };
        let (customer, store) = (customer_id.to_owned(), store_id.to_owned());
        let now = self.now();
        self.store
            .write(move |c| {
                if let Some(code) = code
                    && join_code_of(c, &store, now)? != code
                {
                    return Err(HubError::WrongJoinCode);
                }
                let join_id = format!("J{}", linli_sync::ids::ulid());
                record_join(c, &join_id, &customer, &store, via, now, now)
            })
            .await
    }

    /// A store's members (staff), newest first.
    pub async fn members(&self, user: &User, store_id: &str) -> Result<Vec<MemberView>, HubError> {
        may_manage(user, store_id)?;
        self.known_store(store_id)?;
        let sid = store_id.to_owned();
        self.store
            .read(move |c| {
                let rows = c
                    .members_of(&sid, 1000)?
                    .into_iter()
                    .map(|m| MemberView {
                        customer_id: m.customer_id,
                        phone: m.masked_phone,
                        since: m.since,
                        via: m.via,
                    })
                    .collect();
                Ok::<_, HubError>(rows)
            })
            .await
    }

    /// The customer's community and its polls; `None` if in none.
    pub async fn my_community(&self, customer_id: &str) -> Result<Option<MyCommunity>, HubError> {
        let cu = customer_id.to_owned();
        let hub = self.clone();
        let now = self.now();
        self.store
            .read(move |c| {
                let Some(m) = c.member(&cu)? else {
                    return Ok(None);
                };
                let (store_id, since, via) = (m.store_id, m.since, m.via);
                let polls = polls_of(c, &hub, &store_id, Some(&cu), now)?;
                let store_name = hub
                    .directory()
                    .stores
                    .get(&store_id)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                Ok::<_, HubError>(Some(MyCommunity {
                    store_id,
                    store_name,
                    since,
                    via,
                    polls,
                }))
            })
            .await
    }

    /// A store manager's poll before a stream.
    pub async fn create_poll(
        &self,
        user: &User,
        store_id: &str,
        draft: PollDraft,
    ) -> Result<PollView, HubError> {
        may_manage(user, store_id)?;
        self.known_store(store_id)?;
        let now = self.now();
        let products = self.directory().products;
        let draft = community::check_poll(draft, now, |s| products.contains_key(s))?;
        let poll_id = format!("P{}", linli_sync::ids::ulid());
        let (pid, sid, by) = (poll_id.clone(), store_id.to_owned(), user.name.clone());
        self.store
            .write(move |c| {
                c.add_poll(&NewPoll {
                    poll_id: &pid,
                    store_id: &sid,
                    question: &draft.question,
                    options: &draft.options,
                    closes_at: draft.closes_at,
                    created_by: &by,
                    created_at: now,
                })?;
                Ok::<_, HubError>(())
            })
            .await?;
        self.poll(store_id, &poll_id, None)
            .await?
            .ok_or(HubError::PollNotFound(poll_id))
    }

    /// A store's polls, newest first (50 at most).
    pub async fn polls(
        &self,
        store_id: &str,
        customer: Option<&str>,
    ) -> Result<Vec<PollView>, HubError> {
        self.known_store(store_id)?;
        let (sid, cu, hub) = (
            store_id.to_owned(),
            customer.map(str::to_owned),
            self.clone(),
        );
        let now = self.now();
        self.store
            .read(move |c| polls_of(c, &hub, &sid, cu.as_deref(), now))
            .await
    }

    /// One poll of a store with its results.
    pub async fn poll(
        &self,
        store_id: &str,
        poll_id: &str,
        customer: Option<&str>,
    ) -> Result<Option<PollView>, HubError> {
        let (pid, cu, hub) = (
            poll_id.to_owned(),
            customer.map(str::to_owned),
            self.clone(),
        );
        let now = self.now();
        let p = self
            .store
            .read(move |c| poll_view(c, &hub, &pid, cu.as_deref(), now))
            .await?;
        Ok(p.filter(|p| p.store_id == store_id))
    }

    /// A member's one vote.
    pub async fn vote(
        &self,
        customer_id: &str,
        store_id: &str,
        poll_id: &str,
        option: usize,
    ) -> Result<PollView, HubError> {
        let (cu, sid, pid) = (
            customer_id.to_owned(),
            store_id.to_owned(),
            poll_id.to_owned(),
        );
        let now = self.now();
        self.store
            .write(move |c| {
                let Some(poll) = c.poll(&pid)?.filter(|p| p.store_id == sid) else {
                    return Err(HubError::PollNotFound(pid));
                };
                community::check_vote(poll.options.len(), parse_ts(&poll.closes_at), option, now)?;
                let member = c.membership(&cu)?.map(|m| m.store_id);
                if member.as_deref() != Some(poll.store_id.as_str()) {
                    return Err(HubError::NotAMember(poll.store_id));
                }
                if !c.add_vote(&pid, &cu, option, now)? {
                    return Err(HubError::AlreadyVoted(pid));
                }
                Ok(())
            })
            .await?;
        self.poll(store_id, poll_id, Some(customer_id))
            .await?
            .ok_or_else(|| HubError::PollNotFound(poll_id.to_owned()))
    }
}

impl From<PollError> for HubError {
    fn from(e: PollError) -> Self {
        HubError::Poll(e)
    }
}
