//! The tower layer in front of every route: a request reaches its handler only when its
//! signature, body hash, date and nonce hold. The body is read (up to the route's limit) to
//! hash it and handed on as the same bytes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fcx_protocol::{limits, FcError};

use super::verify::Verifier;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::routes::flavor_of;
use crate::state::new_request_id;

pub async fn verify_signature(
    State(verifier): State<Arc<Verifier>>,
    req: Request,
    next: Next,
) -> Response {
    // Another node signed it with the nodes' key, after checking its client's signature.
    if req.extensions().get::<crate::peer::FromNode>().is_some() {
        return next.run(req).await;
    }
    let flavor = flavor_of(req.uri().path());
    let (parts, body) = req.into_parts();
    let limit = body_limit(parts.uri.path());
    match verify_request(&verifier, &parts, body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => ApiError::new(e, flavor, &new_request_id()).into_response(),
    }
}

/// Checks a signed request (headers first, then the body of at most `limit` bytes, then the
/// nonce) and returns its body: the API's check, also used by HTTP triggers with
/// `authType: function`.
pub async fn verify_request(
    verifier: &Verifier,
    parts: &http::request::Parts,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, FcError> {
    let now = unix_now();
    let checked = verifier
        .check_headers(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
            now,
        )
        .await?;
    // Only a correctly signed request gets its body read.
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(FcError::entity_too_large(limit));
    }
    let bytes = read_limited(body, limit).await?;
    verifier.check_body(&checked, &bytes)?;
    verifier.remember_nonce(&checked, now).await?;
    tracing::trace!(key = %checked.key_id, "signed request verified");
    Ok(bytes)
}

/// The most any handler on `path` accepts; handlers still apply their own, smaller limits.
fn body_limit(path: &str) -> usize {
    if path.ends_with("/invocations") {
        limits::SYNC_PAYLOAD_MAX
    } else {
        limits::FUNCTION_BODY_MAX
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
