//! Validation: every cross-field rule of a [`TopologyConfig`], checked at
//! once, building the [`Topology`] or listing every problem as
//! [`ConfigErrors`].
//!
//! Entry point: [`TopologyConfig::validate`]. Reads no files: the binary
//! resolves `secret_file` before validation (architecture invariant: only
//! `bin` touches files and env). The rules live in one private `Validator`
//! that collects errors as it goes, one method per section of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::edge::{EdgeConfig, RouteConfig};
use super::error::{ConfigError, ConfigErrors};
use super::file::{
    ClusterConfig, RegionConfig, RespConfig, RespUser, TableConfig, TableModeConfig,
    TopologyConfig, WanConfig, WriteAckConfig,
};
use super::link::{LinkConditions, LinkFigures};
use super::topology::{Region, Table, TableMode, Topology, WriteAck};
use crate::geo;
use crate::region::RegionName;

/// Shortest cluster secret accepted, in bytes. 16 bytes of randomness is the
/// least that makes HMAC challenge–response unguessable.
pub const SECRET_BYTES_MIN: usize = 16;

impl TopologyConfig {
    /// Checks every rule and builds the [`Topology`]. `secret_file` must have
    /// been resolved into `secret` by the caller (see the module docs); if it
    /// is still set, it counts as a second secret source.
    pub fn validate(&self) -> Result<Topology, ConfigErrors> {
        let mut v = Validator::default();
        let topology = v.run(self);
        if v.errors.is_empty() {
            Ok(topology.expect("no errors means a topology was built"))
        } else {
            Err(ConfigErrors(v.errors))
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    fn run(&mut self, c: &TopologyConfig) -> Option<Topology> {
        let secret = self.secret(&c.cluster);
        if !valid_cluster_name(&c.cluster.name) {
            self.errors.push(ConfigError::InvalidClusterName {
                name: c.cluster.name.clone(),
            });
        }
        let regions = self.regions(&c.regions);
        let names: Vec<RegionName> = regions.iter().map(|r| r.name.clone()).collect();
        let master_region = match &c.cluster.master_region {
            Some(m) => self.region_ref("cluster.master_region", m, &names),
            None => names.first().cloned(),
        };
        let links = self.links(&c.wan, &regions);
        let tables = self.tables(&c.tables, &names);
        self.resp(&c.resp);
        self.edge(&c.edge, &c.regions);
        self.routes(&c.routes, &tables);
        if !self.errors.is_empty() {
            return None;
        }
        Some(Topology {
            cluster_name: c.cluster.name.clone(),
            secret: secret?,
            admin_token: c.cluster.admin_token.clone(),
            master_region: master_region?,
            regions,
            emulate_wan: c.wan.emulate,
            links,
            tables,
            resp: c.resp.clone(),
            edge: c.edge.clone(),
            routes: c.routes.clone(),
        })
    }

    fn resp(&mut self, c: &RespConfig) {
        self.resp_limits(c);
        if c.requirepass.as_deref() == Some("") {
            self.errors.push(ConfigError::InvalidUser {
                field: "resp.requirepass".into(),
                problem: "an empty password; remove the line to allow unauthenticated clients, or set a password".into(),
            });
        }
        let mut seen = BTreeSet::new();
        for (i, u) in c.users.iter().enumerate() {
            if let Some(problem) = user_problem(u, c.requirepass.is_some(), &mut seen) {
                self.errors.push(ConfigError::InvalidUser {
                    field: format!("resp.users[{i}]"),
                    problem,
                });
            }
        }
    }

    fn resp_limits(&mut self, c: &RespConfig) {
        let mut limit = |name: &str, value: usize, lo: usize, hi: usize, expected| {
            if value < lo || value > hi {
                self.errors.push(ConfigError::LimitOutOfRange {
                    field: format!("resp.{name}"),
                    value,
                    expected,
                });
            }
        };
        limit(
            "bulk_bytes_max",
            c.bulk_bytes_max,
            1024,
            512 * 1024 * 1024,
            "use 1 KiB up to 512 MiB (Redis's own ceiling)",
        );
        limit(
            "array_len_max",
            c.array_len_max,
            16,
            i32::MAX as usize,
            "use 16 up to 2^31-1 arguments",
        );
        limit(
            "inline_bytes_max",
            c.inline_bytes_max,
            64,
            16 * 1024 * 1024,
            "use 64 bytes up to 16 MiB",
        );
        limit(
            "reply_bytes_max",
            c.reply_bytes_max,
            c.bulk_bytes_max.max(1024),
            usize::MAX,
            "use at least bulk_bytes_max, so any stored value can be read back",
        );
        limit(
            "connections_max",
            c.connections_max,
            1,
            1_000_000,
            "use 1 up to 1,000,000",
        );
    }

    fn edge(&mut self, c: &EdgeConfig, regions: &[RegionConfig]) {
        self.errors.extend(super::edge::edge_problems(c));
        for (i, r) in regions.iter().enumerate() {
            self.errors.extend(super::edge::backend_problems(
                &format!("regions[{i}]"),
                &r.backends,
            ));
        }
    }

    fn routes(&mut self, routes: &[RouteConfig], tables: &[Table]) {
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        self.errors
            .extend(super::edge::route_problems(routes, &names));
    }

    fn secret(&mut self, c: &ClusterConfig) -> Option<Vec<u8>> {
        match (&c.secret, &c.secret_file) {
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::SecretTwice);
                None
            }
            (None, _) => {
                self.errors.push(ConfigError::MissingSecret);
                None
            }
            (Some(s), None) if s.len() < SECRET_BYTES_MIN => {
                self.errors.push(ConfigError::WeakSecret { len: s.len() });
                None
            }
            (Some(s), None) => Some(s.as_bytes().to_vec()),
        }
    }

