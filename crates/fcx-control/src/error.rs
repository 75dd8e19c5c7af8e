//! What control-plane operations fail with. Causes are kept; the gateway maps each variant
//! to FC's code, status and message in its one error-mapping place.

use fcx_model::ModelError;
use fcx_store::StoreError;

pub use fcx_async::AsyncError;
pub use fcx_scheduler::SchedulerError;

/// Why a management command or an invocation entry failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No function of this name is stored.
    #[error("function '{0}' does not exist")]
    FunctionNotFound(String),
    /// CreateFunction for a name in use.
    #[error("function '{0}' already exists")]
    FunctionExists(String),
    /// The function has no published version of that id.
    #[error("version '{version}' of function '{function}' does not exist")]
    VersionNotFound {
        /// The function's name.
        function: String,
        /// The version id asked for.
        version: String,
    },
    /// The function has no alias of that name.
    #[error("alias '{alias}' of function '{function}' does not exist")]
    AliasNotFound {
        /// The function's name.
        function: String,
        /// The alias's name.
        alias: String,
    },
    /// CreateAlias for a name in use.
    #[error("alias '{alias}' of function '{function}' already exists")]
    AliasExists {
        /// The function's name.
        function: String,
        /// The alias's name.
        alias: String,
    },
    /// The function has no trigger of that name.
    #[error("trigger '{trigger}' of function '{function}' does not exist")]
    TriggerNotFound {
        /// The function's name.
        function: String,
        /// The trigger's name.
        trigger: String,
    },
    /// CreateTrigger for a name in use.
    #[error("trigger '{trigger}' of function '{function}' already exists")]
    TriggerExists {
        /// The function's name.
        function: String,
        /// The trigger's name.
        trigger: String,
    },
    /// A second HTTP trigger for a function qualifier that has one.
    #[error(
        "function '{function}' already has the HTTP trigger '{existing}' for qualifier \
         '{qualifier}': FC serves one HTTP trigger per function qualifier; update that trigger \
         or use another qualifier"
    )]
    HttpTriggerExists {
        /// The function's name.
        function: String,
        /// The qualifier both triggers would serve.
        qualifier: String,
        /// The name of the HTTP trigger already there.
        existing: String,
    },
    /// No custom domain of that name.
    #[error("custom domain '{0}' does not exist")]
    DomainNotFound(String),
    /// CreateCustomDomain for a name in use.
    #[error("custom domain '{0}' already exists")]
    DomainExists(String),
    /// GetAsyncInvokeConfig or DeleteAsyncInvokeConfig on a function without one.
    #[error("function '{0}' has no async invoke config")]
    AsyncConfigNotFound(String),
    /// The function has no async task of that id.
    #[error("async task '{task}' of function '{function}' does not exist")]
    TaskNotFound {
        /// The function's name.
        function: String,
        /// The task id asked for.
        task: String,
    },
    /// This node has not re-read the shared store for longer than it may serve without it.
    #[error(
        "this node has not reached the shared store for {secs} s (more than 3 × --sync-interval): \
         it refuses invocations rather than serve functions that may have changed; another node \
         can serve them"
    )]
    OutOfSync {
        /// Seconds since its last successful re-read.
        secs: u64,
    },
    /// A parameter or body field is wrong; the error names the field (FC's camelCase path).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored document does not decode (`what` names it).
    #[error("stored {what} is corrupt: {source}")]
    Corrupt {
        /// Which document (function, version, alias, ...).
        what: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A document could not be encoded for the store.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// Which document.
        what: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A file (code package, log) could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What fcx was doing, with the path.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The scheduler refused or failed (invocations, instance listings).
    #[error(transparent)]
    Scheduler(SchedulerError),
    /// The async layer refused or failed (enqueue, task queries).
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
