//! Conflict-free replicated data types of the TopGun data plane (PROTOCOL.md §4–§6).
//!
//! Pure logic: clocks ([`hlc`], [`timestamp`]), merge rules ([`lww`], [`ormap`])
//! and the Merkle tree of the sync exchange ([`merkle`], [`hash`]). No I/O, no
//! tokio, no logging and no wire framing; the store drives these types.

mod collation;
pub mod hash;
pub mod hlc;
pub mod lww;
pub mod merkle;
mod number;
pub mod ormap;
pub mod timestamp;
pub mod ttl;

#[cfg(test)]
mod properties;

pub use hlc::{ClockDrift, Hlc, SystemClock, WallClock};
pub use lww::{LwwMap, LwwRecord, SyncReply};
pub use merkle::MerkleTree;
pub use ormap::{OrMap, OrRecord};
pub use timestamp::Timestamp;
pub use ttl::TtlError;
