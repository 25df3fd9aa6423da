//! `[edge]` and `[[routes]]` as an operator writes them: the regional edge
//! proxy's pools, health checks, outlier ejection, retries, circuit
//! breaking, rate limits, size limits and timeouts, the region probes, and
//! the routes that send writes to a table's home. Every limit has a name
//! here and in the answer a client gets when it crosses it.
//!
//! Range checks are [`super::validate`]'s (`Validator::edge`); the defaults
//! here are the product's documented defaults (README "Traffic").

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// How the edge spreads requests over a region's healthy app instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalancePolicy {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// In proportion to each instance's `weight` (smooth weighted round robin).
    Weighted,
    /// The less loaded of two instances picked at random (power of two
    /// choices on in-flight requests).
    LeastRequest,
}

/// `[edge]`: the regional edge proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Load-balancing policy.
    #[serde(default)]
    pub policy: BalancePolicy,
    /// Cookie that pins a client to an instance; unset: no stickiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_cookie: Option<String>,
    /// Connecting to an instance, ms.
    #[serde(default = "d_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whole request to an instance (until the response head), ms.
    #[serde(default = "d_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// A kept-alive client connection with no request, ms. hyper runs one
    /// timer for the wait for a request head and the head itself, so the
    /// wait is at most `min(idle_timeout_ms, header_timeout_ms)`.
    #[serde(default = "d_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Receiving a request's head, from when the connection starts waiting
    /// for it (slowloris), ms.
    #[serde(default = "d_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Largest request head, bytes (431 beyond).
    #[serde(default = "d_header_bytes_max")]
    pub header_bytes_max: usize,
    /// Largest request body, bytes (413 beyond).
    #[serde(default = "d_body_bytes_max")]
    pub body_bytes_max: usize,
    /// Largest body buffered for a retry, a replay or a cross-region
    /// forward, bytes; larger bodies stream once and are never retried.
    #[serde(default = "d_replay_body_bytes_max")]
    pub replay_body_bytes_max: usize,
    /// Retries may be at most this share of requests, percent (retry budget).
    #[serde(default = "d_retry_budget_pct")]
    pub retry_budget_pct: u32,
    /// Retries always allowed per budget window and edge thread, however
    /// few requests came.
    #[serde(default = "d_retry_min_per_window")]
    pub retry_min_per_window: u32,
    /// Base of the jittered backoff before a retry, ms.
    #[serde(default = "d_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Open connections per instance before the breaker opens (503).
    #[serde(default = "d_max_connections")]
    pub max_connections_per_backend: usize,
    /// Requests in flight per instance before the breaker opens (503).
    #[serde(default = "d_max_pending")]
    pub max_pending_per_backend: usize,
    /// Client connections the edge accepts at once.
    #[serde(default = "d_client_connections_max")]
    pub client_connections_max: usize,
    /// Requests per second per client address; 0: unlimited.
    #[serde(default)]
    pub rate_limit_per_client: u32,
    /// Burst above the per-client rate.
    #[serde(default = "d_rate_burst")]
    pub rate_burst_per_client: u32,
    /// Client addresses the per-client limiter remembers at once; beyond,
    /// the least recently seen are forgotten.
    #[serde(default = "d_rate_clients_max")]
    pub rate_clients_max: usize,
    /// Threads serving client connections, each with its own runtime and
    /// client pools; 0: one per core.
    #[serde(default)]
    pub threads: usize,
    /// Active checks of the region's instances.
    #[serde(default)]
    pub health: HealthCheckConfig,
    /// Passive checks on live traffic.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// Probes of the other regions' edges.
    #[serde(default)]
    pub probe: RegionProbeConfig,
}

/// `[edge.health]`: active HTTP checks (HAProxy's `rise`/`fall`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path requested; a 2xx or 3xx answer passes.
    #[serde(default = "d_health_path")]
    pub path: String,
    /// Between checks of one instance, ms.
    #[serde(default = "d_health_interval_ms")]
    pub interval_ms: u64,
    /// One check, ms.
    #[serde(default = "d_health_timeout_ms")]
    pub timeout_ms: u64,
    /// Passes in a row that bring a down instance up.
    #[serde(default = "d_rise")]
    pub rise: u32,
    /// Failures in a row that take an up instance down.
    #[serde(default = "d_fall")]
    pub fall: u32,
}

/// `[edge.outlier]`: ejection on live failures (Envoy's outlier detection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// 5xx answers, connect failures or timeouts in a row that eject.
    #[serde(default = "d_consecutive_failures")]
    pub consecutive_failures: u32,
    /// First ejection, ms; the n-th lasts n times as long.
    #[serde(default = "d_base_ejection_ms")]
    pub base_ejection_ms: u64,
    /// Longest ejection, ms.
    #[serde(default = "d_max_ejection_ms")]
    pub max_ejection_ms: u64,
    /// Most of the pool ejected at once, percent (at least one instance
    /// may always be ejected).
    #[serde(default = "d_max_ejection_pct")]
    pub max_ejection_pct: u32,
}

