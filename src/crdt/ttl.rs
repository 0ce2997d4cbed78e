//! The TTL rule shared by LWW and OR records (PROTOCOL.md §5.1).
//!
//! A record with `ttlMs` expires once `millis + ttlMs < now`; enforcement (turning
//! expired records into tombstones) is the maps' `expire`, driven by GC (§10).

/// A local write asked for a TTL that is not a positive number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ttl must be a positive number of milliseconds")]
pub struct TtlError;

/// Checks a TTL for a local write: `None` means no TTL, `Some(0)` is refused.
pub fn check(ttl_ms: Option<u64>) -> Result<Option<u64>, TtlError> {
    match ttl_ms {
        Some(0) => Err(TtlError),
        other => Ok(other),
    }
}

/// The wall-clock millisecond at which a record written at `millis` expires.
///
/// `None` when there is no TTL; a `ttlMs` of 0 also means none, as upstream.
pub fn expires_at(millis: u64, ttl_ms: Option<u64>) -> Option<u64> {
    ttl_ms
        .filter(|&ttl| ttl > 0)
        .map(|ttl| millis.saturating_add(ttl))
}

/// Whether a record written at `millis` has expired at `now_ms` (strictly after).
pub fn is_expired(millis: u64, ttl_ms: Option<u64>, now_ms: u64) -> bool {
    expires_at(millis, ttl_ms).is_some_and(|at| at < now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_still_alive_at_its_expiry_millisecond() {
        assert!(!is_expired(1_000, Some(500), 1_500));
        assert!(is_expired(1_000, Some(500), 1_501));
    }

    #[test]
    fn missing_or_zero_ttl_never_expires() {
        assert!(!is_expired(1_000, None, u64::MAX));
        assert!(!is_expired(1_000, Some(0), u64::MAX));
    }

    #[test]
    fn zero_ttl_is_refused_for_local_writes() {
        assert_eq!(check(Some(0)), Err(TtlError));
        assert_eq!(check(Some(1)), Ok(Some(1)));
        assert_eq!(check(None), Ok(None));
    }
}
