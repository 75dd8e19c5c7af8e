//! What control-plane operations fail with. Causes are kept; the gateway maps each variant
//! to FC's code, status and message in its one error-mapping place.

use fcx_model::ModelError;
use fcx_store::StoreError;

pub use fcx_async::AsyncError;
pub use fcx_scheduler::SchedulerError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("function '{0}' does not exist")]
    FunctionNotFound(String),
    #[error("function '{0}' already exists")]
    FunctionExists(String),
    #[error("version '{version}' of function '{function}' does not exist")]
    VersionNotFound { function: String, version: String },
    #[error("alias '{alias}' of function '{function}' does not exist")]
    AliasNotFound { function: String, alias: String },
    #[error("alias '{alias}' of function '{function}' already exists")]
    AliasExists { function: String, alias: String },
    #[error("trigger '{trigger}' of function '{function}' does not exist")]
    TriggerNotFound { function: String, trigger: String },
    #[error("trigger '{trigger}' of function '{function}' already exists")]
    TriggerExists { function: String, trigger: String },
    #[error("function '{0}' has no async invoke config")]
    AsyncConfigNotFound(String),
    #[error("async task '{task}' of function '{function}' does not exist")]
    TaskNotFound { function: String, task: String },
    /// A parameter or body field is wrong; the error names the field (FC's camelCase path).
    /// This node has not re-read the shared store for longer than it may serve without it.
    #[error(
        "this node has not reached the shared store for {secs} s (more than 3 × --sync-interval): \
         it refuses invocations rather than serve functions that may have changed; another node \
         can serve them"
    )]
    OutOfSync { secs: u64 },
    #[error(transparent)]
    Invalid(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored document does not decode (`what` names it).
    #[error("stored {what} is corrupt: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Scheduler(SchedulerError),
    #[error(transparent)]
    Async(AsyncError),
    /// The blocking task running a command panicked or was cancelled at shutdown.
    #[error("the command did not finish: {0}")]
    Interrupted(#[source] tokio::task::JoinError),
}

impl ControlError {
    /// A wrong parameter or field, as a validation error naming it.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ControlError {
        ControlError::Invalid(ModelError::new(field, message))
    }
}

/// Decodes a stored JSON document, naming it when it is corrupt.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    doc: &str,
) -> Result<T, ControlError> {
    serde_json::from_str(doc).map_err(|source| ControlError::Corrupt {
        what: what(),
        source,
    })
}

/// Encodes a document for the store.
pub(crate) fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<String, ControlError> {
    serde_json::to_string(value).map_err(|source| ControlError::Encode {
        what: what.to_owned(),
        source,
    })
}
