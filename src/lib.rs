//! A TopGun server node whose every network edge goes through OpenSSL.
//!
//! # Layout
//!
//! - [`config`]: `TOPGUN_*` and friends → a checked [`config::Config`]; no I/O.
//! - [`tls`]: key material, SSL contexts and handshakes; the only caller of OpenSSL
//!   for TLS.
//! - [`listener`]: the accept loop (connection cap, per-connection tasks) and the
//!   client port (HTTP, WebSocket upgrade).
//! - [`cluster`]: peer links, membership, partitions and replication between nodes.
//! - [`metrics`]: the node's Prometheus registry and its scrape endpoint.
//! - [`session`]: one client's WebSocket conversation; the hand-off to the data plane.
//! - [`protocol`]: the client wire protocol, decoded and encoded.
//! - [`locks`]: lock holders, fencing tokens and queues; pure logic.
//! - [`fanout`]: broadcasts to sessions through bounded queues.
//! - [`store`]: the maps by name; the one place their state changes.
//! - [`storage`]: durable records of the maps (redb or PostgreSQL) behind one trait.
//! - [`node`]: composition, start and graceful shutdown.
//! - [`reload`]: certificate rotation without a restart.
//! - [`auth`]: JWT verification through OpenSSL.
//! - [`policy`]: permission policies and field-level security; pure logic.
//! - [`crdt`]: clocks, merge rules and the Merkle tree; pure logic.
//! - [`query`]: query decoding, matching, result shaping and live updates; pure logic.
//! - [`check`]: the `check-config` report.
//! - [`pki`]: a throwaway development PKI.
//! - [`client`]: a Rust client library for the node, used by the `topgun` CLI.
//! - [`shutdown`], [`telemetry`]: signals and logs.

#![deny(unsafe_code)]

pub mod auth;
pub mod check;
pub mod client;
pub mod cluster;
pub mod config;
pub mod crdt;
pub mod fanout;
pub mod listener;
pub mod locks;
pub mod metrics;
pub mod node;
pub mod pki;
pub mod policy;
pub mod protocol;
pub mod query;
pub mod reload;
pub mod session;
pub mod shutdown;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod tls;
