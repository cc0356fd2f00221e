//! Records (orders, fulfilment events, rights totals, notices) in a
//! document: each record is one JSON string under its key, so writing an
//! order costs one automerge operation, not one per field and line (the hub
//! writes thousands of orders into a document in a live burst, and
//! automerge's cost is per operation: docs/DECISIONS.md, "Records as one
//! value").
//!
//! Writing compares before it puts: an unchanged record is not written
//! again, so re-publishing a record's current state does not grow the
//! document's history. Records are written by their one owner (DESIGN.md
//! §3), so the latest put is the record, whole. Records written before this
//! layout (nested automerge maps and lists) are still read, and are
//! rewritten in the new layout only when they change. Everything stays
//! plain automerge: any implementation reads a string and parses JSON.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, AutomergeError, ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::{existing_map, root_map};

/// Writes `value` (a serializable record) under `section`/`key`, whole.
/// Returns whether anything changed.
pub fn put_record<T: Serialize>(
    doc: &mut AutoCommit,
    section: &str,
    key: &str,
    value: &T,
) -> Result<bool, AutomergeError> {
    let unserializable = |e: serde_json::Error| AutomergeError::InvalidValueType {
        expected: "a serializable record".into(),
        unexpected: e.to_string(),
    };
    let text = serde_json::to_string(value).map_err(unserializable)?;
    let map = root_map(doc, section)?;
    match doc.get(&map, key)? {
        Some((Value::Scalar(old), _)) if matches!(old.as_ref(), ScalarValue::Str(s) if s.as_str() == text) =>
        {
            return Ok(false);
        }
        Some((old @ Value::Object(_), id)) => {
            // the nested layout wrote no `null` field
            let mut json = serde_json::to_value(value).map_err(unserializable)?;
            drop_nulls(&mut json);
            if read_json(doc, old, id) == json {
                return Ok(false);
            }
        }
        _ => {}
    }
    doc.put(&map, key, text.as_str())?;
    Ok(true)
}

/// A record from the one string it was written as (by [`put_record`]),
/// e.g. the new value a sync message's patch carried; `None` if it does not
/// read as a `T`.
pub fn from_text<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_str(text).ok()
}

/// Reads the record under `section`/`key`, if present and well-formed.
pub fn get_record<T: DeserializeOwned>(doc: &AutoCommit, section: &str, key: &str) -> Option<T> {
    let map = existing_map(doc, section)?;
    let (v, id) = doc.get(&map, key).ok()??;
    decode(doc, v, id)
}

/// Every well-formed record of a section, by key (sorted).
pub fn records<T: DeserializeOwned>(doc: &AutoCommit, section: &str) -> Vec<(String, T)> {
    let Some(map) = existing_map(doc, section) else {
        return Vec::new();
    };
    doc.map_range(&map, ..)
        .filter_map(|item| {
            decode(doc, item.value.clone().into_value(), item.id())
                .map(|r| (item.key.to_string(), r))
        })
        .collect()
}

/// The well-formed records of a section under the given keys (those a
/// sync message touched), by key. The section is looked up once: a `get`
/// at the root costs as much as any other in automerge 0.12 (a seek in
/// the document's one op column), and per key it was half of the hub's
/// cost of reading a sale's three stock levels (`perf`, `hub_sale_bench`).
pub fn records_of<T: DeserializeOwned>(
    doc: &AutoCommit,
    section: &str,
    keys: impl IntoIterator<Item = impl AsRef<str>>,
) -> Vec<(String, T)> {
    let Some(map) = existing_map(doc, section) else {
        return Vec::new();
    };
    keys.into_iter()
        .filter_map(|k| {
            let k = k.as_ref();
            let (v, id) = doc.get(&map, k).ok()??;
            decode(doc, v, id).map(|r| (k.to_owned(), r))
        })
        .collect()
}

/// A record from its value: a JSON string, or (written before) a map.
fn decode<T: DeserializeOwned>(doc: &AutoCommit, v: Value<'_>, id: ObjId) -> Option<T> {
    match &v {
        Value::Scalar(_) => packed(&v),
        Value::Object(_) => serde_json::from_value(read_json(doc, v, id)).ok(),
    }
}

/// A record written as one value (a JSON string), if `v` is one and reads.
pub(super) fn packed<T: DeserializeOwned>(v: &Value<'_>) -> Option<T> {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(text) => serde_json::from_str(text.as_str()).ok(),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

fn drop_nulls(v: &mut Json) {
    match v {
        Json::Object(fields) => {
            fields.retain(|_, f| !f.is_null());
            fields.values_mut().for_each(drop_nulls);
        }
        Json::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// A value of the nested layout, as JSON.
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

    #[test]
    fn a_record_is_one_operation() {
        let mut doc = AutoCommit::new();
        let r = Rec {
            a: 1,
            b: "订单".into(),
            c: Some("x".into()),
            d: (0..5)
                .map(|i| Line {
                    sku: format!("P{i}"),
                    qty: i,
                })
                .collect(),
            e: 1.5,
        };
        put_record(&mut doc, "orders", "o1", &r).unwrap();
        doc.commit();
        let before = doc.get_changes(&[]).iter().map(|c| c.len()).sum::<usize>();
        put_record(&mut doc, "orders", "o2", &r).unwrap();
        doc.commit();
        let after = doc.get_changes(&[]).iter().map(|c| c.len()).sum::<usize>();
        assert_eq!(after - before, 1, "one op for a record of 5 lines");
    }

    #[test]
    fn records_of_the_nested_layout_are_read_and_rewritten_only_when_changed() {
        let mut doc = AutoCommit::new();
        let orders = doc
            .put_object(automerge::ROOT, "orders", ObjType::Map)
            .unwrap();
        let o = doc.put_object(&orders, "o1", ObjType::Map).unwrap();
        doc.put(&o, "a", 7).unwrap();
        doc.put(&o, "b", "old").unwrap();
        doc.put(&o, "e", 2.5).unwrap();
        let d = doc.put_object(&o, "d", ObjType::List).unwrap();
        let l = doc.insert_object(&d, 0, ObjType::Map).unwrap();
        doc.put(&l, "sku", "P1").unwrap();
        doc.put(&l, "qty", 3).unwrap();
        doc.commit();
        let old = Rec {
            a: 7,
            b: "old".into(),
            c: None,
            d: vec![Line {
                sku: "P1".into(),
                qty: 3,
            }],
            e: 2.5,
        };
        assert_eq!(get_record::<Rec>(&doc, "orders", "o1"), Some(old.clone()));
        let heads = doc.get_heads();
        assert!(!put_record(&mut doc, "orders", "o1", &old).unwrap());
        doc.commit();
        assert_eq!(
            doc.get_heads(),
            heads,
            "an unchanged old record writes nothing"
        );
        let new = Rec {
            c: Some("set".into()),
            ..old
        };
        assert!(put_record(&mut doc, "orders", "o1", &new).unwrap());
        assert_eq!(records::<Rec>(&doc, "orders"), vec![("o1".into(), new)]);
    }
}
