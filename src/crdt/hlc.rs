//! The hybrid logical clock of PROTOCOL.md §4: `now()` for local events,
//! `update()` for every timestamp received.
//!
//! The wall clock is injected through [`WallClock`] so tests are deterministic.
//! Logging a drift warning is left to the caller: [`Hlc::update`] reports it.

use std::time::{SystemTime, UNIX_EPOCH};

use super::timestamp::Timestamp;

/// How far ahead of the local wall clock a remote timestamp may be before
/// [`Hlc::update`] reports drift (upstream `MAX_DRIFT`).
pub const MAX_DRIFT_MS: u64 = 60_000;

/// A source of wall-clock milliseconds since the Unix epoch.
pub trait WallClock {
    /// The current wall-clock time in milliseconds.
    fn now_millis(&self) -> u64;
}

/// The system clock; a time before the epoch reads as 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

/// Any closure returning milliseconds is a clock, which is what tests use.
impl<F: Fn() -> u64> WallClock for F {
    fn now_millis(&self) -> u64 {
        self()
    }
}

/// A remote timestamp was more than [`MAX_DRIFT_MS`] ahead of the wall clock.
///
/// The timestamp has been accepted anyway (§4: no rejection anywhere); this only
/// tells the caller there is something worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockDrift {
    /// Remote millis minus local wall-clock millis.
    pub ahead_by_ms: u64,
}

/// A hybrid logical clock for one node; one per process, shared by all maps.
#[derive(Debug)]
pub struct Hlc<C = SystemClock> {
    node_id: String,
    last_millis: u64,
    last_counter: u64,
    clock: C,
}

impl Hlc<SystemClock> {
    /// A clock for `node_id` reading the system time.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self::with_clock(node_id, SystemClock)
    }
}

impl<C: WallClock> Hlc<C> {
    /// A clock for `node_id` reading wall time from `clock`; state starts at 0:0.
    pub fn with_clock(node_id: impl Into<String>, clock: C) -> Self {
        Self {
            node_id: node_id.into(),
            last_millis: 0,
            last_counter: 0,
            clock,
        }
    }

    /// The node id stamped on every timestamp this clock produces.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A fresh timestamp for a local event, greater than any this clock has
    /// produced or observed, even when the wall clock goes backwards.
    pub fn now(&mut self) -> Timestamp {
        let wall = self.clock.now_millis();

        if wall > self.last_millis {
            self.last_millis = wall;
            self.last_counter = 0;
        } else {
            self.last_counter = self.last_counter.saturating_add(1);
        }

        self.current()
    }

    /// Folds a received timestamp into the clock, so later `now()` readings
    /// come after it.
    ///
    /// Returns the drift when `remote.millis` is more than [`MAX_DRIFT_MS`]
    /// ahead of the wall clock; the timestamp is accepted either way.
    #[must_use = "a reported drift should be logged as a warning"]
    pub fn update(&mut self, remote: &Timestamp) -> Option<ClockDrift> {
        let wall = self.clock.now_millis();
        let drift = (remote.millis > wall.saturating_add(MAX_DRIFT_MS)).then(|| ClockDrift {
            ahead_by_ms: remote.millis - wall,
        });
        let max = self.last_millis.max(wall).max(remote.millis);

        self.last_counter = if max == self.last_millis && max == remote.millis {
            self.last_counter.max(remote.counter).saturating_add(1)
        } else if max == self.last_millis {
            self.last_counter.saturating_add(1)
        } else if max == remote.millis {
            remote.counter.saturating_add(1)
        } else {
            0
        };
        self.last_millis = max;

        drift
    }

    fn current(&self) -> Timestamp {
        Timestamp::new(self.last_millis, self.last_counter, self.node_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// A clock whose reading the test sets by hand.
    fn manual_clock(start: u64) -> (Rc<Cell<u64>>, impl Fn() -> u64) {
        let time = Rc::new(Cell::new(start));
        let reader = Rc::clone(&time);
        (time, move || reader.get())
    }

    #[test]
    fn first_reading_takes_the_wall_clock_with_counter_zero() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);

        let ts = hlc.now();

        assert_eq!(ts, Timestamp::new(1_000, 0, "n1"));
    }

