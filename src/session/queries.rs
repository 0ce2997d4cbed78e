//! Live queries (PROTOCOL.md §7): `QUERY_SUB` answered with `QUERY_RESP`, then
//! `QUERY_UPDATE`s as writes change the results. Query ids belong to their session
//! (upstream shares them across connections), and update values are filtered to the
//! fields the subscriber may read (upstream sends them whole).

use bytes::Bytes;
use rmpv::Value;
use tracing::debug;

use super::dataplane::{Caller, Dataplane};
use crate::fanout::{Recipient, Subscribed};
use crate::metrics::Op;
use crate::policy::ReadView;
use crate::protocol::client::{QuerySub, QueryUnsub};
use crate::protocol::server;
use crate::query::{LiveQuery, Query};
use crate::store::Change;

/// Deepest predicate tree accepted; deeper ones are answered with `ERROR 400` before
/// anything walks them.
pub const MAX_PREDICATE_DEPTH: usize = 32;

impl Dataplane {
    /// `QUERY_SUB`: the current results, then live updates. A query id the session
    /// already uses is replaced, as a reconnecting client re-sends its ids.
    pub(super) async fn query_sub(&self, request: &QuerySub, caller: &Caller<'_>) -> Vec<Bytes> {
        if let Some(denied) = self.read_denied(caller.principal, &request.map_name) {
            return vec![denied];
        }
        self.metrics.count_op(Op::Subscribe, &request.map_name);
        if predicate_depth(&request.query) > MAX_PREDICATE_DEPTH {
            debug!("query predicate nested too deeply");
            return vec![server::invalid_message()];
        }
        let query = match Query::decode(&request.query) {
            Ok(query) => query,
            Err(error) => {
                debug!(%error, "query refused");
                return vec![server::invalid_message()];
            }
        };

        let entries = match &self.cluster {
            Some(peers) if peers.table().members().len() > 1 => {
                self.cluster_entries(peers, &request.map_name, &request.query)
                    .await
            }
            _ => self.store().entries(&request.map_name),
        };
        let records = entries.iter().map(|(key, value)| (key.as_str(), value));
        let (live, results) = LiveQuery::start(query, records);

        let view = self.policies.read_view(caller.principal, &request.map_name);
        let results: Vec<(String, Value)> = results
            .into_iter()
            .map(|row| (row.key, view.filter(&row.value)))
            .collect();
        self.fanout.update(caller.me, |recipient| {
            let subscribed = Subscribed {
                map: request.map_name.clone(),
                live,
            };
            recipient
                .queries
                .insert(request.query_id.clone(), subscribed);
        });
        vec![server::query_resp(&request.query_id, &results)]
    }

    /// `QUERY_UNSUB`: no reply.
    pub(super) fn query_unsub(&self, request: &QueryUnsub, caller: &Caller<'_>) -> Vec<Bytes> {
        self.fanout.update(caller.me, |recipient| {
            recipient.queries.remove(&request.query_id);
        });
        Vec::new()
    }
}

/// The `QUERY_UPDATE`s one change causes for one session, values cut to `view`.
/// `entries` gives the map after the change, for queries with a window.
pub(super) fn updates<'a, F>(
    recipient: &mut Recipient,
    change: &Change,
    view: &ReadView,
    entries: F,
) -> Vec<Bytes>
where
    F: Fn() -> &'a Vec<(String, Value)>,
{
    let mut messages = Vec::new();
    let event = &change.event;
    let subscriptions = recipient
        .queries
        .iter_mut()
        .filter(|(_, subscribed)| subscribed.map == event.map_name);
    for (query_id, subscribed) in subscriptions {
        let updates =
            subscribed
                .live
                .on_change(&event.key, change.old.as_ref(), change.new.as_ref(), || {
                    entries().iter().map(|(key, value)| (key.as_str(), value))
                });
        for mut update in updates {
            update.value = update.value.map(|value| view.filter(&value));
            messages.push(server::query_update(query_id, &update));
        }
    }
    messages
}

/// How deeply `query.predicate` nests through `children`, without recursion.
fn predicate_depth(query: &Value) -> usize {
    let field = |value: &'_ Value, name: &str| -> Option<Value> {
        value
            .as_map()?
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .map(|(_, value)| value.clone())
    };
    let mut deepest = 0;
    let mut pending: Vec<(Value, usize)> = field(query, "predicate")
        .map(|predicate| vec![(predicate, 1)])
        .unwrap_or_default();
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        if depth > MAX_PREDICATE_DEPTH {
            break;
        }
        if let Some(Value::Array(children)) = field(&node, "children") {
            pending.extend(children.into_iter().map(|child| (child, depth + 1)));
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Value {
        let mut node = Value::Map(vec![("op".into(), "eq".into())]);
        for _ in 1..depth {
            node = Value::Map(vec![
                ("op".into(), "not".into()),
                ("children".into(), Value::Array(vec![node])),
            ]);
        }
        Value::Map(vec![("predicate".into(), node)])
    }

    #[test]
    fn predicate_depth_counts_nesting_through_children() {
        assert_eq!(predicate_depth(&Value::Map(Vec::new())), 0);
        assert_eq!(predicate_depth(&nested(1)), 1);
        assert_eq!(predicate_depth(&nested(5)), 5);
        assert!(predicate_depth(&nested(500)) > MAX_PREDICATE_DEPTH);
    }
}
