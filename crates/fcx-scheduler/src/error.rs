//! Why an invocation did not reach (or not come back from) the function: the scheduler's
//! errors, each keeping its cause. FC codes and HTTP statuses are not decided here: the
//! gateway maps these variants (`fcx-gateway/src/error.rs`), in one place.

use std::time::Duration;

use fcx_image::ImageError;
use fcx_runtime::{BackendKind, CallError, CodeError, ExitReason, StartError};

/// A boxed cause (a broken connection or body).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the scheduler could not run an invocation, or why it broke off.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// No function of that name is deployed on this node.
    #[error("function '{function}' does not exist")]
    FunctionNotFound {
        /// The function's name.
        function: String,
    },

    /// The function has no deployed version of that id.
    #[error("version '{version}' of function '{function}' does not exist")]
    VersionNotFound {
        /// The function's name.
        function: String,
        /// The version id asked for.
        version: String,
    },

    /// The function's `reservedConcurrency` is in use.
    #[error(
        "Reserved concurrency of function '{function}' exhausted: reservedConcurrency is \
         {reserved} and {inflight} requests are in flight"
    )]
    ReservedConcurrency {
        /// The function's name.
        function: String,
        /// Its `reservedConcurrency`.
        reserved: u64,
        /// Its requests in flight when this one came.
        inflight: u32,
    },

    /// The server runs `--max-instances` instances already.
    #[error(
        "Instance limit of this fcx server reached: {max} instances are running (server flag \
         --max-instances)"
    )]
    InstanceLimit {
        /// `--max-instances`.
        max: u32,
    },

    /// This node runs its leased share of the cluster's instance cap already.
    #[error(
        "Instance limit of the cluster reached: this node runs its share of {share} of the \
         {max} instances all nodes together may run (server flag --cluster-max-instances \
         {max}); shares are rebalanced every second"
    )]
    ClusterInstanceLimit {
        /// `--cluster-max-instances`.
        max: u32,
        /// This node's share of it when the instance was refused.
        share: u32,
    },

    /// No instance became ready for this request within the start timeout (another
    /// request's start it waited for failed or took too long).
    #[error(
        "The CA's http server cannot be started: no instance of function '{function}' became \
         ready within the start timeout of {}s", start_timeout.as_secs()
    )]
    NoInstanceReady {
        /// The function's name.
        function: String,
        /// How long the request waited.
        start_timeout: Duration,
    },

    /// The instance did not start.
    #[error(transparent)]
    Start(StartError),

    /// The function's image could not be had.
    #[error(transparent)]
    Image(ImageError),

    /// The function's code package could not be unpacked.
    #[error(transparent)]
    Code(CodeError),

    /// The function record names no code package and no image (a record fcx did not write).
    #[error("function '{function}' has neither code nor an image")]
    NoCodeOrImage {
        /// The function's name.
        function: String,
    },

    /// The function has no instance uid (none could be allocated from the range).
    #[error(
        "function '{function}' has no instance uid: the server could not allocate one from \
         --instance-uids (see its log)"
    )]
    NoInstanceUser {
        /// The function.
        function: String,
    },

    /// The function needs a backend this server does not run.
    #[error(
        "function '{function}' runs the container image {image}, but this fcx server runs \
         without an OCI runtime (--oci-runtime none); restart it with --oci-runtime crun (run \
         `fcx doctor` first)"
    )]
    BackendUnavailable {
        /// The function's name.
        function: String,
        /// The image it runs.
        image: String,
        /// The backend it needs.
        kind: BackendKind,
    },

    /// `customContainerConfig.registryConfig` cannot be used.
    #[error("{0}")]
    RegistryConfig(String),

    /// The request body passed the payload limit (bytes).
    #[error("payload size exceeds maximum allowed size ({limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },

    /// The request body could not be read.
    #[error("{0}")]
    PayloadUnreadable(String),

    /// A non-web-server event holds a NUL byte (the kernel cannot pass it).
    #[error(
        "payload: a non-web-server function receives its event in the environment variable \
         FC_CUSTOM_CONTAINER_EVENT, which cannot hold NUL bytes"
    )]
    EventHasNul,

    /// A non-web-server event is longer than one environment string may be.
    #[error(
        "payload: {len} bytes exceed the {limit} bytes the kernel allows in the environment \
         variable FC_CUSTOM_CONTAINER_EVENT of a non-web-server function"
    )]
    EventTooLarge {
        /// The event's length in bytes.
        len: usize,
        /// The kernel's limit (`MAX_ARG_STRLEN` less the variable's name).
        limit: usize,
    },

    /// A frozen instance could not be thawed to serve the request.
    #[error("cannot thaw instance {instance}: {source}")]
    Thaw {
        /// The instance's id.
        instance: String,
        /// The cgroup's error.
        #[source]
        source: std::io::Error,
    },

    /// The instance's process ended while it served the request or its initializer.
    #[error("Process exited unexpectedly before completing request ({exit})")]
    ProcessExited {
        /// How the process ended.
        exit: ExitReason,
        /// The instance's last output.
        logs: String,
        /// Set when a request (not the initializer) was being served.
        instance_id: Option<String>,
    },

    /// The function's server broke the connection before answering; its process lives on.
    #[error("the function's server broke the connection before answering: {source}")]
    ConnectionBroken {
        /// The connection's error.
        #[source]
        source: Cause,
        /// The instance's last output.
        logs: String,
        /// The instance that was serving.
        instance_id: String,
    },

    /// `/initialize` could not be called (the process still runs).
    #[error("initializer: {0}")]
    InitializerBroken(#[source] CallError),

    /// A provisioned instance's initializer answered with a failure.
    #[error("the initializer failed; the instance log has its output")]
    ProvisionedInitializerFailed,

    /// An HTTP request for a non-web-server function (it only takes events).
    #[error(
        "function '{function}' runs in non-web-server mode and takes events only; HTTP \
         triggers and custom domains need a function whose server answers HTTP requests"
    )]
    NotHttpFunction {
        /// The function's name.
        function: String,
    },

    /// An HTTP call ran past the function's timeout before the function answered.
    #[error("Function time out after {timeout_secs} seconds")]
    Timeout {
        /// The function's timeout.
        timeout_secs: u32,
        /// The instance that was serving.
        instance_id: String,
    },

    /// An internal invariant did not hold.
    #[error("{0}")]
    Internal(&'static str),
}

