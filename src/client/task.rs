//! The background task that owns the socket: it writes what the [`super::Client`]
//! asks for and routes what the node sends back to whoever waits for it.
//!
//! The node answers one session's messages in order, so replies that carry no id
//! (`ERROR`) are matched to the oldest request still waiting for a reply.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::connect::Socket;
use super::value::to_json;
use super::wire::{self, ServerMessage};
use super::{ClientError, Entry, QueryEvent, TopicMessage};
use crate::crdt::Hlc;

/// How long [`Command::Close`] waits for the node's half of the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a [`super::Client`] asks the task to do.
pub enum Command {
    /// Send an `OP_BATCH` holding op `id`; answer when `OP_ACK` covers it.
    Op {
        id: String,
        frame: Vec<u8>,
        done: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Send a `QUERY_SUB`; feed its `QUERY_RESP` and `QUERY_UPDATE`s to `events`.
    Watch {
        query_id: String,
        frame: Vec<u8>,
        events: mpsc::UnboundedSender<Result<QueryEvent, ClientError>>,
    },
    /// Send a `TOPIC_SUB`; feed its `TOPIC_MESSAGE`s to `messages`.
    Subscribe {
        topic: String,
        frame: Vec<u8>,
        messages: mpsc::UnboundedSender<Result<TopicMessage, ClientError>>,
    },
    /// Send a message that expects no reply (`QUERY_UNSUB`, `TOPIC_PUB`, ...).
    Send {
        frame: Vec<u8>,
        sent: Option<oneshot::Sender<Result<(), ClientError>>>,
    },
    /// Forget a topic subscription and send its `TOPIC_UNSUB`.
    Unsubscribe { topic: String, frame: Vec<u8> },
    /// Close the WebSocket cleanly and stop.
    Close,
}

/// A request waiting for its reply, in the order it was sent.
enum Pending {
    Op(String, oneshot::Sender<Result<(), ClientError>>),
    Query(String),
}

/// The routing state of one connection.
struct Router {
    pending: VecDeque<Pending>,
    queries: HashMap<String, mpsc::UnboundedSender<Result<QueryEvent, ClientError>>>,
    topics: HashMap<String, mpsc::UnboundedSender<Result<TopicMessage, ClientError>>>,
    hlc: Arc<Mutex<Hlc>>,
}

/// Runs until the [`Command::Close`] command, until every sender is gone, or until
/// the socket fails; then fails everything still waiting with why it ended.
pub async fn run(
    mut socket: Socket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hlc: Arc<Mutex<Hlc>>,
) {
    let mut router = Router {
        pending: VecDeque::new(),
        queries: HashMap::new(),
        topics: HashMap::new(),
        hlc,
    };

    let ended = loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else {
                    let _ = socket.close(None).await;
                    break ClientError::Disconnected;
                };
                if let Command::Close = command {
                    let _ = socket.close(None).await;
                    // Wait (briefly) for the node to answer the close handshake.
                    let drain = async { while let Some(Ok(_)) = socket.next().await {} };
                    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
                    break ClientError::Disconnected;
                }
                if let Err(error) = router.send(&mut socket, command).await {
                    break error;
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(message) = wire::decode(&bytes) {
                        router.receive(message);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    break ClientError::Closed { code, reason };
                }
                Some(Ok(_)) => {}
                Some(Err(source)) => break ClientError::Socket(Box::new(source)),
                None => break ClientError::Disconnected,
            },
        }
    };

    router.fail_all(&ended);
}

impl Router {
    async fn send(&mut self, socket: &mut Socket, command: Command) -> Result<(), ClientError> {
        let frame = match command {
            Command::Op { id, frame, done } => {
                self.pending.push_back(Pending::Op(id, done));
                frame
            }
            Command::Watch {
                query_id,
                frame,
                events,
            } => {
                self.pending.push_back(Pending::Query(query_id.clone()));
                self.queries.insert(query_id, events);
                frame
            }
            Command::Subscribe {
                topic,
                frame,
                messages,
            } => {
                self.topics.insert(topic, messages);
                frame
            }
            Command::Unsubscribe { topic, frame } => {
                self.topics.remove(&topic);
                frame
            }
            Command::Send { frame, sent } => {
                let result = write(socket, frame).await;
                if let Some(sent) = sent {
                    let _ = sent.send(result.as_ref().map_err(ClientError::again).copied());
                }
                return result;
            }
            Command::Close => return Ok(()),
        };
        write(socket, frame).await
    }

