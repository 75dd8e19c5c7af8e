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

/// [`new_request_id`] as the header value it is answered with, made in one allocation that
/// holds the text and its reference count (clones share it).
pub fn new_request_id_header() -> http::HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .unwrap_or_else(|_| http::HeaderValue::from_static("-"))
}
