//! Which channel rows belong to a customer (issue 12): the one place that
//! ties the hub's tables to a resolved customer. Handlers and use cases ask
//! here; no other module joins identities to orders in SQL.
//!
//! A **person** is either a resolved customer of the identity records
//! (`identity_records.customer_id`) or an online customer (`customers`, made
//! by a customer session, a counter join or a counter group-buy commitment)
//! that no identity customer claims: a customer known only from online
//! sessions is a customer too, under its own id.
//!
//! How rows are tied, strongest first:
//! - an online customer belongs to the identity customer holding its
//!   **openid**, else the one holding its **phone** (normalised), but only
//!   when exactly one identity customer holds it: family members sharing a
//!   phone stay apart at the resolver, so a phone they share decides nothing
//!   here either;
//! - online orders, community joins and votes, group-buy commitments and
//!   coupon claims carry the online customer id;
//! - counter sales carry the member's phone hash under the chain's member
//!   key ([`linli_shared::member`]); a hash is tied to the person holding
//!   that phone when exactly one person does, or to the online customer a
//!   counter join or commitment made under that hash before the hub knew
//!   the phone (`customers.member_hash` without a phone).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use linli_shared::identity::{PhoneReading, read_phone, read_token};
use linli_shared::order::Fulfilment;
use linli_shared::rfm::{Channel, Handover, Purchase};
use rusqlite::Connection;

use crate::error::HubError;
use crate::store::orders::{OnlinePurchase, OrderRecords};

/// One customer and the keys its channel rows carry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Person {
    pub id: String,
    /// Normalised 11-digit mobiles.
    pub phones: BTreeSet<String>,
    pub openids: BTreeSet<String>,
    pub unionids: BTreeSet<String>,
    /// Online customer ids (`customers`) that are this person.
    pub online_ids: BTreeSet<String>,
    /// Member hashes of this person's phones that no one else holds.
    pub member_hashes: BTreeSet<String>,
}

/// Every person the hub knows, with the look-ups that tie rows to them.
#[derive(Debug, Default)]
pub(crate) struct People {
    pub persons: BTreeMap<String, Person>,
    by_online: BTreeMap<String, String>,
    by_hash: BTreeMap<String, String>,
}

impl People {
    /// The person an id names: an identity customer's id or an online
    /// customer's (which may belong to an identity customer).
    pub(crate) fn get(&self, id: &str) -> Option<&Person> {
        self.persons
            .get(id)
            .or_else(|| self.persons.get(self.by_online.get(id)?))
    }

    pub(crate) fn of_online(&self, online_id: &str) -> Option<&str> {
        self.by_online.get(online_id).map(String::as_str)
    }

    pub(crate) fn of_hash(&self, member_hash: &str) -> Option<&str> {
        self.by_hash.get(member_hash).map(String::as_str)
    }
}

/// The persons last read, shared by queries while no identity record and
/// no customer's identifiers changed (counted by the `people_version`
/// triggers, `store/schema.rs`).
#[derive(Debug, Default)]
pub(crate) struct PeopleCache {
    last: Mutex<Option<(i64, Arc<People>)>>,
}

impl PeopleCache {
    /// The persons as of now: those read last if nothing changed since,
    /// else read again. The version is read before the persons, so what
    /// is kept is never older than the version it is kept under.
    pub(crate) fn get(&self, c: &Connection, key: &[u8; 32]) -> Result<Arc<People>, HubError> {
        let version: i64 = c
            .prepare_cached("SELECT v FROM people_version WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        if let Some((v, people)) = self.last.lock().ok().and_then(|l| l.clone())
            && v == version
        {
            return Ok(people);
        }
        let people = Arc::new(people(c, key)?);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((version, people.clone()));
        }
        Ok(people)
    }
}

