//! Store locations, the nearest-store index and the routing decision.
//!
//! An online order is fulfilled by one store: the nearest one whose own
//! service radius reaches the customer and whose stock covers every line. If
//! none does, the customer is shown the serving stores that cover part of the
//! order instead of a silent failure. This module makes that decision; the
//! caller holds the stock rights and answers "does this store cover the
//! order?" through a closure, so the decision stays pure and testable.
//!
//! The chain's stores come from a CSV in the format of
//! `shared/data/stores.csv`:
//! `store_id,name,district,lat,lon,service_radius_km,opens,closes[,name_en,region]`.
//! `name` is the display name (Simplified Chinese in the chain's file); the
//! optional `name_en` (English) and `region` (the chain's sales region) are
//! carried when present. Other columns are ignored.
//! Like the catalog import, parsing reports every rejected row with its line
//! number and reason and never stops at the first bad row, so a manager can
//! fix a file in one pass.
//!
//! Positions are `f64` degrees: geography tolerates rounding, unlike money and
//! weights, which are integers elsewhere. Distances are great-circle distances
//! (haversine on a sphere of the mean earth radius), good to about 0.5 % —
//! far better than a service radius drawn on a map.
//!
//! The index is an R-tree over the stores' unit vectors in 3-D rather than
//! over (lat, lon): the straight-line (chord) distance between unit vectors
//! grows monotonically with the great-circle distance, so the tree's
//! nearest-neighbour order is the true distance order everywhere, including
//! across the antimeridian and near the poles, where a flat (lat, lon) tree
//! would be wrong.

use crate::catalog::RejectedRow;
use crate::ticket::valid_store_id;
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Mean earth radius (IUGG), in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Largest service radius a store may declare: anything above is a typo
/// (kilometres entered as metres) or not a neighbourhood store.
pub const MAX_SERVICE_RADIUS_M: u32 = 50_000;

/// Most store rows a stores CSV may hold. A chain has hundreds of stores; a
/// file with more rows is the wrong file, and refusing it bounds the work.
pub const MAX_STORE_ROWS: usize = 10_000;

/// A WGS-84 position. Floats are fine for geography (money/weights are integers elsewhere).
///
/// [`GeoPoint::new`] and deserialization check the ranges. The fields are
/// public for reading and for literals in tests; a point built by hand with a
/// non-finite coordinate is never near any store (see [`StoreIndex::nearest`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "RawGeoPoint")]
pub struct GeoPoint {
    /// Latitude in degrees, -90 (south pole) to 90 (north pole).
    pub lat: f64,
    /// Longitude in degrees, -180 to 180, east positive.
    pub lon: f64,
}

/// The wire shape of a [`GeoPoint`], checked by `TryFrom` before it becomes one.
#[derive(Deserialize)]
struct RawGeoPoint {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawGeoPoint> for GeoPoint {
    type Error = GeoError;
    fn try_from(p: RawGeoPoint) -> Result<Self, Self::Error> {
        GeoPoint::new(p.lat, p.lon)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// Latitude outside [-90, 90], or not a finite number.
    #[error("lat must be between -90 and 90, got {0}")]
    Lat(f64),
    /// Longitude outside [-180, 180], or not a finite number.
    #[error("lon must be between -180 and 180, got {0}")]
    Lon(f64),
}

impl GeoPoint {
    /// A checked position: both coordinates finite, `lat` in [-90, 90] and
    /// `lon` in [-180, 180] degrees.
    pub fn new(lat: f64, lon: f64) -> Result<GeoPoint, GeoError> {
        // `contains` is false for NaN, and infinities are out of range
        if !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Lat(lat));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::Lon(lon));
        }
        Ok(GeoPoint { lat, lon })
    }

    fn is_finite(self) -> bool {
        self.lat.is_finite() && self.lon.is_finite()
    }

    /// The point's unit vector in earth-centred 3-D coordinates.
    fn unit_vector(self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }
}

/// Great-circle distance in metres (haversine, mean earth radius
/// [`EARTH_RADIUS_M`]). NaN if either point has a non-finite coordinate.
pub fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat_a, lat_b) = (a.lat.to_radians(), b.lat.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (b.lon - a.lon).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlon.sin().powi(2);
    // rounding can push h a hair above 1 for antipodal points; clamp keeps NaN
    2.0 * EARTH_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin()
}

