//! Link emulation tests on real loopback sockets. Timing assertions here
//! check the emulator's correctness (a configured 80 ms RTT *is* 80 ms), not
//! performance; each uses the median of several samples to ride out a busy
//! CI machine.

use super::*;
use tokio::sync::oneshot;

/// A proxy in front of a one-shot server; returns (client side, server side).
async fn linked_pair(control: LinkControl, shutdown: CancellationToken) -> (TcpStream, TcpStream) {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = server.local_addr().unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    LinkProxy::spawn(proxy, target, control, shutdown);
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (s, _) = server.accept().await.unwrap();
        let _ = tx.send(s);
    });
    let client = TcpStream::connect(proxy_addr).await.unwrap();
    client.set_nodelay(true).unwrap();
    let server_side = rx.await.unwrap();
    server_side.set_nodelay(true).unwrap();
    (client, server_side)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn round_trip(client: &mut TcpStream, server: &mut TcpStream) -> Duration {
    let mut b = [0u8; 1];
    let start = Instant::now();
    client.write_all(b"x").await.unwrap();
    server.read_exact(&mut b).await.unwrap();
    server.write_all(&b).await.unwrap();
    client.read_exact(&mut b).await.unwrap();
    start.elapsed()
}

#[tokio::test]
async fn round_trip_over_80ms_link_is_80ms_within_3ms() {
    let shutdown = CancellationToken::new();
    let control = LinkControl::symmetric(LinkConditions::from_rtt_ms(80.0));
    let (mut c, mut s) = linked_pair(control, shutdown.clone()).await;
    let mut samples = Vec::new();
    for _ in 0..9 {
        samples.push(round_trip(&mut c, &mut s).await);
    }
    let rtt = median(samples);
    assert!(
        rtt >= Duration::from_millis(77) && rtt <= Duration::from_millis(83),
        "median RTT {rtt:?}, want 80 ms ± 3 ms"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn connection_setup_costs_one_emulated_round_trip() {
    let shutdown = CancellationToken::new();
    let control = LinkControl::symmetric(LinkConditions::from_rtt_ms(60.0));
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = server.local_addr().unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    LinkProxy::spawn(proxy, target, control, shutdown.clone());
    let start = Instant::now();
    let _client = TcpStream::connect(proxy_addr).await.unwrap();
    let _ = server.accept().await.unwrap();
    let setup = start.elapsed();
    assert!(
        setup >= Duration::from_millis(58) && setup <= Duration::from_millis(70),
        "setup took {setup:?}, want ≈ 60 ms"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn partition_stops_traffic_both_ways_and_heal_restores_it() {
    let shutdown = CancellationToken::new();
    let control = LinkControl::symmetric(LinkConditions::from_rtt_ms(10.0));
    let (mut c, mut s) = linked_pair(control.clone(), shutdown.clone()).await;
    round_trip(&mut c, &mut s).await;

    control.set_partitioned(true);
    c.write_all(b"to-server").await.unwrap();
    s.write_all(b"to-client").await.unwrap();
    let mut buf = [0u8; 9];
    let wait = Duration::from_millis(300);
    assert!(
        tokio::time::timeout(wait, s.read_exact(&mut buf))
            .await
            .is_err(),
        "bytes reached the server during a partition"
    );
    assert!(
        tokio::time::timeout(wait, c.read_exact(&mut buf))
            .await
            .is_err(),
        "bytes reached the client during a partition"
    );
    let stats = control.stats();
    assert_eq!(
        (stats.bytes_out, stats.bytes_in),
        (1, 1),
        "only the pre-partition round trip crossed"
    );

    control.set_partitioned(false);
    let mut got = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"to-server");
    tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"to-client");
    shutdown.cancel();
}

#[tokio::test]
async fn new_connections_are_refused_during_a_partition() {
    let shutdown = CancellationToken::new();
    let control = LinkControl::symmetric(LinkConditions::IDEAL);
    control.set_partitioned(true);
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    LinkProxy::spawn(
        proxy,
        server.local_addr().unwrap(),
        control.clone(),
        shutdown.clone(),
    );
    let mut c = TcpStream::connect(proxy_addr).await.unwrap();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut b))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "refused connection must close: {n:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), server.accept())
            .await
            .is_err(),
        "the target must never see the refused connection"
    );
    assert_eq!(control.stats().connections_refused, 1);
    shutdown.cancel();
}

