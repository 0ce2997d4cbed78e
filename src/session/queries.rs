//! Live queries (PROTOCOL.md §7): `QUERY_SUB` answered with `QUERY_RESP`, then
//! `QUERY_UPDATE`s as writes change the results. Query ids belong to their session
//! (upstream shares them across connections), and update values are filtered to the
//! fields the subscriber may read (upstream sends them whole).

use bytes::Bytes;
use rmpv::Value;
use tracing::debug;

use super::dataplane::{Caller, Dataplane};
use crate::fanout::{Recipient, Subscribed};
use crate::policy::ReadView;
use crate::protocol::client::{QuerySub, QueryUnsub};
use crate::protocol::server;
use crate::query::{LiveQuery, Query};
use crate::store::Change;

impl Dataplane {
    /// `QUERY_SUB`: the current results, then live updates. A query id the session
    /// already uses is replaced, as a reconnecting client re-sends its ids.
    pub(super) fn query_sub(&self, request: &QuerySub, caller: &Caller<'_>) -> Vec<Bytes> {
        if let Some(denied) = self.read_denied(caller.principal, &request.map_name) {
            return vec![denied];
        }
        let query = match Query::decode(&request.query) {
            Ok(query) => query,
            Err(error) => {
                debug!(%error, "query refused");
                return vec![server::invalid_message()];
            }
        };

        let entries = self.store().entries(&request.map_name);
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
