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

use automerge::{AutoCommit, AutomergeError};

/// One SKU's level: written as one value, the JSON array
/// `[on_hand, reserved]` (documents written before hold a map
/// `{on_hand, reserved}` per SKU; both read).
///
/// One value, not a map of two fields: a sale's stock change is one put
/// per SKU, and a reader (the hub projecting every store sale) looks up
/// one key instead of three. Reading three SKUs' nested levels was ~32% of
/// the hub's CPU applying a store's message (`perf` on `hub_sale_bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Level {
    #[serde(default)]
    pub on_hand: i64,
    #[serde(default)]
    pub reserved: i64,
}

impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.on_hand, self.reserved).serialize(s)
    }
}

/// Sets a SKU's level; writes nothing if it is unchanged.
pub fn set_level(doc: &mut AutoCommit, sku: &str, level: Level) -> Result<(), AutomergeError> {
    super::json::put_record(doc, "levels", sku, &level).map(|_| ())
}

/// The levels of some SKUs (those present in the document).
pub fn read_levels_of<'a>(
    doc: &AutoCommit,
    skus: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Level> {
    super::json::records_of(doc, "levels", skus)
        .into_iter()
        .collect()
}

/// All levels in the document.
pub fn read_levels(doc: &AutoCommit) -> BTreeMap<String, Level> {
    super::json::records(doc, "levels").into_iter().collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ReadDoc, ScalarValue, Value};

    fn level(on_hand: i64, reserved: i64) -> Level {
        Level { on_hand, reserved }
    }

    #[test]
    fn a_level_is_one_value_and_reads_back() {
        let mut d = AutoCommit::new();
        set_level(&mut d, "P1", level(12, 3)).unwrap();
        let levels = d.get(automerge::ROOT, "levels").unwrap().unwrap().1;
        let (v, _) = d.get(&levels, "P1").unwrap().unwrap();
        assert_eq!(
            v,
            Value::Scalar(std::borrow::Cow::Owned(ScalarValue::Str("[12,3]".into())))
        );
        assert_eq!(read_levels(&d)["P1"], level(12, 3));
        assert_eq!(read_levels_of(&d, ["P1", "P2"]).len(), 1);
    }

    #[test]
    fn an_unchanged_level_writes_nothing() {
        let mut d = AutoCommit::new();
        set_level(&mut d, "P1", level(5, 0)).unwrap();
        d.commit();
        let heads = d.get_heads();
        set_level(&mut d, "P1", level(5, 0)).unwrap();
        d.commit();
        assert_eq!(d.get_heads(), heads);
    }

    #[test]
    fn levels_written_as_maps_before_still_read_and_are_rewritten_as_one_value() {
        let mut d = AutoCommit::new();
        let levels = d
            .put_object(automerge::ROOT, "levels", ObjType::Map)
            .unwrap();
        let p1 = d.put_object(&levels, "P1", ObjType::Map).unwrap();
        d.put(&p1, "on_hand", 7_i64).unwrap();
        d.put(&p1, "reserved", 2_i64).unwrap();
        let p2 = d.put_object(&levels, "P2", ObjType::Map).unwrap();
        d.put(&p2, "on_hand", 4_i64).unwrap();
        assert_eq!(read_levels(&d)["P1"], level(7, 2));
        assert_eq!(read_levels_of(&d, ["P2"])["P2"], level(4, 0));
        set_level(&mut d, "P1", level(6, 2)).unwrap();
        assert_eq!(read_levels(&d)["P1"], level(6, 2));
        assert!(matches!(
            d.get(&levels, "P1").unwrap().unwrap().0,
            Value::Scalar(_)
        ));
    }
}
