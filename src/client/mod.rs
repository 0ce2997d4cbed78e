//! A Rust client for a TopGun node: connect over `ws://` or `wss://` (TLS through
//! OpenSSL), authenticate with a JWT, write LWW records, query, watch and use topics.
//!
//! Values at the API edge are `serde_json::Value`s (see [`value`] for the shape of
//! MessagePack-only values). One background task owns the socket; requests are
//! matched to replies by op id and query id. The client does not reconnect, keep an
//! offline op log or run Merkle sync: it is a thin online client, not the stock one.

mod connect;
mod error;
mod handles;
mod task;
pub mod token;
pub mod value;
mod wire;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use error::{chain, ClientError};
pub use handles::{Subscription, Watch};
pub use token::{mint_hs256, TokenClaims};

use crate::crdt::Hlc;
use task::Command;

/// How to reach and authenticate to a node.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://host:port[/path]` or `wss://host:port[/path]`.
    pub url: String,
    /// The JWT sent in `AUTH`.
    pub token: String,
    /// PEM file of CAs to trust for `wss://`, added to the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for nodes that ask for one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`, possibly encrypted.
    pub key_file: Option<PathBuf>,
    /// Passphrase of an encrypted `key_file`.
    pub key_passphrase: Option<Vec<u8>>,
    /// Name for SNI and certificate verification; default: the URL's host.
    pub server_name: Option<String>,
    /// Whether the certificate must match the name (default `true`). The chain is
    /// verified regardless.
    pub verify_hostname: bool,
    /// Limit for connecting plus `AUTH_ACK`, and for each request's reply (default 10 s).
    pub timeout: Duration,
    /// HLC node id stamped on writes; default `client-<random UUID>`.
    pub node_id: Option<String>,
}

impl ClientConfig {
    /// A configuration for `url` and `token` with every default.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_passphrase: None,
            server_name: None,
            verify_hostname: true,
            timeout: Duration::from_secs(10),
            node_id: None,
        }
    }
}

/// One record of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: serde_json::Value,
}

/// What a [`Watch`] yields: the initial results, then changes.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryEvent {
    /// `QUERY_RESP`: every matching record when the watch started.
    Results(Vec<Entry>),
    /// `QUERY_UPDATE UPDATE`: a record entered the results or changed.
    Updated(Entry),
    /// `QUERY_UPDATE REMOVE`: a record left the results (removed or no longer matching).
    Removed { key: String },
}

/// A message published on a subscribed topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessage {
    pub topic: String,
    pub data: serde_json::Value,
    /// The publisher's connection id on the node.
    pub publisher_id: Option<String>,
    /// The node's wall clock when it relayed the message, in milliseconds.
    pub timestamp: Option<u64>,
}

/// An authenticated connection to a node.
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    hlc: Arc<Mutex<Hlc>>,
    timeout: Duration,
    task: JoinHandle<()>,
}

