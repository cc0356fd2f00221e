//! The catalog: imported from CSV into SQLite and held in memory for look-ups.
//!
//! Scans are resolved against an immutable in-memory index (swapped whole
//! after an import), so a barcode look-up never touches the database and a
//! sale is priced from one consistent snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use linli_shared::barcode::Scan;
use linli_shared::catalog::{Product, RejectedRow, Sku, parse_catalog_csv};
use linli_shared::search::Searchable;
use linli_shared::{Ean13, Fen, Unit};
use rusqlite::{Connection, params};
use serde::Serialize;

use super::{Actor, App, AppError, ts};
use crate::store::{Store, StoreError};

/// Products by SKU and by barcode, and what a search compares them by.
#[derive(Debug, Default)]
pub struct CatalogIndex {
    by_sku: HashMap<String, Arc<Product>>,
    by_barcode: HashMap<String, Arc<Product>>,
    /// Every product with its pinyin initials, in SKU order; computed here,
    /// once per import, so a search is a scan of ready strings.
    searchable: Vec<(Arc<Product>, Searchable)>,
}

/// Most products one search returns: a cashier picks from a short list.
pub const SEARCH_LIMIT: usize = 20;

impl CatalogIndex {
    fn from_products(products: Vec<Product>) -> CatalogIndex {
        let mut idx = CatalogIndex::default();
        for p in products {
            let p = Arc::new(p);
            idx.by_barcode
                .insert(p.barcode.as_str().to_owned(), p.clone());
            idx.searchable.push((p.clone(), Searchable::of(&p)));
            idx.by_sku.insert(p.sku.as_str().to_owned(), p);
        }
        idx.searchable.sort_by(|a, b| a.0.sku.cmp(&b.0.sku));
        idx
    }

    /// Products whose SKU, pinyin initials or name match `query`, best
    /// matches first (see [`Searchable::rank`]), then by SKU; at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(Arc<Product>, &str)> {
        let q = query.trim().to_lowercase();
        let mut hits: Vec<(u8, &Arc<Product>, &str)> = self
            .searchable
            .iter()
            .filter_map(|(p, s)| {
                s.rank(p.sku.as_str(), &q)
                    .map(|r| (r, p, s.initials.as_str()))
            })
            .collect();
        // stable: equal ranks stay in SKU order
        hits.sort_by_key(|h| h.0);
        hits.into_iter()
            .take(limit)
            .map(|(_, p, i)| (p.clone(), i))
            .collect()
    }

    fn initials(&self, sku: &str) -> &str {
        self.searchable
            .binary_search_by(|(p, _)| p.sku.as_str().cmp(sku))
            .map_or("", |i| self.searchable[i].1.initials.as_str())
    }

    pub fn len(&self) -> usize {
        self.by_sku.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sku.is_empty()
    }

    pub fn by_sku(&self, sku: &str) -> Option<&Arc<Product>> {
        self.by_sku.get(sku)
    }

    /// Resolves a scanned code: a product barcode, or a scale label whose
    /// product is found by zeroing the weight. Returns the grams of a label.
    pub fn by_scan(&self, code: &str) -> Result<(Arc<Product>, Option<u32>), AppError> {
        let scan = Scan::parse(code).map_err(|source| AppError::InvalidBarcode {
            field: "barcode".into(),
            source,
        })?;
        let product_code = scan.product_barcode();
        let p = self
            .by_barcode
            .get(product_code.as_str())
            .ok_or_else(|| AppError::UnknownBarcode(code.trim().to_owned()))?;
        if scan.grams().is_some() && p.unit != Unit::Kg {
            return Err(AppError::InvalidField {
                field: "barcode".into(),
                reason: format!(
                    "{code} is a scale label but {} is not sold by weight",
                    p.sku
                ),
            });
        }
        Ok((p.clone(), scan.grams()))
    }
}

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProductView {
    pub sku: String,
    pub barcode: String,
    /// The display name (Simplified Chinese).
    pub name: String,
    /// The English name, when the catalog has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// Lowercase pinyin initials of `name` (`xg` for 西瓜), what a cashier
    /// types to find a product without a barcode.
    #[serde(default)]
    pub initials: String,
    pub category: String,
    pub unit: Unit,
    /// Per unit for `each`, per kilogram for `kg`.
    pub price_fen: i64,
    pub shelf_life_days: u32,
    /// For a scale label: the weight it carries, in grams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_grams: Option<u32>,
    /// For a scale label: the price of that weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_price_fen: Option<i64>,
}

impl ProductView {
    pub fn of(p: &Product, initials: &str, label_grams: Option<u32>) -> ProductView {
        ProductView {
            sku: p.sku.to_string(),
            barcode: p.barcode.to_string(),
            name: p.name.clone(),
            name_en: p.name_en.clone(),
            initials: initials.to_owned(),
            category: p.category.clone(),
            unit: p.unit,
            price_fen: p.price.0,
            shelf_life_days: p.shelf_life_days,
            label_grams,
            label_price_fen: label_grams
                .and_then(|g| p.price.per_kg_times_grams(i64::from(g)))
                .map(|f| f.0),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows inserted or updated.
    pub imported: usize,
    /// Rows refused, with their line numbers and reasons.
    pub rejected: Vec<RejectedRow>,
    /// Products in the catalog after the import.
    pub total_products: usize,
}

fn row_to_product(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Product>> {
    let sku: String = r.get(0)?;
    let barcode: String = r.get(1)?;
    let unit: String = r.get(4)?;
    let name_en: Option<String> = r.get(7)?;
    let (Ok(sku), Ok(barcode), Ok(unit)) = (Sku::parse(&sku), Ean13::parse(&barcode), unit.parse())
    else {
        return Ok(None);
    };
    Ok(Some(Product {
        sku,
        barcode,
        name: r.get(2)?,
        name_en: name_en.filter(|n| !n.is_empty()),
        category: r.get(3)?,
        unit,
        price: Fen(r.get(5)?),
        shelf_life_days: r.get(6)?,
    }))
}

pub(crate) fn read_products(c: &Connection) -> Result<Vec<Product>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT sku, barcode, name, category, unit, price_fen, shelf_life_days, name_en
         FROM products",
    )?;
    let rows = stmt.query_map([], row_to_product)?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(p) = r? {
            out.push(p);
        }
    }
    Ok(out)
}

