//! The identities CSV (`data/identities.csv`):
//! `record_id,source,phone,openid,unionid,member_card,nickname,store_id`,
//! optionally `true_customer_id` (the person, for scoring only; the hub
//! ignores it). Like the catalog, every bad row is reported with its line
//! number and the rest are kept, so a file is fixed in one pass. Identifier
//! fields are kept raw: junk in them is the resolver's business.

use super::SourceRecord;
use crate::catalog::RejectedRow;
use std::collections::HashSet;

/// A row that parsed, with its line and (when the file has the column) the
/// true person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub line: u64,
    pub record: SourceRecord,
    pub true_customer_id: Option<String>,
}

/// The outcome of parsing an identities CSV.
#[derive(Debug, Clone, Default)]
pub struct ParsedIdentities {
    pub rows: Vec<IdentityRow>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityCsvError {
    /// The header lacks a column the format requires.
    #[error(
        "CSV header is missing column {0:?}; expected record_id,source,phone,openid,unionid,member_card,nickname,store_id"
    )]
    MissingColumn(&'static str),
    /// No header line.
    #[error("CSV is empty; expected a header line")]
    Empty,
}

const COLUMNS: [&str; 8] = [
    "record_id",
    "source",
    "phone",
    "openid",
    "unionid",
    "member_card",
    "nickname",
    "store_id",
];

/// Longest accepted field, in characters.
const MAX_FIELD: usize = 64;

/// Parses an identities CSV. A broken header fails the whole file; a row
/// with an empty or repeated `record_id`, an empty `source` or `store_id`, a
/// field longer than 64 characters or a control character, or an unbalanced
/// quote, is rejected with its line.
pub fn parse_identities_csv(data: &[u8]) -> Result<ParsedIdentities, IdentityCsvError> {
    let mut lines = crate::csv_lines::lines(data);
    let headers = lines
        .next()
        .map(|(_, l)| crate::csv_lines::record(l))
        .ok_or(IdentityCsvError::Empty)?
        .map_err(|_| IdentityCsvError::Empty)?;
    if headers.iter().all(str::is_empty) {
        return Err(IdentityCsvError::Empty);
    }
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
    };
    let mut idx = [0usize; 8];
    for (slot, name) in idx.iter_mut().zip(COLUMNS) {
        *slot = col(name).ok_or(IdentityCsvError::MissingColumn(name))?;
    }
    let truth = col("true_customer_id");
    let mut out = ParsedIdentities::default();
    let mut seen = HashSet::new();
    for (line, text) in lines {
        let record = match crate::csv_lines::record(text) {
            Ok(r) => r,
            Err(reason) => {
                out.rejected.push(RejectedRow { line, reason });
                continue;
            }
        };
        let f = |i: usize| record.get(idx[i]).unwrap_or("").to_owned();
        let rec = SourceRecord {
            record_id: f(0),
            source: f(1),
            phone: f(2),
            openid: f(3),
            unionid: f(4),
            member_card: f(5),
            nickname: f(6),
            store_id: f(7),
        };
        let problem = if rec.record_id.is_empty() {
            Some("record_id is empty".to_owned())
        } else if rec.source.is_empty() {
            Some("source is empty".to_owned())
        } else if rec.store_id.is_empty() {
            Some("store_id is empty".to_owned())
        } else if let Some((name, _)) = COLUMNS
            .iter()
            .zip(record_fields(&rec))
            .find(|(_, v)| v.chars().count() > MAX_FIELD || v.chars().any(char::is_control))
        {
            Some(format!(
                "{name} is longer than {MAX_FIELD} characters or holds a control character"
            ))
        } else if !seen.insert(rec.record_id.clone()) {
            Some(format!("duplicate record_id {}", rec.record_id))
        } else {
            None
        };
        match problem {
            Some(reason) => out.rejected.push(RejectedRow { line, reason }),
            None => out.rows.push(IdentityRow {
                line,
                true_customer_id: truth
                    .and_then(|t| record.get(t))
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
                record: rec,
            }),
        }
    }
    Ok(out)
}

fn record_fields(r: &SourceRecord) -> [&str; 8] {
    [
        &r.record_id,
        &r.source,
        &r.phone,
        &r.openid,
        &r.unionid,
        &r.member_card,
        &r.nickname,
        &r.store_id,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "record_id,source,phone,openid,unionid,member_card,nickname,store_id\n";

    #[test]
    fn keeps_good_rows_and_numbers_bad_ones() {
        let csv = format!(
            "{HEADER}R1,pos,13812345678,,,,,S001\n\nR2,pos,,,,,,\n,pos,,,,,,S001\nR1,live,,o1,,,,S001\nR3,\"live,,,,,,S001\nR4,live,null,o2,u2,,小王,S002\n"
        );
        let p = parse_identities_csv(csv.as_bytes()).expect("header");
        let ids: Vec<&str> = p.rows.iter().map(|r| r.record.record_id.as_str()).collect();
        assert_eq!(ids, vec!["R1", "R4"]);
        assert_eq!(p.rows[1].line, 8);
        assert_eq!(p.rows[1].record.phone, "null");
        let lines: Vec<u64> = p.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7]);
        assert!(p.rejected[2].reason.contains("duplicate"));
    }

    #[test]
    fn a_missing_column_fails_the_file_and_truth_is_optional() {
        assert_eq!(
            parse_identities_csv(b"record_id,source\nR1,pos\n").err(),
            Some(IdentityCsvError::MissingColumn("phone"))
        );
        assert_eq!(
            parse_identities_csv(b"").err(),
            Some(IdentityCsvError::Empty)
        );
        let csv = "record_id,source,phone,openid,unionid,member_card,nickname,store_id,true_customer_id\nR1,pos,,,,,,S1,T1\n";
        let p = parse_identities_csv(csv.as_bytes()).expect("parses");
        assert_eq!(p.rows[0].true_customer_id.as_deref(), Some("T1"));
    }
}
