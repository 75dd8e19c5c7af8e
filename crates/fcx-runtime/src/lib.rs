//! Instances and how they run: the [`Backend`] trait and its `process` (host processes, each
//! in its own network namespace, as an unprivileged user) and `oci` (containers under an OCI
//! runtime) implementations, plus a recording fake for unit tests (feature `fake`); code
//! unpacking, per-instance logs, and connections into an instance. The scheduler drives it;
//! nothing here knows about HTTP routes.

mod backend;
pub mod body;
pub mod cgroup;
pub mod code;
mod conn;
pub mod egress;
#[cfg(feature = "fake")]
pub mod fake;
pub(crate) mod group;
pub mod host;
pub mod init;
mod instance;
pub mod logs;
pub mod mountinfo;
pub mod netns;
pub mod oci;
pub mod pidfile;
mod process;
pub mod procnet;
mod scheduling;
pub mod shard;
pub mod snapshot;
mod spec;
mod sys;

use std::time::Duration;

pub use backend::{Backend, BackendKind, Control, InstanceStats, Sandbox};
pub use body::{Body, BodyError, ResponseBody};
pub use cgroup::CgroupRoot;
pub use code::{CodeCache, CodeError};
pub use instance::{CallError, Dial, Instance, InstanceParts};
pub use logs::{InstanceLog, LogSettings, LogWriter, Marker};
pub use oci::{OciBackend, OciConfig};
pub use process::{ProcessBackend, ProcessConfig};
pub use scheduling::Scheduling;
pub use spec::{ContainerSpec, EventOutcome, ExitReason, InstanceSpec};
pub use sys::is_root;

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The server did not come up: FC's FunctionNotStarted.
    #[error("function not started after {elapsed:?}: {cause}")]
    NotStarted {
        /// How long fcx waited.
        elapsed: Duration,
        /// What it saw instead (nothing listening, a wrong address, the process exited).
        cause: String,
        /// The instance's last output.
        logs: String,
    },
    /// Namespace, pipe or thread setup failed on the host.
    #[error("cannot prepare the instance sandbox: {0}")]
    Namespace(std::io::Error),
    /// A failure with its own diagnosis (OCI instances: bad entrypoint, cgroups, OOM, ...).
    #[error("{message}")]
    Failed {
        /// Which failure, which decides the FC code.
        kind: StartFailure,
        /// What went wrong and what to do.
        message: String,
        /// The instance's last output.
        logs: String,
    },
    /// The backend does not do what was asked (e.g. pre-created sandboxes).
    #[error("the {backend} backend does not support {what}")]
    Unsupported {
        /// The backend asked.
        backend: BackendKind,
        /// What it was asked to do.
        what: &'static str,
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
    /// Whether the function itself is to blame (its server never listened, its entrypoint is
    /// bad, it ran out of memory): the answer to the request, rather than a reason to try
    /// another way of starting it.
    pub fn blames_function(&self) -> bool {
        matches!(
            self,
            StartError::NotStarted { .. }
                | StartError::Failed {
                    kind: StartFailure::EntrypointNotFound
                        | StartFailure::EntrypointNotExecutable
                        | StartFailure::OutOfMemory,
                    ..
                }
        )
    }

    /// A failure of kind `kind`; for backends.
    pub fn failed(kind: StartFailure, message: String) -> StartError {
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

    /// The server did not come up after `elapsed`; for backends.
    pub fn not_started(elapsed: Duration, cause: String, logs: String) -> StartError {
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
