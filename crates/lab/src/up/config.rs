//! The topology `meridian up` writes: its regions on loopback (each
//! region's edge on its own address, `127.0.N.1`, one port for all), the
//! default tables and route the demo app uses, and what `--extra-config`
//! adds or replaces.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use meridian_core::config::{
    ClusterConfig, EdgeConfig, RegionConfig, RespConfig, RouteConfig, TableConfig, TableModeConfig,
    WanConfig,
};
use meridian_core::{RegionName, TopologyConfig};

use crate::ports::edge_ip;

/// What `--extra-config` may hold.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtraConfig {
    #[serde(default)]
    tables: Vec<TableConfig>,
    #[serde(default)]
    resp: Option<RespConfig>,
    #[serde(default)]
    edge: Option<EdgeConfig>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

/// The tables and route every `up` cluster has, for the demo app:
/// sessions (last writer wins), carts (counters: concurrent adds in two
/// regions both count) and orders (one home, the first region, so an
/// order is decided once), with the edge sending `/orders` writes to the
/// orders table's home. Written as an operator would write them, so the
/// product's own defaults fill in the rest.
fn defaults(home: &RegionName) -> ExtraConfig {
    let text = format!(
        r#"
[[tables]]
name = "sessions"
key_prefixes = ["session:"]

[[tables]]
name = "carts"
key_prefixes = ["cart:"]
conflict = "pn_counter"

[[tables]]
name = "orders"
key_prefixes = ["order:"]
mode = {{ single_master = {{ home = "{home}" }} }}

[[routes]]
path_prefix = "/orders"
writes_to_home_of = "orders"
"#
    );
    toml::from_str(&text).expect("the default tables and routes parse")
}

/// The generated topology: region N (from 1) gets `ports[N-1]` on
/// 127.0.0.1 and its edge on `127.0.N.1:edge_port`; the default tables
/// and route are in, before any `--extra-config`.
pub(super) fn topology_for(
    regions: &[RegionName],
    ports: &[[u16; 3]],
    edge_port: u16,
    admin_token: &str,
    secret: String,
) -> TopologyConfig {
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mut config = TopologyConfig {
        cluster: ClusterConfig {
            name: "meridian".into(),
            secret: Some(secret),
            secret_file: None,
            admin_token: Some(admin_token.to_string()),
            master_region: None,
        },
        regions: regions
            .iter()
            .zip(ports)
            .enumerate()
            .map(|(i, (name, p))| RegionConfig {
                name: name.to_string(),
                peer: addr(p[0]),
                advertise_peer: None,
                resp: addr(p[1]),
                admin: addr(p[2]),
                s3: None,
                dns: None,
                edge: Some(SocketAddr::from((edge_ip(i), edge_port))),
                backends: Vec::new(),
                location: None,
            })
            .collect(),
        resp: Default::default(),
        wan: WanConfig {
            emulate: true,
            links: Vec::new(),
        },
        tables: Vec::new(),
        edge: Default::default(),
        routes: Vec::new(),
    };
    if let Some(home) = regions.first() {
        merge(&mut config, defaults(home));
    }
    config
}

/// Adds an `--extra-config` file to a generated topology.
pub(super) fn merge_extra(config: &mut TopologyConfig, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --extra-config {}", path.display()))?;
    let extra: ExtraConfig = toml::from_str(&text).with_context(|| {
        format!(
            "{}: only [[tables]], [resp], [edge] and [[routes]] may be given to `up`",
            path.display()
        )
    })?;
    merge(config, extra);
    Ok(())
}

