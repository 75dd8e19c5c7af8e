//! What every handler shares: the control plane (the router's state), and request ids.

use std::sync::Arc;

use fcx_control::ControlPlane;

/// The router's state.
pub type Shared = Arc<ControlPlane>;

/// A fresh request id (FC's are UUID-shaped). Version 7 (Unix ms, then 74 random bits):
/// ids made later sort later, so the durable async queue, which keys each event by its
/// request id in a unique index, appends to that index instead of dirtying a random page
/// (one more 4 KiB WAL frame per commit) for every event.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
