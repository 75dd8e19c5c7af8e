//! Signed requests: the `ACS3-HMAC-SHA256` scheme of the official FC 3.0 SDKs, verified in
//! front of every route (`fcx server --auth signature`, the default), with AccessKeys kept
//! in the store and their secrets encrypted at rest. The scheme itself (canonical request,
//! string to sign, HMAC, `x-acs-date`) is the `fcx-sign` crate, which the CLI's client uses too.
//!
//! - `verify`: the checks on one request (headers, date window, body hash, nonce)
//! - `nonce`: replay protection in bounded memory
//! - `keys`: secrets by AccessKey id, the admin key and credentials file of a new data dir
//! - `middleware`: the axum layer

pub mod keys;
mod middleware;
mod nonce;
pub mod verify;

use std::sync::Arc;

pub use keys::{Keys, CREDENTIALS_FILE};
pub use middleware::verify_request;
pub use verify::Verifier;

/// How `fcx server` authenticates API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Every request must carry a valid `ACS3-HMAC-SHA256` signature.
    #[default]
    Signature,
    /// No authentication: a development mode, allowed on loopback addresses only.
    None,
}

impl AuthMode {
    /// The `--auth` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Signature => "signature",
            AuthMode::None => "none",
        }
    }
}

/// Puts signature verification in front of every route of `router`.
pub fn layer(router: axum::Router, verifier: Arc<Verifier>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        verifier,
        middleware::verify_signature,
    ))
}
