//! The one place errors become FC's platform errors and HTTP responses: the scheduler's and
//! the async layer's typed errors are mapped to FC codes, messages and extra fields here
//! ([`scheduler_error`], [`async_error`]), and every `FcError` is answered by [`ApiError`].

use axum::response::{IntoResponse, Response};
use fcx_async::AsyncError;
use fcx_protocol::{headers, ApiFlavor, ErrorCode, FcError};
use fcx_scheduler::{ExitReason, ImageError, SchedulerError, StartError, StartFailure};
use http::{HeaderValue, StatusCode};

/// FC's answer to a scheduler error.
pub fn scheduler_error(e: &SchedulerError) -> FcError {
    use SchedulerError as E;
    let text = e.to_string();
    match e {
        E::FunctionNotFound { function } => FcError::function_not_found(function),
        E::VersionNotFound { .. } => FcError::new(ErrorCode::VersionNotFound, text),
        E::ReservedConcurrency { reserved, .. } => throttled(text)
            .with_detail("Limit", *reserved)
            .with_detail("LimitName", "reservedConcurrency"),
        E::InstanceLimit { max } => throttled(text)
            .with_detail("Limit", *max)
            .with_detail("LimitName", "maxInstances"),
        E::NoInstanceReady { .. } => FcError::new(ErrorCode::FunctionNotStarted, text),
        E::Start(start) => start_error(start),
        E::Image(image) => image_error(image),
        E::BackendUnavailable { .. } => FcError::new(ErrorCode::RuntimeUnavailable, text),
        E::RegistryConfig(_) | E::PayloadUnreadable(_) | E::EventHasNul => {
            FcError::invalid_argument(text)
        }
        E::EventTooLarge { limit, .. } => {
            FcError::invalid_argument(text).with_detail("Limit", *limit)
        }
        E::PayloadTooLarge { limit } => FcError::entity_too_large(*limit),
        E::ProcessExited {
            exit,
            logs,
            instance_id,
        } => {
            // The kernel's OOM kill has its own code: the fix is memorySize, not the code.
            let code = match exit {
                ExitReason::OutOfMemory(_) => ErrorCode::MemoryLimitExceeded,
                _ => ErrorCode::ProcessExited,
            };
            let err = FcError::new(code, text).with_detail("Logs", logs.clone());
            match instance_id {
                Some(id) => err.with_detail("InstanceId", id.clone()),
                None => err,
            }
        }
        E::ConnectionBroken {
            logs, instance_id, ..
        } => FcError::new(ErrorCode::BadResponse, text)
            .with_detail("Logs", logs.clone())
            .with_detail("InstanceId", instance_id.clone()),
        E::InitializerBroken(_) => FcError::new(ErrorCode::BadResponse, text),
        E::Code(_)
        | E::NoCodeOrImage { .. }
        | E::Thaw { .. }
        | E::ProvisionedInitializerFailed
        | E::Internal(_) => FcError::internal(text),
    }
}

/// FC's answer to an async-layer error.
pub fn async_error(e: &AsyncError) -> FcError {
    match e {
        AsyncError::Run(e) => scheduler_error(e),
        AsyncError::ResponseBroken(_) => FcError::new(ErrorCode::BadResponse, e.to_string()),
        AsyncError::Enqueue(_) | AsyncError::Store(_) => FcError::internal(e.to_string()),
    }
}

/// How a failed async run reads in its task record (`Code: message`); handed to the
/// async service, so task records and HTTP answers share this one mapping.
pub fn async_error_text(e: &AsyncError) -> String {
    async_error(e).to_string()
}

fn throttled(message: String) -> FcError {
    let mut e = FcError::new(ErrorCode::ResourceExhausted, message);
    e.retry_after = Some(1);
    e
}

/// FC's answer to an image that could not be had.
fn image_error(e: &ImageError) -> FcError {
    let code = match e {
        ImageError::NotFound { .. } => ErrorCode::ImageNotFound,
        ImageError::Unauthorized { .. } => ErrorCode::ImageAccessDenied,
        ImageError::Unreachable { .. } => ErrorCode::RegistryUnreachable,
        ImageError::UnsupportedPlatform { .. } => ErrorCode::ImagePlatformNotSupported,
        ImageError::DigestMismatch { .. }
        | ImageError::UnsafeLayer { .. }
        | ImageError::Invalid { .. } => ErrorCode::ImageInvalid,
        ImageError::Io(_) => ErrorCode::InternalServerError,
    };
    FcError::new(code, e.to_string())
}

/// FC's answer to an instance that did not start.
fn start_error(e: &StartError) -> FcError {
    match e {
        StartError::NotStarted {
            elapsed,
            cause,
            logs,
        } => FcError::new(
            ErrorCode::FunctionNotStarted,
            format!(
                "The CA's http server cannot be started:ContainerStartDuration:{}. \
                 Ping CA failed due to: {cause} Logs : {logs}",
                elapsed.as_nanos()
            ),
        )
        .with_detail("Diagnosis", cause.clone()),
        StartError::Failed {
            kind,
            message,
            logs,
        } => {
            let code = match kind {
                StartFailure::EntrypointNotFound => ErrorCode::EntrypointNotFound,
                StartFailure::EntrypointNotExecutable => ErrorCode::EntrypointNotExecutable,
                StartFailure::RuntimeMissing => ErrorCode::RuntimeUnavailable,
                StartFailure::CgroupRefused => ErrorCode::CgroupSetupFailed,
                StartFailure::OutOfMemory => ErrorCode::MemoryLimitExceeded,
                StartFailure::Sandbox => ErrorCode::InternalServerError,
            };
            let mut err = FcError::new(code, message.clone());
            if !logs.is_empty() {
                err = err.with_detail("Logs", logs.clone());
            }
            err
        }
        other => FcError::internal(other.to_string()),
    }
}

/// Anything the gateway answers as a platform error.
pub trait IntoFcError {
    fn into_fc_error(self) -> FcError;
}

impl IntoFcError for FcError {
    fn into_fc_error(self) -> FcError {
        self
    }
}

impl IntoFcError for SchedulerError {
    fn into_fc_error(self) -> FcError {
        scheduler_error(&self)
    }
}

impl IntoFcError for AsyncError {
    fn into_fc_error(self) -> FcError {
        async_error(&self)
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
    pub fn new(error: impl IntoFcError, flavor: ApiFlavor, request_id: &str) -> ApiError {
        ApiError {
            error: error.into_fc_error(),
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
