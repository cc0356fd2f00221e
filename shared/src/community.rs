//! 一店一群: every store has one community of neighbours, and its manager
//! runs polls in it before a live stream (DESIGN.md §7).
//!
//! The rules here are pure, so the hub and its tests share them:
//! - **One community at a time.** A customer belongs to the community of
//!   the newest join (by the time it was made, not the time the hub heard
//!   of it): a join taken at a counter during an outage and synced hours
//!   later is recorded as history, but does not pull back a customer who
//!   has since joined another store. Ties go to the larger join id, so
//!   every replay of the same joins ends in the same membership.
//! - **Join codes** are six characters from an alphabet without look-alikes
//!   (no 0/O, 1/I/L), read case-insensitively.
//! - **Polls** ask one question with two to eight products; a member votes
//!   once, for one option, until the poll closes. The ranking of the options
//!   (most votes first, ties in the manager's order) is the featured list
//!   the next live session starts from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a customer joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinVia {
    /// A cashier added the customer by phone (offline too).
    Counter,
    /// The customer scanned or typed the store's join code.
    Code,
    /// The store whose service area covers the customer's location.
    Location,
}

impl JoinVia {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinVia::Counter => "counter",
            JoinVia::Code => "code",
            JoinVia::Location => "location",
        }
    }

    pub fn parse(s: &str) -> Option<JoinVia> {
        match s {
            "counter" => Some(JoinVia::Counter),
            "code" => Some(JoinVia::Code),
            "location" => Some(JoinVia::Location),
            _ => None,
        }
    }
}

/// A join taken at a store's counter, as the store's ledger records it
/// (section `members`, keyed by `join_id`). The chain's member hash of the
/// phone is what lets the hub find the customer (it hashes the phones it
/// knows under the same key); the phone itself is never written
/// ([`crate::member`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFact {
    pub join_id: String,
    /// HMAC-SHA256 of the normalised phone under the chain's member key.
    #[serde(default)]
    pub member_hash: String,
    /// `138****1234`: what staff see of the member.
    #[serde(default)]
    pub masked_phone: String,
    /// The phone in the clear, as joins written before 2026-12-02 carried
    /// it: read so they still project, never written.
    #[serde(default, skip_serializing)]
    pub phone: String,
    /// When the cashier took it (RFC 3339, UTC).
    pub at: String,
    pub staff: String,
}

impl MemberFact {
    /// The member's hash: the one written, else that of an old entry's phone.
    pub fn hash(&self, key: &[u8; 32]) -> Option<String> {
        crate::member::hash_or_legacy(key, &self.member_hash, &self.phone)
    }

    /// What staff see of the member's phone (old entries: masked on read).
    pub fn masked(&self) -> String {
        if self.masked_phone.is_empty() {
            crate::member::mask_phone(self.phone.trim())
        } else {
            self.masked_phone.clone()
        }
    }
}

/// Where a customer belongs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub store_id: String,
    /// The newest join into this community (a re-join renews it): joins
    /// elsewhere are ordered against this one.
    pub latest_at: DateTime<Utc>,
    pub latest_join_id: String,
}

/// What a join does to a customer's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The customer had no community; now this one.
    Joined,
    /// Already a member of this store's community; `renews` when this join
    /// is newer than the one on record (it becomes the latest).
    Already { renews: bool },
    /// The customer moves here from `from`.
    Moved { from: String },
    /// A newer join elsewhere already stands: the join is history only.
    Superseded { current: String },
}

impl JoinOutcome {
    /// Whether the membership's latest join becomes this one.
    pub fn takes_effect(&self) -> bool {
        matches!(
            self,
            JoinOutcome::Joined | JoinOutcome::Moved { .. } | JoinOutcome::Already { renews: true }
        )
    }
}

/// Decides what a join made at `at` with `join_id` into `store_id` does,
/// given the customer's current membership.
pub fn join(
    current: Option<&Membership>,
    store_id: &str,
    at: DateTime<Utc>,
    join_id: &str,
) -> JoinOutcome {
    let Some(cur) = current else {
        return JoinOutcome::Joined;
    };
    let newer = (at, join_id) > (cur.latest_at, cur.latest_join_id.as_str());
    match (cur.store_id == store_id, newer) {
        (true, renews) => JoinOutcome::Already { renews },
        (false, true) => JoinOutcome::Moved {
            from: cur.store_id.clone(),
        },
        (false, false) => JoinOutcome::Superseded {
            current: cur.store_id.clone(),
        },
    }
}