/// A store of the chain, where it is and whom it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreSite {
    pub store_id: String,
    pub name: String,
    pub district: String,
    pub location: GeoPoint,
    /// The store delivers to (and accepts pickup orders from) customers
    /// within this great-circle distance.
    pub service_radius_m: u32,
    /// Opening time, `HH:MM` on a 24-hour clock.
    pub opens: String,
    /// Closing time, `HH:MM` on a 24-hour clock; before `opens` for a store
    /// open past midnight.
    pub closes: String,
    /// The English name, when the stores file has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// The chain's region the store belongs to (e.g. 杭州西区), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreSiteError {
    /// Empty, too long, or with characters outside `A-Z 0-9 - _`.
    #[error("store_id {0:?} must be 1-16 characters of A-Z, 0-9, '-' or '_'")]
    StoreId(String),
    /// A required text field was empty or too long.
    #[error("{field} must be 1-{max} characters, none of them control characters (NUL, ESC)")]
    Text { field: &'static str, max: usize },
    /// `lat` or `lon` is not a decimal number.
    #[error("{field} must be a decimal number of degrees, got {got:?}")]
    NotANumber { field: &'static str, got: String },
    /// A coordinate is out of range.
    #[error(transparent)]
    Location(#[from] GeoError),
    /// Not a plain decimal, zero, above the maximum or finer than a metre.
    #[error(
        "service_radius_km must be a decimal number of kilometres above 0 and at most 50, \
         with at most 3 decimals (whole metres), got {0:?}"
    )]
    Radius(String),
    /// Not a valid time of day written `HH:MM`.
    #[error("{field} must be a 24-hour time HH:MM between 00:00 and 23:59, got {got:?}")]
    Time { field: &'static str, got: String },
}

impl StoreSite {
    /// Validates one stores-CSV row's fields (surrounding spaces are ignored).
    #[allow(clippy::too_many_arguments)]
    pub fn from_fields(
        store_id: &str,
        name: &str,
        district: &str,
        lat: &str,
        lon: &str,
        service_radius_km: &str,
        opens: &str,
        closes: &str,
    ) -> Result<StoreSite, StoreSiteError> {
        let store_id = store_id.trim();
        if !valid_store_id(store_id) {
            return Err(StoreSiteError::StoreId(store_id.to_owned()));
        }
        let name = text("name", name, 200)?;
        let district = text("district", district, 64)?;
        let location = GeoPoint::new(degrees("lat", lat)?, degrees("lon", lon)?)?;
        let service_radius_m = radius_m(service_radius_km)
            .ok_or_else(|| StoreSiteError::Radius(service_radius_km.to_owned()))?;
        Ok(StoreSite {
            store_id: store_id.to_owned(),
            name,
            district,
            location,
            service_radius_m,
            opens: time_of_day("opens", opens)?,
            closes: time_of_day("closes", closes)?,
            name_en: None,
            region: None,
        })
    }

    /// Adds the optional columns; an empty one is none.
    pub fn with_extras(mut self, name_en: &str, region: &str) -> Result<StoreSite, StoreSiteError> {
        let opt = |field, s: &str, max| {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                text(field, s, max).map(Some)
            }
        };
        self.name_en = opt("name_en", name_en, 200)?;
        self.region = opt("region", region, 64)?;
        Ok(self)
    }
}

fn text(field: &'static str, s: &str, max: usize) -> Result<String, StoreSiteError> {
    let s = s.trim();
    // a NUL or an ESC/POS command in a name would reach receipts and printers
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(StoreSiteError::Text { field, max });
    }
    Ok(s.to_owned())
}

fn degrees(field: &'static str, s: &str) -> Result<f64, StoreSiteError> {
    // GeoPoint::new refuses the "NaN" and "inf" that f64's parser accepts
    s.trim()
        .parse::<f64>()
        .map_err(|_| StoreSiteError::NotANumber {
            field,
            got: s.to_owned(),
        })
}