    fn regions(&mut self, raw: &[RegionConfig]) -> Vec<Region> {
        if raw.is_empty() {
            self.errors.push(ConfigError::NoRegions);
        }
        let mut out: Vec<Region> = Vec::new();
        let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let field = format!("regions[{i}]");
            let name = match RegionName::new(r.name.clone()) {
                Ok(n) => n,
                Err(source) => {
                    self.errors.push(ConfigError::InvalidRegionName {
                        field: format!("{field}.name"),
                        source,
                    });
                    continue;
                }
            };
            if out.iter().any(|o| o.name == name) {
                self.errors.push(ConfigError::DuplicateRegion {
                    field: format!("{field}.name"),
                    name: r.name.clone(),
                });
                continue;
            }
            self.listeners(&field, r, &mut listeners);
            if let Some(loc) = r.location {
                if !(-90.0..=90.0).contains(&loc.lat) || !(-180.0..=180.0).contains(&loc.lon) {
                    self.errors.push(ConfigError::InvalidLocation {
                        field: format!("{field}.location"),
                    });
                }
            }
            out.push(region_from(name, r));
        }
        out
    }

    /// Checks region `field`'s listen addresses against each other and
    /// against every region's before it (`listeners`, which grows).
    fn listeners(
        &mut self,
        field: &str,
        r: &RegionConfig,
        listeners: &mut Vec<(String, SocketAddr)>,
    ) {
        let addrs = [
            ("peer", Some(r.peer)),
            ("resp", Some(r.resp)),
            ("admin", Some(r.admin)),
            ("s3", r.s3),
            ("dns", r.dns),
            ("edge", r.edge),
        ];
        for (kind, addr) in addrs {
            let Some(addr) = addr else { continue };
            let f = format!("{field}.{kind}");
            if addr.port() == 0 {
                self.errors.push(ConfigError::PortZero { field: f });
                continue;
            }
            if let Some((other, _)) = listeners.iter().find(|(_, a)| addresses_clash(*a, addr)) {
                self.errors.push(ConfigError::DuplicateAddress {
                    field: f.clone(),
                    other_field: other.clone(),
                    addr,
                });
            }
            listeners.push((f, addr));
        }
    }

    fn region_ref(&mut self, field: &str, name: &str, known: &[RegionName]) -> Option<RegionName> {
        match known.iter().find(|k| k.as_str() == name) {
            Some(k) => Some(k.clone()),
            None => {
                self.errors.push(ConfigError::UnknownRegion {
                    field: field.to_string(),
                    name: name.to_string(),
                    known: known
                        .iter()
                        .map(RegionName::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
                None
            }
        }
    }

    fn links(
        &mut self,
        wan: &WanConfig,
        regions: &[Region],
    ) -> BTreeMap<(RegionName, RegionName), LinkConditions> {
        let names: Vec<RegionName> = regions.iter().map(|r| r.name.clone()).collect();
        let mut links = BTreeMap::new();
        let mut seen: BTreeMap<(RegionName, RegionName), String> = BTreeMap::new();
        for (i, l) in wan.links.iter().enumerate() {
            let field = format!("wan.links[{i}]");
            let a = self.region_ref(&format!("{field}.a"), &l.a, &names);
            let b = self.region_ref(&format!("{field}.b"), &l.b, &names);
            let figures = LinkFigures {
                rtt_ms: l.rtt_ms,
                jitter_ms: l.jitter_ms,
                bandwidth_mbit: l.bandwidth_mbit,
                loss_pct: l.loss_pct,
            };
            let conditions = match figures.to_conditions(&field) {
                Ok(c) => Some(c),
                Err(errors) => {
                    self.errors.extend(errors);
                    None
                }
            };
            let (Some(a), Some(b)) = (a, b) else { continue };
            if a == b {
                self.errors.push(ConfigError::SelfLink {
                    field,
                    name: a.to_string(),
                });
                continue;
            }
            let key = pair(&a, &b);
            if let Some(other) = seen.get(&key) {
                self.errors.push(ConfigError::DuplicateLink {
                    field,
                    other_field: other.clone(),
                    a: key.0.to_string(),
                    b: key.1.to_string(),
                });
                continue;
            }
            seen.insert(key.clone(), field);
            if let Some(conditions) = conditions {
                links.insert(key, conditions);
            }
        }
        if wan.emulate {
            self.default_links(regions, &seen, &mut links);
        }
        links
    }

    /// With emulation on, every pair without a row (`given`) gets the
    /// default profile's latency, or an error when there is none.
    fn default_links(
        &mut self,
        regions: &[Region],
        given: &BTreeMap<(RegionName, RegionName), String>,
        links: &mut BTreeMap<(RegionName, RegionName), LinkConditions>,
    ) {
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                let key = pair(&a.name, &b.name);
                if given.contains_key(&key) {
                    continue;
                }
                match geo::default_rtt_ms(a.name.as_str(), a.location, b.name.as_str(), b.location)
                {
                    Some(rtt) if rtt.is_finite() => {
                        links.insert(key, LinkConditions::from_rtt_ms(rtt));
                    }
                    // Only a location that failed its range check in
                    // `regions` (NaN or ±inf, which TOML allows) derives a
                    // non-finite RTT, and `from_rtt_ms` would panic turning
                    // it into a `Duration`. Its error is already recorded,
                    // so no topology is built: skip the pair rather than
                    // add a second error for it. (fuzz/regressions/edge_config)
                    Some(_) => debug_assert!(
                        !self.errors.is_empty(),
                        "a non-finite RTT from locations that passed their range check"
                    ),
                    None => self.errors.push(ConfigError::MissingLatency {
                        a: a.name.to_string(),
                        b: b.name.to_string(),
                    }),
                }
            }
        }
    }

    fn tables(&mut self, raw: &[TableConfig], names: &[RegionName]) -> Vec<Table> {
        let mut out: Vec<Table> = Vec::new();
        let mut prefixes: Vec<(String, String)> = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let field = format!("tables[{i}]");
            if !valid_table_name(&t.name) {
                self.errors.push(ConfigError::InvalidTableName {
                    field: format!("{field}.name"),
                    name: t.name.clone(),
                });
            } else if out.iter().any(|o| o.name == t.name) {
                self.errors.push(ConfigError::DuplicateTable {
                    field: format!("{field}.name"),
                    name: t.name.clone(),
                });
            }
            self.key_prefixes(&field, &t.key_prefixes, &mut prefixes);
            let mode = self.table_mode(&field, &t.mode, names);
            let write_ack = self.write_ack(&field, t, names.len());
            if let Some(mode) = mode {
                out.push(Table {
                    name: t.name.clone(),
                    key_prefixes: t.key_prefixes.clone(),
                    mode,
                    conflict: t.conflict,
                    write_ack,
                });
            }
        }
        out
    }

    /// Checks table `field`'s prefixes against each other and every table's
    /// before it (`claimed`, which grows).
    fn key_prefixes(&mut self, field: &str, own: &[String], claimed: &mut Vec<(String, String)>) {
        for (j, p) in own.iter().enumerate() {
            let pf = format!("{field}.key_prefixes[{j}]");
            if p.is_empty() {
                self.errors.push(ConfigError::EmptyPrefix { field: pf });
            } else if let Some((other, _)) = claimed.iter().find(|(_, q)| q == p) {
                self.errors.push(ConfigError::DuplicatePrefix {
                    field: pf,
                    other_field: other.clone(),
                    prefix: p.clone(),
                });
            } else {
                claimed.push((pf, p.clone()));
            }
        }
    }

    /// The validated mode of table `field`; `None` when a region it names is
    /// unknown.
    fn table_mode(
        &mut self,
        field: &str,
        mode: &TableModeConfig,
        names: &[RegionName],
    ) -> Option<TableMode> {
        match mode {
            TableModeConfig::MultiMaster => Some(TableMode::MultiMaster),
            TableModeConfig::SingleMaster { home } => self
                .region_ref(&format!("{field}.mode.single_master.home"), home, names)
                .map(|home| TableMode::SingleMaster { home }),
            TableModeConfig::Pinned { regions, outside } => {
                if regions.is_empty() {
                    self.errors.push(ConfigError::EmptyPinnedRegions {
                        field: format!("{field}.mode.pinned.regions"),
                    });
                }
                let resolved: Vec<Option<RegionName>> = regions
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        self.region_ref(&format!("{field}.mode.pinned.regions[{j}]"), r, names)
                    })
                    .collect();
                resolved
                    .into_iter()
                    .collect::<Option<BTreeSet<_>>>()
                    .map(|regions| TableMode::Pinned {
                        regions,
                        outside: *outside,
                    })
            }
        }
    }

    /// Table `field`'s acknowledgement, with `region_count` regions defined.
    fn write_ack(&mut self, field: &str, t: &TableConfig, region_count: usize) -> WriteAck {
        match (t.write_ack, t.ack_regions) {
            (WriteAckConfig::Local, None) => WriteAck::Local,
            (WriteAckConfig::Local, Some(_)) => {
                self.errors.push(ConfigError::AckRegionsWithoutGlobal {
                    field: format!("{field}.ack_regions"),
                });
                WriteAck::Local
            }
            (WriteAckConfig::Global, None) => WriteAck::Global {
                regions: region_count,
            },
            (WriteAckConfig::Global, Some(n)) => {
                if n == 0 || n > region_count {
                    self.errors.push(ConfigError::LimitOutOfRange {
                        field: format!("{field}.ack_regions"),
                        value: n,
                        expected: "1 to the number of regions (the writer's own region counts)",
                    });
                }
                WriteAck::Global { regions: n }
            }
        }
    }
}

