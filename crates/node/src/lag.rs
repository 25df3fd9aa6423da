//! Replication lag per origin as the node reports it, read from the
//! store's latency histograms: shared by `/status` (the HTTP side) and the
//! Redis endpoint's `INFO replication`, so neither imports the other.

use std::collections::BTreeMap;

use meridian_api::status::{cdf_quantiles, LagReport};
use meridian_store::db::Db;

/// Replication lag per origin, quantiles to 0.1 ms since start (or the
/// last reset): for `/status` and the Redis endpoint's `INFO`.
pub fn lag_by_origin(db: &Db) -> BTreeMap<String, LagReport> {
    db.stats()
        .replication_latency
        .lock()
        .expect("stats lock is never poisoned")
        .iter()
        .map(|(origin, h)| {
            let ms = |q: f64| h.quantile(q).map(|s| s * 1000.0);
            (
                origin.to_string(),
                LagReport {
                    count: h.count(),
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                    p999_ms: ms(0.999),
                    max_ms: (h.count() > 0).then(|| h.max() * 1000.0),
                    cdf_ms: {
                        let qs = cdf_quantiles();
                        h.quantiles(&qs)
                            .map(|v| qs.iter().zip(v).map(|(q, s)| [*q, s * 1000.0]).collect())
                            .unwrap_or_default()
                    },
                },
            )
        })
        .collect()
}