/// `[edge.probe]`: every node's probes of every other region's edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionProbeConfig {
    /// Between probes of one region, ms.
    #[serde(default = "d_probe_interval_ms")]
    pub interval_ms: u64,
    /// One probe, ms (over the WAN: give it the RTT and more).
    #[serde(default = "d_probe_timeout_ms")]
    pub timeout_ms: u64,
    /// Passes in a row that bring a down region up in one observer's view.
    #[serde(default = "d_rise")]
    pub rise: u32,
    /// Failures in a row that take it down in one observer's view.
    #[serde(default = "d_fall")]
    pub fall: u32,
}

/// `[[regions.backends]]`: an app instance configured statically (`up`
/// registers its own through the admin API instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Where the instance listens.
    pub addr: SocketAddr,
    /// Its share under the `weighted` policy. Default 1.
    #[serde(default = "d_weight")]
    pub weight: u32,
}

/// `[[routes]]`: what the edge does with requests under a path prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Requests whose path starts with this; the longest match wins.
    pub path_prefix: String,
    /// Send writes (any method but GET, HEAD, OPTIONS) to the home region of
    /// this single-master table, wherever it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_to_home_of: Option<String>,
    /// Requests per second on this route in this region; 0: unlimited.
    #[serde(default)]
    pub rate_limit: u32,
    /// Burst above the route's rate.
    #[serde(default = "d_rate_burst")]
    pub rate_burst: u32,
}

/// Most `[[routes]]`.
pub const ROUTES_MAX: usize = 1024;
/// Most backends per region.
pub const BACKENDS_MAX: usize = 1024;

fn d_connect_timeout_ms() -> u64 {
    1_000
}
fn d_request_timeout_ms() -> u64 {
    15_000
}
fn d_idle_timeout_ms() -> u64 {
    10_000
}
fn d_header_timeout_ms() -> u64 {
    10_000
}
fn d_header_bytes_max() -> usize {
    16 * 1024
}
fn d_body_bytes_max() -> usize {
    16 * 1024 * 1024
}
fn d_replay_body_bytes_max() -> usize {
    1024 * 1024
}
fn d_retry_budget_pct() -> u32 {
    20
}
fn d_retry_min_per_window() -> u32 {
    10
}
fn d_retry_backoff_ms() -> u64 {
    5
}
fn d_max_connections() -> usize {
    1024
}
fn d_max_pending() -> usize {
    1024
}
fn d_client_connections_max() -> usize {
    10_000
}
fn d_rate_burst() -> u32 {
    100
}
fn d_rate_clients_max() -> usize {
    100_000
}
fn d_health_path() -> String {
    "/healthz".to_string()
}
fn d_health_interval_ms() -> u64 {
    250
}
fn d_health_timeout_ms() -> u64 {
    200
}
fn d_rise() -> u32 {
    2
}
fn d_fall() -> u32 {
    2
}
fn d_consecutive_failures() -> u32 {
    3
}
fn d_base_ejection_ms() -> u64 {
    5_000
}
fn d_max_ejection_ms() -> u64 {
    60_000
}
fn d_max_ejection_pct() -> u32 {
    50
}
fn d_probe_interval_ms() -> u64 {
    250
}
fn d_probe_timeout_ms() -> u64 {
    1_000
}
fn d_weight() -> u32 {
    1
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            policy: BalancePolicy::default(),
            sticky_cookie: None,
            connect_timeout_ms: d_connect_timeout_ms(),
            request_timeout_ms: d_request_timeout_ms(),
            idle_timeout_ms: d_idle_timeout_ms(),
            header_timeout_ms: d_header_timeout_ms(),
            header_bytes_max: d_header_bytes_max(),
            body_bytes_max: d_body_bytes_max(),
            replay_body_bytes_max: d_replay_body_bytes_max(),
            retry_budget_pct: d_retry_budget_pct(),
            retry_min_per_window: d_retry_min_per_window(),
            retry_backoff_ms: d_retry_backoff_ms(),
            max_connections_per_backend: d_max_connections(),
            max_pending_per_backend: d_max_pending(),
            client_connections_max: d_client_connections_max(),
            rate_limit_per_client: 0,
            rate_burst_per_client: d_rate_burst(),
            rate_clients_max: d_rate_clients_max(),
            threads: 0,
            health: HealthCheckConfig::default(),
            outlier: OutlierConfig::default(),
            probe: RegionProbeConfig::default(),
        }
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: d_health_path(),
            interval_ms: d_health_interval_ms(),
            timeout_ms: d_health_timeout_ms(),
            rise: d_rise(),
            fall: d_fall(),
        }
    }
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: d_consecutive_failures(),
            base_ejection_ms: d_base_ejection_ms(),
            max_ejection_ms: d_max_ejection_ms(),
            max_ejection_pct: d_max_ejection_pct(),
        }
    }
}

