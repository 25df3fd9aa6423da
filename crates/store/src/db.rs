//! The old path of the writer and its engine, kept so `meridian_store::db::…`
//! keeps naming them: every item lives in [`crate::writer`] (the [`Db`]
//! handle and its thread), [`crate::engine`] (the [`Engine`] and its
//! settings), [`crate::request`] (what they exchange), [`crate::error`] and
//! [`crate::stats`]. Nothing is defined here.

pub use crate::engine::{DbConfig, Engine};
pub use crate::error::DbError;
pub use crate::request::{Decide, DecideMany, LocalOutcome, RemoteOutcome, Request, Response};
pub use crate::stats::{ConflictRecord, DbStats, CONFLICT_LOG_MAX, CONFLICT_VALUE_PREVIEW_BYTES};
pub use crate::writer::{
    Applied, Db, EnqueueError, LocalReply, RemoteReply, BATCH_REQUESTS_MAX, QUEUE_REQUESTS_MAX,
};
