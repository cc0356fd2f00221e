//! The storage layer's error ([`StoreError`]): what a typed storage
//! operation can fail with, whatever the database underneath. A use case
//! turns it into its own error (`HubError`) with `?`; the conversion lives
//! here because `crate::error` sits below every layer and names none of
//! them.

use linli_sync::doc_store::DocError;

use crate::error::HubError;

/// Why a storage operation failed. Nothing here is the caller's fault: a
/// request that meets one is answered with HTTP 500 (`internal`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement (or could not run it).
    #[error("database error: {0}")]
    Sql(String),
    /// A document the operation writes could not be changed or persisted.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// A row holds a value that no longer decodes (a JSON column written
    /// by another version, say): the reason, for the use case to refuse
    /// with.
    #[error("a stored row does not decode: {0}")]
    Undecodable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e.to_string())
    }
}

/// The same variants a storage failure met before this type existed, so an
/// HTTP status or an error code never depends on which layer ran the SQL.
impl From<StoreError> for HubError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sql(s) => HubError::Store(linli_sync::db::StoreError::Sql(s)),
            StoreError::Doc(d) => HubError::Doc(d),
            StoreError::Undecodable(why) => HubError::Invalid(why),
        }
    }
}
