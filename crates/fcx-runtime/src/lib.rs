//! Instances and how they run: the `process` backend (host processes, each in its own network
//! namespace, as an unprivileged user), code unpacking, per-instance logs, and connections
//! into an instance's namespace. The scheduler drives it; nothing here knows about HTTP routes.

pub mod body;
pub mod cgroup;
pub mod code;
pub mod egress;
pub mod host;
mod instance;
pub mod logs;
pub mod mountinfo;
pub mod netns;
pub mod oci;
pub mod pidfile;
mod process;
pub mod procnet;
mod spec;
mod sys;

use std::time::Duration;

pub use body::{Body, BodyError, ResponseBody};
pub use cgroup::CgroupRoot;
pub use code::{CodeCache, CodeError};
pub use instance::{CallError, Instance};
pub use oci::{OciBackend, OciConfig, Sandbox};
pub use process::{ProcessBackend, ProcessConfig};
pub use spec::{ContainerSpec, EventOutcome, ExitReason, InstanceSpec};
pub use sys::{is_root, lookup_user};

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The server did not come up: FC's FunctionNotStarted.
    #[error("function not started after {elapsed:?}: {cause}")]
    NotStarted {
        elapsed: Duration,
        cause: String,
        logs: String,
    },
    /// Namespace, pipe or thread setup failed on the host.
    #[error("cannot prepare the instance sandbox: {0}")]
    Namespace(std::io::Error),
    /// A failure with its own diagnosis (OCI instances: bad entrypoint, cgroups, OOM, ...).
    #[error("{message}")]
    Failed {
        kind: StartFailure,
        message: String,
        logs: String,
    },
}

/// Start failures that each have their own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailure {
    /// The command does not exist in the image.
    EntrypointNotFound,
    /// The command exists but cannot be executed (wrong architecture, not executable).
    EntrypointNotExecutable,
    /// The OCI runtime binary is missing.
    RuntimeMissing,
    /// The host's cgroups refused the instance's group or limits.
    CgroupRefused,
    /// Killed for exceeding `memorySize` while starting.
    OutOfMemory,
    /// Mounting the rootfs or writing the bundle failed.
    Sandbox,
}

impl StartError {
    pub(crate) fn failed(kind: StartFailure, message: String) -> StartError {
        StartError::Failed {
            kind,
            message,
            logs: String::new(),
        }
    }

    pub(crate) fn with_logs(self, logs: String) -> StartError {
        match self {
            StartError::Failed { kind, message, .. } => StartError::Failed {
                kind,
                message,
                logs,
            },
            other => other,
        }
    }

    fn not_started(elapsed: Duration, cause: String, logs: String) -> StartError {
        StartError::NotStarted {
            elapsed,
            cause,
            logs,
        }
    }

    fn spawn(spec: &InstanceSpec, cause: String) -> StartError {
        let _ = spec;
        StartError::NotStarted {
            elapsed: Duration::ZERO,
            cause,
            logs: String::new(),
        }
    }
}
