//! Topics (PROTOCOL.md §12): fire-and-forget publish/subscribe between sessions, with
//! the reference server's name rules, per-session limit and permissions on
//! `topic:<name>`.

use std::cell::OnceCell;

use bytes::Bytes;

use super::dataplane::{Caller, Dataplane};
use crate::cluster::wire::PeerMessage;
use crate::crdt::{SystemClock, WallClock};
use crate::policy::{topic_resource, Action};
use crate::protocol::client::{TopicName, TopicPub};
use crate::protocol::server;

/// Topics one session may subscribe to.
pub const MAX_TOPICS_PER_SESSION: usize = 100;

/// Longest topic name.
const MAX_TOPIC_LEN: usize = 256;

impl Dataplane {
    /// `TOPIC_SUB`: nothing back on success.
    pub(super) fn topic_sub(&self, request: &TopicName, caller: &Caller<'_>) -> Vec<Bytes> {
        if let Some(error) = self.topic_refused(&request.topic, caller, Action::Read) {
            return vec![error];
        }
        let added = self.fanout.update(caller.me, |recipient| {
            let full = recipient.topics.len() >= MAX_TOPICS_PER_SESSION;
            if full && !recipient.topics.contains(&request.topic) {
                return false;
            }
            recipient.topics.insert(request.topic.clone());
            true
        });
        match added {
            Some(false) => vec![server::error(400, "Subscription limit reached")],
            _ => Vec::new(),
        }
    }

    /// `TOPIC_UNSUB`: no reply, no check.
    pub(super) fn topic_unsub(&self, request: &TopicName, caller: &Caller<'_>) -> Vec<Bytes> {
        self.fanout.update(caller.me, |recipient| {
            recipient.topics.remove(&request.topic);
        });
        Vec::new()
    }

    /// `TOPIC_PUB`: `TOPIC_MESSAGE` to every other subscriber; no ack, no persistence.
    pub(super) fn topic_pub(&self, request: &TopicPub, caller: &Caller<'_>) -> Vec<Bytes> {
        if let Some(error) = self.topic_refused(&request.topic, caller, Action::Put) {
            return vec![error];
        }
        // Encoded for the first subscriber found, not at all when there is none: the
        // data may be up to TOPGUN_MAX_MESSAGE_SIZE.
        let message = OnceCell::new();
        self.fanout.publish(|recipient| {
            if recipient.id == caller.me || !recipient.topics.contains(&request.topic) {
                return Vec::new();
            }
            let message = message.get_or_init(|| {
                server::topic_message(
                    &request.topic,
                    &request.data,
                    &caller.me.to_string(),
                    SystemClock.now_millis(),
                )
            });
            vec![message.clone()]
        });
        if let Some(peers) = &self.cluster {
            peers.broadcast(&PeerMessage::Topic {
                topic: request.topic.clone(),
                data: request.data.clone(),
                publisher: format!("{}:{}", self.node_id(), caller.me),
            });
        }
        Vec::new()
    }

    fn topic_refused(&self, topic: &str, caller: &Caller<'_>, action: Action) -> Option<Bytes> {
        if !valid_topic(topic) {
            return Some(server::error(400, "Invalid topic name"));
        }
        if !self
            .policies
            .check(caller.principal, &topic_resource(topic), action)
        {
            return Some(server::error(
                403,
                &format!("Access Denied for topic {topic}"),
            ));
        }
        None
    }
}

/// 1–256 characters of ASCII letters, digits, `_`, `-`, `.`, `:` and `/`.
fn valid_topic(topic: &str) -> bool {
    (1..=MAX_TOPIC_LEN).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::valid_topic;

    #[test]
    fn topic_names_follow_the_reference_rules() {
        for good in ["a", "chat/room-1", "x.y:z_1", &"t".repeat(256)] {
            assert!(valid_topic(good), "{good}");
        }
        for bad in ["", "with space", "é", "a*b", &"t".repeat(257)] {
            assert!(!valid_topic(bad), "{bad}");
        }
    }
}
