//! Platform errors: FC's codes, their HTTP statuses and JSON bodies, in one place.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// FC error codes fcx answers with (fc-protocol.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    MissingRequiredHeader,
    PathNotSupported,
    EntityTooLarge,
    SignatureNotMatch,
    InvalidAccessKeyID,
    FunctionNotFound,
    FunctionAlreadyExists,
    VersionNotFound,
    AliasNotFound,
    AliasAlreadyExists,
    TriggerNotFound,
    TriggerAlreadyExists,
    NotFound,
    ResourceExhausted,
    FunctionNotStarted,
    ProcessExited,
    BadResponse,
    ImageNotFound,
    ImageAccessDenied,
    RegistryUnreachable,
    ImagePlatformNotSupported,
    ImageInvalid,
    EntrypointNotFound,
    EntrypointNotExecutable,
    MemoryLimitExceeded,
    RuntimeUnavailable,
    CgroupSetupFailed,
    /// A node of several lost the shared store for longer than its documented bound.
    NodeOutOfSync,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "InvalidArgument",
            Self::MissingRequiredHeader => "MissingRequiredHeader",
            Self::PathNotSupported => "PathNotSupported",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::SignatureNotMatch => "SignatureNotMatch",
            Self::InvalidAccessKeyID => "InvalidAccessKeyID",
            Self::FunctionNotFound => "FunctionNotFound",
            Self::FunctionAlreadyExists => "FunctionAlreadyExists",
            Self::VersionNotFound => "VersionNotFound",
            Self::AliasNotFound => "AliasNotFound",
            Self::AliasAlreadyExists => "AliasAlreadyExists",
            Self::TriggerNotFound => "TriggerNotFound",
            Self::TriggerAlreadyExists => "TriggerAlreadyExists",
            Self::NotFound => "NotFound",
            Self::ResourceExhausted => "ResourceExhausted",
            Self::FunctionNotStarted => "FunctionNotStarted",
            Self::ProcessExited => "ProcessExited",
            Self::BadResponse => "BadResponse",
            Self::ImageNotFound => "ImageNotFound",
            Self::ImageAccessDenied => "ImageAccessDenied",
            Self::RegistryUnreachable => "RegistryUnreachable",
            Self::ImagePlatformNotSupported => "ImagePlatformNotSupported",
            Self::ImageInvalid => "ImageInvalid",
            Self::EntrypointNotFound => "EntrypointNotFound",
            Self::EntrypointNotExecutable => "EntrypointNotExecutable",
            Self::MemoryLimitExceeded => "MemoryLimitExceeded",
            Self::RuntimeUnavailable => "RuntimeUnavailable",
            Self::CgroupSetupFailed => "CgroupSetupFailed",
            Self::NodeOutOfSync => "NodeOutOfSync",
            Self::InternalServerError => "InternalServerError",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidArgument
            | Self::MissingRequiredHeader
            | Self::PathNotSupported
            | Self::EntityTooLarge => StatusCode::BAD_REQUEST,
            Self::SignatureNotMatch | Self::InvalidAccessKeyID => StatusCode::FORBIDDEN,
            Self::FunctionNotFound
            | Self::VersionNotFound
            | Self::AliasNotFound
            | Self::TriggerNotFound
            | Self::NotFound => StatusCode::NOT_FOUND,
            Self::FunctionAlreadyExists | Self::AliasAlreadyExists | Self::TriggerAlreadyExists => {
                StatusCode::CONFLICT
            }
            Self::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::FunctionNotStarted
            | Self::ProcessExited
            | Self::BadResponse
            | Self::ImageNotFound
            | Self::ImageAccessDenied
            | Self::RegistryUnreachable
            | Self::ImagePlatformNotSupported
            | Self::ImageInvalid
            | Self::EntrypointNotFound
            | Self::EntrypointNotExecutable
            | Self::MemoryLimitExceeded => StatusCode::BAD_GATEWAY,
            Self::RuntimeUnavailable | Self::CgroupSetupFailed | Self::NodeOutOfSync => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Errors caused by the function's own process carry `x-fc-error-type` as well, so
    /// clients that only look at that header still see a function error.
    pub fn is_function_fault(self) -> bool {
        matches!(
            self,
            Self::FunctionNotStarted
                | Self::ProcessExited
                | Self::EntrypointNotFound
                | Self::EntrypointNotExecutable
                | Self::MemoryLimitExceeded
        )
    }
}

/// Which API generation a request came in on; it decides the error body's key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiFlavor {
    /// 2023-03-30 paths: `{"Code","Message","RequestId"}` (what the FC 3.0 SDKs parse).
    #[default]
    Fc3,
    /// 2016-08-15 and 2021-04-06 paths: `{"ErrorCode","ErrorMessage","RequestId"}` (aliyun-fc2).
    Fc2,
}

