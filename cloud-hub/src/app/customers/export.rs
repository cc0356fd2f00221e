//! Everything the hub holds about one person, for the person (PIPL Art. 45):
//! identity records and merges, the profile, online orders, counter sales
//! matched by member hash (with their refunds), community memberships,
//! joins and votes, group-buy commitments, coupon claims and redemptions,
//! payments and refunds. Rows are given as the tables hold them (column →
//! value), so nothing held is left out by a view that forgot a field.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IdentityRecord, MergeReason, Profile};
use crate::error::HubError;
use crate::people::Person;
use crate::store::StoreError;
use crate::store::communities::CommunityRecords;
use crate::store::coupons::CouponRecords;
use crate::store::customers::CustomerRecords;
use crate::store::groupbuys::GroupBuyRecords;
use crate::store::orders::OrderRecords;
use crate::store::payments;

/// The export of `GET /api/v1/customers/{id}/export`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerExport {
    pub customer_id: String,
    /// RFC 3339, UTC.
    pub exported_at: String,
    pub records: Vec<IdentityRecord>,
    pub merges: Vec<MergeReason>,
    pub profile: Profile,
    /// The online customer accounts (`customers`: phone, openid).
    #[schema(value_type = Vec<Object>)]
    pub accounts: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub online_orders: Vec<Value>,
    /// Counter sales tied by the member's phone hash.
    #[schema(value_type = Vec<Object>)]
    pub counter_sales: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub counter_refunds: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub community_memberships: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub community_joins: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub poll_votes: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub group_buy_commitments: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub coupon_claims: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub coupon_redemptions: Vec<Value>,
    /// Payments of the person's orders and commitments.
    #[schema(value_type = Vec<Object>)]
    pub payments: Vec<Value>,
    /// Refunds to the person (the refund queue).
    #[schema(value_type = Vec<Object>)]
    pub refunds: Vec<Value>,
}

/// The rows of `person` (records, merges and profile already read).
pub(crate) fn export(
    c: &Connection,
    person: &Person,
    records: Vec<IdentityRecord>,
    merges: Vec<MergeReason>,
    profile: Profile,
    now: &str,
) -> Result<CustomerExport, HubError> {
    let online: Vec<&String> = person.online_ids.iter().collect();
    let hashes: Vec<&String> = person.member_hashes.iter().collect();
    let online_orders = each(&online, |k| c.order_rows_of_customer(k))?;
    let counter_sales = each(&hashes, |k| c.counter_sale_rows_of_member(k))?;
    let counter_refunds = each(&hashes, |k| c.counter_refund_rows_of_member(k))?;
    let commitments = each(&online, |k| c.commitment_rows_of_customer(k))?;
    // payments and refunds are keyed by what was paid for: orders and commitments
    let mut subjects: Vec<String> = Vec::new();
    for row in online_orders.iter().chain(&commitments) {
        for key in ["order_id", "commitment_id"] {
            if let Some(Value::String(id)) = row.get(key) {
                subjects.push(id.clone());
            }
        }
    }
    let subjects: Vec<&String> = subjects.iter().collect();
    let claims = each(&online, |k| c.claim_rows_of_customer(k))?;
    let claim_ids: Vec<String> = claims
        .iter()
        .filter_map(|r| r.get("claim_id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    Ok(CustomerExport {
        customer_id: person.id.clone(),
        exported_at: now.to_owned(),
        records,
        merges,
        profile,
        accounts: each(&online, |k| c.account_rows(k))?,
        online_orders,
        counter_sales,
        counter_refunds,
        community_memberships: each(&online, |k| c.member_rows_of_customer(k))?,
        community_joins: each(&online, |k| c.join_rows_of_customer(k))?,
        poll_votes: each(&online, |k| c.vote_rows_of_customer(k))?,
        group_buy_commitments: commitments,
        coupon_redemptions: each(&claim_ids.iter().collect::<Vec<_>>(), |k| {
            c.redemption_rows_of_claim(k)
        })?,
        coupon_claims: claims,
        payments: each(&subjects, |k| payments::payment_rows_of(c, k))?,
        refunds: each(&subjects, |k| payments::refund_rows_of(c, k))?,
    })
}

/// The rows `rows_of` gives for each key, in the keys' order.
fn each(
    keys: &[&String],
    rows_of: impl Fn(&str) -> Result<Vec<Value>, StoreError>,
) -> Result<Vec<Value>, HubError> {
    let mut out = Vec::new();
    for k in keys {
        out.extend(rows_of(k)?);
    }
    Ok(out)
}
