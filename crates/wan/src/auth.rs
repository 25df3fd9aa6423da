//! Peer authentication: mutual HMAC-SHA256 challenge–response.
//!
//! Both ends prove knowledge of the cluster secret without sending it, and
//! each proof covers both fresh nonces, both region names and the cluster
//! name, so a recorded handshake cannot be replayed and a node of another
//! cluster (or one claiming another region's name) is refused.
//!
//! ```text
//! acceptor → dialer   Challenge { version, cluster, region, nonce_a }
//! dialer   → acceptor Proof { region, nonce_d, mac_d }
//! acceptor → dialer   Accepted { mac_a }  |  Refused { reason }
//! ```
//!
//! This authenticates; it does not encrypt. Links that cross untrusted
//! networks need TLS underneath (a later issue).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use meridian_core::RegionName;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Version of the peer protocol; a mismatch is refused, never guessed at.
pub const PROTOCOL_VERSION: u16 = 1;

/// The whole handshake must finish within this. Three WAN crossings at the
/// farthest emulated pair (216 ms RTT) take ~0.35 s; 5 s tolerates a loaded
/// machine without letting a silent peer hold a connection for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest frame on a peer link. Values are capped at 16 MiB by the data
/// endpoints; a batch of them with framing fits in 64 MiB.
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

const NONCE_BYTES: usize = 32;

/// An authenticated, framed peer connection.
pub type PeerStream = Framed<TcpStream, LengthDelimitedCodec>;

