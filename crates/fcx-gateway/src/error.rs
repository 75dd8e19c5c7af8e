//! The one place errors become HTTP responses: every layer's error is mapped to FC's code,
//! status and message here ([`ToFc`]), and answered in the body shape of the API the request
//! came in on ([`ApiError`]).

use axum::response::{IntoResponse, Response};
use fcx_control::ControlError;
use fcx_protocol::{headers, ApiFlavor, ErrorCode, FcError};
use http::HeaderValue;

/// An error as FC reports it.
pub trait ToFc {
    fn to_fc(self) -> FcError;
}

impl ToFc for FcError {
    fn to_fc(self) -> FcError {
        self
    }
}

impl ToFc for ControlError {
    fn to_fc(self) -> FcError {
        let message = self.to_string();
        let code = match self {
            ControlError::FunctionNotFound(_) => ErrorCode::FunctionNotFound,
            ControlError::FunctionExists(_) => ErrorCode::FunctionAlreadyExists,
            ControlError::VersionNotFound { .. } => ErrorCode::VersionNotFound,
            ControlError::AliasNotFound { .. } => ErrorCode::AliasNotFound,
            ControlError::AliasExists { .. } => ErrorCode::AliasAlreadyExists,
            ControlError::TriggerNotFound { .. } => ErrorCode::TriggerNotFound,
            ControlError::TriggerExists { .. } => ErrorCode::TriggerAlreadyExists,
            ControlError::AsyncConfigNotFound(_) | ControlError::TaskNotFound { .. } => {
                ErrorCode::NotFound
            }
            ControlError::Invalid(e) => {
                return FcError::invalid_argument(message).with_detail("Field", e.field)
            }
            ControlError::Scheduler(e) | ControlError::Async(e) => return e.to_fc(),
            ControlError::Store(_)
            | ControlError::Corrupt { .. }
            | ControlError::Encode { .. }
            | ControlError::Io { .. }
            | ControlError::Interrupted(_) => ErrorCode::InternalServerError,
        };
        FcError::new(code, message)
    }
}

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

#[cfg(test)]
mod tests {
    use fcx_model::ModelError;

    use super::*;

    #[test]
    fn control_errors_keep_fc_codes_and_messages() {
        let cases = [
            (
                ControlError::FunctionNotFound("f".into()),
                FcError::function_not_found("f"),
            ),
            (
                ControlError::FunctionExists("f".into()),
                FcError::function_already_exists("f"),
            ),
            (
                ControlError::AliasNotFound {
                    function: "f".into(),
                    alias: "prod".into(),
                },
                FcError::new(
                    ErrorCode::AliasNotFound,
                    "alias 'prod' of function 'f' does not exist",
                ),
            ),
            (
                ControlError::TaskNotFound {
                    function: "f".into(),
                    task: "t".into(),
                },
                FcError::new(
                    ErrorCode::NotFound,
                    "async task 't' of function 'f' does not exist",
                ),
            ),
            (
                ControlError::Invalid(ModelError::new("limit", "must be a number")),
                FcError::invalid_argument("limit: must be a number").with_detail("Field", "limit"),
            ),
        ];
        for (control, fc) in cases {
            assert_eq!(control.to_fc(), fc);
        }
        let store = ControlError::Store(fcx_store::StoreError::Corrupt("x".into())).to_fc();
        assert_eq!(store.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