/// `3` or `1.5` kilometres to whole metres, parsed exactly (no float
/// rounding): digits, optionally `.` and 1-3 more digits; above 0, at most
/// [`MAX_SERVICE_RADIUS_M`].
fn radius_m(km: &str) -> Option<u32> {
    let (whole, frac) = km.trim().split_once('.').unwrap_or((km.trim(), "000"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || frac.len() > 3 {
        return None;
    }
    // at most 50 km: more than 2 significant digits before the point is out of range
    let whole = whole.trim_start_matches('0');
    if whole.len() > 2 {
        return None;
    }
    let whole: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u32 = format!("{frac:0<3}").parse().ok()?;
    let m = whole * 1000 + frac;
    (1..=MAX_SERVICE_RADIUS_M).contains(&m).then_some(m)
}

/// Exactly `HH:MM`, 00:00 to 23:59.
fn time_of_day(field: &'static str, s: &str) -> Result<String, StoreSiteError> {
    let t = s.trim();
    let ok = match t.as_bytes() {
        [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) => {
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = (m1 - b'0') * 10 + (m2 - b'0');
            hours < 24 && minutes < 60
        }
        _ => false,
    };
    if ok {
        Ok(t.to_owned())
    } else {
        Err(StoreSiteError::Time {
            field,
            got: s.to_owned(),
        })
    }
}

/// The outcome of parsing a stores CSV.
#[derive(Debug, Clone, Default)]
pub struct ParsedStores {
    /// Valid rows with their 1-based line numbers.
    pub stores: Vec<(u64, StoreSite)>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoresCsvError {
    /// The header lacks a column the format requires.
    #[error(
        "CSV header is missing column {0:?}; expected store_id,name,district,lat,lon,service_radius_km,opens,closes"
    )]
    MissingColumn(&'static str),
    /// The file has no header line at all.
    #[error("CSV is empty; expected a header line")]
    Empty,
    /// The header line could not be read, typically because the file is not
    /// UTF-8 text.
    #[error("CSV header line is unreadable ({0}); save the file as UTF-8 CSV")]
    UnreadableHeader(String),
    /// More store rows than [`MAX_STORE_ROWS`]: the wrong file, not a chain.
    #[error("CSV has more than {0} store rows; check that this is the stores file")]
    TooManyRows(usize),
}

const COLUMNS: [&str; 8] = [
    "store_id",
    "name",
    "district",
    "lat",
    "lon",
    "service_radius_km",
    "opens",
    "closes",
];

/// Parses a stores CSV. A broken header or more than [`MAX_STORE_ROWS`] rows
/// fail the whole file; a bad row is reported and skipped; empty lines are
/// skipped. A store_id seen twice keeps the first valid row.
pub fn parse_stores_csv(bytes: &[u8]) -> Result<ParsedStores, StoresCsvError> {
    let mut lines = crate::csv_lines::lines(bytes);
    let headers = match lines.next().map(|(_, l)| crate::csv_lines::record(l)) {
        None => return Err(StoresCsvError::Empty),
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(StoresCsvError::UnreadableHeader(e)),
    };
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(StoresCsvError::Empty);
    }
    let mut idx = [0usize; 8];
    for (slot, col) in idx.iter_mut().zip(COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == col)
            .ok_or(StoresCsvError::MissingColumn(col))?;
    }
    let needed = idx.iter().max().map_or(0, |i| i + 1);
    let optional = |col: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == col)
    };
    let (name_en, region) = (optional("name_en"), optional("region"));
    let mut out = ParsedStores::default();
    // store_id -> line of the row that holds it
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rows = 0usize;
    for (line, text) in lines {
        let record = match crate::csv_lines::record(text) {
            Ok(r) => r,
            Err(reason) => {
                rows += 1;
                if rows > MAX_STORE_ROWS {
                    return Err(StoresCsvError::TooManyRows(MAX_STORE_ROWS));
                }
                out.rejected.push(RejectedRow { line, reason });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        rows += 1;
        if rows > MAX_STORE_ROWS {
            return Err(StoresCsvError::TooManyRows(MAX_STORE_ROWS));
        }
        if record.len() < needed {
            out.rejected.push(RejectedRow {
                line,
                reason: format!(
                    "row has {} fields, expected {}; check for a missing comma",
                    record.len(),
                    needed
                ),
            });
            continue;
        }
        let f = |i: usize| record.get(idx[i]).unwrap_or("");
        let extra = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
        match StoreSite::from_fields(f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7))
            .and_then(|s| s.with_extras(extra(name_en), extra(region)))
        {
            Ok(site) => {
                if let Some(first) = seen.get(&site.store_id) {
                    out.rejected.push(RejectedRow {
                        line,
                        reason: format!(
                            "duplicate store_id {} (first on line {first})",
                            site.store_id
                        ),
                    });
                } else {
                    seen.insert(site.store_id.clone(), line);
                    out.stores.push((line, site));
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

/// An entry of the R-tree: a store's unit vector and its position in `sites`.
type TreeEntry = GeomWithData<[f64; 3], usize>;

/// Distances may differ from the tree's chord order by float rounding (well
/// under a micrometre near a store); [`StoreIndex::serving`] looks this much
/// past the largest radius so such a store is never cut off.
const ORDER_SLACK_M: f64 = 0.001;

/// Nearest-store index: an R-tree (crate `rstar`, latest 0.12.x) over points on the unit sphere in 3-D
/// (x,y,z of the unit vector); chord distance is monotone in great-circle distance, so
/// `nearest_neighbor_iter` yields stores in true distance order anywhere on earth.
///
/// Immutable once built: the store list changes a few times a year, so an
/// edit rebuilds the index (bulk loading 10,000 stores takes milliseconds).
#[derive(Debug, Clone, Default)]
pub struct StoreIndex {
    /// Sorted by `store_id`, unique.
    sites: Vec<StoreSite>,
    tree: RTree<TreeEntry>,
    max_radius_m: u32,
}

impl StoreIndex {
    /// Indexes `sites`; a later site with the same id replaces the earlier.
    ///
    /// A site whose location is not a valid [`GeoPoint`] (only possible for
    /// one built by hand, never from [`parse_stores_csv`] or deserialization)
    /// has no place on the map and is left out.
    pub fn new(sites: impl IntoIterator<Item = StoreSite>) -> StoreIndex {
        let by_id: BTreeMap<String, StoreSite> =
            sites.into_iter().map(|s| (s.store_id.clone(), s)).collect();
        let sites: Vec<StoreSite> = by_id
            .into_values()
            .filter(|s| GeoPoint::new(s.location.lat, s.location.lon).is_ok())
            .collect();
        let entries = sites
            .iter()
            .enumerate()
            .map(|(i, s)| TreeEntry::new(s.location.unit_vector(), i))
            .collect();
        let max_radius_m = sites.iter().map(|s| s.service_radius_m).max().unwrap_or(0);
        StoreIndex {
            tree: RTree::bulk_load(entries),
            sites,
            max_radius_m,
        }
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    pub fn get(&self, store_id: &str) -> Option<&StoreSite> {
        self.sites
            .binary_search_by(|s| s.store_id.as_str().cmp(store_id))
            .ok()
            .and_then(|i| self.sites.get(i))
    }

    /// All stores, sorted by `store_id`.
    pub fn sites(&self) -> impl Iterator<Item = &StoreSite> {
        self.sites.iter()
    }

    /// All stores, nearest first, with their distance in metres.
    ///
    /// Lazy: taking the first few stores visits only a few tree nodes. Equal
    /// distances come in no particular order. Nothing for a point with a
    /// non-finite coordinate.
    pub fn nearest(&self, at: GeoPoint) -> impl Iterator<Item = (&StoreSite, f64)> + '_ {
        let query = at.is_finite().then(|| at.unit_vector());
        query
            .into_iter()
            .flat_map(move |q| self.tree.nearest_neighbor_iter(&q))
            .filter_map(move |entry| {
                let site = self.sites.get(entry.data)?;
                Some((site, distance_m(at, site.location)))
            })
    }

    /// The stores whose own service radius covers `at`, nearest first; stops as soon as the
    /// distance exceeds the largest radius in the index (so it touches only nearby stores).
    pub fn serving(&self, at: GeoPoint) -> impl Iterator<Item = (&StoreSite, f64)> + '_ {
        let horizon = f64::from(self.max_radius_m) + ORDER_SLACK_M;
        self.nearest(at)
            .take_while(move |(_, d)| *d <= horizon)
            .filter(|(site, d)| *d <= f64::from(site.service_radius_m))
    }
}

/// How well one store's stock (rights) covers an order; the caller decides (it holds the rights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// Every line of the order.
    Full,
    /// Some lines: the SKUs the store can supply. An empty list counts as
    /// [`Coverage::Nothing`].
    Partial { covered: Vec<String> },
    /// No line.
    Nothing,
}

/// A serving store that could supply part of an order the chain cannot
/// route whole, shown to the customer as a choice.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Alternative {
    pub store_id: String,
    pub name: String,
    /// Rounded to whole metres.
    pub distance_m: u32,
    /// The order's SKUs this store covers, as the caller reported them.
    pub covered_skus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteOutcome<'a> {
    /// The nearest serving store that covers every line.
    Routed {
        site: &'a StoreSite,
        /// Rounded to whole metres.
        distance_m: u32,
    },
    /// No serving store covers all lines: those that cover part of it, nearest first (may be empty).
    Unserved {
        alternatives: Vec<Alternative>,
        /// How many stores serve the point at all; 0 means the point is
        /// outside every store's service radius.
        serving_stores: usize,
    },
}

/// Nearest store by `at` within its service radius whose coverage is Full; else next nearest; else Unserved.
/// `covers` is called on serving stores in distance order and not after the first Full.
pub fn route<'a>(
    index: &'a StoreIndex,
    at: GeoPoint,
    mut covers: impl FnMut(&StoreSite) -> Coverage,
) -> RouteOutcome<'a> {
    let mut alternatives = Vec::new();
    let mut serving_stores = 0;
    for (site, d) in index.serving(at) {
        serving_stores += 1;
        match covers(site) {
            Coverage::Full => {
                return RouteOutcome::Routed {
                    site,
                    distance_m: whole_metres(d),
                };
            }
            Coverage::Partial { covered } if !covered.is_empty() => {
                alternatives.push(Alternative {
                    store_id: site.store_id.clone(),
                    name: site.name.clone(),
                    distance_m: whole_metres(d),
                    covered_skus: covered,
                });
            }
            Coverage::Partial { .. } | Coverage::Nothing => {}
        }
    }
    RouteOutcome::Unserved {
        alternatives,
        serving_stores,
    }
}

