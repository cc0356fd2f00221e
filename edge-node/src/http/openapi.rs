//! The OpenAPI document, generated from the handlers' annotations and the
//! very types the handlers deserialize, so it cannot drift from what the
//! server accepts (a test checks every documented route is served).

use utoipa::{Modify, OpenApi};

use super::{catalog, community, groupbuy, online, orders, promotions, reports, sales, system};

#[derive(OpenApi)]
#[openapi(
    info(title = "Linli store node API", description = "POS sales, stock and pickup orders of one store. Amounts in fen; qty in units for `each` products and grams for `kg` products."),
    paths(
        system::health, system::metrics, system::login, system::logout, system::openapi,
        catalog::import, catalog::search, catalog::product_by_sku, catalog::product_by_barcode,
        catalog::stock_levels, catalog::stock_level, catalog::movements,
        catalog::receive, catalog::waste, catalog::count,
        sales::create, sales::quote, sales::list, sales::get, sales::refund, reports::day, reports::kpis,
        orders::create, orders::list, orders::get, orders::cancel, orders::redeem, online::by_phone,
        online::lookup, online::list, online::get, online::accept, online::pick, online::ready,
        online::dispatch, online::delivered, online::riders, online::add_rider,
        community::add_member, promotions::get, groupbuy::list, groupbuy::commit, groupbuy::receive,
        groupbuy::commitments, groupbuy::cancel, groupbuy::refund,
    ),
    modifiers(&StandardResponses)
)]
struct ApiDoc;

/// The bearer scheme, the error body and the error responses every
/// operation shares (`linli_shared::api_doc`).
struct StandardResponses;

impl Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        linli_shared::api_doc::add_standard_responses(openapi);
    }
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