impl SchedulerError {
    /// The limit that refused the call (`reservedConcurrency`, `maxInstances`,
    /// `clusterMaxInstances`): the `LimitName` of the 429 and the metrics' `limit` label.
    /// Every [`is_throttle`](Self::is_throttle) error has one.
    pub fn limit_name(&self) -> Option<&'static str> {
        match self {
            SchedulerError::ReservedConcurrency { .. } => Some("reservedConcurrency"),
            SchedulerError::InstanceLimit { .. } => Some("maxInstances"),
            SchedulerError::ClusterInstanceLimit { .. } => Some("clusterMaxInstances"),
            _ => None,
        }
    }

    /// The request itself was at fault (answered 4xx): its body broke or timed out while it
    /// was read, was too large, or cannot be passed as an event. Counted as a client error,
    /// not a platform error.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            SchedulerError::PayloadUnreadable(_)
                | SchedulerError::PayloadTooLarge { .. }
                | SchedulerError::EventHasNul
                | SchedulerError::EventTooLarge { .. }
        )
    }

    /// The instance the error happened in, when one was reached.
    pub fn instance_id(&self) -> Option<&str> {
        match self {
            SchedulerError::ProcessExited { instance_id, .. } => instance_id.as_deref(),
            SchedulerError::ConnectionBroken { instance_id, .. } => Some(instance_id),
            _ => None,
        }
    }

    /// A refusal at a limit (reserved concurrency, instance cap): the caller may retry soon,
    /// and an async retry does not count it as an attempt.
    pub fn is_throttle(&self) -> bool {
        matches!(
            self,
            SchedulerError::ReservedConcurrency { .. }
                | SchedulerError::InstanceLimit { .. }
                | SchedulerError::ClusterInstanceLimit { .. }
        )
    }
}

impl From<StartError> for SchedulerError {
    fn from(e: StartError) -> SchedulerError {
        SchedulerError::Start(e)
    }
}

impl From<ImageError> for SchedulerError {
    fn from(e: ImageError) -> SchedulerError {
        SchedulerError::Image(e)
    }
}
