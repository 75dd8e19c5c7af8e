//! The one place errors become HTTP responses: every layer's error (the control plane's, the
//! scheduler's, the async layer's) is mapped to FC's code, status, message and extra fields
//! here ([`ToFc`]), and answered in the body shape of the API the request came in on
//! ([`ApiError`]).

use axum::response::{IntoResponse, Response};
use fcx_control::errors::{
    AsyncError, ExitReason, ImageError, SchedulerError, StartError, StartFailure,
};
use fcx_control::ControlError;
use fcx_protocol::{headers, ApiFlavor, ErrorCode, FcError};
use http::HeaderValue;

/// An error as FC reports it.
pub trait ToFc {
    /// The FC code, message and extra fields this error is answered with.
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
            ControlError::TriggerExists { .. } | ControlError::HttpTriggerExists { .. } => {
                ErrorCode::TriggerAlreadyExists
            }
            ControlError::DomainNotFound(_) => ErrorCode::DomainNameNotFound,
            ControlError::DomainExists(_) => ErrorCode::DomainNameAlreadyExists,
            ControlError::AsyncConfigNotFound(_) | ControlError::TaskNotFound { .. } => {
                ErrorCode::NotFound
            }
            ControlError::Invalid(e) => {
                return FcError::invalid_argument(message).with_detail("Field", e.field)
            }
            ControlError::OutOfSync { .. } => ErrorCode::NodeOutOfSync,
            ControlError::Scheduler(e) => return e.to_fc(),
            ControlError::Async(e) => return e.to_fc(),
            ControlError::Store(_)
            | ControlError::Corrupt { .. }
            | ControlError::Encode { .. }
            | ControlError::Io { .. }
            | ControlError::Interrupted(_) => ErrorCode::InternalServerError,
        };
        FcError::new(code, message)
    }
}

impl ToFc for SchedulerError {
    fn to_fc(self) -> FcError {
        scheduler_error(&self)
    }
}

impl ToFc for AsyncError {
    fn to_fc(self) -> FcError {
        async_error(&self)
    }
}

/// A throttle by one of the scheduler's limits: `LimitName` is the name the throttle
/// metrics use for it (one spelling, [`SchedulerError::limit_name`]).
fn limit_throttle(e: &SchedulerError, text: String, limit: u64) -> FcError {
    throttled(text)
        .with_detail("Limit", limit)
        .with_detail("LimitName", e.limit_name().unwrap_or_default())
}

/// FC's answer to a scheduler error.
pub fn scheduler_error(e: &SchedulerError) -> FcError {
    use SchedulerError as E;
    let text = e.to_string();
    match e {
        E::FunctionNotFound { function } => FcError::function_not_found(function),
        E::VersionNotFound { .. } => FcError::new(ErrorCode::VersionNotFound, text),
        E::ReservedConcurrency { reserved, .. } => limit_throttle(e, text, *reserved),
        E::InstanceLimit { max } | E::ClusterInstanceLimit { max, .. } => {
            limit_throttle(e, text, u64::from(*max))
        }
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
            let mut err = FcError::new(code, text);
            if !logs.is_empty() {
                err = err.with_detail("Logs", logs.clone());
            }
            match instance_id {
                Some(id) => err.with_detail("InstanceId", id.clone()),
                None => err,
            }
        }
        E::ConnectionBroken {
            logs, instance_id, ..
        } => {
            let err = FcError::new(ErrorCode::BadResponse, text);
            let err = if logs.is_empty() {
                err
            } else {
                err.with_detail("Logs", logs.clone())
            };
            err.with_detail("InstanceId", instance_id.clone())
        }
        E::InitializerBroken(_) => FcError::new(ErrorCode::BadResponse, text),
        E::NotHttpFunction { .. } => FcError::new(ErrorCode::NotFound, text),
        E::Timeout { instance_id, .. } => FcError::new(ErrorCode::FunctionTimeout, text)
            .with_detail("InstanceId", instance_id.clone()),
        E::Code(_)
        | E::NoCodeOrImage { .. }
        | E::NoInstanceUser { .. }
        | E::Thaw { .. }
        | E::ProvisionedInitializerFailed
        | E::Internal(_) => FcError::internal(text),
    }
}

/// The FC code a scheduler error is answered with: the metrics' `code` label, handed to
/// the scheduler by the binary (it cannot depend on this crate).
pub fn scheduler_error_code(e: &SchedulerError) -> &'static str {
    scheduler_error(e).code.as_str()
}

/// FC's answer to an async-layer error.
pub fn async_error(e: &AsyncError) -> FcError {
    match e {
        AsyncError::Run(e) => scheduler_error(e),
        AsyncError::ResponseBroken(_) => FcError::new(ErrorCode::BadResponse, e.to_string()),
        AsyncError::Enqueue(store) if store.is_disk_full() => FcError::new(
            ErrorCode::StorageFull,
            format!(
                "the async invocation was not accepted: the data dir's disk is full, so it \
                 cannot be queued durably ({e}); nothing was queued, retry once there is room"
            ),
        ),
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

/// An `FcError` answered for one request, in the body shape of the API it came in on.
#[derive(Debug)]
pub struct ApiError {
    /// What is answered.
    pub error: FcError,
    /// Which body shape (`Code`/`Message` or `ErrorCode`/`ErrorMessage`).
    pub flavor: ApiFlavor,
    /// The request's `x-fc-request-id`, also in the body.
    pub request_id: String,
}

impl ApiError {
    /// `error` mapped to FC's terms, for the request `request_id`.
    pub fn new(error: impl ToFc, flavor: ApiFlavor, request_id: &str) -> ApiError {
        ApiError {
            error: error.to_fc(),
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
    fn throttles_name_their_limit_as_the_metrics_do() {
        let cases = [
            (
                SchedulerError::ReservedConcurrency {
                    function: "f".into(),
                    reserved: 3,
                    inflight: 3,
                },
                3,
                "reservedConcurrency",
            ),
            (SchedulerError::InstanceLimit { max: 8 }, 8, "maxInstances"),
            (
                SchedulerError::ClusterInstanceLimit { max: 30, share: 10 },
                30,
                "clusterMaxInstances",
            ),
        ];
        for (e, limit, name) in cases {
            let fc = scheduler_error(&e);
            assert_eq!(fc.code, ErrorCode::ResourceExhausted, "{e}");
            assert_eq!(fc.retry_after, Some(1), "{e}");
            assert_eq!(fc.detail["Limit"], limit, "{e}");
            assert_eq!(fc.detail["LimitName"], name, "{e}");
            assert_eq!(e.limit_name(), Some(name));
        }
    }

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