    fn receive(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::OpAck { last_id } => self.ack_through(&last_id),
            ServerMessage::Error { code, message } => self.error(code, message),
            ServerMessage::QueryResp { query_id, results } => {
                self.pending
                    .retain(|pending| !matches!(pending, Pending::Query(id) if *id == query_id));
                let results = results
                    .iter()
                    .map(|(key, value)| Entry {
                        key: key.clone(),
                        value: to_json(value),
                    })
                    .collect();
                self.deliver(&query_id, Ok(QueryEvent::Results(results)));
            }
            ServerMessage::QueryUpdate {
                query_id,
                key,
                value,
                removed,
            } => {
                let event = if removed {
                    QueryEvent::Removed { key }
                } else {
                    QueryEvent::Updated(Entry {
                        key,
                        value: to_json(&value),
                    })
                };
                self.deliver(&query_id, Ok(event));
            }
            ServerMessage::TopicMessage {
                topic,
                data,
                publisher_id,
                timestamp,
            } => {
                if let Some(messages) = self.topics.get(&topic) {
                    let message = TopicMessage {
                        topic: topic.clone(),
                        data: to_json(&data),
                        publisher_id,
                        timestamp,
                    };
                    if messages.send(Ok(message)).is_err() {
                        self.topics.remove(&topic);
                    }
                }
            }
            ServerMessage::ServerEvent {
                timestamp: Some(timestamp),
            } => {
                if let Ok(mut hlc) = self.hlc.lock() {
                    let _drift = hlc.update(&timestamp);
                }
            }
            _ => {}
        }
    }

    /// `OP_ACK {lastId}` covers that op and every op sent before it.
    fn ack_through(&mut self, last_id: &str) {
        let Some(position) = self
            .pending
            .iter()
            .position(|pending| matches!(pending, Pending::Op(id, _) if id == last_id))
        else {
            return;
        };
        let covered: Vec<Pending> = self.pending.drain(..=position).collect();
        let mut queries = Vec::new();
        for pending in covered {
            match pending {
                Pending::Op(_, done) => {
                    let _ = done.send(Ok(()));
                }
                query => queries.push(query),
            }
        }
        // Queries sent before the op still wait for their QUERY_RESP.
        for query in queries.into_iter().rev() {
            self.pending.push_front(query);
        }
    }

    /// An `ERROR` answers the oldest request still waiting; topic errors, which
    /// answer fire-and-forget messages, go to the topic subscriptions instead.
    fn error(&mut self, code: u64, message: String) {
        let error = || ClientError::Server {
            code,
            message: message.clone(),
        };
        let about_topics = message.contains("topic") || message == "Subscription limit reached";
        if about_topics || self.pending.is_empty() {
            for messages in self.topics.values() {
                let _ = messages.send(Err(error()));
            }
            return;
        }
        match self.pending.pop_front() {
            Some(Pending::Op(_, done)) => {
                let _ = done.send(Err(error()));
            }
            Some(Pending::Query(query_id)) => {
                if let Some(events) = self.queries.remove(&query_id) {
                    let _ = events.send(Err(error()));
                }
            }
            None => {}
        }
    }

    fn deliver(&mut self, query_id: &str, event: Result<QueryEvent, ClientError>) {
        if let Some(events) = self.queries.get(query_id) {
            if events.send(event).is_err() {
                self.queries.remove(query_id);
            }
        }
    }

    fn fail_all(&mut self, ended: &ClientError) {
        for pending in self.pending.drain(..) {
            if let Pending::Op(_, done) = pending {
                let _ = done.send(Err(ended.again()));
            }
        }
        for (_, events) in self.queries.drain() {
            let _ = events.send(Err(ended.again()));
        }
        for (_, messages) in self.topics.drain() {
            let _ = messages.send(Err(ended.again()));
        }
    }
}

async fn write(socket: &mut Socket, frame: Vec<u8>) -> Result<(), ClientError> {
    socket
        .send(Message::Binary(frame.into()))
        .await
        .map_err(|source| ClientError::Socket(Box::new(source)))
}

#[cfg(test)]
mod tests;
