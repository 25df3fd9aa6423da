//! The Redis endpoint's reach into other regions ([`meridian_resp::forward`]),
//! over the replicator's calls ([`meridian_repl::calls`]): forwarded writes
//! and strong reads' commit points, table mode changes sent to their
//! coordinator, and the handler that answers them here.

use std::sync::Arc;
use std::time::Duration;

use meridian_core::RegionName;
use meridian_repl::{CallError, CallHandler, Calls};
use meridian_resp::forward::{
    BoxFuture, CommitPoint, ForwardAnswer, ForwardRequest, Remote, RemoteError,
};
use meridian_resp::modes::{ChangeError, ChangeReport, ModeSpec};
use serde::{Deserialize, Serialize};

/// What one region asks another.
#[derive(Serialize, Deserialize)]
enum Ask {
    /// Run this write here, its table's home.
    Forward(ForwardRequest),
    /// What have you applied, if you are still this table's home?
    CommitPoint {
        /// The table the strong read is for.
        table: String,
    },
    /// Change this table's mode (you coordinate it).
    ChangeMode {
        /// The table.
        table: String,
        /// Its new mode.
        mode: ModeSpec,
    },
}

/// The answer.
#[derive(Serialize, Deserialize)]
enum Answer {
    Forwarded(ForwardAnswer),
    CommitPoint(CommitPoint),
    ModeChanged(Result<ChangeReport, ChangeError>),
    /// The request could not be read (a newer or older peer).
    Undecodable(String),
}

/// [`Remote`] over the replicator's calls.
pub struct NodeRemote {
    /// The calls.
    pub calls: Calls,
}

impl NodeRemote {
    fn ask(
        &self,
        to: &RegionName,
        ask: Ask,
        timeout: Duration,
    ) -> BoxFuture<Result<Answer, RemoteError>> {
        let calls = self.calls.clone();
        let to = to.clone();
        Box::pin(async move {
            let body = postcard::to_stdvec(&ask).map_err(|e| RemoteError {
                message: format!("request not encodable: {e}"),
                outcome_unknown: false,
            })?;
            let answer = calls
                .call(&to, body, timeout)
                .await
                .map_err(|e| RemoteError {
                    message: e.to_string(),
                    // Only a call that went out and got no answer may have run.
                    outcome_unknown: matches!(e, CallError::Timeout { .. }),
                })?;
            match postcard::from_bytes::<Answer>(&answer) {
                Ok(Answer::Undecodable(why)) => Err(RemoteError {
                    message: format!("{to} could not read the request: {why}"),
                    outcome_unknown: false,
                }),
                Ok(a) => Ok(a),
                Err(e) => Err(RemoteError {
                    message: format!("undecodable answer from {to}: {e}"),
                    outcome_unknown: true,
                }),
            }
        })
    }
}

impl NodeRemote {
    /// Asks `coordinator` to change `table`'s mode (see
    /// [`meridian_resp::modes`]).
    pub async fn change_mode(
        &self,
        coordinator: &RegionName,
        table: String,
        mode: ModeSpec,
        timeout: Duration,
    ) -> Result<Result<ChangeReport, ChangeError>, RemoteError> {
        match self
            .ask(coordinator, Ask::ChangeMode { table, mode }, timeout)
            .await?
        {
            Answer::ModeChanged(r) => Ok(r),
            _ => Err(unexpected(coordinator)),
        }
    }
}

fn unexpected(to: &RegionName) -> RemoteError {
    RemoteError {
        message: format!("{to} answered another question"),
        outcome_unknown: true,
    }
}

impl Remote for NodeRemote {
    fn forward(
        &self,
        home: &RegionName,
        request: ForwardRequest,
        timeout: Duration,
    ) -> BoxFuture<Result<ForwardAnswer, RemoteError>> {
        let answer = self.ask(home, Ask::Forward(request), timeout);
        let home = home.clone();
        Box::pin(async move {
            match answer.await? {
                Answer::Forwarded(a) => Ok(a),
                _ => Err(unexpected(&home)),
            }
        })
    }

    fn commit_point(
        &self,
        home: &RegionName,
        table: &str,
        timeout: Duration,
    ) -> BoxFuture<Result<CommitPoint, RemoteError>> {
        let ask = Ask::CommitPoint {
            table: table.to_string(),
        };
        let answer = self.ask(home, ask, timeout);
        let home = home.clone();
        Box::pin(async move {
            match answer.await? {
                Answer::CommitPoint(point) => Ok(point),
                _ => Err(unexpected(&home)),
            }
        })
    }
}

/// Answers other regions' calls with this region's endpoint.
pub fn handler(resp: Arc<meridian_resp::Shared>) -> CallHandler {
    Arc::new(move |from: RegionName, body: Vec<u8>| {
        let resp = resp.clone();
        Box::pin(async move {
            let answer = match postcard::from_bytes::<Ask>(&body) {
                Ok(Ask::Forward(request)) => Answer::Forwarded(resp.run_forwarded(request).await),
                Ok(Ask::CommitPoint { table }) => {
                    Answer::CommitPoint(resp.commit_point_for(&table))
                }
                Ok(Ask::ChangeMode { table, mode }) => {
                    Answer::ModeChanged(resp.modes.change(&resp.db, &table, mode).await)
                }
                Err(e) => {
                    tracing::warn!(peer = %from, error = %e, "undecodable call");
                    Answer::Undecodable(e.to_string())
                }
            };
            postcard::to_stdvec(&answer).expect("answers always encode")
        })
    })
}
