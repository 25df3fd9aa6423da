//! Hybrid logical clock (HLC).
//!
//! A timestamp is 64 bits: the upper 48 are wall-clock milliseconds since the
//! Unix epoch (good until year 10889), the lower 16 a logical counter. Stamps
//! are monotonic per node, respect causality across nodes (a node that
//! observes a remote stamp only issues larger ones), and stay within a bounded
//! distance of real time, so `hlc.wall_ms()` doubles as a commit time for lag
//! measurement.
//!
//! **Remote stamps too far ahead.** A peer whose clock runs more than
//! `offset_ms_max` ahead would drag every region's clock into the future. The
//! policy: the remote write is still accepted (it is committed at its origin;
//! refusing it would stall replication and diverge the data), but the local
//! clock does not adopt it — it advances to at most `now + offset_ms_max`.
//! Each such stamp is counted ([`HlcClock::remote_ahead_total`]) so operators
//! see the faulty clock. Consequence, documented for users: until local time
//! catches up, that peer's writes win last-writer-wins ties against ours.
//!
//! **Across restarts.** The store persists the highest stamp issued; the clock
//! is created with it as a floor, so stamps never go backwards even if the
//! wall clock did.
//!
//! The physical clock is a trait so tests and simulations drive time by hand.

use std::fmt;

use serde::{Deserialize, Serialize};

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// Default bound on how far ahead a remote stamp may be before it is counted
/// and not adopted: 500 ms, well above NTP-synced skew, well below human time.
pub const OFFSET_MS_MAX_DEFAULT: u64 = 500;

/// A hybrid logical timestamp.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc(u64);

impl Hlc {
    /// The smallest stamp.
    pub const ZERO: Hlc = Hlc(0);

    /// Builds a stamp from wall milliseconds and a logical counter.
    pub fn new(wall_ms: u64, logical: u16) -> Hlc {
        debug_assert!(wall_ms < (1 << 48), "wall clock beyond the 48-bit range");
        Hlc((wall_ms << LOGICAL_BITS) | u64::from(logical))
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn wall_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The raw 64-bit form (what is stored and sent).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// From the raw 64-bit form.
    pub fn from_u64(raw: u64) -> Hlc {
        Hlc(raw)
    }

    /// The next stamp after this one.
    fn successor(self) -> Hlc {
        // Logical overflow borrows a millisecond from the future; at 65,536
        // stamps per ms that only happens beyond 65 M writes/s.
        Hlc(self.0 + 1)
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms(), self.logical())
    }
}

/// Where physical time comes from.
pub trait PhysicalClock: Send {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Microseconds since the Unix epoch, for lag measurement; clocks that
    /// only know milliseconds keep the default.
    fn now_us(&self) -> u64 {
        self.now_ms() * 1000
    }
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    fn now_us(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

impl<F: Fn() -> u64 + Send> PhysicalClock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// One node's HLC. Not shared: the owner serialises access (the store's
/// single writer holds it).
pub struct HlcClock<C: PhysicalClock> {
    physical: C,
    last: Hlc,
    offset_ms_max: u64,
    remote_ahead_total: u64,
}

impl<C: PhysicalClock> HlcClock<C> {
    /// A clock that never issues a stamp at or below `floor` (the highest
    /// stamp persisted before a restart).
    pub fn new(physical: C, offset_ms_max: u64, floor: Hlc) -> Self {
        HlcClock {
            physical,
            last: floor,
            offset_ms_max,
            remote_ahead_total: 0,
        }
    }

    /// A stamp for a local event, larger than every stamp issued or observed.
    pub fn now(&mut self) -> Hlc {
        let physical = Hlc::new(self.physical.now_ms(), 0);
        let next = if physical > self.last {
            physical
        } else {
            self.last.successor()
        };
        debug_assert!(next > self.last);
        self.last = next;
        next
    }

    /// Takes a remote stamp into account. Returns whether it was within the
    /// allowed offset (and adopted); see the module docs for the policy.
    pub fn observe(&mut self, remote: Hlc) -> bool {
        let limit = Hlc::new(self.physical.now_ms() + self.offset_ms_max, u16::MAX);
        if remote > limit {
            self.remote_ahead_total += 1;
            // Advance as far as is trustworthy, never backwards.
            self.last = self.last.max(Hlc::new(self.physical.now_ms(), 0));
            return false;
        }
        self.last = self.last.max(remote);
        true
    }

    /// The highest stamp issued or adopted (persist it as the next floor).
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// The physical clock's reading, in ms since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        self.physical.now_ms()
    }

    /// The physical clock's reading, in µs since the Unix epoch.
    pub fn physical_us(&self) -> u64 {
        self.physical.now_us()
    }

    /// Remote stamps refused adoption for being too far ahead.
    pub fn remote_ahead_total(&self) -> u64 {
        self.remote_ahead_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn manual(start: u64) -> (Arc<AtomicU64>, impl Fn() -> u64 + Send) {
        let t = Arc::new(AtomicU64::new(start));
        let t2 = t.clone();
        (t, move || t2.load(Ordering::SeqCst))
    }

    #[test]
    fn packs_wall_and_logical() {
        let h = Hlc::new(1_700_000_000_123, 7);
        assert_eq!((h.wall_ms(), h.logical()), (1_700_000_000_123, 7));
        assert_eq!(Hlc::from_u64(h.as_u64()), h);
        assert!(Hlc::new(5, 0) > Hlc::new(4, u16::MAX));
    }

    #[test]
    fn monotonic_when_wall_clock_stalls_or_goes_back() {
        let (t, f) = manual(1000);
        let mut c = HlcClock::new(f, 500, Hlc::ZERO);
        let a = c.now();
        let b = c.now();
        assert!(b > a && b.wall_ms() == 1000 && b.logical() == 1);
        t.store(900, Ordering::SeqCst); // NTP stepped back
        let d = c.now();
        assert!(d > b);
        t.store(2000, Ordering::SeqCst);
        assert_eq!(c.now(), Hlc::new(2000, 0));
    }

    #[test]
    fn floor_survives_restarts() {
        let (_t, f) = manual(1000);
        let floor = Hlc::new(5000, 3);
        let mut c = HlcClock::new(f, 500, floor);
        assert!(c.now() > floor);
    }

    #[test]
    fn observing_a_remote_stamp_orders_later_events_after_it() {
        let (_t, f) = manual(1000);
        let mut c = HlcClock::new(f, 500, Hlc::ZERO);
        assert!(c.observe(Hlc::new(1400, 9)));
        let next = c.now();
        assert!(next > Hlc::new(1400, 9), "{next}");
        assert_eq!(c.remote_ahead_total(), 0);
    }

    #[test]
    fn stamps_beyond_max_offset_are_counted_and_not_adopted() {
        let (_t, f) = manual(1000);
        let mut c = HlcClock::new(f, 500, Hlc::ZERO);
        assert!(!c.observe(Hlc::new(1501, 0)));
        assert_eq!(c.remote_ahead_total(), 1);
        assert!(c.now().wall_ms() <= 1000);
        // Exactly at the bound is still fine.
        assert!(c.observe(Hlc::new(1500, 0)));
    }

    #[test]
    fn logical_overflow_borrows_a_millisecond() {
        let (_t, f) = manual(1000);
        let mut c = HlcClock::new(f, 500, Hlc::new(1000, u16::MAX));
        assert_eq!(c.now(), Hlc::new(1001, 0));
    }
}
