use super::*;

const TTL: Duration = Duration::from_secs(10);

/// The observed sequence of §11: A gets token 1; B queues; A releases with a wrong
/// token and fails; A releases with 1 and B gets token 2.
#[test]
fn the_observed_sequence_hands_the_lock_to_the_waiter_with_the_next_token() {
    let mut table = LockTable::default();
    let now = Instant::now();

    let a = table.acquire(1, "ra", "job", TTL, now).unwrap();
    let b = table.acquire(2, "rb", "job", TTL, now);
    let wrong = table.release(1, "job", 7, now);
    let right = table.release(1, "job", 1, now);

    assert_eq!(a.fencing_token, 1);
    assert_eq!(b, None);
    assert_eq!(wrong, (false, None));
    let (released, next) = right;
    assert!(released);
    assert_eq!(
        next.unwrap(),
        Grant {
            session: 2,
            request_id: "rb".into(),
            name: "job".into(),
            fencing_token: 2
        }
    );
}

#[test]
fn the_holder_extends_with_the_same_token_and_a_free_lock_restarts_at_one() {
    let mut table = LockTable::default();
    let now = Instant::now();

    table.acquire(1, "r1", "job", TTL, now).unwrap();
    let again = table.acquire(1, "r2", "job", TTL, now).unwrap();
    table.release(1, "job", 1, now);
    let fresh = table.acquire(3, "r3", "job", TTL, now).unwrap();

    assert_eq!(again.fencing_token, 1);
    assert_eq!(fresh.fencing_token, 1);
}

#[test]
fn an_expired_lock_passes_to_the_next_waiter_or_to_a_new_request() {
    let mut table = LockTable::default();
    let now = Instant::now();
    table.acquire(1, "r1", "a", TTL, now).unwrap();
    table.acquire(2, "r2", "a", TTL, now);
    table.acquire(1, "r3", "b", TTL, now).unwrap();

    let later = now + TTL;
    let grants = table.expire(later);
    let taken = table.acquire(4, "r4", "b", TTL, later);

    assert_eq!(grants.len(), 1);
    assert_eq!((grants[0].session, grants[0].fencing_token), (2, 2));
    // `b` had no waiter, so expiry forgot it and its token sequence restarts.
    assert_eq!(taken.unwrap().fencing_token, 1);
}

#[test]
fn a_disconnect_releases_held_locks_and_drops_waiting_requests() {
    let mut table = LockTable::default();
    let now = Instant::now();
    table.acquire(1, "r1", "a", TTL, now).unwrap();
    table.acquire(2, "r2", "a", TTL, now);
    table.acquire(3, "r3", "a", TTL, now);

    let after_waiter_leaves = table.disconnect(2, now);
    let after_holder_leaves = table.disconnect(1, now);

    assert!(after_waiter_leaves.is_empty());
    assert_eq!(after_holder_leaves[0].session, 3);
}

#[test]
fn ttls_are_clamped_to_one_second_and_five_minutes() {
    assert_eq!(clamp_ttl(None), DEFAULT_TTL);
    assert_eq!(clamp_ttl(Some(5.0)), MIN_TTL);
    assert_eq!(clamp_ttl(Some(1e12)), MAX_TTL);
    assert_eq!(clamp_ttl(Some(f64::NAN)), DEFAULT_TTL);
    assert_eq!(clamp_ttl(Some(2500.0)), Duration::from_millis(2500));
}
