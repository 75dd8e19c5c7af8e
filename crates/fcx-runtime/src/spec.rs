//! What a backend needs to start an instance: resolved by the scheduler from the function.

use std::path::PathBuf;
use std::time::Duration;

/// One instance's launch description.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Function the instance belongs to (for names and log paths).
    pub function_name: String,
    /// Unpacked code directory: the working directory and `FC_FUNC_CODE_PATH`.
    pub code_dir: PathBuf,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment (FC's variables and the user's); `FC_INSTANCE_ID` is added per instance.
    pub env: Vec<(String, String)>,
    /// CAPort: where the server must listen (web-server mode).
    pub port: u16,
    /// How long the server may take to listen.
    pub start_timeout: Duration,
    /// Whether the instance gets outbound networking (`internetAccess`); otherwise its
    /// namespace has loopback only.
    pub internet_access: bool,
    /// Set for custom-container functions: they run on the OCI backend.
    pub container: Option<ContainerSpec>,
    /// The function starts from snapshots: its instances run in the shape CRIU can dump
    /// (own PID namespace, the identity file passed in; see docs/snapshots.md).
    pub snapshot: bool,
    /// `memorySize` in MB (the instance's memory limit, swap included).
    pub memory_mb: u32,
    /// `diskSize` in MB (the size of the instance's own `/tmp`).
    pub disk_mb: u32,
    /// The function's own unprivileged uid (= gid) on the process backend; the OCI backend
    /// runs the image's `USER` instead.
    pub run_as: Option<u32>,
}

/// What an OCI instance needs beyond [`InstanceSpec`]: the image's unpacked rootfs and the
/// parts of its config that are not already merged into `command` and `env`.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The cached image rootfs (the read-only lower layer).
    pub rootfs: PathBuf,
    /// The working directory (the image's `WorkingDir`, or `/`).
    pub working_dir: String,
    /// The image's `User` (empty: root).
    pub user: String,
    /// `memorySize` in MB.
    pub memory_mb: u32,
    /// `cpu` in vCPUs.
    pub cpu: Option<f64>,
    /// `diskSize` in MB (the `/tmp` tmpfs).
    pub disk_mb: u32,
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Killed by the kernel for exceeding `memorySize` (MB).
    OutOfMemory(u32),
}

impl ExitReason {
    /// How a child process's wait status reads.
    pub fn from_status(status: std::process::ExitStatus) -> ExitReason {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitReason::Code(code),
            (None, Some(sig)) => ExitReason::Signal(sig),
            (None, None) => ExitReason::Code(-1),
        }
    }

    /// Exit status 0.
    pub fn success(self) -> bool {
        self == ExitReason::Code(0)
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitReason::Code(c) => write!(f, "exit code {c}"),
            ExitReason::Signal(s) => write!(f, "signal {s} ({})", signal_name(s)),
            ExitReason::OutOfMemory(mb) => write!(
                f,
                "signal 9 (SIGKILL) from the kernel's OOM killer: the instance used more than \
                 its memorySize of {mb} MB"
            ),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        _ => "unknown signal",
    }
}

/// Result of one non-web-server invocation.
#[derive(Debug, Clone)]
pub struct EventOutcome {
    /// The instance that ran the event.
    pub instance_id: String,
    /// How the process ended; `None` when fcx killed it at the timeout.
    pub exit: Option<ExitReason>,
    /// Captured stdout, at most `EVENT_STDOUT_MAX` bytes.
    pub stdout: Vec<u8>,
    /// The invocation's log (stdout and stderr lines).
    pub log: Vec<u8>,
}
