//! `store/<S>/stock/<day>`: the store's stock levels per SKU, as of its
//! latest committed write. The store is the only writer, so each SKU's entry
//! is simply its latest value; a new day's document starts from the closing
//! levels of the store's books (its SQLite tables), so history stays short.
//!
//! The same document carries the store's stock-rights totals per SKU
//! ([`crate::rights::StoreRights`], section `rights`); the hub's totals live
//! in `hub/<S>/stock/<day>` (section `rights`, [`crate::rights::HubRights`]).
//! Totals only grow and each day's document starts from the last totals, so
//! a reader takes the field-wise maximum over whatever days it holds.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, AutomergeError, ObjType, ReadDoc, Value};

use super::{existing_map, get_i64, root_map};

/// One SKU's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
}

/// Sets a SKU's level; writes nothing if it is unchanged.
pub fn set_level(doc: &mut AutoCommit, sku: &str, level: Level) -> Result<(), AutomergeError> {
    let levels = root_map(doc, "levels")?;
    // only the field that changed is written (a sale moves `on_hand` alone)
    let (obj, old) = match doc.get(&levels, sku)? {
        Some((Value::Object(ObjType::Map), id)) => {
            let old = Level {
                on_hand: get_i64(doc, &id, "on_hand"),
                reserved: get_i64(doc, &id, "reserved"),
            };
            (id, Some(old))
        }
        _ => (doc.put_object(&levels, sku, ObjType::Map)?, None),
    };
    if old.is_none_or(|o| o.on_hand != level.on_hand) {
        doc.put(&obj, "on_hand", level.on_hand)?;
    }
    if old.is_none_or(|o| o.reserved != level.reserved) {
        doc.put(&obj, "reserved", level.reserved)?;
    }
    Ok(())
}

/// The levels of some SKUs (those present in the document).
pub fn read_levels_of<'a>(
    doc: &AutoCommit,
    skus: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Level> {
    let Some(levels) = existing_map(doc, "levels") else {
        return BTreeMap::new();
    };
    skus.into_iter()
        .filter_map(|sku| match doc.get(&levels, sku) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some((
                sku.to_owned(),
                Level {
                    on_hand: get_i64(doc, &id, "on_hand"),
                    reserved: get_i64(doc, &id, "reserved"),
                },
            )),
            _ => None,
        })
        .collect()
}

/// All levels in the document.
pub fn read_levels(doc: &AutoCommit) -> BTreeMap<String, Level> {
    let Some(levels) = existing_map(doc, "levels") else {
        return BTreeMap::new();
    };
    doc.map_range(&levels, ..)
        .map(|item| {
            let id = item.id();
            (
                item.key.to_string(),
                Level {
                    on_hand: get_i64(doc, &id, "on_hand"),
                    reserved: get_i64(doc, &id, "reserved"),
                },
            )
        })
        .collect()
}

/// Writes one SKU's rights totals (store's or hub's); nothing if unchanged.
pub fn set_rights<T: serde::Serialize>(
    doc: &mut AutoCommit,
    sku: &str,
    totals: &T,
) -> Result<bool, AutomergeError> {
    super::json::put_record(doc, "rights", sku, totals)
}

/// All rights totals in the document.
pub fn read_rights<T: serde::de::DeserializeOwned>(doc: &AutoCommit) -> BTreeMap<String, T> {
    super::json::records(doc, "rights").into_iter().collect()
}