/// Who this node is on peer links, with the secret it proves.
#[derive(Clone)]
pub struct PeerIdentity {
    /// Cluster name; peers must match it.
    pub cluster: String,
    /// This node's region.
    pub region: RegionName,
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("cluster", &self.cluster)
            .field("region", &self.region)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl PeerIdentity {
    /// An identity proving `secret`.
    pub fn new(cluster: impl Into<String>, region: RegionName, secret: &[u8]) -> Self {
        PeerIdentity {
            cluster: cluster.into(),
            region,
            secret: secret.into(),
        }
    }

    fn mac(
        &self,
        role: &str,
        acceptor: &str,
        dialer: &str,
        nonce_a: &[u8; NONCE_BYTES],
        nonce_d: &[u8; NONCE_BYTES],
    ) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        // postcard length-prefixes every string, so fields cannot run together.
        let transcript = postcard::to_stdvec(&(
            "meridian-peer-v1",
            role,
            &self.cluster,
            acceptor,
            dialer,
            nonce_a,
            nonce_d,
        ))
        .expect("a tuple of strings and arrays always encodes");
        mac.update(&transcript);
        mac
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The socket failed or closed.
    #[error("peer connection failed during handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not finish in [`HANDSHAKE_TIMEOUT`].
    #[error("peer handshake timed out after {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    /// The other side spoke something else.
    #[error("peer protocol violation: {0}")]
    Protocol(String),
    /// The acceptor refused us.
    #[error("refused by peer: {0}")]
    Refused(String),
    /// The other side could not prove the secret (wrong secret or impostor).
    #[error("peer failed authentication (wrong cluster secret?)")]
    BadProof,
    /// The other side belongs to another cluster.
    #[error("peer belongs to cluster `{got}`, not `{expected}`")]
    ClusterMismatch {
        /// Ours.
        expected: String,
        /// Theirs.
        got: String,
    },
    /// We dialed one region and another answered.
    #[error("dialed region `{expected}` but `{got}` answered")]
    UnexpectedRegion {
        /// Whom we dialed.
        expected: RegionName,
        /// Who answered.
        got: String,
    },
    /// A region not in our topology tried to join.
    #[error("region `{0}` is not in this node's topology")]
    UnknownPeer(String),
}

impl AuthError {
    /// Failures that mean someone without the right credentials knocked, as
    /// opposed to a network fault. Counted and logged as warnings.
    pub fn is_credential_failure(&self) -> bool {
        matches!(
            self,
            AuthError::BadProof
                | AuthError::ClusterMismatch { .. }
                | AuthError::UnknownPeer(_)
                | AuthError::Refused(_)
        )
    }
}

#[derive(Serialize, Deserialize)]
enum Handshake {
    Challenge {
        version: u16,
        cluster: String,
        region: String,
        nonce: [u8; NONCE_BYTES],
    },
    Proof {
        region: String,
        nonce: [u8; NONCE_BYTES],
        mac: [u8; 32],
    },
    Accepted {
        mac: [u8; 32],
    },
    Refused {
        reason: String,
    },
}

/// Frames a TCP stream with the peer-link codec.
pub fn framed(stream: TcpStream) -> PeerStream {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(FRAME_BYTES_MAX)
        .new_codec();
    Framed::new(stream, codec)
}

fn nonce() -> [u8; NONCE_BYTES] {
    let mut n = [0u8; NONCE_BYTES];
    getrandom::fill(&mut n).expect("the OS random source is available");
    n
}

async fn send(stream: &mut PeerStream, msg: &Handshake) -> Result<(), AuthError> {
    let bytes = postcard::to_stdvec(msg).expect("handshake messages always encode");
    stream.send(tokio_util::bytes::Bytes::from(bytes)).await?;
    Ok(())
}

async fn recv(stream: &mut PeerStream) -> Result<Handshake, AuthError> {
    let frame = stream
        .next()
        .await
        .ok_or_else(|| AuthError::Io(std::io::ErrorKind::UnexpectedEof.into()))??;
    postcard::from_bytes(&frame)
        .map_err(|e| AuthError::Protocol(format!("undecodable handshake frame: {e}")))
}

/// Dials side: proves the secret to the acceptor at `stream`, which must be
/// `expected`, and checks its proof in return.
pub async fn connect(
    stream: TcpStream,
    me: &PeerIdentity,
    expected: &RegionName,
) -> Result<PeerStream, AuthError> {
    let mut stream = framed(stream);
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let Handshake::Challenge {
            version,
            cluster,
            region,
            nonce: nonce_a,
        } = recv(&mut stream).await?
        else {
            return Err(AuthError::Protocol("expected a challenge".into()));
        };
        if version != PROTOCOL_VERSION {
            return Err(AuthError::Protocol(format!(
                "peer speaks protocol {version}, we speak {PROTOCOL_VERSION}"
            )));
        }
        if cluster != me.cluster {
            return Err(AuthError::ClusterMismatch {
                expected: me.cluster.clone(),
                got: cluster,
            });
        }
        if region != expected.as_str() {
            return Err(AuthError::UnexpectedRegion {
                expected: expected.clone(),
                got: region,
            });
        }
        let nonce_d = nonce();
        let mac = me
            .mac("dialer", &region, me.region.as_str(), &nonce_a, &nonce_d)
            .finalize()
            .into_bytes()
            .into();
        send(
            &mut stream,
            &Handshake::Proof {
                region: me.region.to_string(),
                nonce: nonce_d,
                mac,
            },
        )
        .await?;
        match recv(&mut stream).await? {
            Handshake::Accepted { mac } => me
                .mac("acceptor", &region, me.region.as_str(), &nonce_a, &nonce_d)
                .verify_slice(&mac)
                .map_err(|_| AuthError::BadProof),
            Handshake::Refused { reason } => Err(AuthError::Refused(reason)),
            _ => Err(AuthError::Protocol("expected a verdict".into())),
        }
    })
    .await
    .map_err(|_| AuthError::Timeout)??;
    Ok(stream)
}

