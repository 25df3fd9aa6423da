//! Fuzzes the topology config's `[edge]` and `[[routes]]`: a fixed, valid
//! cluster, regions, WAN and tables preamble, then the fuzzer's bytes
//! (lossy UTF-8), through `TopologyConfig::from_toml` and `validate`.
//! Checked on every input:
//!
//! - neither panics: any text is a config or a list of `ConfigError`s;
//! - an accepted config's `[edge]` lies within the ranges the validator's
//!   messages and README "Traffic" document (restated here, not taken from
//!   the validator, so a rule missing there fails here), its routes'
//!   prefixes start with `/`, hold no space or control byte, are unique,
//!   and name only known tables, and its static backends are usable;
//! - an accepted config written back as TOML (as `meridian up` writes its
//!   file) reads back to the same `[edge]` and `[[routes]]`;
//! - `RouteTable::find` returns the longest matching prefix, checked by a
//!   brute-force scan, for paths built from the accepted prefixes (each
//!   prefix, it cut short, and one prefix followed by another).

#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::config::{
    EdgeConfig, RouteConfig, Topology, TopologyConfig, BACKENDS_MAX, ROUTES_MAX,
};
use meridian_route::policy::routes::RouteTable;

/// Valid on its own (see the file); the fuzzer's text follows it.
const PREAMBLE: &str = include_str!("edge_config_preamble.toml");

const HOUR_MS: u64 = 3_600_000;

/// Prefixes the route-table check builds paths from (it is quadratic).
const PATH_PREFIXES_MAX: usize = 16;

/// Each `(field, value, lowest, highest)` of the documented `[edge]` ranges.
fn documented_ranges(e: &EdgeConfig) -> Vec<(&'static str, u64, u64, u64)> {
    let (h, o, p) = (&e.health, &e.outlier, &e.probe);
    let body = e.body_bytes_max as u64;
    vec![
        ("connect_timeout_ms", e.connect_timeout_ms, 1, HOUR_MS),
        ("request_timeout_ms", e.request_timeout_ms, 1, HOUR_MS),
        ("idle_timeout_ms", e.idle_timeout_ms, 1, HOUR_MS),
        ("header_timeout_ms", e.header_timeout_ms, 1, HOUR_MS),
        ("header_bytes_max", e.header_bytes_max as u64, 8192, 1 << 20),
        ("body_bytes_max", body, 0, 1 << 40),
        (
            "replay_body_bytes_max",
            e.replay_body_bytes_max as u64,
            0,
            body.min(256 << 20),
        ),
        ("threads", e.threads as u64, 0, 64),
        ("retry_budget_pct", e.retry_budget_pct.into(), 0, 100),
        (
            "retry_min_per_window",
            e.retry_min_per_window.into(),
            0,
            1_000_000,
        ),
        ("retry_backoff_ms", e.retry_backoff_ms, 0, 60_000),
        (
            "max_connections_per_backend",
            e.max_connections_per_backend as u64,
            1,
            1_000_000,
        ),
        (
            "max_pending_per_backend",
            e.max_pending_per_backend as u64,
            1,
            1_000_000,
        ),
        (
            "client_connections_max",
            e.client_connections_max as u64,
            1,
            1_000_000,
        ),
        (
            "rate_limit_per_client",
            e.rate_limit_per_client.into(),
            0,
            10_000_000,
        ),
        (
            "rate_burst_per_client",
            e.rate_burst_per_client.into(),
            1,
            10_000_000,
        ),
        (
            "rate_clients_max",
            e.rate_clients_max as u64,
            1,
            100_000_000,
        ),
        ("health.interval_ms", h.interval_ms, 10, HOUR_MS),
        ("health.timeout_ms", h.timeout_ms, 1, h.interval_ms),
        ("health.rise", h.rise.into(), 1, 100),
        ("health.fall", h.fall.into(), 1, 100),
        (
            "outlier.consecutive_failures",
            o.consecutive_failures.into(),
            1,
            1000,
        ),
        ("outlier.base_ejection_ms", o.base_ejection_ms, 1, HOUR_MS),
        (
            "outlier.max_ejection_ms",
            o.max_ejection_ms,
            o.base_ejection_ms,
            HOUR_MS,
        ),
        (
            "outlier.max_ejection_pct",
            o.max_ejection_pct.into(),
            0,
            100,
        ),
        ("probe.interval_ms", p.interval_ms, 10, HOUR_MS),
        ("probe.timeout_ms", p.timeout_ms, 1, HOUR_MS),
        ("probe.rise", p.rise.into(), 1, 100),
        ("probe.fall", p.fall.into(), 1, 100),
    ]
}