impl Default for RegionProbeConfig {
    fn default() -> Self {
        RegionProbeConfig {
            interval_ms: d_probe_interval_ms(),
            timeout_ms: d_probe_timeout_ms(),
            rise: d_rise(),
            fall: d_fall(),
        }
    }
}

/// One range rule: field (under `edge.`), value, lowest, highest, the fix.
type Range = (&'static str, u64, u64, u64, &'static str);

const HOUR_MS: u64 = 3_600_000;
const MS: &str = "use 1 ms up to 1 hour (3600000)";
const COUNT: &str = "use 1 up to 1000000";

/// The ranges of the timeouts and sizes.
fn limit_ranges(c: &EdgeConfig) -> Vec<Range> {
    let body = c.body_bytes_max as u64;
    vec![
        ("connect_timeout_ms", c.connect_timeout_ms, 1, HOUR_MS, MS),
        ("request_timeout_ms", c.request_timeout_ms, 1, HOUR_MS, MS),
        ("idle_timeout_ms", c.idle_timeout_ms, 1, HOUR_MS, MS),
        ("header_timeout_ms", c.header_timeout_ms, 1, HOUR_MS, MS),
        (
            "header_bytes_max",
            c.header_bytes_max as u64,
            8192,
            1 << 20,
            "use 8 KiB (hyper's smallest buffer) up to 1 MiB",
        ),
        ("body_bytes_max", body, 0, 1 << 40, "use 0 up to 1 TiB"),
        (
            "replay_body_bytes_max",
            c.replay_body_bytes_max as u64,
            0,
            body.min(256 << 20),
            "use 0 up to body_bytes_max and at most 256 MiB (it is held in memory)",
        ),
        (
            "threads",
            c.threads as u64,
            0,
            64,
            "use 0 (one per core) up to 64",
        ),
    ]
}

/// The ranges of the retry, breaker, rate and thread limits.
fn count_ranges(c: &EdgeConfig) -> Vec<Range> {
    vec![
        (
            "retry_budget_pct",
            c.retry_budget_pct.into(),
            0,
            100,
            "use 0 up to 100 percent",
        ),
        (
            "retry_min_per_window",
            c.retry_min_per_window.into(),
            0,
            1_000_000,
            "use 0 up to 1000000",
        ),
        (
            "retry_backoff_ms",
            c.retry_backoff_ms,
            0,
            60_000,
            "use 0 up to 60000 ms",
        ),
        (
            "max_connections_per_backend",
            c.max_connections_per_backend as u64,
            1,
            1_000_000,
            COUNT,
        ),
        (
            "max_pending_per_backend",
            c.max_pending_per_backend as u64,
            1,
            1_000_000,
            COUNT,
        ),
        (
            "client_connections_max",
            c.client_connections_max as u64,
            1,
            1_000_000,
            COUNT,
        ),
        (
            "rate_limit_per_client",
            c.rate_limit_per_client.into(),
            0,
            10_000_000,
            "use 0 (off) up to 10000000 per second",
        ),
        (
            "rate_burst_per_client",
            c.rate_burst_per_client.into(),
            1,
            10_000_000,
            "use 1 up to 10000000",
        ),
        (
            "rate_clients_max",
            c.rate_clients_max as u64,
            1,
            100_000_000,
            "use 1 up to 100000000",
        ),
    ]
}

/// The ranges of the checks, ejection and probes.
fn check_ranges(c: &EdgeConfig) -> Vec<Range> {
    let (h, o, p) = (&c.health, &c.outlier, &c.probe);
    vec![
        (
            "health.interval_ms",
            h.interval_ms,
            10,
            HOUR_MS,
            "use 10 ms up to 1 hour",
        ),
        (
            "health.timeout_ms",
            h.timeout_ms,
            1,
            h.interval_ms.max(1),
            "use 1 ms up to health.interval_ms",
        ),
        ("health.rise", h.rise.into(), 1, 100, "use 1 up to 100"),
        ("health.fall", h.fall.into(), 1, 100, "use 1 up to 100"),
        (
            "outlier.consecutive_failures",
            o.consecutive_failures.into(),
            1,
            1000,
            "use 1 up to 1000",
        ),
        (
            "outlier.base_ejection_ms",
            o.base_ejection_ms,
            1,
            HOUR_MS,
            MS,
        ),
        (
            "outlier.max_ejection_ms",
            o.max_ejection_ms,
            o.base_ejection_ms,
            HOUR_MS,
            "use outlier.base_ejection_ms up to 1 hour",
        ),
        (
            "outlier.max_ejection_pct",
            o.max_ejection_pct.into(),
            0,
            100,
            "use 0 up to 100 percent",
        ),
        (
            "probe.interval_ms",
            p.interval_ms,
            10,
            HOUR_MS,
            "use 10 ms up to 1 hour",
        ),
        ("probe.timeout_ms", p.timeout_ms, 1, HOUR_MS, MS),
        ("probe.rise", p.rise.into(), 1, 100, "use 1 up to 100"),
        ("probe.fall", p.fall.into(), 1, 100, "use 1 up to 100"),
    ]
}

