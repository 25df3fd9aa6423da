//! Calls between regions: a request to one peer and its answer, carried
//! over the peer mesh next to replication ([`ReplMessage::Call`] and
//! [`ReplMessage::Answer`]).
//!
//! They serve what must happen *at* another region: a write to a
//! single-master table forwarded to its home, or a strong read asking the
//! home how far its commits go. The bodies are opaque here; the node
//! registers one [`CallHandler`] that decodes and runs them.
//!
//! Every call is bounded: its body ([`CALL_BYTES_MAX`]), the calls waiting
//! for answers ([`CALLS_WAITING_MAX`]), the incoming calls running at once
//! ([`CALLS_RUNNING_MAX`]) and the caller's timeout. A call to a peer whose
//! link is down fails at once; one whose answer does not come (a partition
//! holding the bytes) fails at its timeout.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use meridian_core::RegionName;
use meridian_wan::PeerMesh;
use tokio::sync::{oneshot, Semaphore};

use crate::wire::{encode, ReplMessage};

/// Largest call or answer body: half the mesh's frame limit, so a body
/// always fits a frame with room to spare.
pub const CALL_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Calls of this node waiting for answers; more are refused at once.
pub const CALLS_WAITING_MAX: usize = 16_384;

/// Incoming calls running at once; more are answered with an error.
pub const CALLS_RUNNING_MAX: usize = 4_096;

/// What runs incoming calls: `(caller, body) → answer body`.
pub type CallHandler =
    Arc<dyn Fn(RegionName, Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// Why a call has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The body is over [`CALL_BYTES_MAX`].
    #[error("call of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The link to the peer is down (or the peer is unknown).
    #[error("{0}")]
    Unreachable(String),
    /// No answer within the caller's timeout.
    #[error("no answer from {peer} within {ms} ms")]
    Timeout {
        /// The peer.
        peer: RegionName,
        /// The timeout.
        ms: u128,
    },
    /// Too many calls are waiting already.
    #[error("too many calls in flight ({CALLS_WAITING_MAX})")]
    Busy,
    /// The peer could not run the call.
    #[error("{0}")]
    Refused(String),
}

/// The calling and answering side of one node.
#[derive(Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

/// Where a call's answer (or the peer's refusal) goes.
type AnswerTx = oneshot::Sender<Result<Vec<u8>, String>>;

struct Inner {
    mesh: PeerMesh,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, AnswerTx>>,
    handler: OnceLock<CallHandler>,
    running: Arc<Semaphore>,
}

/// Removes a waiting call however its caller stops (answer, timeout, or
/// the caller's future dropped).
struct Waiting<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.inner
            .waiting
            .lock()
            .expect("calls lock is never poisoned")
            .remove(&self.id);
    }
}

impl Calls {
    /// Calls over `mesh`; incoming calls are refused until
    /// [`Calls::set_handler`].
    pub fn new(mesh: PeerMesh) -> Self {
        Calls {
            inner: Arc::new(Inner {
                mesh,
                next_id: AtomicU64::new(1),
                waiting: Mutex::new(HashMap::new()),
                handler: OnceLock::new(),
                running: Arc::new(Semaphore::new(CALLS_RUNNING_MAX)),
            }),
        }
    }

    /// The mesh the calls travel on.
    pub(crate) fn mesh(&self) -> &PeerMesh {
        &self.inner.mesh
    }

    /// Sets what runs incoming calls (once; later calls are ignored).
    pub fn set_handler(&self, handler: CallHandler) {
        let _ = self.inner.handler.set(handler);
    }

    /// Sends `body` to `peer` and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        peer: &RegionName,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        if body.len() > CALL_BYTES_MAX {
            return Err(CallError::TooLarge {
                bytes: body.len(),
                max: CALL_BYTES_MAX,
            });
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self
                .inner
                .waiting
                .lock()
                .expect("calls lock is never poisoned");
            if waiting.len() >= CALLS_WAITING_MAX {
                return Err(CallError::Busy);
            }
            waiting.insert(id, tx);
        }
        let _waiting = Waiting {
            inner: &self.inner,
            id,
        };
        self.inner
            .mesh
            .send(peer, encode(&ReplMessage::Call { id, body }))
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(refused))) => Err(CallError::Refused(refused)),
            Ok(Err(_)) => Err(CallError::Unreachable("the call was dropped".into())),
            Err(_) => Err(CallError::Timeout {
                peer: peer.clone(),
                ms: timeout.as_millis(),
            }),
        }
    }

    /// An answer arrived.
    pub(crate) fn answered(&self, id: u64, result: Result<Vec<u8>, String>) {
        let tx = self
            .inner
            .waiting
            .lock()
            .expect("calls lock is never poisoned")
            .remove(&id);
        // An answer after the caller gave up finds nobody: dropped.
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    /// A call arrived from `from`: run it and send the answer back.
    pub(crate) fn incoming(&self, from: RegionName, id: u64, body: Vec<u8>) {
        let inner = self.inner.clone();
        let answer = move |result: Result<Vec<u8>, String>| {
            let result = match result {
                Ok(body) if body.len() > CALL_BYTES_MAX => Err(format!(
                    "answer of {} bytes exceeds the limit of {CALL_BYTES_MAX} bytes",
                    body.len()
                )),
                other => other,
            };
            encode(&ReplMessage::Answer { id, result })
        };
        let Some(handler) = inner.handler.get().cloned() else {
            let _ = inner.mesh.send(
                &from,
                answer(Err("this region does not take calls yet".into())),
            );
            return;
        };
        let Ok(permit) = inner.running.clone().try_acquire_owned() else {
            let _ = inner.mesh.send(
                &from,
                answer(Err(format!(
                    "this region is running {CALLS_RUNNING_MAX} calls already"
                ))),
            );
            return;
        };
        tokio::spawn(async move {
            let body = handler(from.clone(), body).await;
            drop(permit);
            if let Err(e) = inner.mesh.send(&from, answer(Ok(body))) {
                tracing::debug!(peer = %from, error = %e, "call answer not sent; the caller times out");
            }
        });
    }
}
