//! Plain JSON values as automerge maps and lists, for facts that are records
//! (orders, fulfilment events, rights totals).
//!
//! Writing compares before it puts: a scalar already equal is not written
//! again and an unchanged record costs no operation, so re-publishing a
//! record's current state does not grow the document's history. Records are
//! written by their one owner (DESIGN.md §3), so "latest put wins" is the
//! state; `null` fields are not written (a field only ever goes from absent
//! to set). Everything stays plain automerge: any implementation reads it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, AutomergeError, ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::{existing_map, root_map};

/// Writes `value` (a serializable record) under `section`/`key`. Returns
/// whether anything changed.
pub fn put_record<T: Serialize>(
    doc: &mut AutoCommit,
    section: &str,
    key: &str,
    value: &T,
) -> Result<bool, AutomergeError> {
    let json = serde_json::to_value(value).map_err(|e| AutomergeError::InvalidValueType {
        expected: "a serializable record".into(),
        unexpected: e.to_string(),
    })?;
    let map = root_map(doc, section)?;
    put_json(doc, &map, key, &json)
}

/// Reads the record under `section`/`key`, if present and well-formed.
pub fn get_record<T: DeserializeOwned>(doc: &AutoCommit, section: &str, key: &str) -> Option<T> {
    let map = existing_map(doc, section)?;
    let (v, id) = doc.get(&map, key).ok()??;
    serde_json::from_value(read_json(doc, v, id)).ok()
}

/// Every well-formed record of a section, by key (sorted).
pub fn records<T: DeserializeOwned>(doc: &AutoCommit, section: &str) -> Vec<(String, T)> {
    let Some(map) = existing_map(doc, section) else {
        return Vec::new();
    };
    doc.map_range(&map, ..)
        .filter_map(|item| {
            let v = read_json(doc, item.value.clone().into_value(), item.id());
            serde_json::from_value(v)
                .ok()
                .map(|r| (item.key.to_string(), r))
        })
        .collect()
}

/// The well-formed records of a section under the given keys (those a
/// sync message touched), by key.
pub fn records_of<'a, T: DeserializeOwned>(
    doc: &AutoCommit,
    section: &str,
    keys: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, T)> {
    keys.into_iter()
        .filter_map(|k| get_record(doc, section, k).map(|r| (k.clone(), r)))
        .collect()
}

fn scalar(v: &Json) -> Option<ScalarValue> {
    Some(match v {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64()?),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        _ => return None,
    })
}

fn same_scalar(a: &ScalarValue, b: &ScalarValue) -> bool {
    match (a, b) {
        (ScalarValue::Int(x), ScalarValue::Uint(y))
        | (ScalarValue::Uint(y), ScalarValue::Int(x)) => u64::try_from(*x).ok() == Some(*y),
        _ => a == b,
    }
}

fn put_json(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    v: &Json,
) -> Result<bool, AutomergeError> {
    match v {
        Json::Null => Ok(false),
        Json::Object(fields) => {
            let (child, mut changed) = match doc.get(obj, key)? {
                Some((Value::Object(ObjType::Map), id)) => (id, false),
                _ => (doc.put_object(obj, key, ObjType::Map)?, true),
            };
            for (k, fv) in fields {
                changed |= put_json(doc, &child, k, fv)?;
            }
            Ok(changed)
        }
        Json::Array(items) => {
            // lists in records are written whole, once: compare and replace
            if let Some((Value::Object(ObjType::List), id)) = doc.get(obj, key)?
                && read_json(doc, Value::Object(ObjType::List), id) == *v
            {
                return Ok(false);
            }
            let list = doc.put_object(obj, key, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert_json(doc, &list, i, item)?;
            }
            Ok(true)
        }
        _ => {
            let Some(s) = scalar(v) else { return Ok(false) };
            if let Some((Value::Scalar(old), _)) = doc.get(obj, key)?
                && same_scalar(old.as_ref(), &s)
            {
                return Ok(false);
            }
            doc.put(obj, key, s)?;
            Ok(true)
        }
    }
}

fn insert_json(
    doc: &mut AutoCommit,
    list: &ObjId,
    i: usize,
    v: &Json,
) -> Result<(), AutomergeError> {
    match v {
        Json::Object(fields) => {
            let m = doc.insert_object(list, i, ObjType::Map)?;
            for (k, fv) in fields {
                put_json(doc, &m, k, fv)?;
            }
        }
        Json::Array(items) => {
            let l = doc.insert_object(list, i, ObjType::List)?;
            for (j, item) in items.iter().enumerate() {
                insert_json(doc, &l, j, item)?;
            }
        }
        other => match scalar(other) {
            Some(s) => doc.insert(list, i, s)?,
            None => doc.insert(list, i, ScalarValue::Null)?,
        },
    }
    Ok(())
}

fn read_json(doc: &AutoCommit, v: Value<'_>, id: ObjId) -> Json {
    match v {
        Value::Object(ObjType::Map) => Json::Object(
            doc.map_range(&id, ..)
                .map(|item| {
                    let k = item.key.to_string();
                    (
                        k,
                        read_json(doc, item.value.clone().into_value(), item.id()),
                    )
                })
                .collect(),
        ),
        Value::Object(ObjType::List) => Json::Array(
            (0..doc.length(&id))
                .filter_map(|i| doc.get(&id, i).ok().flatten())
                .map(|(v, child)| read_json(doc, v, child))
                .collect(),
        ),
        Value::Object(_) => Json::Null,
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) => Json::from(*i),
            ScalarValue::Uint(u) => Json::from(*u),
            ScalarValue::Counter(c) => Json::from(i64::from(c)),
            ScalarValue::F64(f) => {
                serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
            }
            ScalarValue::Str(s) => Json::String(s.to_string()),
            ScalarValue::Boolean(b) => Json::Bool(*b),
            _ => Json::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        a: i64,
        b: String,
        c: Option<String>,
        d: Vec<Line>,
        e: f64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Line {
        sku: String,
        qty: i64,
    }

    #[test]
    fn records_round_trip_and_unchanged_writes_cost_nothing() {
        let mut doc = AutoCommit::new();
        let r = Rec {
            a: 5,
            b: "x".into(),
            c: None,
            d: vec![Line {
                sku: "P1".into(),
                qty: 2,
            }],
            e: 30.25,
        };
        assert!(put_record(&mut doc, "orders", "o1", &r).unwrap());
        doc.commit();
        let heads = doc.get_heads();
        assert!(!put_record(&mut doc, "orders", "o1", &r).unwrap());
        doc.commit();
        assert_eq!(doc.get_heads(), heads, "an unchanged record writes nothing");
        let mut r2 = r.clone();
        r2.c = Some("set".into());
        assert!(put_record(&mut doc, "orders", "o1", &r2).unwrap());
        doc.commit();
        let back = AutoCommit::load(&doc.save()).unwrap();
        assert_eq!(get_record::<Rec>(&back, "orders", "o1"), Some(r2.clone()));
        assert_eq!(records::<Rec>(&back, "orders"), vec![("o1".into(), r2)]);
        assert_eq!(get_record::<Rec>(&back, "orders", "nope"), None);
    }
}
