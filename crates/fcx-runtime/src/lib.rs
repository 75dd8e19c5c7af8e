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
pub mod netns;
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
pub use process::{ProcessBackend, ProcessConfig};
pub use spec::{EventOutcome, ExitReason, InstanceSpec};
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
}

impl StartError {
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
