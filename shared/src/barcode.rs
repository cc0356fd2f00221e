//! EAN-13 barcodes and in-store scale labels.
//!
//! A packaged product carries its own EAN-13. A weighed product is labelled by
//! the scale with `2 IIIII WWWWWW C`: prefix `2` (restricted circulation), a
//! five-digit item code, the weight in grams and the EAN-13 check digit. The
//! product's own barcode in the catalog is the same code with weight `000000`,
//! so a label maps to its product by zeroing the weight (DESIGN.md §3).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarcodeError {
    /// Not exactly 13 ASCII digits.
    #[error("barcode {0:?} must be exactly 13 digits")]
    Format(String),
    /// The last digit does not match the other twelve: a misread or a typo.
    #[error("barcode {code} has check digit {got}, expected {expected}")]
    CheckDigit { code: String, got: u8, expected: u8 },
    /// A scale label whose weight field is zero was scanned where a weight was needed.
    #[error("scale label {0} carries no weight")]
    NoWeight(String),
}

/// A valid EAN-13 code (13 digits, correct check digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ean13(String);

/// The check digit of the first twelve digits of an EAN-13.
pub fn check_digit(first12: &[u8; 12]) -> u8 {
    let sum: u32 = first12
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl Ean13 {
    pub fn parse(code: &str) -> Result<Ean13, BarcodeError> {
        let code = code.trim();
        if code.len() != 13 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BarcodeError::Format(code.to_owned()));
        }
        let digits: Vec<u8> = code.bytes().map(|b| b - b'0').collect();
        let mut first12 = [0u8; 12];
        first12.copy_from_slice(&digits[..12]);
        let expected = check_digit(&first12);
        if digits[12] != expected {
            return Err(BarcodeError::CheckDigit {
                code: code.to_owned(),
                got: digits[12],
                expected,
            });
        }
        Ok(Ean13(code.to_owned()))
    }

    /// Builds a code from twelve digits, appending the check digit.
    pub fn from_first12(first12: &[u8; 12]) -> Ean13 {
        let mut s: String = first12.iter().map(|d| char::from(b'0' + d)).collect();
        s.push(char::from(b'0' + check_digit(first12)));
        Ean13(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a restricted-circulation code with prefix 2, the
    /// range in-store scales print.
    pub fn is_scale_range(&self) -> bool {
        self.0.starts_with('2')
    }
}

impl fmt::Display for Ean13 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A decoded scale label: which weighed item, and how many grams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleLabel {
    pub item_code: u32,
    pub grams: u32,
}

impl ScaleLabel {
    /// The catalog barcode of the labelled product (weight zeroed).
    pub fn product_barcode(&self) -> Ean13 {
        Self::encode(self.item_code, 0)
    }

    /// The label a scale would print for `grams` of item `item_code`.
    pub fn encode(item_code: u32, grams: u32) -> Ean13 {
        let s = format!("2{:05}{:06}", item_code % 100_000, grams % 1_000_000);
        let mut first12 = [0u8; 12];
        for (d, b) in first12.iter_mut().zip(s.bytes()) {
            *d = b - b'0';
        }
        Ean13::from_first12(&first12)
    }

    fn from_ean(code: &Ean13) -> ScaleLabel {
        let s = code.as_str();
        // both slices are ASCII digits of a validated EAN-13
        let item_code = s[1..6].parse().unwrap_or(0);
        let grams = s[6..12].parse().unwrap_or(0);
        ScaleLabel { item_code, grams }
    }
}

/// What a scanner read, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A product's own barcode (including a weighed product's zero-weight code).
    Product(Ean13),
    /// A scale label with a weight: the product's barcode plus grams.
    Weighed { label: Ean13, scale: ScaleLabel },
}

impl Scan {
    /// Classifies a scanned code. A prefix-2 code with a non-zero weight field
    /// is a scale label; everything else names a product directly.
    pub fn parse(code: &str) -> Result<Scan, BarcodeError> {
        let ean = Ean13::parse(code)?;
        if ean.is_scale_range() {
            let scale = ScaleLabel::from_ean(&ean);
            if scale.grams > 0 {
                return Ok(Scan::Weighed { label: ean, scale });
            }
        }
        Ok(Scan::Product(ean))
    }

    /// The catalog barcode this scan refers to.
    pub fn product_barcode(&self) -> Ean13 {
        match self {
            Scan::Product(e) => e.clone(),
            Scan::Weighed { scale, .. } => scale.product_barcode(),
        }
    }

    /// Grams carried by the label, if any.
    pub fn grams(&self) -> Option<u32> {
        match self {
            Scan::Product(_) => None,
            Scan::Weighed { scale, .. } => Some(scale.grams),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_reference_barcodes() {
        // from shared/data/products.csv
        assert!(Ean13::parse("6942215277577").is_ok());
        assert!(Ean13::parse("2000020000002").is_ok());
    }

    #[test]
    fn rejects_bad_check_digit_and_format() {
        assert_eq!(
            Ean13::parse("6942215277578"),
            Err(BarcodeError::CheckDigit {
                code: "6942215277578".into(),
                got: 8,
                expected: 7
            })
        );
        assert!(matches!(
            Ean13::parse("69422152775"),
            Err(BarcodeError::Format(_))
        ));
        assert!(matches!(
            Ean13::parse("69422152775x7"),
            Err(BarcodeError::Format(_))
        ));
    }

    #[test]
    fn scale_label_round_trip() {
        let label = ScaleLabel::encode(2, 1234);
        let scan = Scan::parse(label.as_str()).unwrap();
        assert_eq!(scan.grams(), Some(1234));
        assert_eq!(scan.product_barcode().as_str(), "2000020000002");
        // the zero-weight code is the product itself
        assert_eq!(
            Scan::parse("2000020000002").unwrap(),
            Scan::Product(Ean13::parse("2000020000002").unwrap())
        );
    }

    proptest! {
        #[test]
        fn any_single_digit_error_is_caught(first12 in proptest::array::uniform12(0u8..10), pos in 0usize..13, delta in 1u8..10) {
            let good = Ean13::from_first12(&first12);
            let mut bytes = good.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let bad = String::from_utf8(bytes).unwrap();
            prop_assert!(Ean13::parse(&bad).is_err());
        }

        #[test]
        fn labels_decode_what_they_encode(item in 0u32..100_000, grams in 1u32..1_000_000) {
            let scan = Scan::parse(ScaleLabel::encode(item, grams).as_str()).unwrap();
            prop_assert_eq!(scan.grams(), Some(grams));
            prop_assert_eq!(scan.product_barcode(), ScaleLabel::encode(item, 0));
        }
    }
}