#[tokio::test]
async fn bandwidth_cap_is_honoured_within_ten_percent() {
    let shutdown = CancellationToken::new();
    // 8 Mbit/s is 1,000,000 bytes/s: 1 MiB takes 1.049 s.
    let mut conditions = LinkConditions::IDEAL;
    conditions.bandwidth_bytes_per_sec = Some(1_000_000);
    let (mut c, mut s) = linked_pair(LinkControl::symmetric(conditions), shutdown.clone()).await;
    let total = 1024 * 1024;
    let payload: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        c.write_all(&payload).await.unwrap();
        c
    });
    let mut received = vec![0u8; total];
    s.read_exact(&mut received).await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let expected = total as f64 / 1_000_000.0;
    assert!(
        (elapsed - expected).abs() / expected <= 0.10,
        "1 MiB at 1 MB/s took {elapsed:.3} s, want {expected:.3} s ± 10 %"
    );
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8),
        "bytes corrupted"
    );
    drop(sender.await.unwrap());
    shutdown.cancel();
}

#[tokio::test]
async fn lossy_link_delivers_everything_in_order_but_later() {
    let shutdown = CancellationToken::new();
    let mut conditions = LinkConditions::from_rtt_ms(20.0);
    conditions.loss = 0.5;
    let (mut c, mut s) = linked_pair(LinkControl::symmetric(conditions), shutdown.clone()).await;
    let mut samples = Vec::new();
    // A round trip escapes loss with probability 1/4 (both directions
    // lose half their chunks): with 9 samples the median missed every loss
    // about once in 20 runs; with 25, about once in 1,200.
    for _ in 0..25 {
        samples.push(round_trip(&mut c, &mut s).await);
    }
    // Each direction loses half its chunks; a loss costs at least 200 ms, so
    // the median round trip must show retransmission delays.
    let rtt = median(samples);
    assert!(
        rtt >= Duration::from_millis(200),
        "median RTT {rtt:?} shows no loss"
    );
    shutdown.cancel();
}

#[test]
fn loss_penalty_is_zero_without_loss_and_bounded_with_it() {
    let mut rng = fastrand::Rng::with_seed(7);
    let clean = LinkConditions::from_rtt_ms(80.0);
    assert_eq!(loss_penalty(&clean, &mut rng), Duration::ZERO);
    let mut lossy = clean;
    lossy.loss = 0.999_999;
    assert_eq!(loss_penalty(&lossy, &mut rng), LOSS_PENALTY_MAX);
    lossy.loss = 0.1;
    let hits = (0..10_000)
        .filter(|_| !loss_penalty(&lossy, &mut rng).is_zero())
        .count();
    assert!(
        (800..1200).contains(&hits),
        "{hits} of 10000 chunks lost at 10 %"
    );
    // The first retransmission waits max(200 ms, RTT).
    let mut far = LinkConditions::from_rtt_ms(400.0);
    far.loss = 0.999_999;
    let mut rng = fastrand::Rng::with_seed(1);
    let mut once = far;
    once.loss = 0.5;
    let p = (0..100)
        .map(|_| loss_penalty(&once, &mut rng))
        .find(|p| !p.is_zero())
        .unwrap();
    assert!(p >= Duration::from_millis(400), "{p:?}");
}

#[tokio::test]
async fn jitter_adds_bounded_delay() {
    let shutdown = CancellationToken::new();
    let mut conditions = LinkConditions::from_rtt_ms(20.0);
    conditions.jitter = Duration::from_millis(20);
    let (mut c, mut s) = linked_pair(LinkControl::symmetric(conditions), shutdown.clone()).await;
    for _ in 0..9 {
        let rtt = round_trip(&mut c, &mut s).await;
        assert!(
            rtt >= Duration::from_millis(20) && rtt <= Duration::from_millis(64),
            "RTT {rtt:?} outside 20 ms + 0..=2×20 ms jitter"
        );
    }
    shutdown.cancel();
}