/// A request path or prefix the edge can use: `/` first, no space or
/// control byte.
fn is_request_path(p: &str) -> bool {
    p.starts_with('/') && !p.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

fn check_edge(e: &EdgeConfig) {
    for (field, value, lo, hi) in documented_ranges(e) {
        assert!(
            (lo..=hi).contains(&value),
            "accepted edge.{field} = {value}, outside {lo}..={hi}"
        );
    }
    assert!(is_request_path(&e.health.path), "{:?}", e.health.path);
    if let Some(name) = &e.sticky_cookie {
        assert!((1..=64).contains(&name.len()), "cookie {name:?}");
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}

fn check_routes(t: &Topology) {
    assert!(t.routes.len() <= ROUTES_MAX);
    for (i, r) in t.routes.iter().enumerate() {
        assert!(is_request_path(&r.path_prefix), "{:?}", r.path_prefix);
        assert!(
            t.routes[..i].iter().all(|o| o.path_prefix != r.path_prefix),
            "prefix {:?} accepted twice",
            r.path_prefix
        );
        assert!(r.rate_burst >= 1);
        if let Some(table) = &r.writes_to_home_of {
            assert!(t.tables.iter().any(|x| &x.name == table), "table {table:?}");
        }
    }
    for region in &t.regions {
        assert!(region.backends.len() <= BACKENDS_MAX);
        for (i, b) in region.backends.iter().enumerate() {
            assert!(b.addr.port() != 0 && (1..=1000).contains(&b.weight));
            assert!(region.backends[..i].iter().all(|o| o.addr != b.addr));
        }
    }
}

/// The longest prefix of `path` among `routes`, by scanning them all.
fn longest_match<'r>(routes: &'r [RouteConfig], path: &str) -> Option<(usize, &'r RouteConfig)> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, r)| path.starts_with(&r.path_prefix))
        .max_by_key(|(_, r)| r.path_prefix.len())
}

/// `p` without its last character.
fn cut_short(p: &str) -> &str {
    p.char_indices().last().map_or(p, |(i, _)| &p[..i])
}

fn check_route_table(routes: &[RouteConfig]) {
    let table = RouteTable::new(routes);
    let prefixes: Vec<&str> = routes
        .iter()
        .take(PATH_PREFIXES_MAX)
        .map(|r| r.path_prefix.as_str())
        .collect();
    let mut paths: Vec<String> = vec!["/".into(), String::new()];
    for p in &prefixes {
        paths.push(p.to_string());
        paths.push(cut_short(p).to_string());
        paths.extend(prefixes.iter().map(|q| format!("{p}{q}")));
    }
    for path in &paths {
        // Prefixes are unique, so at most one match has the longest length.
        assert_eq!(
            table.find(path),
            longest_match(routes, path),
            "path {path:?}"
        );
    }
}

/// What `meridian up` writes must read back to the same edge and routes.
fn check_round_trip(config: &TopologyConfig) {
    let text = config.to_toml();
    let again = TopologyConfig::from_toml(&text)
        .unwrap_or_else(|e| panic!("written config does not parse: {e}\n{text}"));
    assert_eq!(again.edge, config.edge);
    assert_eq!(again.routes, config.routes);
}

fuzz_target!(|data: &[u8]| {
    let text = format!("{PREAMBLE}\n{}", String::from_utf8_lossy(data));
    let config = match TopologyConfig::from_toml(&text) {
        Ok(c) => c,
        Err(e) => return drop(e.to_string()),
    };
    let topology = match config.validate() {
        Ok(t) => t,
        Err(e) => return drop(e.to_string()),
    };
    assert_eq!(topology.edge, config.edge);
    assert_eq!(topology.routes, config.routes);
    check_edge(&topology.edge);
    check_routes(&topology);
    check_route_table(&topology.routes);
    check_round_trip(&config);
});
