//! The other nodes, as the gateway's node-to-node requests need them: who is live and where
//! (the `nodes` table, read every tick), how much capacity each had at its last heartbeat,
//! which one a request this node cannot serve goes to (`--forward`), and the key the nodes
//! authenticate those requests with (derived from the `secret.key` they share).

use fcx_store::postgres::cluster::NodeRow;

use crate::ControlPlane;

/// What the nodes' request key is derived for (see `fcx_store::derived_key`).
pub const KEY_PURPOSE: &str = "fcx nodes v1";

/// Another live node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its `--node-id`.
    pub id: String,
    /// Where its API answers (`HOST:PORT`, its `--advertise`).
    pub address: String,
    /// How many more instances it could start at its last heartbeat (≤ 1 s old).
    pub free_instances: u32,
}

impl From<NodeRow> for Peer {
    fn from(n: NodeRow) -> Peer {
        Peer {
            id: n.id,
            address: n.address,
            free_instances: n.free_instances,
        }
    }
}

impl ControlPlane {
    /// This node's id when the store is shared.
    pub fn node_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node_id())
    }

    /// The other live nodes (heartbeat at most `NODE_FRESH_MS` old at the last tick), in id
    /// order; none on a single node.
    pub fn peers(&self) -> Vec<Peer> {
        self.cluster
            .as_ref()
            .map(|c| c.peers().into_iter().map(Peer::from).collect())
            .unwrap_or_default()
    }

    /// The key node-to-node requests are authenticated with (only when the store is shared).
    pub fn node_key(&self) -> Option<[u8; 32]> {
        self.cluster.as_ref().map(|c| c.settings.node_key)
    }

    /// Whether requests this node has no capacity for are forwarded (`--forward`).
    pub fn forwards(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.settings.forward)
    }

    /// The node a request of `function` this node cannot start an instance for goes to:
    /// among the live peers that could start one at their last heartbeat, the one
    /// `function` hashes to (rendezvous hashing, so one function's overflow keeps going to
    /// the same node and finds its instances warm there). `None` when forwarding is off or
    /// no peer has capacity.
    pub fn forward_target(&self, function: &str) -> Option<Peer> {
        if !self.forwards() {
            return None;
        }
        pick(function, self.peers())
    }
}

fn pick(function: &str, peers: Vec<Peer>) -> Option<Peer> {
    use std::hash::{Hash, Hasher};
    let weight = |p: &Peer| {
        // SipHash with fixed keys: the same choice on every node running this binary.
        let mut h = std::hash::DefaultHasher::new();
        (function, p.id.as_str()).hash(&mut h);
        h.finish()
    };
    peers
        .into_iter()
        .filter(|p| p.free_instances > 0)
        .max_by_key(weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, free: u32) -> Peer {
        Peer {
            id: id.into(),
            address: format!("{id}:9100"),
            free_instances: free,
        }
    }

    #[test]
    fn a_full_peer_is_never_picked_and_a_function_keeps_its_peer() {
        assert_eq!(pick("f", vec![peer("a", 0), peer("b", 0)]), None);
        assert_eq!(pick("f", vec![peer("a", 0), peer("b", 3)]).unwrap().id, "b");
        let all = || vec![peer("a", 1), peer("b", 1), peer("c", 1)];
        let first = pick("f", all()).unwrap();
        for _ in 0..5 {
            assert_eq!(pick("f", all()).unwrap(), first);
        }
        // Functions spread over the peers rather than all landing on one.
        let chosen: std::collections::HashSet<String> = (0..32)
            .map(|i| pick(&format!("f{i}"), all()).unwrap().id)
            .collect();
        assert_eq!(chosen.len(), 3, "{chosen:?}");
    }
}
