//! Reads request bodies (plain or chunked) up to a limit, answering EntityTooLarge past it.

use axum::body::Body;
use bytes::Bytes;
use fcx_protocol::FcError;
use http_body_util::{BodyExt, Limited};

/// The whole body, or `EntityTooLarge` naming `limit` when it is longer.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, FcError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(FcError::entity_too_large(limit))
        }
        Err(e) => Err(FcError::invalid_argument(format!(
            "cannot read the request body: {e}"
        ))),
    }
}
