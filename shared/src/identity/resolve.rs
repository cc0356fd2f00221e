//! The rules that join records into customers, in the order they apply.
//!
//! 1. **Strong identifiers** — the same unionid, openid or member card is the
//!    same person: a unionid is one person's across every WeChat app (so it
//!    ties that person's openids), and a member card ties a phone that
//!    changed. Only a never-merge pair, or two unionids ending in one
//!    customer, stops these.
//! 2. **Phone** — records with the same (normalised) mobile join, unless the
//!    phone is *ambiguous*: the groups it touches after step 1 carry two
//!    unionids, two member cards or two names. That is a family sharing one
//!    number, each with their own WeChat or card (Segment warns of the same
//!    with shared in-store devices), or a number typed for strangers; merging
//!    on it would make one customer of several people. Every join is also
//!    refused if the two groups would then hold two unionids, cards or names.
//! 3. **Name on an ambiguous phone** — on such a phone, groups with the same
//!    single name (the card's name equals the WeChat nickname) join; the
//!    phone narrows "same name" to one household.
//! 4. **Name at a store** — when exactly two groups carry one name at one
//!    store, they join, unless that would put two unionids, cards or names in
//!    one customer or both have phones and share none.
//!
//! What the data cannot decide: records with only a phone (a till sale) on a
//! phone that two people share go to no one (left alone, never guessed);
//! a family phone where only one member ever shows an identifier looks like a
//! single person's and is merged (see the bench for how many pairs that costs).
//!
//! Each join that changes the partition is kept as a [`Merge`] with the rule,
//! the shared value and the two records that carried it: that is the "why"
//! the hub shows, and what an unmerge undoes.

use super::SourceRecord;
use super::normalize::{Mobile, PhoneReading, read_phone, read_token};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The rule that made a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Unionid,
    Openid,
    MemberCard,
    Phone,
    NameOnSharedPhone,
    NameAtStore,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Unionid => "unionid",
            Rule::Openid => "openid",
            Rule::MemberCard => "member_card",
            Rule::Phone => "phone",
            Rule::NameOnSharedPhone => "name_on_shared_phone",
            Rule::NameAtStore => "name_at_store",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        [
            Rule::Unionid,
            Rule::Openid,
            Rule::MemberCard,
            Rule::Phone,
            Rule::NameOnSharedPhone,
            Rule::NameAtStore,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One join: `a` and `b` carried the same `value` and `rule` accepted it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Merge {
    pub rule: Rule,
    /// The shared identifier (a phone in its normalised form; for
    /// `name_at_store`, `name@store`).
    pub value: String,
    pub a: String,
    pub b: String,
}

/// Two records that must never be in one customer (an unmerge, or a
/// constraint given by staff).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NeverMerge(pub String, pub String);

/// Why a phone was not used to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ambiguity {
    /// Two different unionids, cards or names: a household sharing a number.
    Shared,
    /// Three or more of them: a number typed for strangers (a counter phone).
    Counter,
}

/// One customer: its records, sorted by id, and the merges that joined them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub records: Vec<String>,
    pub merges: Vec<Merge>,
}

/// The partition of the records into customers, clusters sorted by their
/// smallest record id, and the phones that were not merged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub clusters: Vec<Cluster>,
    pub ambiguous_phones: BTreeMap<Mobile, Ambiguity>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Two records with one id: the caller must deduplicate first.
    #[error("record id {0:?} appears twice")]
    DuplicateRecord(String),
    /// A record with an empty id.
    #[error("a record has an empty record_id")]
    EmptyRecordId,
}

/// What each group of records (a union-find root) carries, for the conflict
/// checks of the weak rules. Sets stay tiny (one or two values), so sorted
/// vectors.
#[derive(Debug, Default, Clone)]
struct Sig {
    unionids: Vec<u32>,
    cards: Vec<u32>,
    names: Vec<u32>,
    phones: Vec<u32>,
    /// Records this group must never contain (never-merge partners).
    forbidden: Vec<usize>,
}