/// The join-code alphabet: digits and capitals without 0/O, 1/I/L.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const JOIN_CODE_LEN: usize = 6;

/// A join code from six random bytes.
pub fn join_code(random: [u8; JOIN_CODE_LEN]) -> String {
    random
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect()
}

/// A typed or scanned join code in its canonical form, if it can be one.
pub fn read_join_code(raw: &str) -> Option<String> {
    let code: String = raw
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == JOIN_CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

pub const MAX_POLL_OPTIONS: usize = 8;
pub const MAX_QUESTION_CHARS: usize = 100;

/// A poll as the manager asks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollDraft {
    pub question: String,
    /// SKUs, in the manager's order.
    pub options: Vec<String>,
    pub closes_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error(
        "请填写投票问题（1–{MAX_QUESTION_CHARS} 字） (question must be 1-{MAX_QUESTION_CHARS} characters)"
    )]
    Question,
    #[error(
        "投票需要 2–{MAX_POLL_OPTIONS} 个不重复的商品选项 (a poll needs 2-{MAX_POLL_OPTIONS} distinct products)"
    )]
    Options,
    #[error("没有商品 {0} (no product has SKU {0}; see GET /api/v1/products)")]
    UnknownSku(String),
    #[error("截止时间必须在现在之后 (closes_at must be in the future)")]
    ClosesInPast,
    #[error("投票已截止 (the poll closed at {0})")]
    Closed(DateTime<Utc>),
    #[error("没有第 {0} 个选项 (option {0} does not exist; options count from 0)")]
    NoSuchOption(usize),
}

/// Checks a draft at `now`; `known` says whether a SKU is in the catalog.
/// Returns the draft with its question trimmed.
pub fn check_poll(
    mut draft: PollDraft,
    now: DateTime<Utc>,
    known: impl Fn(&str) -> bool,
) -> Result<PollDraft, PollError> {
    draft.question = draft.question.trim().to_owned();
    let chars = draft.question.chars().count();
    if chars == 0 || chars > MAX_QUESTION_CHARS || draft.question.chars().any(char::is_control) {
        return Err(PollError::Question);
    }
    let n = draft.options.len();
    let mut seen = std::collections::BTreeSet::new();
    if !(2..=MAX_POLL_OPTIONS).contains(&n) || !draft.options.iter().all(|o| seen.insert(o)) {
        return Err(PollError::Options);
    }
    if let Some(sku) = draft.options.iter().find(|s| !known(s)) {
        return Err(PollError::UnknownSku(sku.clone()));
    }
    if draft.closes_at <= now {
        return Err(PollError::ClosesInPast);
    }
    Ok(draft)
}

/// Checks a vote for `option` of a poll with `options` options closing at
/// `closes_at`.
pub fn check_vote(
    options: usize,
    closes_at: DateTime<Utc>,
    option: usize,
    now: DateTime<Utc>,
) -> Result<(), PollError> {
    if now >= closes_at {
        return Err(PollError::Closed(closes_at));
    }
    if option >= options {
        return Err(PollError::NoSuchOption(option));
    }
    Ok(())
}

/// Votes per option (votes for options that do not exist are ignored).
pub fn tally(options: usize, votes: impl IntoIterator<Item = usize>) -> Vec<u64> {
    let mut counts = vec![0u64; options];
    for v in votes {
        if let Some(c) = counts.get_mut(v) {
            *c += 1;
        }
    }
    counts
}

