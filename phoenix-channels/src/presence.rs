//! Phoenix Presence for one gateway: who is on a topic, as `presence_state` and
//! `presence_diff` payloads in the shape the npm client's `Presence` class reads:
//! `{key: {metas: [{phx_ref, ...}]}}` and `{joins: {...}, leaves: {...}}`.
//!
//! The tracker lives in this process: players on other replicas are not listed (Phoenix would
//! replicate through PubSub; the gRPC contract has no presence API).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

struct TopicPresences {
    /// Per key, the metas of each of its presences (one per joined channel).
    entries: HashMap<String, Vec<Map<String, Value>>>,
    diffs: broadcast::Sender<Arc<Value>>,
}

/// Tracks presences per topic and broadcasts their diffs.
pub struct Presence {
    topics: Mutex<HashMap<String, TopicPresences>>,
    /// Diffs a slow subscriber may miss before it must resynchronise from the full state.
    diff_buffer: usize,
}

/// One tracked presence; dropping it untracks it and broadcasts the leave.
pub struct Tracked {
    presence: Arc<Presence>,
    topic: String,
    key: String,
    phx_ref: String,
}

impl Presence {
    /// A tracker whose subscribers may fall `diff_buffer` diffs behind (at least 1).
    pub fn new(diff_buffer: usize) -> Arc<Self> {
        Arc::new(Presence {
            topics: Mutex::default(),
            diff_buffer: diff_buffer.max(1),
        })
    }

    /// Tracks `key` on `topic` with `meta` (a `phx_ref` is added) and broadcasts the join.
    /// The receiver gets every later diff, this join included.
    pub fn track(
        self: &Arc<Self>,
        topic: &str,
        key: &str,
        mut meta: Map<String, Value>,
    ) -> (Tracked, broadcast::Receiver<Arc<Value>>) {
        let phx_ref = new_ref();
        meta.insert("phx_ref".into(), Value::String(phx_ref.clone()));
        let mut topics = self.topics.lock().expect("presence lock");
        let presences = topics
            .entry(topic.to_owned())
            .or_insert_with(|| TopicPresences {
                entries: HashMap::new(),
                diffs: broadcast::channel(self.diff_buffer).0,
            });
        let receiver = presences.diffs.subscribe();
        let _ = presences.diffs.send(Arc::new(
            json!({"joins": {key: {"metas": [meta.clone()]}}, "leaves": {}}),
        ));
        presences
            .entries
            .entry(key.to_owned())
            .or_default()
            .push(meta);
        let tracked = Tracked {
            presence: Arc::clone(self),
            topic: topic.to_owned(),
            key: key.to_owned(),
            phx_ref,
        };
        (tracked, receiver)
    }

    /// The `presence_state` payload of `topic`.
    pub fn list(&self, topic: &str) -> Value {
        let topics = self.topics.lock().expect("presence lock");
        let state: Map<String, Value> = topics
            .get(topic)
            .map(|p| {
                p.entries
                    .iter()
                    .map(|(key, metas)| (key.clone(), json!({"metas": metas})))
                    .collect()
            })
            .unwrap_or_default();
        Value::Object(state)
    }

    fn untrack(&self, topic: &str, key: &str, phx_ref: &str) {
        let mut topics = self.topics.lock().expect("presence lock");
        let Some(presences) = topics.get_mut(topic) else {
            return;
        };
        let Some(metas) = presences.entries.get_mut(key) else {
            return;
        };
        let Some(index) = metas
            .iter()
            .position(|m| m.get("phx_ref").and_then(Value::as_str) == Some(phx_ref))
        else {
            return;
        };
        let meta = metas.remove(index);
        if metas.is_empty() {
            presences.entries.remove(key);
        }
        let _ = presences.diffs.send(Arc::new(
            json!({"joins": {}, "leaves": {key: {"metas": [meta]}}}),
        ));
        if presences.entries.is_empty() {
            topics.remove(topic);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.presence.untrack(&self.topic, &self.key, &self.phx_ref);
    }
}

fn new_ref() -> String {
    use base64::Engine;
    let bytes: [u8; 12] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_list_and_untrack_broadcast_diffs() {
        let presence = Presence::new(64);
        let (alice, mut diffs) = presence.track("room", "alice", Map::new());
        let joined = diffs.try_recv().unwrap();
        let alice_ref = joined["joins"]["alice"]["metas"][0]["phx_ref"].clone();
        assert!(alice_ref.is_string());
        let (bob, _) = presence.track("room", "bob", Map::new());
        assert_eq!(
            diffs.try_recv().unwrap()["joins"]["bob"]["metas"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let state = presence.list("room");
        assert_eq!(state.as_object().unwrap().len(), 2);
        assert_eq!(state["alice"]["metas"][0]["phx_ref"], alice_ref);
        drop(alice);
        let left = diffs.try_recv().unwrap();
        assert_eq!(left["leaves"]["alice"]["metas"][0]["phx_ref"], alice_ref);
        assert_eq!(left["joins"], json!({}));
        drop(bob);
        assert_eq!(presence.list("room"), json!({}));
        assert!(presence.topics.lock().unwrap().is_empty());
    }

    #[test]
    fn a_subscriber_behind_by_more_than_the_buffer_is_told_it_lagged() {
        let presence = Presence::new(2);
        let (_alice, mut diffs) = presence.track("room", "alice", Map::new());
        let _others: Vec<_> = ["bob", "carol"]
            .into_iter()
            .map(|key| presence.track("room", key, Map::new()).0)
            .collect();
        // Three joins in a buffer of two: the oldest is gone, and the room channel then
        // resends the whole state.
        assert_eq!(
            diffs.try_recv().unwrap_err(),
            broadcast::error::TryRecvError::Lagged(1)
        );
        assert!(diffs.try_recv().unwrap()["joins"].get("bob").is_some());
        assert!(diffs.try_recv().unwrap()["joins"].get("carol").is_some());
    }
}