impl Client {
    /// Connects, upgrades and authenticates; fails with a [`ClientError`] naming the
    /// step (refused connection, TLS verification, `AUTH_FAIL`, timeout, ...).
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let socket = connect::open(&config).await?;

        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("client-{}", new_id()));
        let hlc = Arc::new(Mutex::new(Hlc::new(node_id)));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(task::run(socket, commands_rx, hlc.clone()));
        Ok(Client {
            commands,
            hlc,
            timeout: config.timeout,
            task,
        })
    }

    /// Writes `value` under `key` in LWW map `map`; returns once `OP_ACK` covers it.
    pub async fn put(
        &self,
        map: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), ClientError> {
        self.write(map, key, Some(value::to_msgpack(value))).await
    }

    /// Removes `key` from LWW map `map` (writes a tombstone); returns on `OP_ACK`.
    pub async fn remove(&self, map: &str, key: &str) -> Result<(), ClientError> {
        self.write(map, key, None).await
    }

    /// The value under `key`, or `None`.
    ///
    /// Reads the whole map through a one-shot query, so values the node's query
    /// rules treat as false (`false`, `0`, `""`) read as absent (PROTOCOL.md §7.1).
    pub async fn get(
        &self,
        map: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let results = self.query(map, None).await?;
        Ok(results
            .into_iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value))
    }

    /// The records of `map` matching `where_clause` (a JSON object of field →
    /// value or `{"$gt": ..}`-style operators; `None` for all records).
    pub async fn query(
        &self,
        map: &str,
        where_clause: Option<&serde_json::Value>,
    ) -> Result<Vec<Entry>, ClientError> {
        let mut watch = self.watch(map, where_clause).await?;
        match watch.next().await {
            Some(Ok(QueryEvent::Results(results))) => Ok(results),
            Some(Err(error)) => Err(error),
            Some(Ok(_)) | None => Err(ClientError::Disconnected),
        }
    }

    /// A live query: first [`QueryEvent::Results`], then changes. Dropping the
    /// [`Watch`] sends `QUERY_UNSUB`.
    pub async fn watch(
        &self,
        map: &str,
        where_clause: Option<&serde_json::Value>,
    ) -> Result<Watch, ClientError> {
        let where_clause = match where_clause {
            None => rmpv::Value::Nil,
            Some(clause) if clause.is_object() => value::to_msgpack(clause),
            Some(_) => return Err(ClientError::WhereClause),
        };
        let query_id = new_id();
        let (events, events_rx) = mpsc::unbounded_channel();
        let frame = wire::encode(&wire::query_sub(&query_id, map, where_clause));
        self.command(Command::Watch {
            query_id: query_id.clone(),
            frame,
            events,
        })?;
        Ok(Watch {
            query_id,
            events: events_rx,
            commands: self.commands.clone(),
            timeout: self.timeout,
            started: false,
        })
    }

    /// Publishes `data` on `topic`; returns once sent. Topics are fire-and-forget:
    /// the node sends no acknowledgement and delivers only to other connections.
    pub async fn publish(&self, topic: &str, data: &serde_json::Value) -> Result<(), ClientError> {
        check_topic(topic)?;
        let frame = wire::encode(&wire::topic_pub(topic, value::to_msgpack(data)));
        let (sent, sent_rx) = oneshot::channel();
        self.command(Command::Send {
            frame,
            sent: Some(sent),
        })?;
        sent_rx.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Subscribes to `topic`. The node does not confirm a subscription; a refusal
    /// arrives as an error on the [`Subscription`]. Dropping it sends `TOPIC_UNSUB`.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, ClientError> {
        check_topic(topic)?;
        let (messages, messages_rx) = mpsc::unbounded_channel();
        self.command(Command::Subscribe {
            topic: topic.to_owned(),
            frame: wire::encode(&wire::topic_sub(topic)),
            messages,
        })?;
        Ok(Subscription {
            topic: topic.to_owned(),
            messages: messages_rx,
            commands: self.commands.clone(),
        })
    }

    /// Closes the WebSocket cleanly and waits for the background task to end.
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close);
        let _ = self.task.await;
    }

    async fn write(
        &self,
        map: &str,
        key: &str,
        value: Option<rmpv::Value>,
    ) -> Result<(), ClientError> {
        let id = new_id();
        let timestamp = self
            .hlc
            .lock()
            .map_err(|_| ClientError::Disconnected)?
            .now();
        let frame = wire::encode(&wire::lww_op(&id, map, key, value, &timestamp));
        let (done, done_rx) = oneshot::channel();
        self.command(Command::Op { id, frame, done })?;
        let acked = tokio::time::timeout(self.timeout, done_rx).await;
        acked
            .map_err(|_| ClientError::Timeout {
                waiting_for: "OP_ACK",
                after: self.timeout,
            })?
            .map_err(|_| ClientError::Disconnected)?
    }

    fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::Disconnected)
    }
}

fn check_topic(topic: &str) -> Result<(), ClientError> {
    if wire::valid_topic(topic) {
        Ok(())
    } else {
        Err(ClientError::TopicName(topic.to_owned()))
    }
}

/// A random (version 4) UUID from OpenSSL's generator, as used for op and query ids.
pub fn new_id() -> String {
    wire::new_id()
}
