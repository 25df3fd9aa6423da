//! A sub-millisecond timer for emulated delays.
//!
//! tokio's timer rounds every deadline up to the next millisecond tick, and
//! its driver parks with a millisecond timeout, so each sleep lands 1–2 ms
//! late: ~2.7 ms of error on every emulated round trip, which would show up
//! as fake replication lag. One background thread instead keeps a heap of
//! deadlines and waits on a condvar (a futex with nanosecond timeouts, ~50 µs
//! slack on Linux), waking each future at its deadline. No spinning: the
//! thread sleeps whenever nothing is due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::oneshot;

struct Entry {
    deadline: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

struct Timer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::default(),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("meridian-link-timer".into())
            .spawn(move || run(t))
            .expect("the link timer thread starts");
        t
    })
}

fn run(t: &'static Timer) {
    let mut q = t.queue.lock().expect("timer lock is never poisoned");
    loop {
        let now = Instant::now();
        while q.heap.peek().is_some_and(|Reverse(e)| e.deadline <= now) {
            let Reverse(e) = q.heap.pop().expect("peeked");
            // The waiting future may have been dropped (connection closed).
            let _ = e.wake.send(());
        }
        q = match q.heap.peek() {
            Some(Reverse(e)) => {
                let wait = e.deadline.saturating_duration_since(now);
                t.changed
                    .wait_timeout(q, wait)
                    .expect("timer lock is never poisoned")
                    .0
            }
            None => t.changed.wait(q).expect("timer lock is never poisoned"),
        };
    }
}

/// Completes at `deadline`, within tens of microseconds. Returns at once when
/// the deadline has passed.
pub async fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    let (tx, rx) = oneshot::channel();
    {
        let t = timer();
        let mut q = t.queue.lock().expect("timer lock is never poisoned");
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.heap.peek().is_none_or(|Reverse(e)| deadline < e.deadline);
        q.heap.push(Reverse(Entry {
            deadline,
            seq,
            wake: tx,
        }));
        if earliest {
            t.changed.notify_one();
        }
    }
    let _ = rx.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Precision is measured by `cargo bench -p meridian-wan --bench link`;
    /// this checks behaviour, with a bound loose enough for a loaded CI
    /// machine: never early, woken in deadline order, not grossly late.
    #[tokio::test]
    async fn wakes_after_the_deadline_and_in_order() {
        let start = Instant::now();
        let mut handles = Vec::new();
        for ms in [30u64, 10, 20] {
            handles.push(tokio::spawn(async move {
                let deadline = start + Duration::from_millis(ms);
                sleep_until(deadline).await;
                (ms, deadline, Instant::now())
            }));
        }
        let mut woke = Vec::new();
        for h in handles {
            let (ms, deadline, at) = h.await.unwrap();
            assert!(at >= deadline, "woke before its deadline");
            let late = at.duration_since(deadline);
            assert!(late < Duration::from_millis(25), "woke {late:?} late");
            woke.push((at, ms));
        }
        woke.sort();
        let order: Vec<u64> = woke.iter().map(|(_, ms)| *ms).collect();
        assert_eq!(order, vec![10, 20, 30], "woken out of deadline order");
        // A passed deadline returns at once.
        sleep_until(start).await;
    }
}