/// The options ranked for a live session: most votes first, ties in the
/// manager's order.
pub fn ranking<'a>(options: &'a [String], counts: &[u64]) -> Vec<&'a str> {
    let mut idx: Vec<usize> = (0..options.len()).collect();
    idx.sort_by_key(|&i| (std::cmp::Reverse(counts.get(i).copied().unwrap_or(0)), i));
    idx.into_iter().map(|i| options[i].as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn apply(m: &mut Option<Membership>, store: &str, at: DateTime<Utc>, id: &str) {
        if join(m.as_ref(), store, at, id).takes_effect() {
            *m = Some(Membership {
                store_id: store.into(),
                latest_at: at,
                latest_join_id: id.into(),
            });
        }
    }

    #[test]
    fn a_late_counter_join_does_not_pull_a_customer_back() {
        let mut m = None;
        apply(&mut m, "S002", t(11), "j2");
        // the counter join at S001 happened at 10:00 but arrives now
        let late = join(m.as_ref(), "S001", t(10), "j1");
        assert_eq!(
            late,
            JoinOutcome::Superseded {
                current: "S002".into()
            }
        );
        assert_eq!(
            join(m.as_ref(), "S001", t(12), "j3"),
            JoinOutcome::Moved {
                from: "S002".into()
            }
        );
        assert_eq!(
            join(m.as_ref(), "S002", t(13), "j4"),
            JoinOutcome::Already { renews: true }
        );
        assert_eq!(
            join(m.as_ref(), "S002", t(9), "j0"),
            JoinOutcome::Already { renews: false }
        );
    }

    proptest! {
        /// Whatever order the hub hears of a customer's joins in, the
        /// membership ends at the newest one.
        #[test]
        fn membership_is_the_newest_join_in_any_order(
            joins in proptest::collection::vec((0u32..24, 0usize..3), 1..12),
            seed in any::<u64>(),
        ) {
            let stores = ["S001", "S002", "S003"];
            let joins: Vec<(DateTime<Utc>, &str, String)> = joins
                .iter()
                .enumerate()
                .map(|(i, (h, s))| (t(*h), stores[*s], format!("j{i:02}")))
                .collect();
            let mut shuffled = joins.clone();
            let mut r = seed;
            for i in (1..shuffled.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (r >> 33) as usize % (i + 1));
            }
            let mut m = None;
            for (at, s, id) in &shuffled {
                apply(&mut m, s, *at, id);
            }
            let newest = joins.iter().max_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2))).unwrap();
            let m = m.unwrap();
            prop_assert_eq!(m.store_id.as_str(), newest.1);
            prop_assert_eq!(&m.latest_join_id, &newest.2);
        }
    }

    #[test]
    fn join_codes_read_back_and_refuse_look_alikes() {
        let code = join_code([0, 7, 30, 31, 200, 255]);
        assert_eq!(code.len(), JOIN_CODE_LEN);
        assert_eq!(read_join_code(&code.to_lowercase()), Some(code.clone()));
        assert_eq!(
            read_join_code(&format!(" {}-{} ", &code[..3], &code[3..])),
            Some(code)
        );
        assert_eq!(read_join_code("AB0OI1"), None);
        assert_eq!(read_join_code("ABCDE"), None);
    }

    #[test]
    fn polls_are_checked_and_ranked() {
        let known = |s: &str| s.starts_with("SKU");
        let draft = |q: &str, o: &[&str], h| PollDraft {
            question: q.into(),
            options: o.iter().map(|s| s.to_string()).collect(),
            closes_at: t(h),
        };
        let ok = check_poll(
            draft("  明天店播看哪款？ ", &["SKU1", "SKU2"], 20),
            t(9),
            known,
        )
        .unwrap();
        assert_eq!(ok.question, "明天店播看哪款？");
        assert_eq!(
            check_poll(draft("", &["SKU1", "SKU2"], 20), t(9), known),
            Err(PollError::Question)
        );
        assert_eq!(
            check_poll(draft("q", &["SKU1", "SKU1"], 20), t(9), known),
            Err(PollError::Options)
        );
        assert_eq!(
            check_poll(draft("q", &["SKU1"], 20), t(9), known),
            Err(PollError::Options)
        );
        assert_eq!(
            check_poll(draft("q", &["SKU1", "X"], 20), t(9), known),
            Err(PollError::UnknownSku("X".into()))
        );
        assert_eq!(
            check_poll(draft("q", &["SKU1", "SKU2"], 9), t(9), known),
            Err(PollError::ClosesInPast)
        );
        assert_eq!(check_vote(2, t(20), 1, t(19)), Ok(()));
        assert_eq!(
            check_vote(2, t(20), 2, t(19)),
            Err(PollError::NoSuchOption(2))
        );
        assert_eq!(
            check_vote(2, t(20), 0, t(20)),
            Err(PollError::Closed(t(20)))
        );
        let opts: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let counts = tally(3, [2, 1, 2, 9, 0, 1]);
        assert_eq!(counts, vec![1, 2, 2]);
        assert_eq!(ranking(&opts, &counts), vec!["B", "C", "A"]);
    }
}
