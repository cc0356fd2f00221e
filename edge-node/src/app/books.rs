//! Reads of the stock books that the use cases and the stock-rights step
//! share. It imports no other use case, so the rights step
//! ([`super::rights`]) can read a level without depending on the stock use
//! cases that call it.

use rusqlite::{Connection, OptionalExtension};

use super::AppError;

/// A SKU's `(on_hand, reserved)` in the books (zero if never stocked).
pub(crate) fn level(c: &Connection, sku: &str) -> Result<(i64, i64), AppError> {
    Ok(
        c.prepare_cached("SELECT on_hand, reserved FROM stock WHERE sku = ?1")?
            .query_row([sku], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0)),
    )
}