fn union_into(a: &mut Vec<u32>, b: &[u32]) {
    for v in b {
        if let Err(i) = a.binary_search(v) {
            a.insert(i, *v);
        }
    }
}

fn union_len(a: &[u32], b: &[u32]) -> usize {
    a.len() + b.iter().filter(|v| a.binary_search(v).is_err()).count()
}

/// Union-find over record indices, with each root's [`Sig`].
struct Groups {
    parent: Vec<usize>,
    size: Vec<usize>,
    sig: Vec<Sig>,
    merges: Vec<(usize, Merge)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Never-merge pairs and two unionids in one group stop the join: a
    /// unionid is one person, so an openid or card seen with two of them is
    /// wrong somewhere and joins neither.
    Strong,
    /// Also no two unionids, cards or names in one group.
    Conflicts,
    /// Also, when both have phones, they share one.
    ConflictsAndPhones,
}

impl Groups {
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn forbids(&mut self, ra: usize, rb: usize) -> bool {
        let fa = self.sig[ra].forbidden.clone();
        if fa.iter().any(|&f| self.find(f) == rb) {
            return true;
        }
        let fb = self.sig[rb].forbidden.clone();
        fb.iter().any(|&f| self.find(f) == ra)
    }

    fn conflicts(&self, ra: usize, rb: usize, check: Check) -> bool {
        let (a, b) = (&self.sig[ra], &self.sig[rb]);
        if union_len(&a.unionids, &b.unionids) > 1 {
            return true;
        }
        if check == Check::Strong {
            return false;
        }
        if union_len(&a.cards, &b.cards) > 1 || union_len(&a.names, &b.names) > 1 {
            return true;
        }
        check == Check::ConflictsAndPhones
            && !a.phones.is_empty()
            && !b.phones.is_empty()
            && union_len(&a.phones, &b.phones) == a.phones.len() + b.phones.len()
    }

    /// Joins the groups of records `a` and `b` if the check allows; records
    /// the merge when the partition changed.
    fn join(&mut self, a: usize, b: usize, check: Check, why: impl FnOnce() -> Merge) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb || self.conflicts(ra, rb, check) || self.forbids(ra, rb) {
            return false;
        }
        // The smaller index stays root, so roots do not depend on join order
        // within a step more than the partition does.
        let (keep, gone) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[gone] = keep;
        self.size[keep] += self.size[gone];
        let g = std::mem::take(&mut self.sig[gone]);
        let k = &mut self.sig[keep];
        union_into(&mut k.unionids, &g.unionids);
        union_into(&mut k.cards, &g.cards);
        union_into(&mut k.names, &g.names);
        union_into(&mut k.phones, &g.phones);
        k.forbidden.extend(g.forbidden);
        self.merges.push((a, why()));
        true
    }
}

/// Interns strings to small integers, so signatures compare numbers.
#[derive(Default)]
struct Interner<'a> {
    /// Ids are given in record order, so a hash map keeps them deterministic.
    ids: HashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(s, id);
        self.names.push(s);
        id
    }

    fn name(&self, id: u32) -> &'a str {
        self.names.get(id as usize).copied().unwrap_or("")
    }
}

