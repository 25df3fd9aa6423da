//! A paced HTTP load: `rate` requests per second to one URL for a bounded
//! time, each one timed and tagged with the region that answered
//! (`x-meridian-region`) — the client side of the traffic suite. Requests
//! start on schedule whether or not earlier ones finished (an open-loop
//! load, so a slow edge cannot slow the clients down and hide its
//! latency), up to [`IN_FLIGHT_MAX`] at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

/// Requests in flight at once before new ones count as failed (the
/// client's own bound; far above what the suite's rates need).
pub const IN_FLIGHT_MAX: usize = 512;

/// One request's timeout: a request the edge never answers is a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest run.
pub const DURATION_MAX: Duration = Duration::from_secs(600);

/// One request as the client saw it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// Until its whole answer arrived.
    pub latency: Duration,
    /// HTTP status; 0 for a transport failure or timeout.
    pub status: u16,
    /// The region that answered (`x-meridian-region`), empty if none.
    pub region: String,
}

impl Sample {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Sends GET `url` `rate` times a second until `stop` or `limit`; returns
/// every sample in send order (and the start instant).
pub async fn paced(
    url: String,
    rate: u32,
    limit: Duration,
    stop: CancellationToken,
) -> (Instant, Vec<Sample>) {
    let limit = limit.min(DURATION_MAX);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    while start.elapsed() < limit && !stop.is_cancelled() {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let sent = start.elapsed();
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let s = Sample {
                sent,
                latency: Duration::ZERO,
                status: 0,
                region: "client-overloaded".into(),
            };
            samples.lock().expect("samples lock").push(s);
            continue;
        };
        let (client, url, samples) = (client.clone(), url.clone(), samples.clone());
        tasks.spawn(async move {
            let s = one(&client, &url, sent).await;
            samples.lock().expect("samples lock").push(s);
            drop(permit);
        });
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut v = std::mem::take(&mut *samples.lock().expect("samples lock"));
    v.sort_by_key(|s| s.sent);
    (start, v)
}

async fn one(client: &HttpClient, url: &str, sent: Duration) -> Sample {
    let t = Instant::now();
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a GET is well-formed");
    let work = async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status().as_u16();
        let region = resp
            .headers()
            .get("x-meridian-region")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        resp.into_body().collect().await.ok()?;
        Some((status, region))
    };
    let (status, region) = tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .ok()
        .flatten()
        .unwrap_or((0, String::new()));
    Sample {
        sent,
        latency: t.elapsed(),
        status,
        region,
    }
}

/// The `q` quantile (0..=1) of latencies in ms.
pub fn quantile_ms(samples: &[&Sample], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    Some(v[i])
}
