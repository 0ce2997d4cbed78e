//! The cluster wire decoder: one WebSocket message from a peer node.

#![no_main]

use libfuzzer_sys::fuzz_target;
use topgun_server::cluster::wire::PeerMessage;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::on_worker_stack(|| {
        if let Ok(message) = PeerMessage::decode(data) {
            // What decodes must encode again: a node relays what its peers send.
            let again = PeerMessage::decode(&message.encode());
            assert!(
                again.is_ok(),
                "a decoded peer message did not survive re-encoding"
            );
        }
    });
});
