//! `store/<S>/ledger/<day>`: the store's append-only record of the day —
//! sales, refunds, stock movements and pickup orders, each keyed by the id it
//! was born with. Keys are never reused, so merging any replicas of a ledger
//! is the union of their entries (tested as a law in this module).

use automerge::{AutoCommit, AutomergeError, ObjId, ObjType, ReadDoc, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::json::{packed, put_record};
use super::{Entries, existing_map, get_i64, get_str, list_maps, root_map};

/// A sale as the rest of the chain sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleFact {
    /// In the document, the entry's key and not repeated in its value
    /// ([`record_sale`]); filled from the key when read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sale_id: String,
    pub ticket_no: String,
    /// Store-local timestamp, for display only (sync never reads clocks).
    pub created_at: String,
    pub cashier: String,
    pub total_fen: i64,
    pub lines: Vec<SaleLineFact>,
    pub payments: Vec<PaymentFact>,
    pub member: bool,
    /// Cash handed over and change given (0 in entries written before they
    /// were recorded).
    #[serde(default)]
    pub tendered_fen: i64,
    #[serde(default)]
    pub change_fen: i64,
    /// The store's keyed hash of the member's phone (never the phone).
    #[serde(default)]
    pub member_hash: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleLineFact {
    pub sku: String,
    pub qty: i64,
    pub total_fen: i64,
    /// Price per unit (per kg for `kg` products); 0 in entries written
    /// before it was recorded.
    #[serde(default)]
    pub unit_price_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFact {
    pub method: String,
    pub amount_fen: i64,
}

/// A stock movement other than a sale (receipts, waste, counts, refunds,
/// pickups); sales' movements follow from their lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementFact {
    pub movement_id: String,
    pub sku: String,
    pub kind: String,
    pub delta: i64,
    pub reason: String,
    pub ref_id: String,
    pub staff: String,
    pub at: String,
}

/// A refund of (part of) a sale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundFact {
    pub refund_id: String,
    pub sale_id: String,
    pub amount_fen: i64,
    pub staff: String,
    pub at: String,
    /// Which lines went back, how many, and where the goods went (empty in
    /// entries written before they were recorded).
    #[serde(default)]
    pub lines: Vec<RefundLineFact>,
    #[serde(default)]
    pub reason: String,
}

/// One refunded line of a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLineFact {
    pub line_no: u32,
    pub qty: i64,
    pub amount_fen: i64,
    /// `restock` or `waste`.
    pub disposition: String,
}

/// A pickup order's current state at the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFact {
    pub order_id: String,
    pub status: String,
    pub total_fen: i64,
    pub created_at: String,
    pub handed_over_at: String,
    pub handed_over_by: String,
    /// What the counter needs to hand the order over on another PC (absent
    /// in entries written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<OrderDetail>,
}

/// A pickup order's terms, as taken at the counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetail {
    pub channel: String,
    pub fulfilment: String,
    /// HMAC-SHA256 of the customer's normalised phone under the chain's
    /// member key: another PC finds the order by the typed phone's hash.
    #[serde(default)]
    pub customer_hash: String,
    /// `138****1234`: found by its last four digits, shown to staff.
    #[serde(default)]
    pub customer_masked: String,
    /// The phone in the clear, as orders written before 2026-12-02 carried
    /// it: read so they can still be restored, never written.
    #[serde(default, skip_serializing)]
    pub customer_phone: String,
    pub pickup_code: String,
    pub created_by: String,
    pub expires_at: String,
    #[serde(default)]
    pub closed_at: String,
    #[serde(default)]
    pub closed_by: String,
    pub lines: Vec<OrderLineFact>,
}

/// One line of a pickup order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineFact {
    pub sku: String,
    pub qty: i64,
    pub unit_price_fen: i64,
    pub total_fen: i64,
}

/// Records a sale (idempotent: the same sale id writes the same entry).
/// Each entry is one JSON string, one automerge operation
/// ([`super::json`]): entries are written once and read back whole.
///
/// The sale id is the entry's key and is not repeated in the value: a
/// ULID is ~10 bytes no compression removes, and keys and values sit in
/// different columns of automerge's encoding, so the copy cost ~15 B per
/// sale on the wire (`sync_bench` 1e). Entries written before carry it in
/// the value too; readers take the key either way.
pub fn record_sale(doc: &mut AutoCommit, s: &SaleFact) -> Result<(), AutomergeError> {
    let body = SaleFact {
        sale_id: String::new(),
        ..s.clone()
    };
    append(doc, "sales", &s.sale_id, &body)
}

