//! How a node follows which tables it holds as table modes change at run
//! time: the replicator's residency map, the store's set of tables not
//! held, and dropping the data of a table given up.

use std::collections::BTreeMap;
use std::sync::Arc;

use meridian_core::{RegionName, Topology};
use meridian_repl::Residency;
use meridian_store::db::Db;

use crate::error::StartError;

/// Makes the replicator and the store follow which tables this region
/// holds. With every new view of the table modes, before it is published:
/// the replicator's residency map and the store's set of tables not held
/// (their replicated entries become placeholders at once). Then, for each
/// table given up (now, after a restart, or later): its data is dropped —
/// states, and the log entries every holder has acknowledged. A table
/// gained back gets its data through anti-entropy.
pub(crate) async fn follow_residency(
    resp: &Arc<meridian_resp::Shared>,
    db: Db,
    residency: Residency,
    me: RegionName,
) -> Result<(), StartError> {
    {
        let (db, me) = (db.clone(), me.clone());
        resp.modes.on_change(Box::new(move |t: &Topology| {
            residency.set(t.residency());
            db.set_withheld(
                t.table_names()
                    .into_iter()
                    .filter(|table| !t.holds(&me, table))
                    .collect(),
            );
        }));
    }
    let holders = |t: &Topology, table: &str| -> Vec<RegionName> {
        t.regions
            .iter()
            .map(|r| r.name.clone())
            .filter(|r| t.holds(r, table))
            .collect()
    };
    let mut views = resp.modes.subscribe();
    let topology = views.borrow_and_update().topology.clone();
    let mut held: BTreeMap<String, bool> = BTreeMap::new();
    for table in topology.table_names() {
        let now = topology.holds(&me, &table);
        if !now {
            db.drop_withheld(&table, holders(&topology, &table))
                .await
                .map_err(|source| StartError::DropWithheld {
                    table: table.clone(),
                    source,
                })?;
        }
        held.insert(table, now);
    }
    tokio::spawn(async move {
        while views.changed().await.is_ok() {
            let topology = views.borrow_and_update().topology.clone();
            for table in topology.table_names() {
                let now = topology.holds(&me, &table);
                if held.get(&table) == Some(&now) {
                    continue;
                }
                if now {
                    tracing::info!(%table, "table held here again; anti-entropy brings its data");
                } else {
                    match db.drop_withheld(&table, holders(&topology, &table)).await {
                        Ok(dropped) => {
                            tracing::info!(%table, dropped, "table no longer held here: its data was dropped")
                        }
                        Err(e) => {
                            // Tried again at the next change or restart.
                            tracing::error!(%table, error = %e, "dropping the data of a table given up failed");
                            continue;
                        }
                    }
                }
                held.insert(table, now);
            }
        }
    });
    Ok(())
}