/// What is wrong with Redis user `u`, if anything; `seen` collects the names
/// met so far, and `requirepass_set` says whether `default` is taken.
fn user_problem(
    u: &RespUser,
    requirepass_set: bool,
    seen: &mut BTreeSet<String>,
) -> Option<String> {
    if u.name.is_empty() || u.name.chars().any(|ch| ch.is_whitespace()) {
        Some(format!(
            "user name `{}` is not usable; use a non-empty name without spaces",
            u.name
        ))
    } else if u.name == "default" && requirepass_set {
        Some("user `default` is also given by resp.requirepass; keep one of them".to_string())
    } else if !seen.insert(u.name.clone()) {
        Some(format!("user `{}` is defined twice", u.name))
    } else if u.password.is_empty() {
        Some(format!("user `{}` has an empty password", u.name))
    } else {
        None
    }
}

/// The validated region `name` from its config row, the location filled in
/// from the catalogue when the row has none.
fn region_from(name: RegionName, r: &RegionConfig) -> Region {
    let location = r
        .location
        .or_else(|| geo::catalogue_region(name.as_str()).map(|c| c.location));
    Region {
        name,
        peer: r.peer,
        advertise_peer: r.advertise_peer.unwrap_or(r.peer),
        resp: r.resp,
        admin: r.admin,
        s3: r.s3,
        dns: r.dns,
        edge: r.edge,
        backends: r.backends.clone(),
        location,
    }
}

/// The key of an unordered pair: the smaller name first.
fn pair(a: &RegionName, b: &RegionName) -> (RegionName, RegionName) {
    if a < b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

/// Two listen addresses clash when their ports match and either IP is the
/// wildcard or both IPs are the same.
fn addresses_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn valid_cluster_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_table_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
