//! New connections per second from one address, as a token bucket per address: a
//! client reconnecting in a loop, or one host opening sockets as fast as it can,
//! costs itself its connections and nobody else's slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses remembered before idle ones are forgotten.
const PRUNE_ABOVE: usize = 4_096;

/// A per-address limit on new connections.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    /// Allows `per_second` new connections per second from each address, in bursts of
    /// up to one second's worth.
    pub fn new(per_second: u32) -> Self {
        RateLimit {
            per_second: f64::from(per_second.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Whether a new connection from `address` at `now` is within the limit.
    pub fn allow(&mut self, address: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > PRUNE_ABOVE {
            let full = Duration::from_secs_f64(1.0);
            self.buckets
                .retain(|_, bucket| now.duration_since(bucket.refilled) < full);
        }
        let per_second = self.per_second;
        let bucket = self.buckets.entry(address).or_insert(Bucket {
            tokens: per_second,
            refilled: now,
        });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(per_second);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let mut limit = RateLimit::new(5);
        let start = Instant::now();
        let noisy: IpAddr = "10.0.0.1".parse().unwrap();
        let quiet: IpAddr = "10.0.0.2".parse().unwrap();
        let allowed = (0..20).filter(|_| limit.allow(noisy, start)).count();
        assert_eq!(allowed, 5);
        assert!(limit.allow(quiet, start));
        // 200 ms later one more token has come back.
        let later = start + Duration::from_millis(200);
        assert!(limit.allow(noisy, later));
        assert!(!limit.allow(noisy, later));
    }

    #[test]
    fn idle_addresses_are_forgotten_once_many_are_remembered() {
        let mut limit = RateLimit::new(1);
        let start = Instant::now();
        for i in 0..=PRUNE_ABOVE as u32 {
            limit.allow(IpAddr::from(i.to_be_bytes()), start);
        }
        limit.allow("10.9.9.9".parse().unwrap(), start + Duration::from_secs(2));
        assert!(limit.buckets.len() < 10);
    }
}