/// Groups records into customers (the module doc gives the rules). The same
/// set of records and constraints gives the same clusters and merges in any
/// order; a never-merge pair naming an unknown record is ignored.
pub fn resolve(
    records: &[SourceRecord],
    never: &[NeverMerge],
) -> Result<Resolution, IdentityError> {
    let mut recs: Vec<&SourceRecord> = records.iter().collect();
    recs.sort_by(|a, b| a.record_id.cmp(&b.record_id));
    for w in recs.windows(2) {
        if w[0].record_id == w[1].record_id {
            return Err(IdentityError::DuplicateRecord(w[0].record_id.clone()));
        }
    }
    if recs.first().is_some_and(|r| r.record_id.is_empty()) {
        return Err(IdentityError::EmptyRecordId);
    }
    let n = recs.len();
    // Records are sorted by id, so a never-merge pair finds its records by
    // binary search.
    let index = |id: &str| recs.binary_search_by(|r| r.record_id.as_str().cmp(id)).ok();

    let phones: Vec<Option<Mobile>> = recs
        .iter()
        .map(|r| match read_phone(&r.phone) {
            PhoneReading::Mobile(m) => Some(m),
            _ => None,
        })
        .collect();
    let mut strings = Interner::default();
    let mut phone_ids = Interner::default();
    let mut g = Groups {
        parent: (0..n).collect(),
        size: vec![1; n],
        sig: Vec::with_capacity(n),
        merges: Vec::new(),
    };
    for (i, r) in recs.iter().enumerate() {
        let mut s = Sig::default();
        if let Some(u) = read_token(&r.unionid) {
            s.unionids.push(strings.id(u));
        }
        if let Some(c) = read_token(&r.member_card) {
            s.cards.push(strings.id(c));
        }
        if let Some(nm) = read_token(&r.nickname) {
            s.names.push(strings.id(nm));
        }
        if let Some(p) = &phones[i] {
            s.phones.push(phone_ids.id(p.as_str()));
        }
        g.sig.push(s);
    }
    for NeverMerge(a, b) in never {
        if let (Some(ia), Some(ib)) = (index(a), index(b))
            && ia != ib
        {
            g.sig[ia].forbidden.push(ib);
            g.sig[ib].forbidden.push(ia);
        }
    }

    // 1. Strong identifiers.
    for (rule, field) in [
        (
            Rule::Unionid,
            (|r: &SourceRecord| &r.unionid) as fn(&SourceRecord) -> &String,
        ),
        (Rule::Openid, |r| &r.openid),
        (Rule::MemberCard, |r| &r.member_card),
    ] {
        let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, r) in recs.iter().enumerate() {
            if let Some(v) = read_token(field(r)) {
                by.entry(v).or_default().push(i);
            }
        }
        for (value, ids) in &by {
            link_all(&mut g, &recs, ids, Check::Strong, rule, value);
        }
    }

    // 2. Phones, judged on the groups step 1 made.
    let mut by_phone: BTreeMap<&Mobile, Vec<usize>> = BTreeMap::new();
    for (i, p) in phones.iter().enumerate() {
        if let Some(p) = p {
            by_phone.entry(p).or_default().push(i);
        }
    }
    let mut ambiguous = BTreeMap::new();
    for (phone, ids) in &by_phone {
        let roots: BTreeSet<usize> = ids.iter().map(|&i| g.find(i)).collect();
        let (mut u, mut c, mut nm) = (Vec::new(), Vec::new(), Vec::new());
        for r in roots {
            union_into(&mut u, &g.sig[r].unionids);
            union_into(&mut c, &g.sig[r].cards);
            union_into(&mut nm, &g.sig[r].names);
        }
        let most = u.len().max(c.len()).max(nm.len());
        if most >= 3 {
            ambiguous.insert((*phone).clone(), Ambiguity::Counter);
        } else if most == 2 {
            ambiguous.insert((*phone).clone(), Ambiguity::Shared);
        }
    }
    for (phone, ids) in &by_phone {
        if !ambiguous.contains_key(*phone) {
            link_all(
                &mut g,
                &recs,
                ids,
                Check::Conflicts,
                Rule::Phone,
                phone.as_str(),
            );
        }
    }

    // 3. One name on a shared (not counter) phone.
    for (phone, ids) in &by_phone {
        if ambiguous.get(*phone) != Some(&Ambiguity::Shared) {
            continue;
        }
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in ids {
            let r = g.find(i);
            if let [name] = g.sig[r].names[..] {
                let carrier = name_carrier(&mut g, &recs, ids, r).unwrap_or(i);
                let entry = by_name.entry(strings.name(name)).or_default();
                if !entry.contains(&carrier) {
                    entry.push(carrier);
                }
            }
        }
        for (name, carriers) in &by_name {
            let value = format!("{name}@{phone}");
            link_all(
                &mut g,
                &recs,
                carriers,
                Check::Conflicts,
                Rule::NameOnSharedPhone,
                &value,
            );
        }
    }

    // 4. One name at one store, when exactly two groups carry it.
    let mut by_name_store: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        if let Some(nm) = read_token(&r.nickname) {
            by_name_store
                .entry((nm, r.store_id.trim()))
                .or_default()
                .push(i);
        }
    }
    for ((name, store), ids) in &by_name_store {
        let roots: BTreeSet<usize> = ids.iter().map(|&i| g.find(i)).collect();
        if roots.len() != 2 {
            continue;
        }
        let first = ids[0];
        let r0 = g.find(first);
        let Some(&other) = ids.iter().find(|&&i| g.find(i) != r0) else {
            continue;
        };
        let value = format!("{name}@{store}");
        g.join(first, other, Check::ConflictsAndPhones, || Merge {
            rule: Rule::NameAtStore,
            value,
            a: recs[first].record_id.clone(),
            b: recs[other].record_id.clone(),
        });
    }

    // The partition, clusters in order of their smallest record.
    let mut cluster_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut clusters: Vec<Cluster> = Vec::new();
    for (i, rec) in recs.iter().enumerate() {
        let r = g.find(i);
        let c = *cluster_of.entry(r).or_insert_with(|| {
            clusters.push(Cluster {
                records: Vec::new(),
                merges: Vec::new(),
            });
            clusters.len() - 1
        });
        clusters[c].records.push(rec.record_id.clone());
    }
    let merges = std::mem::take(&mut g.merges);
    for (a, m) in merges {
        let r = g.find(a);
        if let Some(&c) = cluster_of.get(&r) {
            clusters[c].merges.push(m);
        }
    }
    Ok(Resolution {
        clusters,
        ambiguous_phones: ambiguous,
    })
}

