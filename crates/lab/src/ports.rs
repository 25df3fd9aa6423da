//! The addresses `meridian up` gives out: three ports per node on
//! 127.0.0.1, one edge port shared by every region on its own loopback
//! address (`127.0.N.1` for region N), and a port per app instance.
//!
//! Ports are fixed from `--base-port` or picked at random below the
//! ephemeral range and checked by binding. It only chooses; the processes
//! bind.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::bail;

/// Where `up` looks for free ports: below Linux's default ephemeral range
/// (32768–60999), above most well-known services.
pub const FREE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Random candidates tried before giving up on finding a free port (the
/// range has 12 000; failing a thousand times means it is nearly full).
const PORT_TRIES_MAX: usize = 1000;

/// With `--base-port B`, every region's edge listens on `B + 3` (its own
/// loopback address keeps them apart; `B + 10·i + {0, 1, 2}` are the nodes').
pub const EDGE_PORT_OFFSET: u16 = 3;

/// The loopback address of region `index`'s edge (0-based; region 1 gets
/// 127.0.1.1). 127.0.0.0/8 is all loopback on Linux, so no setup is needed,
/// and an address alone names a region.
pub fn edge_ip(index: usize) -> Ipv4Addr {
    let n = u8::try_from(index + 1).expect("at most REGIONS_MAX regions, far below 255");
    Ipv4Addr::new(127, 0, n, 1)
}

/// A random port in [`FREE_PORTS`].
fn random_port() -> u16 {
    let mut r = [0u8; 2];
    getrandom::fill(&mut r).expect("the OS random source is available");
    FREE_PORTS.start + u16::from_le_bytes(r) % (FREE_PORTS.end - FREE_PORTS.start)
}

/// Picks three ports per region: fixed from `base`, or free ones (held
/// until all are chosen so no two regions get the same).
pub fn choose_ports(n: usize, base: Option<u16>) -> anyhow::Result<Vec<[u16; 3]>> {
    if let Some(base) = base {
        let top = base as usize + 10 * n;
        if top > u16::MAX as usize {
            bail!("--base-port {base} leaves no room for {n} regions (needs {base}..{top})");
        }
        return Ok((0..n)
            .map(|i| {
                let b = base + 10 * i as u16;
                [b, b + 1, b + 2]
            })
            .collect());
    }
    // Not port 0: the kernel hands those out from the ephemeral range, which
    // outgoing connections draw their source ports from too, so between our
    // release and the node's bind another connection can take the port (seen
    // under parallel test runs). Random ports below the ephemeral range,
    // checked by binding and held until all are chosen, avoid both that and
    // two `up`s picking alike.
    let mut held = Vec::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut ports = [0u16; 3];
        for p in &mut ports {
            let l = bind_free(Ipv4Addr::LOCALHOST, &BTreeSet::new())?;
            *p = l.local_addr()?.port();
            held.push(l);
        }
        out.push(ports);
    }
    Ok(out)
}

/// A listener on a random free port of `ip`, not one of `exclude`.
fn bind_free(ip: Ipv4Addr, exclude: &BTreeSet<u16>) -> anyhow::Result<TcpListener> {
    for _ in 0..PORT_TRIES_MAX {
        let candidate = random_port();
        if exclude.contains(&candidate) {
            continue;
        }
        if let Ok(l) = TcpListener::bind((ip, candidate)) {
            return Ok(l);
        }
    }
    bail!("cannot find free ports in {FREE_PORTS:?} on {ip}; use --base-port")
}

/// A free port on 127.0.0.1 for an app instance, not one of `exclude` (the
/// nodes' ports, which a stopped node must find free when it restarts, and
/// those handed to instances that may not have bound yet).
pub fn free_port(exclude: &BTreeSet<u16>) -> anyhow::Result<u16> {
    Ok(bind_free(Ipv4Addr::LOCALHOST, exclude)?
        .local_addr()?
        .port())
}

/// The edge port of `n` regions: `base + 3` with fixed ports, else one
/// port free on every region's edge address at once (and not one of the
/// nodes' ports, so no two listeners share a number, even on different
/// addresses).
pub fn choose_edge_port(n: usize, base: Option<u16>, nodes: &[[u16; 3]]) -> anyhow::Result<u16> {
    if let Some(base) = base {
        return base
            .checked_add(EDGE_PORT_OFFSET)
            .ok_or_else(|| anyhow::anyhow!("--base-port {base} leaves no room for the edge port"));
    }
    let taken: BTreeSet<u16> = nodes.iter().flatten().copied().collect();
    for _ in 0..PORT_TRIES_MAX {
        let candidate = random_port();
        if !taken.contains(&candidate) && free_on_every_edge(candidate, n).is_some() {
            return Ok(candidate);
        }
    }
    bail!(
        "cannot find a port in {FREE_PORTS:?} free on 127.0.1.1 up to 127.0.{n}.1; use --base-port"
    )
}

/// Listeners on `port` of every edge address of `n` regions, or `None`
/// when one of them is taken.
fn free_on_every_edge(port: u16, n: usize) -> Option<Vec<TcpListener>> {
    (0..n)
        .map(|i| TcpListener::bind(SocketAddr::from((edge_ip(i), port))).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_get_one_loopback_address_per_region() {
        assert_eq!(edge_ip(0), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(edge_ip(2), Ipv4Addr::new(127, 0, 3, 1));
    }

    #[test]
    fn a_fixed_base_puts_every_edge_on_base_plus_three() {
        let nodes = choose_ports(3, Some(24_000)).unwrap();
        assert_eq!(nodes[1], [24_010, 24_011, 24_012]);
        assert_eq!(choose_edge_port(3, Some(24_000), &nodes).unwrap(), 24_003);
    }

    #[test]
    fn a_chosen_edge_port_is_free_on_every_edge_address_and_no_node_port() {
        let nodes = choose_ports(3, None).unwrap();
        let port = choose_edge_port(3, None, &nodes).unwrap();
        assert!(FREE_PORTS.contains(&port));
        assert!(!nodes.iter().flatten().any(|p| *p == port));
        // Released again: every region's address can bind it.
        let held = free_on_every_edge(port, 3).expect("free on 127.0.1.1..127.0.3.1");
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn a_port_taken_on_one_edge_address_is_not_free_for_the_edges() {
        let taken = bind_free(edge_ip(1), &BTreeSet::new()).unwrap();
        let port = taken.local_addr().unwrap().port();
        // Region 1's address is free, region 2's is held.
        assert!(free_on_every_edge(port, 1).is_some());
        assert!(free_on_every_edge(port, 3).is_none());
    }

    #[test]
    fn free_ports_skip_the_excluded() {
        // All but the top 1000 of the range excluded: a thousand random
        // tries practically always hit one of those.
        let exclude: BTreeSet<u16> = (FREE_PORTS.start..FREE_PORTS.end - 1000).collect();
        for _ in 0..20 {
            let p = free_port(&exclude).unwrap();
            assert!(FREE_PORTS.contains(&p) && !exclude.contains(&p), "{p}");
        }
    }
}
