//! Products and the catalog CSV.
//!
//! The catalog is the hub's (DESIGN.md §3): one price per product, the same
//! online and at the counter. The CSV format is that of
//! `shared/data/products.csv`:
//! `sku,barcode,name,category,unit,price_fen,shelf_life_days[,name_en]`.
//! `name` is the display name the stores' customers read (Simplified
//! Chinese); the optional `name_en` is the English one for the pages' English
//! switch. Other columns are ignored.
//! Parsing reports every rejected row with its line number and reason and never
//! stops at the first bad row, so a manager can fix a file in one pass.

use crate::barcode::{BarcodeError, Ean13, Scan};
use crate::money::Fen;
use crate::qty::Unit;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// A stock-keeping unit id: 1–32 characters of `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    /// Empty, too long, or with characters outside `A-Z a-z 0-9 - _`.
    #[error("SKU {0:?} must be 1-32 characters of letters, digits, '-' or '_'")]
    Invalid(String),
}

impl Sku {
    pub fn parse(s: &str) -> Result<Sku, SkuError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Sku(s.to_owned()))
        } else {
            Err(SkuError::Invalid(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = SkuError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Sku::parse(&s)
    }
}

impl From<Sku> for String {
    fn from(s: Sku) -> String {
        s.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product of the chain's catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub sku: Sku,
    pub barcode: Ean13,
    /// The display name (Simplified Chinese in the chain's catalog).
    pub name: String,
    /// The English name, when the catalog has one.
    pub name_en: Option<String>,
    pub category: String,
    pub unit: Unit,
    /// Per unit for `each`, per kilogram for `kg`.
    pub price: Fen,
    pub shelf_life_days: u32,
}

/// Highest price a catalog row may carry (¥100,000): anything above is a typo.
pub const MAX_PRICE_FEN: i64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error(transparent)]
    Sku(#[from] SkuError),
    #[error(transparent)]
    Barcode(#[from] BarcodeError),
    /// A required text field was empty or too long.
    #[error("{field} must be 1-{max} characters, none of them control characters (NUL, ESC)")]
    Text { field: &'static str, max: usize },
    #[error("unit must be \"each\" or \"kg\", got {0:?}")]
    Unit(String),
    #[error("price_fen must be an integer between 1 and {MAX_PRICE_FEN}, got {0:?}")]
    Price(String),
    #[error("shelf_life_days must be an integer between 0 and 3650, got {0:?}")]
    ShelfLife(String),
    /// Weighed products need a scale-range code with weight 000000, so that
    /// scale labels map back to them.
    #[error("kg product barcode {0} must be a scale code 2IIIII000000C")]
    KgBarcode(String),
    /// A scale-range label with a weight cannot be a product's own barcode.
    #[error("barcode {0} is a weighed scale label, not a product barcode")]
    LabelAsProduct(String),
}

impl Product {
    /// Validates one catalog row's fields; an empty `name_en` is none.
    #[allow(clippy::too_many_arguments)] // one argument per CSV column
    pub fn from_fields(
        sku: &str,
        barcode: &str,
        name: &str,
        name_en: &str,
        category: &str,
        unit: &str,
        price_fen: &str,
        shelf_life_days: &str,
    ) -> Result<Product, ProductError> {
        let sku = Sku::parse(sku.trim())?;
        let scan = Scan::parse(barcode.trim())?;
        let unit: Unit = unit
            .trim()
            .parse()
            .map_err(|_| ProductError::Unit(unit.to_owned()))?;
        let barcode = match (&scan, unit) {
            (Scan::Product(e), Unit::Kg) if !e.is_scale_range() => {
                return Err(ProductError::KgBarcode(e.to_string()));
            }
            (Scan::Weighed { label, .. }, Unit::Kg) => {
                return Err(ProductError::KgBarcode(label.to_string()));
            }
            (Scan::Weighed { label, .. }, Unit::Each) => {
                return Err(ProductError::LabelAsProduct(label.to_string()));
            }
            (Scan::Product(e), _) => e.clone(),
        };
        let name = text("name", name, 200)?;
        let name_en = if name_en.trim().is_empty() {
            None
        } else {
            Some(text("name_en", name_en, 200)?)
        };
        let category = text("category", category, 64)?;
        let price = price_fen
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=MAX_PRICE_FEN).contains(p))
            .ok_or_else(|| ProductError::Price(price_fen.to_owned()))?;
        let shelf_life_days = shelf_life_days
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|d| *d <= 3650)
            .ok_or_else(|| ProductError::ShelfLife(shelf_life_days.to_owned()))?;
        Ok(Product {
            sku,
            barcode,
            name,
            name_en,
            category,
            unit,
            price: Fen(price),
            shelf_life_days,
        })
    }
}