/// Links the records of `ids` (sorted), which share `value`: each joins the
/// first earlier record it may join, so one refused pair (a never-merge, a
/// conflict) leaves out only what it must.
fn link_all(
    g: &mut Groups,
    recs: &[&SourceRecord],
    ids: &[usize],
    check: Check,
    rule: Rule,
    value: &str,
) {
    let mut anchors: Vec<usize> = Vec::new();
    for &i in ids {
        let mut placed = false;
        for &a in &anchors {
            if g.find(a) == g.find(i)
                || g.join(a, i, check, || Merge {
                    rule,
                    value: value.to_owned(),
                    a: recs[a].record_id.clone(),
                    b: recs[i].record_id.clone(),
                })
            {
                placed = true;
                break;
            }
        }
        if !placed {
            anchors.push(i);
        }
    }
}

/// The first record of `ids` in group `root` that itself carries a name, so
/// the merge names the records whose names matched.
fn name_carrier(
    g: &mut Groups,
    recs: &[&SourceRecord],
    ids: &[usize],
    root: usize,
) -> Option<usize> {
    ids.iter()
        .copied()
        .find(|&i| g.find(i) == root && read_token(&recs[i].nickname).is_some())
}

/// The never-merge pairs that split `records` off the customer whose records
/// are `customer`: each split record against each one that stays. Resolving
/// again with them keeps the two sides apart whatever identifiers they share.
pub fn split_off(customer: &[String], records: &[String]) -> Vec<NeverMerge> {
    let split: BTreeSet<&String> = records.iter().collect();
    let mut out = Vec::new();
    for s in &split {
        for stay in customer.iter().filter(|r| !split.contains(r)) {
            let (a, b) = if *s < stay { (*s, stay) } else { (stay, *s) };
            out.push(NeverMerge(a.clone(), b.clone()));
        }
    }
    out.sort();
    out.dedup();
    out
}
