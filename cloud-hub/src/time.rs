//! Times as the hub writes them in its tables and documents: RFC 3339 in
//! UTC with milliseconds (`ts`).

use chrono::{DateTime, Utc};

/// `t` as the hub writes times (RFC 3339, UTC, milliseconds), so they sort
/// as text.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
