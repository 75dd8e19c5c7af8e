//! Header names of FC's invoke contract (lowercase, as HTTP/2 and hyper want them).

/// Request id, on every response fcx sends and every request it makes to an instance.
pub const REQUEST_ID: &str = "x-fc-request-id";
/// Instance that served an invocation (response header).
pub const INSTANCE_ID: &str = "x-fc-instance-id";
/// `HandledInvocationError` / `UnhandledInvocationError` on a failed invocation.
pub const ERROR_TYPE: &str = "x-fc-error-type";
/// `Tail` asks for the invocation's log tail in [`LOG_RESULT`].
pub const LOG_TYPE: &str = "x-fc-log-type";
/// Base64 of the last 4 KB of the invocation's log.
pub const LOG_RESULT: &str = "x-fc-log-result";
/// `Sync` (default) or `Async`.
pub const INVOCATION_TYPE: &str = "x-fc-invocation-type";
/// Success (200) or failure (anything else) reported by the function's server.
pub const STATUS: &str = "x-fc-status";
/// Code checksum of the function that served the call.
pub const CODE_CHECKSUM: &str = "x-fc-code-checksum";

/// Context headers sent to instances on `/initialize`, `/invoke` and the lifecycle hooks.
pub mod context {
    pub const FUNCTION_NAME: &str = "x-fc-function-name";
    pub const FUNCTION_MEMORY: &str = "x-fc-function-memory";
    pub const FUNCTION_TIMEOUT: &str = "x-fc-function-timeout";
    pub const FUNCTION_HANDLER: &str = "x-fc-function-handler";
    pub const FUNCTION_INITIALIZER: &str = "x-fc-function-initializer";
    pub const INITIALIZATION_TIMEOUT: &str = "x-fc-initialization-timeout";
    pub const REGION: &str = "x-fc-region";
    pub const ACCOUNT_ID: &str = "x-fc-account-id";
    pub const QUALIFIER: &str = "x-fc-qualifier";
    pub const VERSION_ID: &str = "x-fc-version-id";
    pub const CONTROL_PATH: &str = "x-fc-control-path";
    pub const SERVICE_NAME: &str = "x-fc-service-name";
}

/// `x-fc-control-path` values.
pub mod control_path {
    pub const INVOKE: &str = "/invoke";
    pub const INITIALIZE: &str = "/initialize";
    pub const HTTP_INVOKE: &str = "/http-invoke";
    pub const PRE_STOP: &str = "/pre-stop";
    pub const PRE_FREEZE: &str = "/pre-freeze";
    /// fcx extension: called on an instance restored from a snapshot, before it serves.
    pub const RESTORE: &str = "/restore";
}

/// `x-fc-error-type` value for every function error fcx reports.
pub const UNHANDLED_INVOCATION_ERROR: &str = "UnhandledInvocationError";