pub(crate) async fn load_index(store: &Store) -> Result<CatalogIndex, AppError> {
    let products = store.read(read_products).await?;
    Ok(CatalogIndex::from_products(products))
}

pub(crate) fn upsert(c: &Connection, p: &Product, now: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO products(sku, barcode, name, category, unit, price_fen, shelf_life_days, updated_at, name_en)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(sku) DO UPDATE SET barcode = excluded.barcode, name = excluded.name,
             name_en = excluded.name_en,
             category = excluded.category, unit = excluded.unit, price_fen = excluded.price_fen,
             shelf_life_days = excluded.shelf_life_days, updated_at = excluded.updated_at",
    )?
    .execute(params![
        p.sku.as_str(),
        p.barcode.as_str(),
        p.name,
        p.category,
        p.unit.as_str(),
        p.price.0,
        p.shelf_life_days,
        now,
        p.name_en
    ])?;
    Ok(())
}

impl App {
    /// Imports a catalog CSV: valid rows are inserted or updated, bad rows are
    /// reported with line numbers. A product's unit cannot change once it has
    /// stock history (grams and units do not mix), and a barcode cannot move
    /// to another SKU that still holds it.
    pub async fn import_catalog(
        &self,
        actor: &Actor,
        csv: Vec<u8>,
    ) -> Result<ImportReport, AppError> {
        actor.require_manager("importing the catalog")?;
        let parsed = tokio::task::spawn_blocking(move || parse_catalog_csv(&csv))
            .await
            .map_err(|_| StoreError::Panicked)??;
        let now = ts(self.now());
        let (report, products) = self
            .store
            .write(move |c| {
                let mut rejected = parsed.rejected;
                let mut imported = 0;
                for (line, p) in &parsed.products {
                    let clash: Option<String> = c
                        .query_row(
                            "SELECT sku FROM products WHERE barcode = ?1 AND sku <> ?2",
                            params![p.barcode.as_str(), p.sku.as_str()],
                            |r| r.get(0),
                        )
                        .ok();
                    if let Some(other) = clash {
                        rejected.push(RejectedRow {
                            line: *line,
                            reason: format!("barcode {} already belongs to {other}", p.barcode),
                        });
                        continue;
                    }
                    let unit_change: Option<String> = c
                        .query_row(
                            "SELECT p.unit FROM products p JOIN movements m ON m.sku = p.sku
                             WHERE p.sku = ?1 AND p.unit <> ?2 LIMIT 1",
                            params![p.sku.as_str(), p.unit.as_str()],
                            |r| r.get(0),
                        )
                        .ok();
                    if let Some(old) = unit_change {
                        rejected.push(RejectedRow {
                            line: *line,
                            reason: format!(
                                "{} has stock history in {old}; its unit cannot change to {}",
                                p.sku,
                                p.unit.as_str()
                            ),
                        });
                        continue;
                    }
                    upsert(c, p, &now)?;
                    imported += 1;
                }
                rejected.sort_by_key(|r| r.line);
                let products = read_products(c)?;
                Ok::<_, AppError>((
                    ImportReport {
                        imported,
                        rejected,
                        total_products: products.len(),
                    },
                    products,
                ))
            })
            .await?;
        self.swap_catalog(products);
        tracing::info!(imported = report.imported, rejected = report.rejected.len(), by = %actor.name, "catalog imported");
        Ok(report)
    }

    /// Replaces the in-memory catalog with `products` (after a commit).
    pub(crate) fn swap_catalog(&self, products: Vec<Product>) {
        let index = Arc::new(CatalogIndex::from_products(products));
        match self.catalog.write() {
            Ok(mut g) => *g = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }

    /// Looks a product up by SKU.
    pub fn product_by_sku(&self, sku: &str) -> Result<ProductView, AppError> {
        let cat = self.catalog();
        let p = cat
            .by_sku(sku)
            .ok_or_else(|| AppError::UnknownSku(sku.to_owned()))?;
        Ok(ProductView::of(p, cat.initials(sku), None))
    }

    /// Looks a product up by its barcode or by a scale label.
    pub fn product_by_barcode(&self, code: &str) -> Result<ProductView, AppError> {
        let cat = self.catalog();
        let (p, grams) = cat.by_scan(code)?;
        Ok(ProductView::of(&p, cat.initials(p.sku.as_str()), grams))
    }

    /// Products matching a name fragment, pinyin initials or a SKU (see
    /// [`CatalogIndex::search`]), at most [`SEARCH_LIMIT`].
    pub fn search_products(&self, query: &str) -> Vec<ProductView> {
        self.catalog()
            .search(query, SEARCH_LIMIT)
            .into_iter()
            .map(|(p, initials)| ProductView::of(&p, initials, None))
            .collect()
    }
}
