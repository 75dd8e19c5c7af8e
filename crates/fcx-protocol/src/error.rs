//! Platform errors: FC's codes, their HTTP statuses and JSON bodies, in one place.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// FC error codes fcx answers with (fc-protocol.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A request field or parameter has a value FC does not accept (400).
    InvalidArgument,
    /// A header the operation needs is absent (400).
    MissingRequiredHeader,
    /// The method is not served on this API path (400).
    PathNotSupported,
    /// A body or payload over its limit (400).
    EntityTooLarge,
    /// The request signature, body hash, date or nonce does not check out (403).
    SignatureNotMatch,
    /// The signing key is unknown (403).
    InvalidAccessKeyID,
    /// A JWT-protected trigger or domain without a valid token.
    Unauthorized,
    /// `disableURLInternet` on a trigger's host-based URL.
    AccessDenied,
    /// A method a trigger or route does not take (with `Allow`).
    MethodNotAllowed,
    /// No custom domain of that name (404).
    DomainNameNotFound,
    /// CreateCustomDomain with a name already taken (409).
    DomainNameAlreadyExists,
    /// No function of that name (404).
    FunctionNotFound,
    /// CreateFunction with a name already taken (409).
    FunctionAlreadyExists,
    /// The qualifier or version id names no published version (404).
    VersionNotFound,
    /// No alias of that name on the function (404).
    AliasNotFound,
    /// CreateAlias with a name already taken (409).
    AliasAlreadyExists,
    /// No trigger of that name on the function (404).
    TriggerNotFound,
    /// CreateTrigger with a name already taken (409).
    TriggerAlreadyExists,
    /// A path that matches no API, or a resource other than the above that is missing (404).
    NotFound,
    /// A concurrency or instance limit refused the request (429, with `Retry-After`).
    ResourceExhausted,
    /// The instance did not listen on its port in time (502).
    FunctionNotStarted,
    /// The function's process exited while serving (502).
    ProcessExited,
    /// The instance closed the connection without an answer while still running (502).
    BadResponse,
    /// An HTTP call ran past the function's timeout (fcx: 504, see ARCHITECTURE.md).
    FunctionTimeout,
    /// The registry does not have the image (502).
    ImageNotFound,
    /// The registry refused the credentials for the image (502).
    ImageAccessDenied,
    /// The registry could not be reached (502).
    RegistryUnreachable,
    /// The image has no manifest for this host's platform (502).
    ImagePlatformNotSupported,
    /// A blob's digest does not match or a layer is unsafe to unpack (502).
    ImageInvalid,
    /// The container's entrypoint does not exist in the image (502).
    EntrypointNotFound,
    /// The container's entrypoint cannot be executed (502).
    EntrypointNotExecutable,
    /// The instance was killed at its memory limit (502).
    MemoryLimitExceeded,
    /// The backend the function needs is not available on this server (503).
    RuntimeUnavailable,
    /// The server has `--max-connections` client connections open (503, with `Retry-After`).
    TooManyConnections,
    /// The data dir's disk is full: what the request would store cannot be kept (503).
    StorageFull,
    /// The host's cgroups refused the instance's group (503).
    CgroupSetupFailed,
    /// A node of several lost the shared store for longer than its documented bound (503).
    NodeOutOfSync,
    /// A fault of fcx itself (500).
    InternalServerError,
}

impl ErrorCode {
    /// The code as FC spells it in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "InvalidArgument",
            Self::MissingRequiredHeader => "MissingRequiredHeader",
            Self::PathNotSupported => "PathNotSupported",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::SignatureNotMatch => "SignatureNotMatch",
            Self::InvalidAccessKeyID => "InvalidAccessKeyID",
            Self::Unauthorized => "Unauthorized",
            Self::AccessDenied => "AccessDenied",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::DomainNameNotFound => "DomainNameNotFound",
            Self::DomainNameAlreadyExists => "DomainNameAlreadyExists",
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
            Self::FunctionTimeout => "FunctionTimeout",
            Self::ImageNotFound => "ImageNotFound",
            Self::ImageAccessDenied => "ImageAccessDenied",
            Self::RegistryUnreachable => "RegistryUnreachable",
            Self::ImagePlatformNotSupported => "ImagePlatformNotSupported",
            Self::ImageInvalid => "ImageInvalid",
            Self::EntrypointNotFound => "EntrypointNotFound",
            Self::EntrypointNotExecutable => "EntrypointNotExecutable",
            Self::MemoryLimitExceeded => "MemoryLimitExceeded",
            Self::RuntimeUnavailable => "RuntimeUnavailable",
            Self::TooManyConnections => "TooManyConnections",
            Self::StorageFull => "StorageFull",
            Self::CgroupSetupFailed => "CgroupSetupFailed",
            Self::NodeOutOfSync => "NodeOutOfSync",
            Self::InternalServerError => "InternalServerError",
        }
    }

    /// The HTTP status FC answers this code with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidArgument
            | Self::MissingRequiredHeader
            | Self::PathNotSupported
            | Self::EntityTooLarge => StatusCode::BAD_REQUEST,
            Self::SignatureNotMatch | Self::InvalidAccessKeyID | Self::AccessDenied => {
                StatusCode::FORBIDDEN
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::DomainNameNotFound => StatusCode::NOT_FOUND,
            Self::DomainNameAlreadyExists => StatusCode::CONFLICT,
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
            Self::RuntimeUnavailable
            | Self::CgroupSetupFailed
            | Self::TooManyConnections
            | Self::StorageFull
            | Self::NodeOutOfSync => StatusCode::SERVICE_UNAVAILABLE,
            Self::FunctionTimeout => StatusCode::GATEWAY_TIMEOUT,
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
                | Self::FunctionTimeout
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
    /// What kind of error, which decides the status.
    pub code: ErrorCode,
    /// What went wrong, with the offending value (the body's `Message`).
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
    /// An error without detail fields or `Retry-After`.
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

    /// A rejected request value; the message names it.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The named function does not exist.
    pub fn function_not_found(name: &str) -> Self {
        Self::new(
            ErrorCode::FunctionNotFound,
            format!("function '{name}' does not exist"),
        )
    }

    /// CreateFunction for a name already in use.
    pub fn function_already_exists(name: &str) -> Self {
        Self::new(
            ErrorCode::FunctionAlreadyExists,
            format!("function '{name}' already exists"),
        )
    }

    /// A body over `limit` bytes; the limit is also in the `Limit` field.
    pub fn entity_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::EntityTooLarge,
            format!("payload size exceeds maximum allowed size ({limit} bytes)"),
        )
        .with_detail("Limit", limit)
    }

    /// The header `name` is required but was not sent.
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

    /// A signature made with the unknown access key `id`.
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

    /// No HTTP trigger or custom-domain route answers a web request (issue 11 point 4).
    pub fn no_http_function(what: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!(
                "{what}. Event functions are invoked with the InvokeFunction API (POST \
                 /2023-03-30/functions/{{functionName}}/invocations, an FC SDK, or curl -X POST); \
                 a browser or an arbitrary path reaches no event function. To serve browsers and \
                 HTTP clients, use an HTTP function (a server answering any path) and add an HTTP \
                 trigger to it (CreateTrigger with triggerType http), or route a custom domain to it"
            ),
        )
    }

    /// A fault of fcx itself, not of the request or the function.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalServerError, message)
    }

    /// The HTTP status of the code.
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