/// Every out-of-range or unusable `[edge]` setting.
pub(super) fn edge_problems(c: &EdgeConfig) -> Vec<ConfigError> {
    let mut out: Vec<ConfigError> = limit_ranges(c)
        .into_iter()
        .chain(count_ranges(c))
        .chain(check_ranges(c))
        .filter(|(_, value, lo, hi, _)| value < lo || value > hi)
        .map(
            |(field, value, _, _, expected)| ConfigError::EdgeOutOfRange {
                field: format!("edge.{field}"),
                value,
                expected,
            },
        )
        .collect();
    let path = &c.health.path;
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        out.push(ConfigError::InvalidRoute {
            field: "edge.health.path".into(),
            problem: format!(
                "`{path}` is not a request path; use one starting with `/`, like `/healthz`"
            ),
        });
    }
    if let Some(name) = c.sticky_cookie.as_ref().filter(|n| !valid_cookie_name(n)) {
        out.push(ConfigError::InvalidRoute {
            field: "edge.sticky_cookie".into(),
            problem: format!(
                "`{name}` is not a cookie name; use 1 to 64 letters, digits, '-' or '_'"
            ),
        });
    }
    out
}

/// Problems of one region's static backends.
pub(super) fn backend_problems(field: &str, backends: &[BackendConfig]) -> Vec<ConfigError> {
    let mut out = Vec::new();
    if backends.len() > BACKENDS_MAX {
        out.push(ConfigError::InvalidRoute {
            field: format!("{field}.backends"),
            problem: format!(
                "{} backends; at most {BACKENDS_MAX} per region",
                backends.len()
            ),
        });
    }
    for (i, b) in backends.iter().enumerate() {
        let f = format!("{field}.backends[{i}]");
        if b.addr.port() == 0 {
            out.push(ConfigError::PortZero {
                field: format!("{f}.addr"),
            });
        }
        if b.weight == 0 || b.weight > 1000 {
            out.push(ConfigError::InvalidRoute {
                field: format!("{f}.weight"),
                problem: format!("{}; use 1 up to 1000", b.weight),
            });
        }
        if backends[..i].iter().any(|o| o.addr == b.addr) {
            out.push(ConfigError::InvalidRoute {
                field: format!("{f}.addr"),
                problem: format!("{} is listed twice", b.addr),
            });
        }
    }
    out
}

/// Problems of the `[[routes]]` rows against the validated tables' names.
pub(super) fn route_problems(routes: &[RouteConfig], tables: &[&str]) -> Vec<ConfigError> {
    let mut out = Vec::new();
    if routes.len() > ROUTES_MAX {
        out.push(ConfigError::InvalidRoute {
            field: "routes".into(),
            problem: format!("{} routes; at most {ROUTES_MAX}", routes.len()),
        });
    }
    for (i, r) in routes.iter().enumerate() {
        let f = format!("routes[{i}]");
        if !r.path_prefix.starts_with('/')
            || r.path_prefix
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ')
        {
            out.push(ConfigError::InvalidRoute {
                field: format!("{f}.path_prefix"),
                problem: format!(
                    "`{}` is not a path prefix; use one starting with `/`, like `/orders`",
                    r.path_prefix
                ),
            });
        }
        if let Some(j) = routes[..i]
            .iter()
            .position(|o| o.path_prefix == r.path_prefix)
        {
            out.push(ConfigError::InvalidRoute {
                field: format!("{f}.path_prefix"),
                problem: format!(
                    "`{}` is also routes[{j}]; keep one row per prefix",
                    r.path_prefix
                ),
            });
        }
        if let Some(t) = &r.writes_to_home_of {
            if !tables.contains(&t.as_str()) {
                let known = tables;
                out.push(ConfigError::InvalidRoute {
                    field: format!("{f}.writes_to_home_of"),
                    problem: format!(
                        "unknown table `{t}`; name a [[tables]] entry (single_master, so it has a home){}",
                        if known.is_empty() { String::new() } else { format!(": {}", known.join(", ")) }
                    ),
                });
            }
        }
        if r.rate_burst == 0 {
            out.push(ConfigError::InvalidRoute {
                field: format!("{f}.rate_burst"),
                problem: "0; use at least 1".into(),
            });
        }
    }
    out
}

/// A cookie name the edge can set and read back unquoted.
fn valid_cookie_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
