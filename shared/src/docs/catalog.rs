//! `catalog/<epoch>`: the chain's products and prices, written by the hub and
//! read by every store. An import writes only the products that changed.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, AutomergeError, ObjType, ReadDoc, Value};

use super::{existing_map, get_i64, get_str, root_map};
use crate::catalog::Product;

/// Writes products; unchanged ones cost nothing. Returns how many changed.
pub fn put_products(doc: &mut AutoCommit, products: &[Product]) -> Result<usize, AutomergeError> {
    let map = root_map(doc, "products")?;
    let mut changed = 0;
    for p in products {
        let sku = p.sku.as_str();
        let obj = match doc.get(&map, sku)? {
            Some((Value::Object(ObjType::Map), id)) => {
                if read_one(doc, &id, sku).as_ref() == Some(p) {
                    continue;
                }
                id
            }
            _ => doc.put_object(&map, sku, ObjType::Map)?,
        };
        doc.put(&obj, "barcode", p.barcode.as_str())?;
        doc.put(&obj, "name", p.name.as_str())?;
        // "" for none: a document written before English names reads the same
        doc.put(&obj, "name_en", p.name_en.as_deref().unwrap_or(""))?;
        doc.put(&obj, "category", p.category.as_str())?;
        doc.put(&obj, "unit", p.unit.as_str())?;
        doc.put(&obj, "price_fen", p.price.0)?;
        doc.put(&obj, "shelf_life_days", i64::from(p.shelf_life_days))?;
        changed += 1;
    }
    Ok(changed)
}

fn read_one(doc: &AutoCommit, obj: &automerge::ObjId, sku: &str) -> Option<Product> {
    Product::from_fields(
        sku,
        &get_str(doc, obj, "barcode"),
        &get_str(doc, obj, "name"),
        &get_str(doc, obj, "name_en"),
        &get_str(doc, obj, "category"),
        &get_str(doc, obj, "unit"),
        &get_i64(doc, obj, "price_fen").to_string(),
        &get_i64(doc, obj, "shelf_life_days").to_string(),
    )
    .ok()
}

/// All valid products in the document (invalid entries are skipped: the
/// same validation as a CSV import applies to what arrives by sync).
pub fn read_products(doc: &AutoCommit) -> Vec<Product> {
    let Some(map) = existing_map(doc, "products") else {
        return Vec::new();
    };
    doc.map_range(&map, ..)
        .filter_map(|item| read_one(doc, &item.id(), &item.key))
        .collect()
}