/// Merges `extra` over `config`. A table of `extra` replaces every table
/// already there with its name or one of its key prefixes (so a file
/// written before the defaults existed, with its own `orders` or
/// `session:`, still validates); a route replaces the one with its path
/// prefix; `[resp]` and `[edge]` replace the whole section. A route left
/// naming a table that is gone or no longer single-master (a replaced
/// default) is dropped: it would send writes to a home that is not there.
fn merge(config: &mut TopologyConfig, extra: ExtraConfig) {
    for t in &extra.tables {
        config.tables.retain(|old| {
            old.name != t.name && !old.key_prefixes.iter().any(|p| t.key_prefixes.contains(p))
        });
    }
    config.tables.extend(extra.tables);
    let tables = &config.tables;
    config.routes.retain(|r| {
        r.writes_to_home_of.as_ref().is_none_or(|name| {
            tables
                .iter()
                .any(|t| &t.name == name && matches!(t.mode, TableModeConfig::SingleMaster { .. }))
        })
    });
    for r in &extra.routes {
        config.routes.retain(|old| old.path_prefix != r.path_prefix);
    }
    config.routes.extend(extra.routes);
    if let Some(resp) = extra.resp {
        config.resp = resp;
    }
    if let Some(edge) = extra.edge {
        config.edge = edge;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::config::ConflictPolicy;

    fn regions() -> Vec<RegionName> {
        ["us-east", "eu-west", "ap-south"]
            .iter()
            .map(|r| RegionName::new(*r).unwrap())
            .collect()
    }

    fn generated() -> TopologyConfig {
        let ports = [
            [24_000, 24_001, 24_002],
            [24_010, 24_011, 24_012],
            [24_020, 24_021, 24_022],
        ];
        topology_for(&regions(), &ports, 24_003, "token", "s".repeat(32))
    }

    fn with_extra(text: &str) -> TopologyConfig {
        let mut c = generated();
        merge(&mut c, toml::from_str(text).unwrap());
        c
    }

    fn names(c: &TopologyConfig) -> Vec<&str> {
        c.tables.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn every_region_has_its_own_edge_address_on_one_port() {
        let c = generated();
        let edges: Vec<String> = c
            .regions
            .iter()
            .map(|r| r.edge.unwrap().to_string())
            .collect();
        assert_eq!(
            edges,
            ["127.0.1.1:24003", "127.0.2.1:24003", "127.0.3.1:24003"]
        );
        c.validate().expect("the generated topology is valid");
    }

    #[test]
    fn the_defaults_are_sessions_carts_orders_and_the_orders_route() {
        let c = generated();
        assert_eq!(names(&c), ["sessions", "carts", "orders"]);
        assert_eq!(c.tables[1].conflict, ConflictPolicy::PnCounter);
        assert_eq!(c.tables[1].key_prefixes, ["cart:"]);
        assert_eq!(
            c.tables[2].mode,
            TableModeConfig::SingleMaster {
                home: "us-east".into()
            }
        );
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].path_prefix, "/orders");
        assert_eq!(c.routes[0].writes_to_home_of.as_deref(), Some("orders"));
        let t = c.validate().unwrap();
        assert_eq!(t.tables.len(), 3);
    }

    #[test]
    fn an_extra_table_with_a_default_name_replaces_it_and_a_route_that_needs_a_home_goes() {
        // tests/consistency.rs: its own multi-master `orders`.
        let c = with_extra(
            "[[tables]]\nname = \"orders\"\nkey_prefixes = [\"order:\"]\nwrite_ack = \"global\"\n\
             [[tables]]\nname = \"ledger\"\nkey_prefixes = [\"ledger:\"]\nmode = { single_master = { home = \"us-east\" } }\n",
        );
        assert_eq!(names(&c), ["sessions", "carts", "orders", "ledger"]);
        assert_eq!(c.tables[2].mode, TableModeConfig::MultiMaster);
        assert!(c.routes.is_empty(), "{:?}", c.routes);
        c.validate().expect("valid with the replaced table");
    }

    #[test]
    fn an_extra_table_with_a_default_prefix_replaces_that_default() {
        let c =
            with_extra("[[tables]]\nname = \"baskets\"\nkey_prefixes = [\"cart:\", \"basket:\"]\n");
        assert_eq!(names(&c), ["sessions", "orders", "baskets"]);
        assert_eq!(c.routes.len(), 1, "orders is still single-master");
        c.validate().unwrap();
    }

    #[test]
    fn extra_routes_edge_and_single_master_orders_keep_or_replace_the_defaults() {
        let c = with_extra(
            "[[tables]]\nname = \"orders\"\nkey_prefixes = [\"order:\"]\nmode = { single_master = { home = \"eu-west\" } }\n\
             [[routes]]\npath_prefix = \"/orders\"\nrate_limit = 50\n\
             [[routes]]\npath_prefix = \"/api\"\n\
             [edge]\npolicy = \"least_request\"\n",
        );
        let routes: Vec<(&str, u32)> = c
            .routes
            .iter()
            .map(|r| (r.path_prefix.as_str(), r.rate_limit))
            .collect();
        assert_eq!(routes, [("/orders", 50), ("/api", 0)]);
        assert_eq!(
            c.edge.policy,
            meridian_core::config::BalancePolicy::LeastRequest
        );
        c.validate().unwrap();
    }

    #[test]
    fn every_extra_config_of_the_tests_and_tools_still_validates() {
        // Each of these sources holds one raw string: its extra config.
        let sources = [
            include_str!("../chaos_run.rs"),
            include_str!("../../../meridian/tests/consistency.rs"),
            include_str!("../../../meridian/tests/switchover.rs"),
            include_str!("../../../meridian/tests/residency.rs"),
            include_str!("../../../meridian/tests/redis.rs"),
        ];
        let mut files: Vec<String> = sources.iter().map(|s| embedded_toml(s)).collect();
        files.push(crate::bench::consistency::TABLES.to_string());
        // tests/residency.rs' second cluster.
        files.push("[[tables]]\nname = \"docs\"\nkey_prefixes = [\"doc:\"]\n".into());
        for text in files {
            let c = with_extra(&text);
            c.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    /// The first raw string (`r#"…"#`) of a Rust source.
    fn embedded_toml(source: &str) -> String {
        let start = source.find("r#\"").expect("a raw string") + 3;
        let end = start + source[start..].find("\"#").expect("its end");
        source[start..end].to_string()
    }
}
