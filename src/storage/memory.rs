//! `TOPGUN_STORAGE=memory`: no storage at all. The node's in-memory store is the only
//! copy of the data, so writes are acknowledged without being durable and everything
//! is gone when the node stops. For benchmarks (it isolates the cost of the data
//! plane from the cost of the disk) and tests; never for data anyone needs.

use super::{Batch, Snapshot, Storage, StorageFuture};

/// Storage that keeps nothing: `load` is always empty and `commit` succeeds at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryStorage;

impl Storage for MemoryStorage {
    fn load(&self) -> StorageFuture<'_, Snapshot> {
        Box::pin(async { Ok(Snapshot::default()) })
    }

    fn commit(&self, _batch: Batch) -> StorageFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn orders_at_call(&self) -> bool {
        true
    }
}
