//! One module per part of issue 7's benchmark.

pub mod bound;
pub mod bulk;
pub mod fanout;
pub mod handshakes;
pub mod idle;
pub mod replication;
pub mod writes;
