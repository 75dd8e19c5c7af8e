//! Where a queued invocation came from, kept with it in the queue (`origin`): the trigger it
//! came through (named in the instance log) and, for an HTTP request a trigger queued with
//! `X-Fc-Invocation-Type: Async`, the request itself, so the run sends the function the
//! same method, path, query and headers later (the body is the task's payload).

use serde::{Deserialize, Serialize};

/// A queued invocation's origin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The trigger whose call queued it (logged with each attempt).
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The HTTP request a trigger call queued, replayed to the function with its body.
    pub http: Option<HttpRequestShape>,
}

/// An HTTP request without its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequestShape {
    /// The client's method.
    pub method: String,
    /// Path and query as the client sent them.
    pub uri: String,
    /// (name, value) pairs to forward, values as bytes-safe strings (non-UTF-8 values are
    /// left out when queued).
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `x-fc-base-path` (FC 2.0's path form).
    pub base_path: Option<String>,
}

impl Origin {
    pub(crate) fn encode(&self) -> Option<String> {
        (self != &Origin::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    pub(crate) fn decode(text: Option<&str>) -> Origin {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }
}
