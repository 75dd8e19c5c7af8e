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
/// Milliseconds the invocation spent in the instance (to the answer's headers when it
/// streams, to its last byte otherwise).
pub const INVOCATION_DURATION: &str = "x-fc-invocation-duration";
/// Peak memory of the instance that served the call, in MB (its cgroup's `memory.peak`).
pub const MAX_MEMORY_USAGE: &str = "x-fc-max-memory-usage";

/// The response headers above as [`http::HeaderName`]s. Inserting a header by a `&str`
/// name copies the name into a new allocation on every insert; these are static.
pub mod name {
    use http::HeaderName;

    /// [`super::REQUEST_ID`].
    pub const REQUEST_ID: HeaderName = HeaderName::from_static(super::REQUEST_ID);
    /// [`super::INSTANCE_ID`].
    pub const INSTANCE_ID: HeaderName = HeaderName::from_static(super::INSTANCE_ID);
    /// [`super::ERROR_TYPE`].
    pub const ERROR_TYPE: HeaderName = HeaderName::from_static(super::ERROR_TYPE);
    /// [`super::LOG_RESULT`].
    pub const LOG_RESULT: HeaderName = HeaderName::from_static(super::LOG_RESULT);
    /// [`super::CODE_CHECKSUM`].
    pub const CODE_CHECKSUM: HeaderName = HeaderName::from_static(super::CODE_CHECKSUM);
    /// [`super::INVOCATION_DURATION`].
    pub const INVOCATION_DURATION: HeaderName = HeaderName::from_static(super::INVOCATION_DURATION);
    /// [`super::MAX_MEMORY_USAGE`].
    pub const MAX_MEMORY_USAGE: HeaderName = HeaderName::from_static(super::MAX_MEMORY_USAGE);
    /// [`crate::trace::TRACEPARENT`].
    pub const TRACEPARENT: HeaderName = HeaderName::from_static(crate::trace::TRACEPARENT);
}

/// Numbers below this have a prebuilt header value in [`small_number`].
const SMALL_NUMBERS: u64 = 1024;

/// `n` as a header value (durations in ms, memory in MB); numbers below 1024, the usual
/// case, come from a table built once, so the hot path allocates nothing for them.
pub fn small_number(n: u64) -> http::HeaderValue {
    static TABLE: std::sync::OnceLock<Vec<http::HeaderValue>> = std::sync::OnceLock::new();
    if n >= SMALL_NUMBERS {
        return http::HeaderValue::from(n);
    }
    let table = TABLE.get_or_init(|| {
        // One string of all the digits, kept for the process's life (a few KB), so each
        // value is a static slice of it: cloning one touches no reference count.
        let digits: &'static mut str = (0..SMALL_NUMBERS)
            .map(|i| i.to_string())
            .collect::<String>()
            .leak();
        let digits: &'static str = digits;
        let mut at = 0;
        (0..SMALL_NUMBERS)
            .map(|i| {
                let len = i.to_string().len();
                let value = http::HeaderValue::from_static(&digits[at..at + len]);
                at += len;
                value
            })
            .collect()
    });
    table[n as usize].clone()
}

/// Context headers sent to instances on `/initialize`, `/invoke` and the lifecycle hooks.
pub mod context {
    /// The function's name.
    pub const FUNCTION_NAME: &str = "x-fc-function-name";
    /// `memorySize` in MB.
    pub const FUNCTION_MEMORY: &str = "x-fc-function-memory";
    /// The invocation timeout in seconds.
    pub const FUNCTION_TIMEOUT: &str = "x-fc-function-timeout";
    /// The function's `handler` setting.
    pub const FUNCTION_HANDLER: &str = "x-fc-function-handler";
    /// The function's `initializer` setting.
    pub const FUNCTION_INITIALIZER: &str = "x-fc-function-initializer";
    /// The initializer's timeout in seconds.
    pub const INITIALIZATION_TIMEOUT: &str = "x-fc-initialization-timeout";
    /// The region the server reports (`--region`).
    pub const REGION: &str = "x-fc-region";
    /// The account id (16 digits, made at first start).
    pub const ACCOUNT_ID: &str = "x-fc-account-id";
    /// The qualifier the request was invoked with (LATEST, a version, an alias).
    pub const QUALIFIER: &str = "x-fc-qualifier";
    /// The version that serves it (LATEST or an id).
    pub const VERSION_ID: &str = "x-fc-version-id";
    /// Which call this is (one of [`control_path`](super::control_path)).
    pub const CONTROL_PATH: &str = "x-fc-control-path";
    /// The FC 2.0 service named in the request path (sent on FC 2.0 invocations only).
    pub const SERVICE_NAME: &str = "x-fc-service-name";
    /// The FC 2.0 proxy path's prefix (`/2016-08-15/proxy/<service>.<qualifier>/<function>`)
    /// on HTTP calls that came in on that form.
    pub const BASE_PATH: &str = "x-fc-base-path";
}

/// `x-fc-control-path` values.
pub mod control_path {
    /// An event invocation.
    pub const INVOKE: &str = "/invoke";
    /// The initializer, called once per instance before its first invocation.
    pub const INITIALIZE: &str = "/initialize";
    /// An HTTP-trigger invocation (FC's value; fcx has no HTTP triggers yet).
    pub const HTTP_INVOKE: &str = "/http-invoke";
    /// The hook called before an instance is stopped.
    pub const PRE_STOP: &str = "/pre-stop";
    /// The hook called before an instance is frozen.
    pub const PRE_FREEZE: &str = "/pre-freeze";
    /// fcx extension: called on an instance restored from a snapshot, before it serves.
    pub const RESTORE: &str = "/restore";
}

/// `x-fc-error-type` value for every function error fcx reports.
pub const UNHANDLED_INVOCATION_ERROR: &str = "UnhandledInvocationError";

/// A two-valued FC header (`x-fc-invocation-type: Sync|Async`, `x-fc-log-type: None|Tail`):
/// absent is off; `Some(on)` for a spelling in `on` or `off`, `None` for anything else (the
/// caller refuses it, naming what the header takes). Values are matched exactly, as FC does.
pub fn switch(value: Option<&str>, on: &[&str], off: &[&str]) -> Option<bool> {
    match value {
        None => Some(false),
        Some(v) if on.contains(&v) => Some(true),
        Some(v) if off.contains(&v) => Some(false),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_numbers_read_as_themselves() {
        for n in [0, 1, 9, 10, 99, 100, 512, 1023, 1024, 65_536, u64::MAX] {
            assert_eq!(super::small_number(n).to_str().unwrap(), n.to_string());
        }
    }
}
