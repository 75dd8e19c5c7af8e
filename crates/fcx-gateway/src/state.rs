//! What every handler shares: the control plane (the router's state), and request ids.

use std::sync::Arc;

use fcx_control::ControlPlane;

/// The router's state.
pub type Shared = Arc<ControlPlane>;

/// A fresh request id (FC's are UUID-shaped).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
