//! [`DbError`]: why the writer refused a request, as its callers act on it.
//!
//! The one error of the layer above the backends: a refusal by the
//! decision (the caller's own error text, answered as is), a backend
//! failure (carrying [`StoreError`], which says whether to retry), or a
//! stopped engine. Protocol codes are chosen by the callers at their
//! boundary, from the variant, never from the text.

use crate::backend::StoreError;

/// Why the engine refused a request.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The decision refused the write (WRONGTYPE, not an integer, ...).
    #[error("{0}")]
    Rejected(String),
    /// The backend failed; nothing of the batch was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is shutting down.
    #[error("the storage engine is stopped")]
    Stopped,
}

impl DbError {
    /// Whether the same request may succeed if sent again unchanged: the
    /// backend failed for a reason that can pass (a full or failing disk,
    /// once the operator acts). A refusal by the decision, a corrupt store,
    /// a broken contract and a stopped engine answer the same again.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Store(e) => e.is_retryable(),
            DbError::Rejected(_) | DbError::Stopped => false,
        }
    }
}
