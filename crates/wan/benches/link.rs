//! Link emulation accuracy and overhead, as a report (not a timed test).
//!
//! `cargo bench -p meridian-wan --bench link`
//!
//! For each RTT of the default profile, 200 one-byte round trips over an
//! emulated link: p50/p99 and the error against the configured RTT. Then the
//! forwarder's added cost with no emulated delay, against direct loopback
//! measured in the same run, for small round trips and bulk throughput.

use std::time::{Duration, Instant};

use meridian_core::LinkConditions;
use meridian_wan::{LinkControl, LinkProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const ROUND_TRIPS: usize = 200;
const BULK_BYTES: usize = 256 * 1024 * 1024;

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn proxied(
    target: std::net::SocketAddr,
    c: LinkConditions,
    shutdown: &CancellationToken,
) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    LinkProxy::spawn(l, target, LinkControl::symmetric(c), shutdown.clone());
    addr
}

async fn round_trips(addr: std::net::SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut b = [0u8; 1];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(b"x").await.unwrap();
        s.read_exact(&mut b).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

async fn bulk_mb_per_s(addr: std::net::SocketAddr) -> f64 {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..BULK_BYTES / chunk.len() {
            w.write_all(&chunk).await.unwrap();
        }
        w
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < BULK_BYTES {
        got += r.read(&mut buf).await.unwrap();
    }
    drop(writer.await.unwrap());
    BULK_BYTES as f64 / 1e6 / t.elapsed().as_secs_f64()
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let shutdown = CancellationToken::new();
    let echo = echo_server().await;
    println!("# WAN link emulation: accuracy and overhead\n");
    println!("{ROUND_TRIPS} one-byte round trips per row, 127.0.0.1, release build.\n");
    println!("| configured RTT ms | p50 ms | p99 ms | p50 error ms | p99 error ms |");
    println!("|---:|---:|---:|---:|---:|");
    for rtt in [80.0, 120.0, 216.0, 58.0] {
        let addr = proxied(echo, LinkConditions::from_rtt_ms(rtt), &shutdown).await;
        let mut v = round_trips(addr, ROUND_TRIPS).await;
        let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
        println!(
            "| {rtt:.0} | {p50:.2} | {p99:.2} | {:+.2} | {:+.2} |",
            p50 - rtt,
            p99 - rtt
        );
    }
    let mut direct = round_trips(echo, 2000).await;
    let zero = proxied(echo, LinkConditions::IDEAL, &shutdown).await;
    let mut via = round_trips(zero, 2000).await;
    let (d50, d99, v50, v99) = (
        pct(&mut direct, 0.5),
        pct(&mut direct, 0.99),
        pct(&mut via, 0.5),
        pct(&mut via, 0.99),
    );
    println!("\n## Forwarder overhead with no emulated delay (2000 round trips)\n");
    println!("| path | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    println!(
        "| direct loopback | {:.0} | {:.0} |",
        d50 * 1000.0,
        d99 * 1000.0
    );
    println!(
        "| through LinkProxy | {:.0} | {:.0} |",
        v50 * 1000.0,
        v99 * 1000.0
    );
    println!(
        "| added | {:+.0} | {:+.0} |",
        (v50 - d50) * 1000.0,
        (v99 - d99) * 1000.0
    );
    let d = bulk_mb_per_s(echo).await;
    let p = bulk_mb_per_s(zero).await;
    println!(
        "\n## Bulk throughput, {} MiB one way (echoed back)\n",
        BULK_BYTES >> 20
    );
    println!("| path | MB/s | ratio |");
    println!("|---|---:|---:|");
    println!("| direct loopback | {d:.0} | 1.00 |");
    println!("| through LinkProxy | {p:.0} | {:.2} |", p / d);
    shutdown.cancel();
}
