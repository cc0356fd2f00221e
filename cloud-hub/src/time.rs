//! Times as the hub writes them in its tables and documents: RFC 3339 in
//! UTC with milliseconds (`ts`), read back by `parse_ts`.

use chrono::{DateTime, Utc};

/// `t` as the hub writes times (RFC 3339, UTC, milliseconds), so they sort
/// as text.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A time the hub wrote ([`ts`]); the epoch if it does not parse (a row
/// written wrong must not fail a read).
pub(crate) fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}
