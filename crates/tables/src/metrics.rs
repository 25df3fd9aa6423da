//! [`TablesMetrics`]: the table modes' figures for `/metrics`, read from
//! the current [`crate::View`] at scrape time.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `meridian_table_epoch` | gauge | `table` |

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::modes::Modes;

/// The epochs of this region's configured tables.
pub struct TablesMetrics {
    modes: Arc<Modes>,
}

impl TablesMetrics {
    /// Reads `modes` at every scrape.
    pub fn new(modes: Arc<Modes>) -> Self {
        TablesMetrics { modes }
    }
}

impl std::fmt::Debug for TablesMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TablesMetrics").finish_non_exhaustive()
    }
}

impl Collector for TablesMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view = self.modes.view();
        let mut family = encoder.encode_descriptor(
            "meridian_table_epoch",
            "Epoch of each table's mode as this region applies it (0: as configured; +1 per run-time change).",
            None,
            MetricType::Gauge,
        )?;
        for t in &view.topology.tables {
            let labels = [("table", t.name.as_str())];
            ConstGauge::new(view.epoch(&t.name)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::setup;
    use crate::ModeSpec;
    use prometheus_client::registry::Registry;

    #[tokio::test]
    async fn epochs_are_exposed_per_table() {
        let (modes, db) = setup();
        let modes = Arc::new(modes);
        modes
            .change(&db, "vault", ModeSpec::MultiMaster)
            .await
            .unwrap();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TablesMetrics::new(modes)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE meridian_table_epoch gauge"), "{text}");
        assert!(
            text.contains("meridian_table_epoch{table=\"ledger\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("meridian_table_epoch{table=\"vault\"} 1"),
            "{text}"
        );
    }
}