/// A platform error: code, message and optional fcx-only detail fields that FC clients ignore.
#[derive(Debug, Clone, PartialEq)]
pub struct FcError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields added to the body (fcx's diagnosis, limits); FC SDKs ignore them.
    pub detail: Map<String, Value>,
    /// Seconds for `Retry-After` on throttling.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for FcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for FcError {}

impl FcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: Map::new(),
            retry_after: None,
        }
    }

    /// Adds an fcx-only field to the body.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn function_not_found(name: &str) -> Self {
        Self::new(
            ErrorCode::FunctionNotFound,
            format!("function '{name}' does not exist"),
        )
    }

    pub fn function_already_exists(name: &str) -> Self {
        Self::new(
            ErrorCode::FunctionAlreadyExists,
            format!("function '{name}' already exists"),
        )
    }

    pub fn entity_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::EntityTooLarge,
            format!("payload size exceeds maximum allowed size ({limit} bytes)"),
        )
        .with_detail("Limit", limit)
    }

    pub fn missing_required_header(name: &str) -> Self {
        Self::new(
            ErrorCode::MissingRequiredHeader,
            format!("required HTTP header {name} was not specified"),
        )
    }

    /// A signed request whose signature, body hash, date or nonce does not hold up.
    pub fn signature_not_match(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SignatureNotMatch, message)
    }

    pub fn invalid_access_key_id(id: &str) -> Self {
        Self::new(
            ErrorCode::InvalidAccessKeyID,
            format!("invalid access key ID '{id}'"),
        )
    }

    /// A method the API path does not take, e.g. a browser's `GET .../invocations`.
    pub fn path_not_supported(method: &str, path: &str) -> Self {
        Self::new(
            ErrorCode::PathNotSupported,
            format!("'{method}' against '{path}' is not supported. {EVENT_VS_HTTP}"),
        )
    }

    /// A path fcx does not serve at all.
    pub fn unknown_path(method: &str, path: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("'{method}' against '{path}' matches no API. {EVENT_VS_HTTP}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalServerError, message)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON body in the shape the given API generation's SDKs parse.
    pub fn body(&self, flavor: ApiFlavor, request_id: &str) -> Vec<u8> {
        let (code, message, rid) = match flavor {
            ApiFlavor::Fc3 => ("Code", "Message", "RequestId"),
            ApiFlavor::Fc2 => ("ErrorCode", "ErrorMessage", "RequestId"),
        };
        let mut body = Map::new();
        body.insert(code.into(), json!(self.code.as_str()));
        body.insert(message.into(), json!(self.message));
        body.insert(rid.into(), json!(request_id));
        for (k, v) in &self.detail {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
    }
}

/// The seed's FAQ answer, appended to 404s and PathNotSupported: browsers hit event functions.
pub const EVENT_VS_HTTP: &str = "Event functions are invoked with POST /2023-03-30/functions/{functionName}/invocations (an FC SDK, or curl -X POST); a browser GET or an arbitrary path reaches no function. To serve browsers, use an HTTP function with an HTTP trigger";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn fc3_body_uses_sdk_keys() {
        let e = FcError::function_not_found("f").with_detail("Hint", "x");
        let v = parse(&e.body(ApiFlavor::Fc3, "rid"));
        assert_eq!(v["Code"], "FunctionNotFound");
        assert_eq!(v["Message"], "function 'f' does not exist");
        assert_eq!(v["RequestId"], "rid");
        assert_eq!(v["Hint"], "x");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn fc2_body_uses_aliyun_fc2_keys() {
        let v = parse(&FcError::entity_too_large(10).body(ApiFlavor::Fc2, "rid"));
        assert_eq!(v["ErrorCode"], "EntityTooLarge");
        assert_eq!(
            v["ErrorMessage"],
            "payload size exceeds maximum allowed size (10 bytes)"
        );
    }

    #[test]
    fn detail_cannot_override_standard_keys() {
        let e = FcError::internal("m").with_detail("Code", "Other");
        assert_eq!(
            parse(&e.body(ApiFlavor::Fc3, "r"))["Code"],
            "InternalServerError"
        );
    }

    #[test]
    fn statuses_follow_fc() {
        assert_eq!(
            ErrorCode::FunctionAlreadyExists.status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ErrorCode::ResourceExhausted.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(ErrorCode::ProcessExited.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(ErrorCode::SignatureNotMatch.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            FcError::invalid_access_key_id("k").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ErrorCode::PathNotSupported.status(),
            StatusCode::BAD_REQUEST
        );
        assert!(FcError::path_not_supported("GET", "/p")
            .message
            .starts_with("'GET' against '/p' is not supported"));
    }
}