/// Reads every person the hub knows; `key` is the chain's member key.
pub(crate) fn people(c: &Connection, key: &[u8; 32]) -> Result<People, HubError> {
    let mut persons: BTreeMap<String, Person> = BTreeMap::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT customer_id, phone, openid, unionid FROM identity_records
             WHERE customer_id IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let p = persons.entry(id.clone()).or_insert_with(|| Person {
                id,
                ..Person::default()
            });
            if let PhoneReading::Mobile(m) = read_phone(&r.get::<_, String>(1)?) {
                p.phones.insert(m.as_str().to_owned());
            }
            if let Some(o) = read_token(&r.get::<_, String>(2)?) {
                p.openids.insert(o.to_owned());
            }
            if let Some(u) = read_token(&r.get::<_, String>(3)?) {
                p.unionids.insert(u.to_owned());
            }
        }
    }
    let owners = |pick: fn(&Person) -> &BTreeSet<String>| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in persons.values() {
            for v in pick(p) {
                m.entry(v.clone()).or_default().insert(p.id.clone());
            }
        }
        m
    };
    let (by_phone, by_openid) = (owners(|p| &p.phones), owners(|p| &p.openids));
    let only = |m: &BTreeMap<String, BTreeSet<String>>, v: &Option<String>| {
        let set = m.get(v.as_deref()?)?;
        (set.len() == 1)
            .then(|| set.iter().next().cloned())
            .flatten()
    };
    let mut by_online = BTreeMap::new();
    let mut hash_only: Vec<(String, String)> = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT customer_id, phone, openid, member_hash FROM customers ORDER BY customer_id",
        )?;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, Option<String>, Option<String>, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (online, phone, openid, member_hash) in rows {
            // a customer a counter named by hash before the hub knew the
            // phone: the hash is all there is to tie its counter facts
            if phone.is_none()
                && let Some(h) = member_hash
            {
                hash_only.push((h, online.clone()));
            }
            let owner = only(&by_openid, &openid).or_else(|| only(&by_phone, &phone));
            let pid = owner.unwrap_or_else(|| online.clone());
            let p = persons.entry(pid.clone()).or_insert_with(|| Person {
                id: pid.clone(),
                ..Person::default()
            });
            p.online_ids.insert(online.clone());
            p.phones.extend(phone);
            p.openids.extend(openid);
            by_online.insert(online, pid);
        }
    }
    // a phone held by exactly one person ties that person's counter sales
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in persons.values() {
        for ph in &p.phones {
            holders.entry(ph.clone()).or_default().insert(p.id.clone());
        }
    }
    let mut by_hash_holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (phone, who) in holders {
        by_hash_holders
            .entry(linli_shared::member::member_hash(key, &phone))
            .or_default()
            .extend(who);
    }
    for (h, online) in hash_only {
        if let Some(pid) = by_online.get(&online) {
            by_hash_holders.entry(h).or_default().insert(pid.clone());
        }
    }
    let mut by_hash = BTreeMap::new();
    for (h, who) in by_hash_holders {
        if let [only] = who.into_iter().collect::<Vec<_>>().as_slice() {
            if let Some(p) = persons.get_mut(only) {
                p.member_hashes.insert(h.clone());
            }
            by_hash.insert(h, only.clone());
        }
    }
    Ok(People {
        persons,
        by_online,
        by_hash,
    })
}

/// Every person's purchases: counter sales matched by member hash (net of
/// their refunds) and online orders that are not cancelled and not waiting
/// for payment (their total as placed).
pub(crate) fn purchases(
    c: &Connection,
    people: &People,
) -> Result<BTreeMap<String, Vec<Purchase>>, HubError> {
    let mut out: BTreeMap<String, Vec<Purchase>> = BTreeMap::new();
    let mut stmt = c.prepare_cached(
        "SELECT s.member_hash, s.store_id, s.created_at,
                s.total_fen - coalesce((SELECT sum(r.amount_fen) FROM hub_refunds r
                                        WHERE r.store_id = s.store_id AND r.sale_id = s.sale_id), 0)
         FROM hub_sales s WHERE s.member_hash IS NOT NULL",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let Some(pid) = people.of_hash(&r.get::<_, String>(0)?) else {
            continue;
        };
        let Some(at) = parse_at(&r.get::<_, String>(2)?) else {
            continue;
        };
        out.entry(pid.to_owned()).or_default().push(Purchase {
            at,
            store_id: r.get(1)?,
            channel: Channel::Counter,
            amount_fen: r.get(3)?,
            handover: None,
        });
    }
    for OnlinePurchase {
        customer_id,
        fact: f,
    } in c.online_purchases()?
    {
        let Some(pid) = people.of_online(&customer_id) else {
            continue;
        };
        let Some(at) = parse_at(&f.placed_at) else {
            continue;
        };
        out.entry(pid.to_owned()).or_default().push(Purchase {
            at,
            store_id: f.store_id,
            channel: Channel::Online,
            amount_fen: f.total_fen,
            handover: Some(match f.fulfilment {
                Fulfilment::Pickup => Handover::Pickup,
                Fulfilment::Delivery => Handover::Delivery,
            }),
        });
    }
    Ok(out)
}

fn parse_at(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// The community a person belongs to now (the newest membership of any of
/// its online ids).
pub(crate) fn community_of(c: &Connection, p: &Person) -> Result<Option<String>, HubError> {
    let mut stmt = c.prepare_cached(
        "SELECT store_id, latest_at FROM community_members WHERE customer_id = ?1",
    )?;
    let mut best: Option<(String, String)> = None;
    for id in &p.online_ids {
        let rows: Vec<(String, String)> = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (store, at) in rows {
            if best.as_ref().is_none_or(|(_, b)| at > *b) {
                best = Some((store, at));
            }
        }
    }
    Ok(best.map(|(s, _)| s))
}