fn text(field: &'static str, s: &str, max: usize) -> Result<String, ProductError> {
    let s = s.trim();
    // a NUL or an ESC/POS command in a name would reach receipts and printers
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(ProductError::Text { field, max });
    }
    Ok(s.to_owned())
}

/// One row the import refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// The outcome of parsing a catalog CSV.
#[derive(Debug, Clone, Default)]
pub struct ParsedCatalog {
    /// Valid rows with their 1-based line numbers.
    pub products: Vec<(u64, Product)>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogCsvError {
    /// The header lacks a column the format requires.
    #[error(
        "CSV header is missing column {0:?}; expected sku,barcode,name,category,unit,price_fen,shelf_life_days"
    )]
    MissingColumn(&'static str),
    #[error("CSV is empty; expected a header line")]
    Empty,
}

const COLUMNS: [&str; 7] = [
    "sku",
    "barcode",
    "name",
    "category",
    "unit",
    "price_fen",
    "shelf_life_days",
];

/// Parses a catalog CSV. A broken header fails the whole file; a bad row
/// (an unbalanced quote included) is reported with its line and skipped;
/// empty lines are skipped. A SKU or barcode seen twice keeps the first row.
pub fn parse_catalog_csv(data: &[u8]) -> Result<ParsedCatalog, CatalogCsvError> {
    let mut lines = crate::csv_lines::lines(data);
    let headers = lines
        .next()
        .map(|(_, l)| crate::csv_lines::record(l))
        .ok_or(CatalogCsvError::Empty)?
        .map_err(|_| CatalogCsvError::Empty)?;
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(CatalogCsvError::Empty);
    }
    let mut idx = [0usize; 7];
    for (slot, col) in idx.iter_mut().zip(COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == col)
            .ok_or(CatalogCsvError::MissingColumn(col))?;
    }
    // optional: a catalog without English names is a valid catalog
    let name_en = headers
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}') == "name_en");
    let mut out = ParsedCatalog::default();
    let mut skus = HashSet::new();
    let mut barcodes = HashSet::new();
    for (line, text) in lines {
        let record = match crate::csv_lines::record(text) {
            Ok(r) => r,
            Err(reason) => {
                out.rejected.push(RejectedRow { line, reason });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let f = |i: usize| record.get(idx[i]).unwrap_or("");
        let en = name_en.and_then(|i| record.get(i)).unwrap_or("");
        match Product::from_fields(f(0), f(1), f(2), en, f(3), f(4), f(5), f(6)) {
            Ok(p) => {
                if !skus.insert(p.sku.clone()) {
                    out.rejected.push(RejectedRow {
                        line,
                        reason: format!("duplicate sku {}", p.sku),
                    });
                } else if !barcodes.insert(p.barcode.clone()) {
                    out.rejected.push(RejectedRow {
                        line,
                        reason: format!("duplicate barcode {}", p.barcode),
                    });
                } else {
                    out.products.push((line, p));
                }
            }
            Err(e) => out.rejected.push(RejectedRow {
                line,
                reason: e.to_string(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "sku,barcode,name,category,unit,price_fen,shelf_life_days\n";

    #[test]
    fn parses_good_rows_and_reports_bad_ones_with_line_numbers() {
        let csv = format!(
            "{HEADER}P00001,6942215277577,Bun,bakery,each,1950,4\n\
             P00002,2000020000002,Chicken,meat,kg,7460,4\n\
             P00003,6942215277578,Bad check,bakery,each,100,1\n\
             P00004,6942215277577,Dup barcode,bakery,each,100,1\n\
             P00005,6901234567892,Zero price,bakery,each,0,1\n\
             P00006,6901234567892,Kg with retail code,meat,kg,100,1\n\
             P00007,6901234567892,,bakery,each,100,1\n"
        );
        let parsed = parse_catalog_csv(csv.as_bytes()).unwrap();
        assert_eq!(parsed.products.len(), 2);
        let lines: Vec<u64> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8]);
        assert!(parsed.rejected[0].reason.contains("check digit"));
        assert!(parsed.rejected[1].reason.contains("duplicate barcode"));
        assert!(parsed.rejected[2].reason.contains("price_fen"));
        assert!(parsed.rejected[3].reason.contains("kg product barcode"));
        assert!(parsed.rejected[4].reason.contains("name"));
    }

    #[test]
    fn unbalanced_quote_is_a_rejected_line_and_later_rows_survive() {
        let csv = format!(
            "{HEADER}P00001,6942215277577,Bun,bakery,each,1950,4\n\
             P00002,6901234567892,\"Milk, 1 L,dairy,each,650,7\n\
             P00003,6901234567908,Tea,drinks,each,300,300\n\
             P00004,6901234567915,\"Rice \"\"5kg\"\"\",grain,each,4990,365\n"
        );
        let parsed = parse_catalog_csv(csv.as_bytes()).unwrap();
        let ok: Vec<(u64, &str)> = parsed
            .products
            .iter()
            .map(|(l, p)| (*l, p.sku.as_str()))
            .collect();
        assert_eq!(ok, vec![(2, "P00001"), (4, "P00003"), (5, "P00004")]);
        assert_eq!(parsed.products[2].1.name, "Rice \"5kg\"");
        assert_eq!(parsed.rejected.len(), 1, "{:?}", parsed.rejected);
        assert_eq!(parsed.rejected[0].line, 3);
        assert!(
            parsed.rejected[0].reason.contains("unbalanced quote"),
            "{:?}",
            parsed.rejected[0]
        );
        // the last line of a file without a newline too
        let csv = format!("{HEADER}P00001,6942215277577,\"Bun,bakery,each,1950,4");
        let parsed = parse_catalog_csv(csv.as_bytes()).unwrap();
        assert!(parsed.products.is_empty());
        assert_eq!(parsed.rejected[0].line, 2);
    }

    #[test]
    fn line_numbers_count_empty_lines_and_crlf() {
        for eol in ["\n", "\r\n"] {
            let csv = [
                HEADER.trim_end(),
                "P00001,6942215277577,Bun,bakery,each,1950,4",
                "",
                "",
                "P00002,6901234567892,Milk,dairy,each,650,7",
                "P00003,6901234567908,Tea,drinks,each,0,300",
                "",
            ]
            .join(eol);
            let parsed = parse_catalog_csv(csv.as_bytes()).unwrap();
            let lines: Vec<u64> = parsed.products.iter().map(|(l, _)| *l).collect();
            assert_eq!(lines, vec![2, 5], "{eol:?}");
            assert_eq!(parsed.rejected.len(), 1, "{eol:?}");
            assert_eq!(parsed.rejected[0].line, 6, "{eol:?}");
        }
    }

    #[test]
    fn missing_column_fails_the_file() {
        assert_eq!(
            parse_catalog_csv(b"sku,barcode,name\nP1,1,x\n").unwrap_err(),
            CatalogCsvError::MissingColumn("category")
        );
        assert_eq!(parse_catalog_csv(b"").unwrap_err(), CatalogCsvError::Empty);
    }

    #[test]
    fn reference_catalog_parses_cleanly() {
        // the project's own copy of the reference catalog (shared/data/products.csv)
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/products.csv");
        let data = std::fs::read(path).unwrap();
        let parsed = parse_catalog_csv(&data).unwrap();
        assert_eq!(parsed.products.len(), 1500, "{:?}", parsed.rejected);
        assert!(parsed.rejected.is_empty());
        let bun = &parsed.products[0].1;
        assert_eq!(bun.name, "本地全麦面包（浙江）");
        assert_eq!(
            bun.name_en.as_deref(),
            Some("Local Whole Wheat Bun (Zhejiang)")
        );
    }

    #[test]
    fn name_en_is_optional() {
        let csv = format!("{HEADER}P00001,6942215277577,面包,bakery,each,1950,4\n");
        let parsed = parse_catalog_csv(csv.as_bytes()).unwrap();
        assert_eq!(parsed.products[0].1.name_en, None);
        let csv = "name_en,sku,barcode,name,category,unit,price_fen,shelf_life_days\n\
                   Bun,P00001,6942215277577,面包,bakery,each,1950,4\n\
                   ,P00002,2000020000002,鸡腿,meat,kg,7460,4\n";
        let parsed = parse_catalog_csv(csv.as_bytes()).unwrap();
        assert_eq!(parsed.products[0].1.name_en.as_deref(), Some("Bun"));
        assert_eq!(parsed.products[1].1.name_en, None);
    }
}
