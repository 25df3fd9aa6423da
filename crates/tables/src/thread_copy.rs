//! Each thread's copies of the newest views it read, so the hot path
//! ([`crate::Modes::with_topology`], run by every keyed command) reads the
//! modes without touching shared state.
//!
//! Reading the shared view takes its lock and bumps its count — one cache
//! line written by every worker thread, a few per cent of a pipelined
//! `GET`. A copy is refreshed when the [`crate::Modes`] generation moves.

use std::cell::RefCell;
use std::sync::Arc;

use crate::view::View;

/// How many `Modes` (nodes) one thread keeps a view of; more exist only
/// in tests that run several nodes in one process.
pub(crate) const THREAD_VIEWS_MAX: usize = 8;

/// A thread's copy of a view it read, and the generation it was read at.
struct ThreadView {
    modes: u64,
    generation: u64,
    view: Arc<View>,
}

thread_local! {
    /// This thread's copies, one per `Modes` instance it read.
    static THREAD_VIEWS: RefCell<Vec<ThreadView>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's copy of instance `modes`'s view at
/// `generation`, taking a fresh copy from `read` if the one kept is older;
/// `None` if the copies are in use further up this thread's stack (the
/// caller then reads the shared view).
pub(crate) fn with_copy<R, F: FnOnce(&View) -> R>(
    modes: u64,
    generation: u64,
    read: impl FnOnce() -> Arc<View>,
    f: F,
) -> Result<R, F> {
    THREAD_VIEWS.with(|cell| {
        // Busy only if `f` calls back in here.
        let Ok(mut views) = cell.try_borrow_mut() else {
            return Err(f);
        };
        let fresh = || ThreadView {
            modes,
            generation,
            view: read(),
        };
        let i = match views.iter().position(|v| v.modes == modes) {
            Some(i) if views[i].generation == generation => i,
            Some(i) => {
                views[i] = fresh();
                i
            }
            None => {
                if views.len() >= THREAD_VIEWS_MAX {
                    views.remove(0);
                }
                views.push(fresh());
                views.len() - 1
            }
        };
        Ok(f(&views[i].view))
    })
}
