//! Region probes: every other region's edge is asked for its own health
//! answer (`GET /_meridian/health` through the emulated WAN link) every
//! `edge.probe.interval_ms`; the answers and failures feed this node's
//! [`RegionBoard`], which also learns each probed region's views of the
//! others from the answer itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::Request;
use meridian_api::edge::{EdgeHealth, EDGE_HEALTH_PATH, HOP_HEADER};
use meridian_core::config::RegionProbeConfig;
use meridian_core::{RegionName, Topology};
use tokio_util::sync::CancellationToken;

use crate::policy::check::Thresholds;
use crate::policy::quorum::{ProbeAnswer, RegionBoard};
use crate::upstream::Upstream;

/// Largest health answer read, bytes (a few hundred per region).
pub const HEALTH_BODY_BYTES_MAX: usize = 64 * 1024;

/// How many probe intervals a relayed report stays fresh.
pub const REPORT_TTL_INTERVALS: u32 = 4;

/// The other regions' edges and this node's board of them.
#[derive(Debug)]
pub struct Regions {
    board: Mutex<RegionBoard>,
    /// Where to dial each other region's edge.
    pub peers: BTreeMap<RegionName, SocketAddr>,
    /// The other regions with an edge, nearest first by the latency model.
    pub nearest: Vec<RegionName>,
}

impl Regions {
    /// The board of `me` for the regions of `topology` that run an edge;
    /// `peers` says where to dial each.
    pub fn new(
        me: &RegionName,
        topology: &Topology,
        peers: BTreeMap<RegionName, SocketAddr>,
        config: &RegionProbeConfig,
    ) -> Self {
        let mut with_edge: Vec<RegionName> = topology
            .regions
            .iter()
            .filter(|r| &r.name == me || peers.contains_key(&r.name))
            .map(|r| r.name.clone())
            .collect();
        if !with_edge.contains(me) {
            with_edge.push(me.clone());
        }
        let mut nearest: Vec<RegionName> = peers.keys().cloned().collect();
        nearest.sort_by_key(|r| (topology.link(me, r).one_way_delay, r.clone()));
        let interval = Duration::from_millis(config.interval_ms);
        let ttl = interval * REPORT_TTL_INTERVALS + Duration::from_millis(config.timeout_ms);
        let thresholds = Thresholds {
            rise: config.rise,
            fall: config.fall,
        };
        Regions {
            board: Mutex::new(RegionBoard::new(
                me.clone(),
                with_edge,
                thresholds,
                ttl,
                Instant::now(),
            )),
            peers,
            nearest,
        }
    }

    /// The board (held briefly; never across an await).
    pub fn board(&self) -> MutexGuard<'_, RegionBoard> {
        self.board.lock().expect("board lock is never poisoned")
    }
}

/// Reads an edge health answer into what the board keeps.
pub fn answer_of(health: &EdgeHealth) -> ProbeAnswer {
    let views = health
        .views
        .iter()
        .filter_map(|(name, v)| {
            let region = RegionName::new(name.clone()).ok()?;
            let up = match v.state.as_str() {
                "up" => true,
                "down" => false,
                _ => return None,
            };
            Some((region, (up, Duration::from_millis(v.since_ms_ago))))
        })
        .collect();
    ProbeAnswer {
        serving: health.serving,
        draining: health.draining,
        views,
    }
}

/// Probes `target` at `dial` until `shutdown`.
pub async fn run_probe(
    regions: Arc<Regions>,
    upstream: Upstream,
    me: RegionName,
    target: RegionName,
    dial: SocketAddr,
    config: RegionProbeConfig,
    shutdown: CancellationToken,
) {
    let timeout = Duration::from_millis(config.timeout_ms);
    // Spread the probes of different regions over the interval.
    let mut ticker = crate::checker::spread_ticker(Duration::from_millis(config.interval_ms)).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let answer = probe_once(&upstream, &me, dial, timeout).await;
        let failed = answer.is_err();
        let changed =
            regions
                .board()
                .probed(&target, answer.as_ref().ok().cloned(), Instant::now());
        if let Err(why) = &answer {
            tracing::debug!(region = %target, %why, "probe failed");
        }
        for (region, verdict) in changed {
            tracing::warn!(%region, down = verdict.down, votes = verdict.down_votes, probe_failed = failed, "region verdict changed");
        }
    }
}

/// One probe of the edge at `dial`.
pub(crate) async fn probe_once(
    upstream: &Upstream,
    me: &RegionName,
    dial: SocketAddr,
    timeout: Duration,
) -> Result<ProbeAnswer, String> {
    let req = Request::get(EDGE_HEALTH_PATH)
        .header(hyper::header::HOST, dial.to_string())
        .header(HOP_HEADER, me.as_str())
        .body(Either::Left(Full::new(Bytes::new())))
        .expect("a static request is well-formed");
    let started = Instant::now();
    let resp = upstream
        .send(dial, req, Some(timeout))
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("answered {}", resp.status()));
    }
    let left = timeout.saturating_sub(started.elapsed());
    let body = tokio::time::timeout(
        left,
        Limited::new(resp.into_body(), HEALTH_BODY_BYTES_MAX).collect(),
    )
    .await
    .map_err(|_| format!("no whole answer within {timeout:?}"))?
    .map_err(|e| format!("reading the answer: {e}"))?
    .to_bytes();
    let health: EdgeHealth =
        serde_json::from_slice(&body).map_err(|e| format!("not a health answer: {e}"))?;
    Ok(answer_of(&health))
}
