//! Rows as the tables hold them, as JSON objects (column → value): what a
//! person's export gives, so nothing held is left out by a view that forgot
//! a field.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ToSql};
use serde_json::{Map, Value};

use super::StoreError;

/// The rows of a query as JSON objects (column → value; a column holding
/// JSON text, like an order's `fact`, is given as JSON).
pub(crate) fn rows(
    c: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<Vec<Value>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let mut out = Vec::new();
    let mut q = stmt.query(params)?;
    while let Some(r) = q.next()? {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(x) => Value::from(x),
                ValueRef::Text(t) => {
                    let t = String::from_utf8_lossy(t).into_owned();
                    if t.starts_with('{') || t.starts_with('[') {
                        serde_json::from_str(&t).unwrap_or(Value::String(t))
                    } else {
                        Value::String(t)
                    }
                }
                ValueRef::Blob(b) => Value::String(hex::encode(b)),
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}