/// Serving distances are at most [`MAX_SERVICE_RADIUS_M`], so this never saturates.
fn whole_metres(d: f64) -> u32 {
    d.round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = "store_id,name,district,lat,lon,service_radius_km,opens,closes\n";

    fn pt(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn site(id: &str, lat: f64, lon: f64, radius_m: u32) -> StoreSite {
        StoreSite {
            store_id: id.to_owned(),
            name: format!("Lvyuan {id}"),
            district: "Xihu".to_owned(),
            location: pt(lat, lon),
            service_radius_m: radius_m,
            opens: "07:00".to_owned(),
            closes: "22:00".to_owned(),
            name_en: None,
            region: None,
        }
    }

    #[test]
    fn parses_reference_rows() {
        let csv = format!(
            "{HEADER}S001,Lvyuan Wensan Rd,Xihu,30.373276,120.161971,3,07:00,22:30\n\
             S003,Lvyuan Jiefang Rd,Shangcheng,30.28229,120.053159,1.5,07:00,22:00\n\
             S-ZJ_9, Lvyuan Night , Binjiang ,-33.5,-70.25,0.75,18:00,02:00\n"
        );
        let parsed = parse_stores_csv(csv.as_bytes()).unwrap();
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let lines: Vec<u64> = parsed.stores.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert_eq!(
            parsed.stores[0].1,
            StoreSite {
                store_id: "S001".into(),
                name: "Lvyuan Wensan Rd".into(),
                district: "Xihu".into(),
                location: pt(30.373276, 120.161971),
                service_radius_m: 3000,
                opens: "07:00".into(),
                closes: "22:30".into(),
                name_en: None,
                region: None,
            }
        );
        assert_eq!(parsed.stores[1].1.service_radius_m, 1500);
        let night = &parsed.stores[2].1;
        assert_eq!(night.name, "Lvyuan Night");
        assert_eq!(night.service_radius_m, 750);
        assert_eq!(
            (night.opens.as_str(), night.closes.as_str()),
            ("18:00", "02:00")
        );
    }

    #[test]
    fn reports_every_bad_row_with_its_line() {
        let csv = format!(
            "{HEADER}S001,Good,Xihu,30.3,120.1,3,07:00,22:30\n\
             s002,Lowercase id,Xihu,30.3,120.1,3,07:00,22:30\n\
             S003,,Xihu,30.3,120.1,3,07:00,22:30\n\
             S004,No district,,30.3,120.1,3,07:00,22:30\n\
             S005,Lat text,Xihu,north,120.1,3,07:00,22:30\n\
             S006,Lat range,Xihu,91,120.1,3,07:00,22:30\n\
             S007,Lon range,Xihu,30.3,180.5,3,07:00,22:30\n\
             S008,Lat NaN,Xihu,NaN,120.1,3,07:00,22:30\n\
             \n\
             S009,Zero radius,Xihu,30.3,120.1,0,07:00,22:30\n\
             S010,Huge radius,Xihu,30.3,120.1,50.001,07:00,22:30\n\
             S011,Negative radius,Xihu,30.3,120.1,-1,07:00,22:30\n\
             S012,Radius text,Xihu,30.3,120.1,3km,07:00,22:30\n\
             S013,Radius too fine,Xihu,30.3,120.1,1.2345,07:00,22:30\n\
             S014,Hour 24,Xihu,30.3,120.1,3,24:00,22:30\n\
             S015,One-digit hour,Xihu,30.3,120.1,3,7:00,22:30\n\
             S016,Minute 60,Xihu,30.3,120.1,3,07:00,21:60\n\
             S001,Duplicate,Xihu,30.3,120.1,3,07:00,22:30\n\
             S017,Short row,Xihu,30.3\n\
             S018,Also good,Xihu,30.3,120.1,50,00:00,23:59\n"
        );
        let parsed = parse_stores_csv(csv.as_bytes()).unwrap();
        let ids: Vec<&str> = parsed
            .stores
            .iter()
            .map(|(_, s)| s.store_id.as_str())
            .collect();
        assert_eq!(ids, vec!["S001", "S018"]);
        assert_eq!(parsed.stores[1].0, 21);
        assert_eq!(parsed.stores[1].1.service_radius_m, 50_000);
        let got: Vec<(u64, &str)> = parsed
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        let want: Vec<(u64, &str)> = vec![
            (3, "store_id \"s002\" must be 1-16 characters"),
            (4, "name must be 1-200 characters"),
            (5, "district must be 1-64 characters"),
            (6, "lat must be a decimal number of degrees, got \"north\""),
            (7, "lat must be between -90 and 90, got 91"),
            (8, "lon must be between -180 and 180, got 180.5"),
            (9, "lat must be between -90 and 90, got NaN"),
            // line 10 is empty and skipped
            (11, "service_radius_km must be"),
            (12, "service_radius_km must be"),
            (13, "service_radius_km must be"),
            (14, "service_radius_km must be"),
            (15, "service_radius_km must be"),
            (16, "opens must be a 24-hour time HH:MM"),
            (17, "opens must be a 24-hour time HH:MM"),
            (18, "closes must be a 24-hour time HH:MM"),
            (19, "duplicate store_id S001 (first on line 2)"),
            (20, "row has 4 fields, expected 8"),
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for ((line, reason), (want_line, want_reason)) in got.iter().zip(&want) {
            assert_eq!(line, want_line, "{reason}");
            assert!(
                reason.starts_with(want_reason),
                "line {line}: {reason:?} should start with {want_reason:?}"
            );
        }
        assert!(got[7].1.ends_with("got \"0\""));
    }

    #[test]
    fn line_numbers_count_empty_lines_and_crlf() {
        let row = "S00X,A,Xihu,30.3,120.1,3,07:00,22:30";
        for eol in ["\n", "\r\n"] {
            let csv = [
                HEADER.trim_end(),
                &row.replace('X', "1"),
                "",
                "",
                &row.replace('X', "2"),
                "S003,bad,Xihu,30.3,120.1,0,07:00,22:30",
                "",
                &row.replace('X', "4"),
                "",
            ]
            .join(eol);
            let parsed = parse_stores_csv(csv.as_bytes()).unwrap();
            let lines: Vec<u64> = parsed.stores.iter().map(|(l, _)| *l).collect();
            assert_eq!(lines, vec![2, 5, 8], "{eol:?}");
            assert_eq!(parsed.rejected[0].line, 6, "{eol:?}");
        }
    }

    #[test]
    fn unbalanced_quote_is_a_rejected_line_and_later_rows_survive() {
        let csv = format!(
            "{HEADER}S001,A,Xihu,30.3,120.1,3,07:00,22:30\n\
             S002,\"Bad, open quote,Xihu,30.3,120.1,3,07:00,22:30\n\
             \n\
             S003,\"C, \"\"quoted\"\"\",Xihu,30.3,120.1,3,07:00,22:30\n\
             S004,D,Xihu,30.3,120.1,3,07:00,22:30\n"
        );
        let parsed = parse_stores_csv(csv.as_bytes()).unwrap();
        let ok: Vec<(u64, &str)> = parsed
            .stores
            .iter()
            .map(|(l, s)| (*l, s.store_id.as_str()))
            .collect();
        assert_eq!(ok, vec![(2, "S001"), (5, "S003"), (6, "S004")]);
        assert_eq!(parsed.stores[1].1.name, "C, \"quoted\"");
        assert_eq!(parsed.rejected.len(), 1, "{:?}", parsed.rejected);
        assert_eq!(parsed.rejected[0].line, 3);
        assert!(parsed.rejected[0].reason.contains("unbalanced quote"));
    }

    #[test]
    fn radius_is_parsed_exactly_in_metres() {
        for (km, m) in [
            ("3", Some(3000)),
            ("1.5", Some(1500)),
            ("0.001", Some(1)),
            ("002.25", Some(2250)),
            ("50", Some(50_000)),
            ("50.000", Some(50_000)),
            ("0", None),
            ("0.000", None),
            ("50.001", None),
            ("99999999999999999999", None),
            ("100000000000000000000.5", None),
            ("100", None),
            ("1.", None),
            (".5", None),
            ("1e3", None),
            ("+1", None),
            ("", None),
        ] {
            assert_eq!(radius_m(km), m, "{km:?}");
        }
    }

    #[test]
    fn unreadable_data_row_is_rejected_and_parsing_goes_on() {
        let mut csv = HEADER.as_bytes().to_vec();
        csv.extend_from_slice(b"S001,Bad \xff name,Xihu,30.3,120.1,3,07:00,22:30\n");
        csv.extend_from_slice(b"S002,Good,Xihu,30.3,120.1,3,07:00,22:30\n");
        let parsed = parse_stores_csv(&csv).unwrap();
        assert_eq!(parsed.stores.len(), 1);
        assert_eq!(parsed.stores[0].0, 3);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 2);
        assert!(parsed.rejected[0].reason.starts_with("unreadable row"));
    }

    #[test]
    fn broken_header_or_too_many_rows_fail_the_file() {
        assert_eq!(
            parse_stores_csv(b"store_id,name,district,lat,lon\nS1,a,b,1,2\n").unwrap_err(),
            StoresCsvError::MissingColumn("service_radius_km")
        );
        assert_eq!(parse_stores_csv(b"").unwrap_err(), StoresCsvError::Empty);
        let err = parse_stores_csv(b"store_id,na\xffme,district\n").unwrap_err();
        assert!(
            matches!(err, StoresCsvError::UnreadableHeader(_)),
            "{err:?}"
        );
        assert!(err.to_string().contains("UTF-8"));
        // a byte-order mark before the header is fine
        let bom = format!("\u{feff}{HEADER}S001,A,Xihu,30.3,120.1,3,07:00,22:30\n");
        assert_eq!(parse_stores_csv(bom.as_bytes()).unwrap().stores.len(), 1);

        let mut csv = HEADER.to_owned();
        for i in 0..MAX_STORE_ROWS {
            csv.push_str(&format!("S{i},A,Xihu,30.3,120.1,3,07:00,22:30\n"));
        }
        assert_eq!(
            parse_stores_csv(csv.as_bytes()).unwrap().stores.len(),
            MAX_STORE_ROWS
        );
        csv.push_str("\n\n"); // empty lines do not count
        assert!(parse_stores_csv(csv.as_bytes()).is_ok());
        csv.push_str("X,,,,,,,\n"); // a bad row does
        assert_eq!(
            parse_stores_csv(csv.as_bytes()).unwrap_err(),
            StoresCsvError::TooManyRows(MAX_STORE_ROWS)
        );
    }

    #[test]
    fn reference_stores_parse_cleanly() {
        // the project's own copy of the reference stores (shared/data/stores.csv)
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/stores.csv");
        let data = std::fs::read(path).unwrap();
        let parsed = parse_stores_csv(&data).unwrap();
        assert_eq!(parsed.stores.len(), 20, "{:?}", parsed.rejected);
        assert!(parsed.rejected.is_empty());
        let index = StoreIndex::new(parsed.stores.into_iter().map(|(_, s)| s));
        assert_eq!(index.len(), 20);
        let s001 = index.get("S001").unwrap();
        assert_eq!(s001.name, "绿源生活·文三路店");
        assert_eq!(s001.name_en.as_deref(), Some("Lvyuan Wensan Rd"));
        assert_eq!(s001.region.as_deref(), Some("杭州西区"));
        let (nearest, d) = index.serving(s001.location).next().unwrap();
        assert_eq!((nearest.store_id.as_str(), d), ("S001", 0.0));
    }

    #[test]
    fn geo_point_checks_ranges() {
        assert!(GeoPoint::new(90.0, -180.0).is_ok());
        assert!(GeoPoint::new(-90.0, 180.0).is_ok());
        assert_eq!(GeoPoint::new(90.5, 0.0), Err(GeoError::Lat(90.5)));
        assert_eq!(GeoPoint::new(0.0, -181.0), Err(GeoError::Lon(-181.0)));
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        assert_eq!(
            GeoPoint::new(-100.0, 0.0).unwrap_err().to_string(),
            "lat must be between -90 and 90, got -100"
        );
    }

    #[test]
    fn geo_point_deserialization_checks_ranges() {
        let p: GeoPoint = serde_json::from_str(r#"{"lat":30.27,"lon":120.15}"#).unwrap();
        assert_eq!(p, pt(30.27, 120.15));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"lat":30.27,"lon":120.15}"#
        );
        let err = serde_json::from_str::<GeoPoint>(r#"{"lat":120.15,"lon":30.27}"#).unwrap_err();
        assert!(
            err.to_string().contains("lat must be between -90 and 90"),
            "{err}"
        );
    }

    #[test]
    fn distance_sanity() {
        // 0.01 degree of latitude on the mean sphere: 6_371_008.8 * 0.01 * pi / 180
        let d = distance_m(pt(30.0, 120.0), pt(30.01, 120.0));
        assert!((d - 1111.95).abs() < 1.0, "{d}");
        assert_eq!(distance_m(pt(30.0, 120.0), pt(30.0, 120.0)), 0.0);
        // symmetric, and across the antimeridian
        let (a, b) = (pt(0.0, 179.995), pt(0.0, -179.995));
        assert!((distance_m(a, b) - 1111.95).abs() < 1.0);
        assert_eq!(distance_m(a, b), distance_m(b, a));
        // half the circumference between antipodes
        let half = std::f64::consts::PI * EARTH_RADIUS_M;
        assert!((distance_m(pt(90.0, 0.0), pt(-90.0, 0.0)) - half).abs() < 1e-6);
        assert!((distance_m(pt(10.0, 20.0), pt(-10.0, -160.0)) - half).abs() < 1.0);
        // West Lake to Hangzhou East station, about 7 km
        let d = distance_m(pt(30.2590, 120.1490), pt(30.2906, 120.2127));
        assert!((7_000.0..7_500.0).contains(&d), "{d}");
        assert!(
            distance_m(
                GeoPoint {
                    lat: f64::NAN,
                    lon: 0.0
                },
                a
            )
            .is_nan()
        );
    }

    #[test]
    fn index_replaces_duplicates_sorts_and_drops_invalid_locations() {
        let mut bad = site("S000", 0.0, 0.0, 1000);
        bad.location.lat = f64::NAN;
        let index = StoreIndex::new([
            site("S002", 30.3, 120.1, 1000),
            site("S001", 30.2, 120.1, 1000),
            site("S002", 30.4, 120.2, 2000),
            bad,
        ]);
        assert_eq!(index.len(), 2);
        assert!(!index.is_empty());
        let ids: Vec<&str> = index.sites().map(|s| s.store_id.as_str()).collect();
        assert_eq!(ids, vec!["S001", "S002"]);
        assert_eq!(index.get("S002").unwrap().service_radius_m, 2000);
        assert!(index.get("S000").is_none());
        assert!(index.get("S003").is_none());

        let empty = StoreIndex::default();
        assert!(empty.is_empty());
        assert_eq!(empty.nearest(pt(0.0, 0.0)).count(), 0);
        assert_eq!(StoreIndex::new([]).serving(pt(0.0, 0.0)).count(), 0);
        // a non-finite query point is near nothing
        let nan = GeoPoint {
            lat: f64::NAN,
            lon: 0.0,
        };
        assert_eq!(index.nearest(nan).count(), 0);
    }

    #[test]
    fn nearest_works_across_the_antimeridian_and_poles() {
        let index = StoreIndex::new([
            site("EAST", 0.0, 179.9, 20_000),
            site("WEST", 0.0, -179.95, 20_000),
            site("FAR", 0.0, 170.0, 20_000),
            site("POLE", 89.99, 0.0, 5_000),
        ]);
        let ids: Vec<&str> = index
            .nearest(pt(0.0, -179.99))
            .map(|(s, _)| s.store_id.as_str())
            .collect();
        assert_eq!(ids, vec!["WEST", "EAST", "FAR", "POLE"]);
        let serving: Vec<&str> = index
            .serving(pt(89.99, 180.0))
            .map(|(s, _)| s.store_id.as_str())
            .collect();
        assert_eq!(serving, vec!["POLE"]);
    }

    /// Stores around a centre, `spread` degrees wide; with `grid` their
    /// positions snap to 0.01° so that many distances tie.
    fn scene() -> impl Strategy<Value = (Vec<StoreSite>, Vec<GeoPoint>)> {
        let spread = prop_oneof![Just(0.05), Just(1.0), Just(400.0)];
        (
            -90.0..=90.0f64,
            -180.0..=180.0f64,
            spread,
            any::<bool>(),
            prop::collection::vec((-1.0..1.0f64, -1.0..1.0f64, 1..=50_000u32), 0..80),
            prop::collection::vec((-1.0..1.0f64, -1.0..1.0f64), 1..8),
        )
            .prop_map(|(lat0, lon0, spread, grid, stores, queries)| {
                let place = |dlat: f64, dlon: f64| {
                    let mut lat = (lat0 + dlat * spread / 2.0).clamp(-90.0, 90.0);
                    let mut lon = (lon0 + dlon * spread + 180.0).rem_euclid(360.0) - 180.0;
                    if grid {
                        lat = (lat * 100.0).round() / 100.0;
                        lon = (lon * 100.0).round() / 100.0;
                    }
                    pt(lat, lon)
                };
                let stores = stores
                    .into_iter()
                    .enumerate()
                    .map(|(i, (dlat, dlon, radius))| {
                        let p = place(dlat, dlon);
                        site(&format!("S{i}"), p.lat, p.lon, radius)
                    })
                    .collect();
                let queries = queries.into_iter().map(|(a, b)| place(a, b)).collect();
                (stores, queries)
            })
    }

    /// Float rounding may order near-equal distances either way.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 + a.max(b) * 1e-9
    }

    proptest! {
        #[test]
        fn nearest_and_serving_match_brute_force((stores, queries) in scene()) {
            let index = StoreIndex::new(stores.clone());
            for q in queries {
                let mut want: Vec<(&str, f64)> = stores
                    .iter()
                    .map(|s| (s.store_id.as_str(), distance_m(q, s.location)))
                    .collect();
                want.sort_by(|a, b| a.1.total_cmp(&b.1));
                let got: Vec<(&str, f64)> =
                    index.nearest(q).map(|(s, d)| (s.store_id.as_str(), d)).collect();
                prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!(close(g.1, w.1), "{:?} vs {:?}", g, w);
                }
                let mut got_ids: Vec<&str> = got.iter().map(|g| g.0).collect();
                let mut want_ids: Vec<&str> = want.iter().map(|w| w.0).collect();
                got_ids.sort_unstable();
                want_ids.sort_unstable();
                prop_assert_eq!(got_ids, want_ids);

                let serving: Vec<(&str, f64)> =
                    index.serving(q).map(|(s, d)| (s.store_id.as_str(), d)).collect();
                let want_serving: Vec<(&str, f64)> = want
                    .iter()
                    .copied()
                    .filter(|(id, d)| {
                        index.get(id).is_some_and(|s| *d <= f64::from(s.service_radius_m))
                    })
                    .collect();
                prop_assert_eq!(serving.len(), want_serving.len());
                for (g, w) in serving.iter().zip(&want_serving) {
                    prop_assert!(close(g.1, w.1), "{:?} vs {:?}", g, w);
                }
                let mut got_ids: Vec<&str> = serving.iter().map(|g| g.0).collect();
                let mut want_ids: Vec<&str> = want_serving.iter().map(|w| w.0).collect();
                got_ids.sort_unstable();
                want_ids.sort_unstable();
                prop_assert_eq!(got_ids, want_ids);
            }
        }
    }

    /// Four stores east of a customer at roughly 0.5, 1, 1.5 and 20 km.
    fn town() -> (StoreIndex, GeoPoint) {
        let at = pt(30.27, 120.15);
        let east = |km: f64| 120.15 + km / 96.1;
        let index = StoreIndex::new([
            site("A", 30.27, east(0.5), 3000),
            site("B", 30.27, east(1.0), 3000),
            site("C", 30.27, east(1.5), 3000),
            site("D", 30.27, east(20.0), 3000),
            // 1.2 km away, but serves only 1 km around itself
            site("SMALL", 30.27, east(1.2), 1000),
        ]);
        (index, at)
    }

    fn partial(skus: &[&str]) -> Coverage {
        Coverage::Partial {
            covered: skus.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn nearest_full_store_wins() {
        let (index, at) = town();
        let mut asked = Vec::new();
        let outcome = route(&index, at, |s| {
            asked.push(s.store_id.clone());
            Coverage::Full
        });
        let RouteOutcome::Routed { site, distance_m } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(site.store_id, "A");
        assert!((495..=505).contains(&distance_m), "{distance_m}");
        assert_eq!(asked, vec!["A"], "not asked after the first Full");
    }

    #[test]
    fn falls_back_to_the_next_nearest_full_store() {
        let (index, at) = town();
        let mut asked = Vec::new();
        let outcome = route(&index, at, |s| {
            asked.push(s.store_id.clone());
            match s.store_id.as_str() {
                "A" => partial(&["P1"]),
                "B" => Coverage::Full,
                _ => Coverage::Nothing,
            }
        });
        assert!(
            matches!(outcome, RouteOutcome::Routed { site, .. } if site.store_id == "B"),
            "{outcome:?}"
        );
        assert_eq!(asked, vec!["A", "B"]);
    }

    #[test]
    fn partial_coverage_only_gives_alternatives_nearest_first() {
        let (index, at) = town();
        let mut asked = Vec::new();
        let outcome = route(&index, at, |s| {
            asked.push(s.store_id.clone());
            match s.store_id.as_str() {
                "A" => Coverage::Nothing,
                "B" => partial(&["P2"]),
                "C" => partial(&["P1", "P2"]),
                "D" | "SMALL" => Coverage::Full,
                _ => partial(&[]),
            }
        });
        // D and SMALL would cover everything but do not serve the customer
        assert_eq!(asked, vec!["A", "B", "C"]);
        let RouteOutcome::Unserved {
            alternatives,
            serving_stores,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(serving_stores, 3);
        let ids: Vec<&str> = alternatives.iter().map(|a| a.store_id.as_str()).collect();
        assert_eq!(ids, vec!["B", "C"]);
        assert_eq!(alternatives[0].name, "Lvyuan B");
        assert_eq!(alternatives[1].covered_skus, vec!["P1", "P2"]);
        assert!((995..=1005).contains(&alternatives[0].distance_m));
        assert!(alternatives[0].distance_m < alternatives[1].distance_m);
    }

    #[test]
    fn empty_partial_is_no_alternative() {
        let (index, at) = town();
        let outcome = route(&index, at, |_| partial(&[]));
        assert_eq!(
            outcome,
            RouteOutcome::Unserved {
                alternatives: vec![],
                serving_stores: 3
            }
        );
    }

    #[test]
    fn outside_every_radius_is_unserved_with_no_serving_store() {
        let (index, _) = town();
        let mut asked = 0;
        let outcome = route(&index, pt(31.0, 121.0), |_| {
            asked += 1;
            Coverage::Full
        });
        assert_eq!(
            outcome,
            RouteOutcome::Unserved {
                alternatives: vec![],
                serving_stores: 0
            }
        );
        assert_eq!(asked, 0);
        let empty = StoreIndex::default();
        let outcome = route(&empty, pt(0.0, 0.0), |_| Coverage::Full);
        assert!(matches!(
            outcome,
            RouteOutcome::Unserved {
                serving_stores: 0,
                ..
            }
        ));
    }
}
