//! The one way handlers answer: a request's id and API flavor, JSON (or empty) answers that
//! carry `x-fc-request-id`, and errors through the mapping in `error`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use fcx_protocol::{headers, ApiFlavor};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::error::{ApiError, ToFc};
use crate::state::new_request_id_header;

/// A handler's result.
pub type Reply = Result<Response, ApiError>;

/// One request being answered.
pub struct Api {
    /// The request id, kept as the `x-fc-request-id` value it is answered with: made once
    /// (one allocation), cloned into the answer without a copy.
    rid: HeaderValue,
    flavor: ApiFlavor,
}

impl Api {
    /// A request on `flavor`'s paths, with a fresh request id.
    pub fn new(flavor: ApiFlavor) -> Api {
        Api {
            rid: new_request_id_header(),
            flavor,
        }
    }

    /// The request id.
    pub fn rid(&self) -> &str {
        // Always visible ASCII: a UUID's text.
        self.rid.to_str().unwrap_or_default()
    }

    /// A request on the FC 3.0 management paths.
    pub fn fc3() -> Api {
        Api::new(ApiFlavor::Fc3)
    }

    pub fn flavor(&self) -> ApiFlavor {
        self.flavor
    }

    /// `e` as FC reports it, for this request.
    pub fn fail(&self, e: impl ToFc) -> ApiError {
        ApiError::new(e.to_fc(), self.flavor, self.rid())
    }

    /// 200 with `body` as JSON.
    pub fn json(&self, body: &impl Serialize) -> Response {
        self.with_id((StatusCode::OK, Json(body)).into_response())
    }

    /// `status` without a body.
    pub fn empty(&self, status: StatusCode) -> Response {
        self.with_id(status.into_response())
    }

    /// This request's `x-fc-request-id` value.
    pub fn id_header(&self) -> HeaderValue {
        self.rid.clone()
    }

    /// `response` with this request's `x-fc-request-id`.
    pub fn with_id(&self, mut response: Response) -> Response {
        response
            .headers_mut()
            .insert(headers::name::REQUEST_ID, self.rid.clone());
        response
    }
}
