//! The one place platform errors become HTTP responses.

use axum::response::{IntoResponse, Response};
use fcx_protocol::{headers, ApiFlavor, FcError};
use http::{HeaderValue, StatusCode};

/// An `FcError` answered for one request, in the body shape of the API it came in on.
#[derive(Debug)]
pub struct ApiError {
    pub error: FcError,
    pub flavor: ApiFlavor,
    pub request_id: String,
}

impl ApiError {
    pub fn new(error: FcError, flavor: ApiFlavor, request_id: &str) -> ApiError {
        ApiError {
            error,
            flavor,
            request_id: request_id.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::warn!(request_id = %self.request_id, error = %self.error, "request failed");
        } else {
            tracing::debug!(request_id = %self.request_id, error = %self.error, "request refused");
        }
        let body = self.error.body(self.flavor, &self.request_id);
        let mut response = (status, body).into_response();
        let h = response.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert(headers::REQUEST_ID, v);
        }
        if self.error.code.is_function_fault() {
            h.insert(
                headers::ERROR_TYPE,
                HeaderValue::from_static(headers::UNHANDLED_INVOCATION_ERROR),
            );
        }
        if let Some(secs) = self.error.retry_after {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Status of a platform error (for logs and tests).
pub fn status_of(e: &FcError) -> StatusCode {
    e.status()
}
