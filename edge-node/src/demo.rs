//! The demo store: a sample catalog, opening stock and two staff members, so
//! a newcomer can try the node with one command.
//!
//! The catalog is the project's copy of the reference data set
//! (`data/products.csv`, 1,500 products), embedded in the binary.

use std::path::Path;

use rusqlite::OptionalExtension;

use crate::app::staff::add_staff;
use crate::app::{AppError, Role};
use crate::store::open_writer_conn;

/// The embedded sample catalog.
pub const SAMPLE_CATALOG: &[u8] = include_bytes!("../../data/products.csv");

/// Demo staff: (name, role, PIN).
pub const DEMO_STAFF: [(&str, Role, &str); 2] = [
    ("cashier", Role::Cashier, "1234"),
    ("manager", Role::Manager, "9999"),
];

/// Adds the demo staff to the database in `data_dir` if they are missing.
pub fn ensure_demo_staff(db: &Path) -> anyhow::Result<()> {
    let conn = open_writer_conn(db)?;
    for (name, role, pin) in DEMO_STAFF {
        let exists: Option<String> = conn
            .query_row("SELECT name FROM staff WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            match add_staff(&conn, name, role, pin) {
                Ok(()) | Err(AppError::StaffExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Loads the sample catalog and opening stock into an empty store.
pub async fn seed(app: &crate::app::App) -> anyhow::Result<()> {
    use crate::app::Actor;
    use crate::app::stock::{ReceiptRequest, StockLineRequest};
    // a new database first gets what the hub holds for this store
    if !app.wait_recovered(std::time::Duration::from_secs(30)).await {
        tracing::warn!("still recovering from the hub: no demo data loaded");
        return Ok(());
    }
    let seeder = Actor {
        name: "demo-seed".into(),
        role: Role::Manager,
    };
    if app.catalog().is_empty() {
        let report = app.import_catalog(&seeder, SAMPLE_CATALOG.to_vec()).await?;
        tracing::info!(imported = report.imported, "demo catalog loaded");
    }
    // opening stock only into empty books (not over levels a recovery
    // brought back, nor on a restart)
    let stocked: i64 = app
        .store()
        .read(|c| {
            c.query_row("SELECT COUNT(*) FROM stock", [], |r| r.get(0))
                .map_err(|e| crate::store::StoreError::Sql(e.to_string()))
        })
        .await?;
    if stocked > 0 {
        return Ok(());
    }
    let cat = app.catalog();
    let mut lines: Vec<StockLineRequest> = Vec::new();
    let parsed = linli_shared::catalog::parse_catalog_csv(SAMPLE_CATALOG)?;
    for (_, p) in parsed.products {
        if cat.by_sku(p.sku.as_str()).is_none() {
            continue;
        }
        let qty = match p.unit {
            linli_shared::Unit::Each => 40,
            linli_shared::Unit::Kg => 20_000,
        };
        lines.push(StockLineRequest {
            sku: p.sku.to_string(),
            qty,
        });
    }
    for chunk in lines.chunks(500) {
        app.receive_stock(
            &seeder,
            None,
            ReceiptRequest {
                lines: chunk.to_vec(),
                note: Some("demo opening stock".into()),
            },
        )
        .await?;
    }
    Ok(())
}
