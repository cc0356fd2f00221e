//! Finding a product the way a cashier types it: by a fragment of its name,
//! by the pinyin initials of its name (`xg` for 西瓜) or by its SKU.
//!
//! Chinese cashiers and customers type product names on a Latin keyboard by
//! their pinyin initials; a product without a barcode (loose fruit, a bun)
//! must be found that way. The initials are computed once per product when
//! the catalog is loaded, never per key press. A character with several
//! readings (多音字) counts by its most common one, which is what the
//! `pinyin` crate returns first.

use pinyin::ToPinyin;

use crate::catalog::Product;

/// The lowercase pinyin initials of `name`: one letter per Chinese
/// character, ASCII letters and digits kept (lowercased), everything else
/// (punctuation, brackets, spaces) left out. `西瓜（海南）` is `xghn`.
pub fn pinyin_initials(name: &str) -> String {
    let mut out = String::with_capacity(name.len() / 3 + 1);
    for c in name.chars() {
        match c.to_pinyin() {
            Some(py) => out.push_str(py.first_letter()),
            None if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            None => {}
        }
    }
    out
}

/// A product with what a search compares it by, computed once.
#[derive(Debug, Clone)]
pub struct Searchable {
    /// Lowercase name, English name and SKU, for substring matches.
    text: String,
    /// [`pinyin_initials`] of the name.
    pub initials: String,
}

impl Searchable {
    pub fn of(p: &Product) -> Searchable {
        let mut text = p.name.to_lowercase();
        if let Some(en) = &p.name_en {
            text.push('\n');
            text.push_str(&en.to_lowercase());
        }
        text.push('\n');
        text.push_str(&p.sku.as_str().to_lowercase());
        Searchable {
            text,
            initials: pinyin_initials(&p.name),
        }
    }

    /// How well `query` (trimmed, lowercased by the caller) matches, best
    /// first: 0 the SKU or initials start with it, 1 the initials contain it,
    /// 2 the name (Chinese or English) or SKU contains it; `None` no match.
    pub fn rank(&self, sku: &str, query: &str) -> Option<u8> {
        if query.is_empty() {
            return None;
        }
        let ascii = query.bytes().all(|b| b.is_ascii_alphanumeric());
        if sku.to_lowercase().starts_with(query) || (ascii && self.initials.starts_with(query)) {
            Some(0)
        } else if ascii && self.initials.contains(query) {
            Some(1)
        } else if self.text.contains(query) {
            Some(2)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(sku: &str, name: &str, name_en: &str) -> Product {
        Product::from_fields(
            sku,
            "6942215277577",
            name,
            name_en,
            "fruit",
            "each",
            "100",
            "3",
        )
        .unwrap()
    }

    #[test]
    fn initials_of_chinese_names() {
        assert_eq!(pinyin_initials("西瓜"), "xg");
        assert_eq!(pinyin_initials("本地全麦面包（浙江）"), "bdqmmbzj");
        assert_eq!(pinyin_initials("XO酱 500g"), "xoj500g");
        assert_eq!(pinyin_initials(""), "");
    }

    #[test]
    fn every_reference_product_has_initials_of_its_name() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/products.csv");
        let parsed = crate::catalog::parse_catalog_csv(&std::fs::read(path).unwrap()).unwrap();
        for (_, p) in &parsed.products {
            let s = Searchable::of(p);
            // one letter per Chinese character (brackets and the like drop out)
            let han = p
                .name
                .chars()
                .filter(|c| !c.is_ascii() && c.is_alphabetic())
                .count();
            assert!(
                s.initials.len() >= han && !s.initials.is_empty(),
                "{} {:?}",
                p.name,
                s.initials
            );
            assert!(
                s.initials
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
            assert_eq!(s.rank(p.sku.as_str(), &s.initials), Some(0), "{}", p.name);
        }
    }

    #[test]
    fn ranks_sku_and_initials_before_name_fragments() {
        let p = product("P00042", "西瓜（海南）", "Watermelon (Hainan)");
        let s = Searchable::of(&p);
        assert_eq!(s.initials, "xghn");
        assert_eq!(s.rank("P00042", "xg"), Some(0));
        assert_eq!(s.rank("P00042", "p0004"), Some(0));
        assert_eq!(s.rank("P00042", "hn"), Some(1));
        assert_eq!(s.rank("P00042", "西瓜"), Some(2));
        assert_eq!(s.rank("P00042", "watermelon"), Some(2));
        assert_eq!(s.rank("P00042", "apple"), None);
        assert_eq!(s.rank("P00042", ""), None);
    }
}
