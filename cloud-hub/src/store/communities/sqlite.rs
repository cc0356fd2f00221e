//! [`CommunityRecords`] on SQLite: the community tables on the caller's
//! connection. Times are RFC 3339 text; a poll's options are a JSON array
//! of SKUs. Every statement but an erasure's runs per request or per
//! synced batch, so each is a cached statement.

use chrono::{DateTime, Utc};
use linli_shared::community::{JoinVia, Membership};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{CommunityRecords, JoinRecord, Member, NewPoll, Poll, RecordedJoin};
use crate::store::StoreError;
use crate::store::json_rows::rows;
use crate::time::{parse_ts, ts};

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        customer_id: r.get(0)?,
        store_id: r.get(1)?,
        since: r.get(2)?,
        via: r.get(3)?,
        masked_phone: r.get(4)?,
    })
}

impl CommunityRecords for Connection {
    fn join_code(&self, store_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .prepare_cached("SELECT join_code FROM communities WHERE store_id = ?1")?
            .query_row([store_id], |r| r.get(0))
            .optional()?)
    }

    fn put_join_code(
        &self,
        store_id: &str,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .prepare_cached(
                "INSERT OR IGNORE INTO communities(store_id, join_code, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![store_id, code, ts(now)])?;
        Ok(n == 1)
    }

    fn membership(&self, customer_id: &str) -> Result<Option<Membership>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT store_id, latest_at, latest_join_id FROM community_members WHERE customer_id = ?1",
            )?
            .query_row([customer_id], |r| {
                Ok(Membership {
                    store_id: r.get(0)?,
                    latest_at: parse_ts(&r.get::<_, String>(1)?),
                    latest_join_id: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn member(&self, customer_id: &str) -> Result<Option<Member>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT m.customer_id, m.store_id, m.since, m.via, coalesce(cu.masked_phone, '')
                 FROM community_members m LEFT JOIN customers cu ON cu.customer_id = m.customer_id
                 WHERE m.customer_id = ?1",
            )?
            .query_row([customer_id], member_row)
            .optional()?)
    }

    fn members_of(&self, store_id: &str, limit: u32) -> Result<Vec<Member>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT m.customer_id, m.store_id, m.since, m.via, coalesce(cu.masked_phone, '')
             FROM community_members m LEFT JOIN customers cu ON cu.customer_id = m.customer_id
             WHERE m.store_id = ?1 ORDER BY m.since DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![store_id, limit], member_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn member_counts(&self, store_id: &str, since: &str) -> Result<(i64, i64), StoreError> {
        let members: i64 = self
            .prepare_cached("SELECT count(*) FROM community_members WHERE store_id = ?1")?
            .query_row([store_id], |r| r.get(0))?;
        let active: i64 = self
            .prepare_cached(
                "SELECT count(*) FROM community_members m WHERE m.store_id = ?1 AND EXISTS
                    (SELECT 1 FROM member_activity a WHERE a.customer_id = m.customer_id AND a.at >= ?2)",
            )?
            .query_row(params![store_id, since], |r| r.get(0))?;
        Ok((members, active))
    }

    fn set_member(
        &self,
        customer_id: &str,
        store_id: &str,
        via: JoinVia,
        at: DateTime<Utc>,
        join_id: &str,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO community_members(customer_id, store_id, since, via, latest_at, latest_join_id)
             VALUES (?1, ?2, ?3, ?4, ?3, ?5)
             ON CONFLICT(customer_id) DO UPDATE SET store_id = excluded.store_id,
                 since = excluded.since, via = excluded.via,
                 latest_at = excluded.latest_at, latest_join_id = excluded.latest_join_id",
        )?
        .execute(params![customer_id, store_id, ts(at), via.as_str(), join_id])?;
        Ok(())
    }

    fn renew_member(
        &self,
        customer_id: &str,
        at: DateTime<Utc>,
        join_id: &str,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE community_members SET latest_at = ?2, latest_join_id = ?3 WHERE customer_id = ?1",
        )?
        .execute(params![customer_id, ts(at), join_id])?;
        Ok(())
    }

    fn recorded_join(&self, join_id: &str) -> Result<Option<RecordedJoin>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT customer_id, store_id, outcome, moved_from FROM community_joins WHERE join_id = ?1",
            )?
            .query_row([join_id], |r| {
                Ok(RecordedJoin {
                    customer_id: r.get(0)?,
                    store_id: r.get(1)?,
                    outcome: r.get(2)?,
                    moved_from: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn add_join(&self, j: &JoinRecord) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO community_joins(join_id, customer_id, store_id, via, at, outcome, moved_from, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            j.join_id,
            j.customer_id,
            j.store_id,
            j.via.as_str(),
            ts(j.at),
            j.outcome,
            j.moved_from,
            ts(j.recorded_at)
        ])?;
        Ok(())
    }

    fn poll(&self, poll_id: &str) -> Result<Option<Poll>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT store_id, question, options, closes_at FROM polls WHERE poll_id = ?1",
            )?
            .query_row([poll_id], |r| {
                Ok(Poll {
                    poll_id: poll_id.to_owned(),
                    store_id: r.get(0)?,
                    question: r.get(1)?,
                    options: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    closes_at: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn recent_polls(&self, store_id: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT poll_id FROM polls WHERE store_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
        )?;
        let ids = stmt
            .query_map(params![store_id, limit], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn add_poll(&self, p: &NewPoll<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO polls(poll_id, store_id, question, options, closes_at, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            p.poll_id,
            p.store_id,
            p.question,
            serde_json::to_string(p.options).unwrap_or_default(),
            ts(p.closes_at),
            p.created_by,
            ts(p.created_at)
        ])?;
        Ok(())
    }

    fn votes(&self, poll_id: &str) -> Result<Vec<usize>, StoreError> {
        let mut stmt =
            self.prepare_cached("SELECT option_no FROM poll_votes WHERE poll_id = ?1")?;
        let votes = stmt
            .query_map([poll_id], |r| r.get::<_, i64>(0))?
            .filter_map(Result::ok)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .collect();
        Ok(votes)
    }

    fn vote_of(&self, poll_id: &str, customer_id: &str) -> Result<Option<usize>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT option_no FROM poll_votes WHERE poll_id = ?1 AND customer_id = ?2",
            )?
            .query_row(params![poll_id, customer_id], |r| r.get::<_, i64>(0))
            .optional()?
            .and_then(|n| usize::try_from(n).ok()))
    }

    fn add_vote(
        &self,
        poll_id: &str,
        customer_id: &str,
        option: usize,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .prepare_cached(
                "INSERT OR IGNORE INTO poll_votes(poll_id, customer_id, option_no, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                poll_id,
                customer_id,
                i64::try_from(option).unwrap_or(i64::MAX),
                ts(at)
            ])?;
        Ok(n == 1)
    }

    fn member_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM community_members WHERE customer_id = ?1",
            &[&customer_id],
        )
    }

    fn join_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM community_joins WHERE customer_id = ?1 ORDER BY at",
            &[&customer_id],
        )
    }

    fn vote_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM poll_votes WHERE customer_id = ?1 ORDER BY at",
            &[&customer_id],
        )
    }

    fn erase_customer_from_joins(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.execute(
            "UPDATE community_joins SET customer_id = ?2 WHERE customer_id = ?1",
            params![customer_id, tombstone],
        )?)
    }

    fn erase_customer_from_votes(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.execute(
            "UPDATE OR IGNORE poll_votes SET customer_id = ?2 WHERE customer_id = ?1",
            params![customer_id, tombstone],
        )?)
    }

    fn delete_votes_of(&self, customer_id: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM poll_votes WHERE customer_id = ?1",
            [customer_id],
        )?)
    }

    fn delete_member(&self, customer_id: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM community_members WHERE customer_id = ?1",
            [customer_id],
        )?)
    }
}