    #[test]
    fn readings_within_one_millisecond_count_up() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);

        let first = hlc.now();
        let second = hlc.now();

        assert_eq!(second, Timestamp::new(1_000, 1, "n1"));
        assert!(second > first);
    }

    #[test]
    fn counter_resets_when_the_wall_clock_moves_on() {
        let (time, clock) = manual_clock(1_000);
        let mut hlc = Hlc::with_clock("n1", clock);
        hlc.now();
        hlc.now();

        time.set(1_001);
        let ts = hlc.now();

        assert_eq!(ts, Timestamp::new(1_001, 0, "n1"));
    }

    #[test]
    fn readings_stay_monotonic_when_the_wall_clock_goes_backwards() {
        let (time, clock) = manual_clock(5_000);
        let mut hlc = Hlc::with_clock("n1", clock);
        let before = hlc.now();

        time.set(4_000);
        let after = hlc.now();
        let later = hlc.now();

        assert_eq!(after, Timestamp::new(5_000, 1, "n1"));
        assert!(before < after && after < later);
    }

    #[test]
    fn remote_ahead_fast_forwards_the_clock() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);

        let drift = hlc.update(&Timestamp::new(2_000, 7, "n2"));
        let ts = hlc.now();

        assert_eq!(drift, None);
        assert_eq!(ts, Timestamp::new(2_000, 9, "n1"));
    }

    #[test]
    fn remote_behind_only_bumps_the_counter() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);
        hlc.now();

        let drift = hlc.update(&Timestamp::new(500, 42, "n2"));
        let ts = hlc.now();

        assert_eq!(drift, None);
        assert_eq!(ts, Timestamp::new(1_000, 2, "n1"));
    }

    #[test]
    fn remote_on_the_same_millisecond_takes_the_larger_counter() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);
        hlc.now();

        let _ = hlc.update(&Timestamp::new(1_000, 5, "n2"));
        let ts = hlc.now();

        assert_eq!(ts, Timestamp::new(1_000, 7, "n1"));
    }

    #[test]
    fn wall_clock_ahead_of_both_resets_the_counter() {
        let (time, clock) = manual_clock(1_000);
        let mut hlc = Hlc::with_clock("n1", clock);
        hlc.now();

        time.set(3_000);
        let _ = hlc.update(&Timestamp::new(2_000, 5, "n2"));

        assert_eq!(hlc.current(), Timestamp::new(3_000, 0, "n1"));
    }

    #[test]
    fn remote_far_ahead_is_accepted_and_reported_as_drift() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);

        let drift = hlc.update(&Timestamp::new(1_000 + MAX_DRIFT_MS + 1, 0, "n2"));
        let ts = hlc.now();

        assert_eq!(
            drift,
            Some(ClockDrift {
                ahead_by_ms: MAX_DRIFT_MS + 1
            })
        );
        assert_eq!(ts, Timestamp::new(1_000 + MAX_DRIFT_MS + 1, 2, "n1"));
    }

    #[test]
    fn remote_exactly_at_the_drift_limit_is_not_reported() {
        let mut hlc = Hlc::with_clock("n1", || 1_000);

        let drift = hlc.update(&Timestamp::new(1_000 + MAX_DRIFT_MS, 0, "n2"));

        assert_eq!(drift, None);
    }

    #[test]
    fn every_local_reading_follows_every_observed_timestamp() {
        let (time, clock) = manual_clock(10_000);
        let mut hlc = Hlc::with_clock("n1", clock);
        let remotes = [(12_000, 3), (9_000, 50), (12_000, 1), (11_000, 0)];

        for (wall, (millis, counter)) in [9_000, 13_000, 8_000, 8_000].into_iter().zip(remotes) {
            time.set(wall);
            let remote = Timestamp::new(millis, counter, "n2");
            let _ = hlc.update(&remote);

            assert!(hlc.now() > remote);
        }
    }
}
