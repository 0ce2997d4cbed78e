//! The handles a [`super::Client`] gives out for live data: [`Watch`] for a live
//! query and [`Subscription`] for a topic. Dropping one unsubscribes.

use std::time::Duration;

use tokio::sync::mpsc;

use super::task::Command;
use super::wire;
use super::{ClientError, QueryEvent, TopicMessage};

/// A live query's events; see [`super::Client::watch`].
pub struct Watch {
    pub(super) query_id: String,
    pub(super) events: mpsc::UnboundedReceiver<Result<QueryEvent, ClientError>>,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) timeout: Duration,
    pub(super) started: bool,
}

impl Watch {
    /// The next event; `None` once the connection is gone and everything was read.
    /// Waiting for the initial results is limited by the client's timeout.
    pub async fn next(&mut self) -> Option<Result<QueryEvent, ClientError>> {
        if self.started {
            return self.events.recv().await;
        }
        self.started = true;
        match tokio::time::timeout(self.timeout, self.events.recv()).await {
            Ok(event) => event,
            Err(_) => Some(Err(ClientError::Timeout {
                waiting_for: "QUERY_RESP",
                after: self.timeout,
            })),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let frame = wire::encode(&wire::query_unsub(&self.query_id));
        let _ = self.commands.send(Command::Send { frame, sent: None });
    }
}

/// Messages of one topic; see [`super::Client::subscribe`].
pub struct Subscription {
    pub(super) topic: String,
    pub(super) messages: mpsc::UnboundedReceiver<Result<TopicMessage, ClientError>>,
    pub(super) commands: mpsc::UnboundedSender<Command>,
}

impl Subscription {
    /// The next message; `None` once the connection is gone and everything was read.
    pub async fn next(&mut self) -> Option<Result<TopicMessage, ClientError>> {
        self.messages.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let frame = wire::encode(&wire::topic_unsub(&self.topic));
        let topic = std::mem::take(&mut self.topic);
        let _ = self.commands.send(Command::Unsubscribe { topic, frame });
    }
}
