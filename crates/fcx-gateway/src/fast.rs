//! The invoke fast path: `POST /2023-03-30/functions/{name}/invocations`, the request every
//! call makes, goes straight to its handler instead of through the API router. The router's
//! per-request work (route match, the boxed layers of the node check and the signature
//! check, the path-parameter extension, the method router) was about a sixth of fcx's
//! allocations on the warm path. What those layers do for this route is done here in the
//! same order: a client request carries no node marks (the caller checked), and with
//! `--auth signature` its signature, body hash and nonce are checked before the handler
//! runs, as `auth::middleware::verify_signature` does.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use fcx_protocol::limits;

use crate::error::ApiError;
use crate::routes::flavor_of;
use crate::state::new_request_id;
use crate::web::Front;

const PREFIX: &str = "/2023-03-30/functions/";
const SUFFIX: &str = "/invocations";

/// The function named by an FC 3.0 invocation path, when the path is one (one non-empty
/// segment, nothing percent-encoded: those go through the router, which decodes them).
pub fn invoked_function(path: &str) -> Option<&str> {
    let name = path.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let plain = !name.is_empty() && !name.contains(['/', '%']);
    plain.then_some(name)
}

/// Runs a client's invocation request (see the module doc).
pub async fn invoke(front: &Front, req: Request) -> Response {
    let req = match &front.verifier {
        None => req,
        Some(verifier) => {
            let (parts, body) = req.into_parts();
            let limit = limits::SYNC_PAYLOAD_MAX;
            match Box::pin(crate::auth::verify_request(verifier, &parts, body, limit)).await {
                Ok(bytes) => Request::from_parts(parts, Body::from(bytes)),
                Err(e) => {
                    let flavor = flavor_of(parts.uri.path());
                    return ApiError::new(e, flavor, &new_request_id()).into_response();
                }
            }
        }
    };
    match crate::invoke::invoke_fc3(State(std::sync::Arc::clone(&front.control)), req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::invoked_function;

    #[test]
    fn only_plain_invocation_paths_take_the_fast_path() {
        assert_eq!(
            invoked_function("/2023-03-30/functions/hello/invocations"),
            Some("hello")
        );
        for path in [
            "/2023-03-30/functions//invocations",
            "/2023-03-30/functions/a/b/invocations",
            "/2023-03-30/functions/h%65llo/invocations",
            "/2023-03-30/functions/hello",
            "/2023-03-30/functions/hello/invocations/",
            "/2016-08-15/services/s/functions/f/invocations",
        ] {
            assert_eq!(invoked_function(path), None, "{path}");
        }
    }
}
