//! Distributed-lock state of one node (PROTOCOL.md §11): holders, fencing tokens,
//! expiry and FIFO queues. Pure logic: the session layer turns the [`Grant`]s into
//! `LOCK_GRANTED` messages for whichever session they name.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// TTL when a request names none.
pub const DEFAULT_TTL: Duration = Duration::from_millis(10_000);
/// Shortest TTL granted; shorter requests are raised to it.
pub const MIN_TTL: Duration = Duration::from_millis(1_000);
/// Longest TTL granted; longer requests are cut to it.
pub const MAX_TTL: Duration = Duration::from_millis(300_000);

/// A lock handed to a session: send it `LOCK_GRANTED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub session: u64,
    pub request_id: String,
    pub name: String,
    pub fencing_token: u64,
}

#[derive(Debug)]
struct Waiter {
    session: u64,
    request_id: String,
    ttl: Duration,
}

#[derive(Debug)]
struct Lock {
    holder: u64,
    fencing_token: u64,
    expires: Instant,
    queue: VecDeque<Waiter>,
}

/// Every lock this node owns, by name.
#[derive(Debug, Default)]
pub struct LockTable {
    locks: HashMap<String, Lock>,
}

/// The TTL a request gets: its own (milliseconds) clamped to [`MIN_TTL`]..=[`MAX_TTL`],
/// or [`DEFAULT_TTL`].
pub fn clamp_ttl(requested_ms: Option<f64>) -> Duration {
    match requested_ms {
        Some(ms) if ms.is_finite() => {
            let min = MIN_TTL.as_millis() as f64;
            let max = MAX_TTL.as_millis() as f64;
            Duration::from_millis(ms.clamp(min, max) as u64)
        }
        _ => DEFAULT_TTL,
    }
}

impl LockTable {
    /// A request of `session` for `name`. Returns the grant when the lock is free,
    /// expired or already held by that session (then extended, same token); otherwise
    /// the request waits and `None` is returned.
    pub fn acquire(
        &mut self,
        session: u64,
        request_id: &str,
        name: &str,
        ttl: Duration,
        now: Instant,
    ) -> Option<Grant> {
        let grant = |fencing_token| Grant {
            session,
            request_id: request_id.to_owned(),
            name: name.to_owned(),
            fencing_token,
        };
        match self.locks.get_mut(name) {
            None => {
                let lock = Lock {
                    holder: session,
                    fencing_token: 1,
                    expires: now + ttl,
                    queue: VecDeque::new(),
                };
                self.locks.insert(name.to_owned(), lock);
                Some(grant(1))
            }
            Some(lock) if lock.holder == session => {
                lock.expires = now + ttl;
                Some(grant(lock.fencing_token))
            }
            Some(lock) if lock.expires <= now => {
                lock.holder = session;
                lock.fencing_token += 1;
                lock.expires = now + ttl;
                Some(grant(lock.fencing_token))
            }
            Some(lock) => {
                lock.queue.push_back(Waiter {
                    session,
                    request_id: request_id.to_owned(),
                    ttl,
                });
                None
            }
        }
    }

    /// A release by `session` with `fencing_token`. Succeeds only for the holder with
    /// the current token; the next waiter then gets the lock, or the lock is forgotten
    /// (its token sequence restarts at 1).
    pub fn release(
        &mut self,
        session: u64,
        name: &str,
        fencing_token: u64,
        now: Instant,
    ) -> (bool, Option<Grant>) {
        let holds = self
            .locks
            .get(name)
            .is_some_and(|lock| lock.holder == session && lock.fencing_token == fencing_token);
        if !holds {
            return (false, None);
        }
        (true, self.hand_over(name, now))
    }

    /// Hands every expired lock to its next waiter; returns the grants.
    pub fn expire(&mut self, now: Instant) -> Vec<Grant> {
        let expired: Vec<String> = self
            .locks
            .iter()
            .filter(|(_, lock)| lock.expires <= now)
            .map(|(name, _)| name.clone())
            .collect();
        expired
            .iter()
            .filter_map(|name| self.hand_over(name, now))
            .collect()
    }

    /// A session left: its locks are released and its waiting requests dropped.
    pub fn disconnect(&mut self, session: u64, now: Instant) -> Vec<Grant> {
        let mut held = Vec::new();
        for (name, lock) in &mut self.locks {
            lock.queue.retain(|waiter| waiter.session != session);
            if lock.holder == session {
                held.push(name.clone());
            }
        }
        held.iter()
            .filter_map(|name| self.hand_over(name, now))
            .collect()
    }

    fn hand_over(&mut self, name: &str, now: Instant) -> Option<Grant> {
        let lock = self.locks.get_mut(name)?;
        let Some(next) = lock.queue.pop_front() else {
            self.locks.remove(name);
            return None;
        };
        lock.holder = next.session;
        lock.fencing_token += 1;
        lock.expires = now + next.ttl;
        Some(Grant {
            session: next.session,
            request_id: next.request_id,
            name: name.to_owned(),
            fencing_token: lock.fencing_token,
        })
    }
}

#[cfg(test)]
mod tests;