/// An entry read from its value, told the key it is stored under.
trait Keyed: DeserializeOwned {
    fn keyed(self, _key: &str) -> Self {
        self
    }
}

impl Keyed for SaleFact {
    fn keyed(mut self, key: &str) -> Self {
        if self.sale_id.is_empty() {
            key.clone_into(&mut self.sale_id);
        }
        self
    }
}
impl Keyed for RefundFact {}
impl Keyed for MovementFact {}
impl Keyed for OrderFact {}

pub fn record_movement(doc: &mut AutoCommit, m: &MovementFact) -> Result<(), AutomergeError> {
    append(doc, "movements", &m.movement_id, m)
}

pub fn record_refund(doc: &mut AutoCommit, r: &RefundFact) -> Result<(), AutomergeError> {
    append(doc, "refunds", &r.refund_id, r)
}

/// Writes an entry under a key it is born with, once.
fn append<T: Serialize>(
    doc: &mut AutoCommit,
    section: &str,
    key: &str,
    entry: &T,
) -> Result<(), AutomergeError> {
    let map = root_map(doc, section)?;
    if doc.get(&map, key)?.is_some() {
        return Ok(());
    }
    put_record(doc, section, key, entry).map(|_| ())
}

/// An entry as written now (one JSON string), or as written before entries
/// were packed (a map of fields, read by `nested`).
fn entry<T: Keyed>(
    doc: &AutoCommit,
    key: &str,
    value: Value<'_>,
    id: ObjId,
    nested: impl FnOnce(&AutoCommit, String, ObjId) -> T,
) -> Option<T> {
    match value {
        Value::Object(ObjType::Map) => Some(nested(doc, key.to_owned(), id)),
        other => packed::<T>(&other).map(|t| t.keyed(key)),
    }
}

/// The entries of a section whose key passes `wanted`, ordered by key.
fn entries_where<T: Keyed>(
    doc: &AutoCommit,
    section: &str,
    wanted: impl Fn(&str) -> bool,
    nested: impl Fn(&AutoCommit, String, ObjId) -> T,
) -> Vec<T> {
    let Some(map) = existing_map(doc, section) else {
        return Vec::new();
    };
    doc.map_range(&map, ..)
        .filter(|item| wanted(&item.key))
        .filter_map(|item| {
            entry(
                doc,
                &item.key,
                item.value.clone().into_value(),
                item.id(),
                &nested,
            )
        })
        .collect()
}

/// The entries of a section under these keys (those present), each looked
/// up by its key.
fn entries_of<'a, T: Keyed>(
    doc: &AutoCommit,
    section: &str,
    keys: impl IntoIterator<Item = &'a String>,
    nested: impl Fn(&AutoCommit, String, ObjId) -> T,
) -> Vec<T> {
    let Some(map) = existing_map(doc, section) else {
        return Vec::new();
    };
    keys.into_iter()
        .filter_map(|key| {
            let (value, id) = doc.get(&map, key.as_str()).ok()??;
            entry(doc, key, value, id, &nested)
        })
        .collect()
}

fn from_json<T: serde::de::DeserializeOwned>(
    doc: &AutoCommit,
    obj: &automerge::ObjId,
    key: &str,
) -> Option<T> {
    let s = get_str(doc, obj, key);
    if s.is_empty() {
        return None;
    }
    serde_json::from_str(&s).ok()
}

/// Writes an order's current state (the store is its only writer, so the
/// latest put is the state), whole.
pub fn put_order(doc: &mut AutoCommit, o: &OrderFact) -> Result<(), AutomergeError> {
    put_record(doc, "orders", &o.order_id, o).map(|_| ())
}

/// All sales in the ledger, ordered by sale id (ids are time-ordered ULIDs).
pub fn read_sales(doc: &AutoCommit) -> Vec<SaleFact> {
    read_sales_where(doc, |_| true)
}

/// The sales whose id passes `wanted`.
pub fn read_sales_where(doc: &AutoCommit, wanted: impl Fn(&str) -> bool) -> Vec<SaleFact> {
    entries_where(doc, "sales", wanted, read_sale)
}

/// The sales with these ids (those present), each looked up by its key: a
/// reader that already holds most of a day's sales (the hub projecting what
/// a message touched) pays for the new ones only, not for a scan of the day.
pub fn read_sales_of<'a>(
    doc: &AutoCommit,
    ids: impl IntoIterator<Item = &'a String>,
) -> Vec<SaleFact> {
    entries_of(doc, "sales", ids, read_sale)
}

