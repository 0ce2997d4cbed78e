//! A TLS context that a reload replaces while connections keep the one they started
//! with: each new handshake takes the current value, and the old one lives as long as
//! a connection still holds it.

use std::sync::{Arc, PoisonError, RwLock};

/// The current value of a reloadable TLS context (an acceptor or the cluster dialer).
pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    pub fn new(value: T) -> Arc<Self> {
        Arc::new(Swap(RwLock::new(Arc::new(value))))
    }

    /// The value new connections use now.
    pub fn current(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `value` in service for new connections.
    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_value_serves_new_readers_while_old_ones_keep_theirs() {
        let swap = Swap::new("old");
        let held = swap.current();
        swap.replace("new");
        assert_eq!(*held, "old");
        assert_eq!(*swap.current(), "new");
    }
}
