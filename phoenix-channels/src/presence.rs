//! Phoenix Presence's wire format: the `presence_state` and `presence_diff` payloads the npm
//! client's `Presence` class reads.
//!
//! - `presence_state`: `{key: {"metas": [meta, ...]}, ...}`, one meta per presence of the key
//!   (a user's connections, say), each with a `phx_ref` unique to it;
//! - `presence_diff`: `{"joins": {...}, "leaves": {...}}`, each in the state's shape.
//!
//! Who is present is the application's to know: Phoenix tracks it in a CRDT replicated over
//! PubSub, ws-gateway asks its game service, so that every node lists the same. These build the
//! payloads from what it knows.

use serde_json::{Map, Value, json};

/// One presence: the key the client groups presences by, and the meta of this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    key: String,
    meta: Map<String, Value>,
}

impl Presence {
    /// A presence of `key` whose meta holds `phx_ref`.
    pub fn new(key: impl Into<String>, phx_ref: impl Into<String>) -> Self {
        let meta = Map::from_iter([("phx_ref".to_owned(), Value::String(phx_ref.into()))]);
        Presence {
            key: key.into(),
            meta,
        }
    }

    /// Adds `field` to the meta.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.meta.insert(field.to_owned(), value.into());
        self
    }
}

/// The `presence_state` payload of `presences`: their metas grouped by key, in their order.
pub fn state(presences: impl IntoIterator<Item = Presence>) -> Value {
    let mut state = Map::new();
    for Presence { key, meta } in presences {
        let entry = state.entry(key).or_insert_with(|| json!({"metas": []}));
        if let Some(metas) = entry["metas"].as_array_mut() {
            metas.push(Value::Object(meta));
        }
    }
    Value::Object(state)
}

/// The `presence_diff` payload of `joins` and `leaves`.
pub fn diff(
    joins: impl IntoIterator<Item = Presence>,
    leaves: impl IntoIterator<Item = Presence>,
) -> Value {
    json!({"joins": state(joins), "leaves": state(leaves)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_groups_the_metas_of_each_key() {
        let presences = [
            Presence::new("alice", "1").with("online_at", "1700000000"),
            Presence::new("bob", "2"),
            Presence::new("alice", "3"),
        ];
        assert_eq!(
            state(presences),
            json!({
                "alice": {"metas": [{"phx_ref": "1", "online_at": "1700000000"}, {"phx_ref": "3"}]},
                "bob": {"metas": [{"phx_ref": "2"}]},
            })
        );
        assert_eq!(state([]), json!({}));
    }

    #[test]
    fn a_diff_holds_joins_and_leaves_in_the_states_shape() {
        assert_eq!(
            diff([Presence::new("bob", "2")], []),
            json!({"joins": {"bob": {"metas": [{"phx_ref": "2"}]}}, "leaves": {}})
        );
        assert_eq!(
            diff([], [Presence::new("bob", "2"), Presence::new("bob", "4")]),
            json!({"joins": {}, "leaves": {"bob": {"metas": [{"phx_ref": "2"}, {"phx_ref": "4"}]}}})
        );
    }
}