/// A sale from the one string it was written as under `sale_id` (the
/// value a sync message's patch carried), as [`read_sales_of`] reads it.
pub fn sale_from_text(sale_id: &str, text: &str) -> Option<SaleFact> {
    super::json::from_text::<SaleFact>(text).map(|s| s.keyed(sale_id))
}

fn read_sale(doc: &AutoCommit, sale_id: String, id: ObjId) -> SaleFact {
    let sale = Entries::of(doc, &id);
    let maps = |key: &str| {
        sale.obj(key, ObjType::List)
            .map(|l| list_maps(doc, l))
            .unwrap_or_default()
    };
    let lines = maps("lines")
        .iter()
        .map(|o| {
            let line = Entries::of(doc, o);
            SaleLineFact {
                sku: line.str("sku"),
                qty: line.i64("qty"),
                total_fen: line.i64("total_fen"),
                unit_price_fen: line.i64("unit_price_fen"),
            }
        })
        .collect();
    let payments = maps("payments")
        .iter()
        .map(|o| {
            let p = Entries::of(doc, o);
            PaymentFact {
                method: p.str("method"),
                amount_fen: p.i64("amount_fen"),
            }
        })
        .collect();
    SaleFact {
        sale_id,
        ticket_no: sale.str("ticket_no"),
        created_at: sale.str("created_at"),
        cashier: sale.str("cashier"),
        total_fen: sale.i64("total_fen"),
        lines,
        payments,
        member: sale.bool("member"),
        tendered_fen: sale.i64("tendered_fen"),
        change_fen: sale.i64("change_fen"),
        member_hash: sale.str("member_hash"),
    }
}

/// The refunds whose id passes `wanted`, ordered by refund id.
pub fn read_refunds_where(doc: &AutoCommit, wanted: impl Fn(&str) -> bool) -> Vec<RefundFact> {
    entries_where(doc, "refunds", wanted, read_refund)
}

/// The refunds with these ids (those present), each looked up by its key.
pub fn read_refunds_of<'a>(
    doc: &AutoCommit,
    ids: impl IntoIterator<Item = &'a String>,
) -> Vec<RefundFact> {
    entries_of(doc, "refunds", ids, read_refund)
}

fn read_refund(doc: &AutoCommit, refund_id: String, id: ObjId) -> RefundFact {
    RefundFact {
        refund_id,
        sale_id: get_str(doc, &id, "sale_id"),
        amount_fen: get_i64(doc, &id, "amount_fen"),
        staff: get_str(doc, &id, "staff"),
        at: get_str(doc, &id, "at"),
        lines: from_json(doc, &id, "lines").unwrap_or_default(),
        reason: get_str(doc, &id, "reason"),
    }
}

/// Every movement in the ledger, ordered by movement id.
pub fn read_movements(doc: &AutoCommit) -> Vec<MovementFact> {
    entries_where(
        doc,
        "movements",
        |_| true,
        |doc, movement_id, id| MovementFact {
            movement_id,
            sku: get_str(doc, &id, "sku"),
            kind: get_str(doc, &id, "kind"),
            delta: get_i64(doc, &id, "delta"),
            reason: get_str(doc, &id, "reason"),
            ref_id: get_str(doc, &id, "ref_id"),
            staff: get_str(doc, &id, "staff"),
            at: get_str(doc, &id, "at"),
        },
    )
}

/// Every pickup order's latest state in the ledger, ordered by order id.
pub fn read_orders(doc: &AutoCommit) -> Vec<OrderFact> {
    entries_where(
        doc,
        "orders",
        |_| true,
        |doc, order_id, id| OrderFact {
            order_id,
            status: get_str(doc, &id, "status"),
            total_fen: get_i64(doc, &id, "total_fen"),
            created_at: get_str(doc, &id, "created_at"),
            handed_over_at: get_str(doc, &id, "handed_over_at"),
            handed_over_by: get_str(doc, &id, "handed_over_by"),
            detail: from_json(doc, &id, "detail"),
        },
    )
}