/// Accepting side: challenges the dialer, checks its proof and that it is a
/// region `is_peer` knows, and proves the secret back. Returns the dialer's
/// region. A refused dialer is told only "authentication failed".
pub async fn accept(
    stream: TcpStream,
    me: &PeerIdentity,
    is_peer: impl Fn(&RegionName) -> bool,
) -> Result<(RegionName, PeerStream), AuthError> {
    let mut stream = framed(stream);
    let region = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let nonce_a = nonce();
        send(
            &mut stream,
            &Handshake::Challenge {
                version: PROTOCOL_VERSION,
                cluster: me.cluster.clone(),
                region: me.region.to_string(),
                nonce: nonce_a,
            },
        )
        .await?;
        let Handshake::Proof {
            region,
            nonce: nonce_d,
            mac,
        } = recv(&mut stream).await?
        else {
            return Err(AuthError::Protocol("expected a proof".into()));
        };
        let verdict = match RegionName::new(region.clone()) {
            Ok(name) if is_peer(&name) && name != me.region => {
                match me
                    .mac("dialer", me.region.as_str(), &region, &nonce_a, &nonce_d)
                    .verify_slice(&mac)
                {
                    Ok(()) => Ok(name),
                    Err(_) => Err(AuthError::BadProof),
                }
            }
            _ => Err(AuthError::UnknownPeer(region.clone())),
        };
        match verdict {
            Ok(name) => {
                let mac = me
                    .mac("acceptor", me.region.as_str(), &region, &nonce_a, &nonce_d)
                    .finalize()
                    .into_bytes()
                    .into();
                send(&mut stream, &Handshake::Accepted { mac }).await?;
                Ok(name)
            }
            Err(e) => {
                let _ = send(
                    &mut stream,
                    &Handshake::Refused {
                        reason: "authentication failed".into(),
                    },
                )
                .await;
                Err(e)
            }
        }
    })
    .await
    .map_err(|_| AuthError::Timeout)??;
    Ok((region, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn id(region: &str, secret: &[u8]) -> PeerIdentity {
        PeerIdentity::new("c1", RegionName::new(region).unwrap(), secret)
    }

    async fn handshake(
        acceptor: PeerIdentity,
        dialer: PeerIdentity,
        dial_expect: &str,
    ) -> (Result<RegionName, AuthError>, Result<(), AuthError>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            accept(s, &acceptor, |r| r.as_str() != "outsider")
                .await
                .map(|(r, _)| r)
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let client = connect(s, &dialer, &RegionName::new(dial_expect).unwrap())
            .await
            .map(|_| ());
        (server.await.unwrap(), client)
    }

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    #[tokio::test]
    async fn matching_secrets_authenticate_both_ways() {
        let (server, client) =
            handshake(id("us-east", SECRET), id("eu-west", SECRET), "us-east").await;
        assert_eq!(server.unwrap().as_str(), "eu-west");
        client.unwrap();
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_on_both_sides() {
        let (server, client) = handshake(
            id("us-east", SECRET),
            id("eu-west", b"not-the-secret-at-all"),
            "us-east",
        )
        .await;
        assert!(matches!(server, Err(AuthError::BadProof)), "{server:?}");
        assert!(
            matches!(&client, Err(AuthError::Refused(r)) if r == "authentication failed"),
            "{client:?}"
        );
        assert!(server.unwrap_err().is_credential_failure());
    }

    #[tokio::test]
    async fn unknown_region_and_other_cluster_are_refused() {
        let (server, _) = handshake(id("us-east", SECRET), id("outsider", SECRET), "us-east").await;
        assert!(matches!(server, Err(AuthError::UnknownPeer(r)) if r == "outsider"));
        let other = PeerIdentity::new("c2", RegionName::new("eu-west").unwrap(), SECRET);
        let (_, client) = handshake(id("us-east", SECRET), other, "us-east").await;
        assert!(
            matches!(client, Err(AuthError::ClusterMismatch { .. })),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn dialer_detects_the_wrong_region_answering() {
        let (_, client) = handshake(id("us-east", SECRET), id("eu-west", SECRET), "ap-south").await;
        assert!(
            matches!(client, Err(AuthError::UnexpectedRegion { .. })),
            "{client:?}"
        );
    }

    #[tokio::test]
    async fn an_impostor_acceptor_cannot_fake_its_proof() {
        // The acceptor lacks the secret: the dialer's check of its MAC fails,
        // even though the acceptor "accepts" (it cannot verify the proof, so
        // it reports BadProof and refuses; the dialer sees the refusal).
        let (server, client) = handshake(
            id("us-east", b"impostor-without-secret"),
            id("eu-west", SECRET),
            "us-east",
        )
        .await;
        assert!(server.is_err());
        assert!(client.is_err());
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        tokio::time::pause();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(s);
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let r = connect(
            s,
            &id("eu-west", SECRET),
            &RegionName::new("us-east").unwrap(),
        )
        .await;
        assert!(matches!(r, Err(AuthError::Timeout)), "{r:?}");
    }
}
