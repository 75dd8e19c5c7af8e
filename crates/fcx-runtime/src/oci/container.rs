//! A running OCI container of one instance and everything fcx set up for it: the bundle
//! directory, the overlay rootfs and its writable layer, and fcx's cgroup. `teardown`
//! removes all of it once the runtime process has ended.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::rootfs::Rootfs;
use crate::group::InstanceGroup;
use crate::spec::ExitReason;
use crate::sys;

/// The host-side parts of a container.
#[derive(Debug)]
pub struct Container {
    /// Runtime binary and state root, for the fallback `delete -f`.
    pub(crate) runtime: PathBuf,
    pub(crate) state_root: PathBuf,
    pub(crate) name: String,
    pub(crate) bundle: PathBuf,
    pub(crate) rootfs: Rootfs,
    pub(crate) group: InstanceGroup,
    /// The start gate of a pre-created sandbox (a fifo its runtime's hook waits on, on the
    /// host or bind-mounted into the container).
    pub(crate) gate: Option<PathBuf>,
    /// The runtime process (`crun run`), fcx's child.
    pub(crate) runtime_pid: std::sync::atomic::AtomicU32,
    init_pid: OnceLock<i32>,
}

impl Container {
    pub(crate) fn new(
        runtime: PathBuf,
        state_root: PathBuf,
        name: String,
        bundle: PathBuf,
        rootfs: Rootfs,
        group: InstanceGroup,
        gate: Option<PathBuf>,
    ) -> Container {
        Container {
            runtime,
            state_root,
            name,
            bundle,
            rootfs,
            group,
            gate,
            runtime_pid: Default::default(),
            init_pid: OnceLock::new(),
        }
    }

    /// Lets a pre-created sandbox's container start: opening the gate fifo for writing and
    /// closing it ends the runtime's blocking hook (`cat` reads end-of-file). Fails with
    /// `ENXIO` while the hook is not waiting on the fifo yet.
    pub fn open_gate(&self) -> std::io::Result<()> {
        let Some(gate) = &self.gate else {
            return Ok(());
        };
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(gate)?;
        drop(f);
        Ok(())
    }

    /// The container's init process on the host (from the runtime's pid file), once known.
    pub fn init_pid(&self) -> Option<i32> {
        if let Some(pid) = self.init_pid.get() {
            return Some(*pid);
        }
        let text = std::fs::read_to_string(self.bundle.join("pid")).ok()?;
        let pid: i32 = text.trim().parse().ok().filter(|p| *p > 1)?;
        Some(*self.init_pid.get_or_init(|| pid))
    }

    /// Signals the container's init. Killing the init of a PID namespace kills every
    /// process in it; SIGTERM reaches it only if the program handles it (as in Docker).
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.init_pid() {
            sys::kill(pid as u32, signal);
        }
    }

    /// Whether the memory limit was hit (an unexplained SIGKILL then is an OOM kill).
    pub fn hit_memory_limit(&self) -> bool {
        self.group.hit_memory_limit()
    }

    /// Removes everything once the runtime process has ended (`exit` set), waiting at most
    /// a few seconds for it; blocking.
    pub fn teardown(&self, exit: &watch::Receiver<Option<ExitReason>>) {
        self.signal(libc::SIGKILL);
        if let Some(gate) = &self.gate {
            if self.init_pid().is_none() {
                // A sandbox that never started, held by the host-side gate hook: that runs
                // before the pid file exists. Ending the runtime ends the container it set
                // up. (The in-container hook runs after it: killing the init ends both.)
                let pid = self.runtime_pid.load(std::sync::atomic::Ordering::Acquire);
                sys::kill(pid, libc::SIGKILL);
            }
            // Releases the hook (read-write opens of a fifo never block), so neither the
            // runtime nor an orphaned hook waits on it.
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(gate);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while exit.borrow().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if exit.borrow().is_none() || self.state_root.join(&self.name).exists() {
            // The runtime did not clean up after itself (killed, or still hanging).
            let _ = std::process::Command::new(&self.runtime)
                .arg("--root")
                .arg(&self.state_root)
                .args(["delete", "--force", &self.name])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        self.rootfs.remove();
        self.group.remove();
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}