/// Ids of all entries under a root map (`sales`, `movements`, `refunds`, `orders`).
pub fn entry_ids(doc: &AutoCommit, section: &str) -> Vec<String> {
    existing_map(doc, section)
        .map(|m| doc.map_range(&m, ..).map(|i| i.key.to_string()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{DocId, Owner, new_doc};
    use proptest::prelude::*;

    fn sale(i: u32) -> SaleFact {
        SaleFact {
            sale_id: format!("01SALE{i:06}"),
            ticket_no: format!("S001-20261125-{i:04}"),
            created_at: "2026-11-25T02:00:00.000Z".into(),
            cashier: "ana".into(),
            total_fen: i64::from(i) * 100,
            lines: vec![SaleLineFact {
                sku: "P00001".into(),
                qty: 1,
                total_fen: i64::from(i) * 100,
                unit_price_fen: i64::from(i) * 100,
            }],
            payments: vec![PaymentFact {
                method: "cash".into(),
                amount_fen: i64::from(i) * 100,
            }],
            member: i.is_multiple_of(2),
            tendered_fen: i64::from(i) * 100 + 50,
            change_fen: 50,
            member_hash: if i.is_multiple_of(2) {
                format!("h{i}")
            } else {
                String::new()
            },
        }
    }

    fn base() -> AutoCommit {
        let id = DocId::parse("store/S001/ledger/2026-11-25").unwrap();
        new_doc(&id, Owner::Store("S001".into()).actor([0; 8])).unwrap()
    }

    #[test]
    fn sales_round_trip() {
        let mut d = base();
        record_sale(&mut d, &sale(1)).unwrap();
        record_sale(&mut d, &sale(1)).unwrap(); // idempotent
        d.commit();
        let back = AutoCommit::load(&d.save()).unwrap();
        assert_eq!(read_sales(&back), vec![sale(1)]);
        assert_eq!(
            read_sales_of(&back, &["01SALE000001".to_owned()]),
            vec![sale(1)]
        );
    }

    #[test]
    fn a_sale_id_is_its_key_only_and_entries_that_repeat_it_still_read() {
        use automerge::transaction::Transactable;
        let mut d = base();
        record_sale(&mut d, &sale(1)).unwrap();
        // written before: the id repeated in the value
        let old = serde_json::to_string(&sale(2)).unwrap();
        assert!(old.contains("01SALE000002"), "{old}");
        let sales = root_map(&mut d, "sales").unwrap();
        d.put(&sales, "01SALE000002", old).unwrap();
        d.commit();
        let (value, _) = d.get(&sales, "01SALE000001").unwrap().unwrap();
        let text = value.into_scalar().unwrap().into_string().unwrap();
        assert!(!text.contains("01SALE000001"), "{text}");
        assert_eq!(read_sales(&d), vec![sale(1), sale(2)]);
    }

    #[test]
    fn entries_written_as_maps_before_are_read_beside_packed_ones() {
        use automerge::transaction::Transactable;
        let mut d = base();
        let sales = root_map(&mut d, "sales").unwrap();
        let old = d.put_object(&sales, "01SALE000000", ObjType::Map).unwrap();
        d.put(&old, "ticket_no", "0001").unwrap();
        d.put(&old, "created_at", "2026-11-25T09:00:00+08:00")
            .unwrap();
        d.put(&old, "cashier", "cashier1").unwrap();
        d.put(&old, "total_fen", 990).unwrap();
        d.put(&old, "member", false).unwrap();
        let lines = d.put_object(&old, "lines", ObjType::List).unwrap();
        let line = d.insert_object(&lines, 0, ObjType::Map).unwrap();
        d.put(&line, "sku", "P00001").unwrap();
        d.put(&line, "qty", 1).unwrap();
        d.put(&line, "total_fen", 990).unwrap();
        d.put_object(&old, "payments", ObjType::List).unwrap();
        record_sale(&mut d, &sale(1)).unwrap();
        d.commit();
        let back = AutoCommit::load(&d.save()).unwrap();
        let read = read_sales(&back);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].sale_id, "01SALE000000");
        assert_eq!(read[0].lines[0].sku, "P00001");
        assert_eq!(read[1], sale(1));
        let ids = ["01SALE000000".to_owned(), sale(1).sale_id];
        assert_eq!(read_sales_of(&back, &ids), read);
    }

    #[test]
    fn refunds_round_trip() {
        let mut d = base();
        let r = RefundFact {
            refund_id: "01REFUND1".into(),
            sale_id: "01SALE000001".into(),
            amount_fen: 150,
            staff: "mia".into(),
            at: "2026-11-25T03:00:00.000Z".into(),
            lines: vec![RefundLineFact {
                line_no: 1,
                qty: 1,
                amount_fen: 150,
                disposition: "waste".into(),
            }],
            reason: "坏了".into(),
        };
        record_refund(&mut d, &r).unwrap();
        d.commit();
        let back = AutoCommit::load(&d.save()).unwrap();
        assert_eq!(read_refunds_where(&back, |_| true), vec![r]);
        assert!(read_refunds_where(&back, |id| id != "01REFUND1").is_empty());
    }

    #[test]
    fn movements_and_orders_round_trip() {
        let mut d = base();
        let m = MovementFact {
            movement_id: "01MOVE1".into(),
            sku: "P00001".into(),
            kind: "receipt".into(),
            delta: 12,
            reason: String::new(),
            ref_id: String::new(),
            staff: "mia".into(),
            at: "2026-11-25T03:00:00.000Z".into(),
        };
        record_movement(&mut d, &m).unwrap();
        let mut o = OrderFact {
            order_id: "01ORDER1".into(),
            status: "placed".into(),
            total_fen: 300,
            created_at: "2026-11-25T03:00:00.000Z".into(),
            handed_over_at: String::new(),
            handed_over_by: String::new(),
            detail: Some(OrderDetail {
                channel: "community".into(),
                fulfilment: "pickup".into(),
                customer_hash: "ab".repeat(32),
                customer_masked: "139****5678".into(),
                customer_phone: String::new(),
                pickup_code: "123456".into(),
                created_by: "mia".into(),
                expires_at: "2026-11-27T03:00:00.000Z".into(),
                closed_at: String::new(),
                closed_by: String::new(),
                lines: vec![OrderLineFact {
                    sku: "P00001".into(),
                    qty: 2,
                    unit_price_fen: 150,
                    total_fen: 300,
                }],
            }),
        };
        put_order(&mut d, &o).unwrap();
        d.commit();
        // a later state replaces the earlier one
        o.status = "handed_over".into();
        o.handed_over_at = "2026-11-25T04:00:00.000Z".into();
        o.handed_over_by = "ana".into();
        put_order(&mut d, &o).unwrap();
        d.commit();
        let back = AutoCommit::load(&d.save()).unwrap();
        assert_eq!(read_movements(&back), vec![m]);
        assert_eq!(read_orders(&back), vec![o]);
    }

    /// An order written before 2026-12-02 carried the phone in the clear:
    /// it still reads (the phone kept for the store to hash), and a detail
    /// written now never carries one.
    #[test]
    fn old_order_details_still_read_and_new_ones_hold_no_phone() {
        let old = r#"{"channel":"community","fulfilment":"pickup","customer_phone":"13912345678",
            "pickup_code":"123456","created_by":"mia","expires_at":"2026-11-27T03:00:00.000Z","lines":[]}"#;
        let Ok(d) = serde_json::from_str::<OrderDetail>(old) else {
            panic!("an old detail reads")
        };
        assert_eq!(d.customer_phone, "13912345678");
        assert_eq!(d.customer_hash, "");
        let Ok(again) = serde_json::to_string(&d) else {
            panic!("serializes")
        };
        assert!(!again.contains("13912345678"), "{again}");
    }

    /// Replicas of one ledger, each holding some of the sales (as a store
    /// and the hub do mid-sync), merge into the union of their sales in any
    /// order and any grouping, and merging twice changes nothing.
    fn merged(parts: &[AutoCommit], order: &[usize]) -> Vec<SaleFact> {
        let mut acc = parts[order[0]].clone();
        for &i in &order[1..] {
            let mut other = parts[i].clone();
            acc.merge(&mut other).unwrap();
        }
        read_sales(&acc)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn ledger_merge_is_commutative_associative_idempotent(splits in proptest::collection::vec(0usize..3, 1..30)) {
            // one owner writes in sequence; three replicas saw prefixes of its history
            let mut owner = base();
            owner.commit();
            let mut replicas = vec![owner.clone(), owner.clone(), owner.clone()];
            for (i, r) in splits.iter().enumerate() {
                record_sale(&mut owner, &sale(i as u32)).unwrap();
                owner.commit();
                // replica r catches up to the owner at this point
                let mut o = owner.clone();
                replicas[*r].merge(&mut o).unwrap();
            }
            let a = merged(&replicas, &[0, 1, 2]);
            let b = merged(&replicas, &[2, 0, 1]);
            let c = merged(&replicas, &[1, 2, 0]);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&a, &c);
            // idempotent: merging a replica into itself or twice changes nothing
            let twice = merged(&[replicas[0].clone(), replicas[1].clone(), replicas[2].clone(), replicas[0].clone()], &[0, 1, 2, 3]);
            prop_assert_eq!(&a, &twice);
            // the union is exactly what the owner wrote (the last replica to
            // catch up saw all of it), each sale once, with its content
            let mut union = a.clone();
            union.sort_by(|x, y| x.sale_id.cmp(&y.sale_id));
            let want: Vec<SaleFact> = (0..splits.len() as u32).map(sale).collect();
            prop_assert_eq!(union, want);
            prop_assert_eq!(read_sales(&owner).len(), splits.len());
        }
    }
}
