//! Snapshot starts: CRIU (`criu.rs`: the binary, its checks, the dump and restore options
//! both backends share), the snapshots on disk (`store.rs`), each instance's identity file,
//! and lazy pages. The backends dump and restore through [`crate::Backend`]; the scheduler
//! decides when.

pub mod criu;
mod lazy;
pub mod store;

use std::path::{Path, PathBuf};

pub use criu::Criu;
pub(crate) use lazy::LazyPages;
pub use store::{PendingSnapshot, Snapshot, SnapshotMeta, SnapshotStore};

/// Where a snapshot-enabled instance finds its own id, fresh after every restore (the
/// environment's `FC_INSTANCE_ID` is frozen in the snapshot).
pub const IDENTITY_ENV: &str = "FCX_INSTANCE_ID_FILE";
/// The file process instances read it from: fd 3, which fcx passes in.
pub const PROCESS_IDENTITY_PATH: &str = "/proc/self/fd/3";
/// The file containers read it from: bind-mounted read-only from the bundle.
pub const CONTAINER_IDENTITY_PATH: &str = "/etc/fcx-instance-id";

/// The first argument that makes the fcx binary a snapshot-enabled process instance's PID 1
/// ([`run_init`]).
pub const INIT_ARG: &str = "__fcx-pidns-init";

/// `fcx __fcx-pidns-init UID GID -- PROGRAM ARGS...`: the PID-namespace init of a
/// snapshot-enabled process instance. Returns `None` when `args` (without the binary's name)
/// is not such a call; otherwise the exit code. Call it before anything starts a thread.
pub fn run_init(args: &[std::ffi::OsString]) -> Option<i32> {
    use std::os::unix::ffi::OsStrExt;
    if args.first().map(|a| a.as_os_str()) != Some(std::ffi::OsStr::new(INIT_ARG)) {
        return None;
    }
    let num = |i: usize| -> Option<u32> { args.get(i)?.to_str()?.parse().ok() };
    let (Some(uid), Some(gid)) = (num(1), num(2)) else {
        eprintln!("{INIT_ARG}: usage: {INIT_ARG} UID GID -- PROGRAM [ARGS...]");
        return Some(2);
    };
    if args.get(3).map(|a| a.as_bytes()) != Some(b"--") {
        eprintln!("{INIT_ARG}: expected -- before the program");
        return Some(2);
    }
    let argv: Vec<std::ffi::CString> = args[4..]
        .iter()
        .filter_map(|a| std::ffi::CString::new(a.as_bytes()).ok())
        .collect();
    Some(crate::sys::pidns_init(uid, gid, &argv))
}

/// Restores whose memory pages exceed this use lazy pages (userfaultfd), where the kernel
/// allows it: the instance runs as soon as its tree is back and pages arrive on first touch.
pub const LAZY_PAGES_ABOVE: u64 = 64 * 1024 * 1024;

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// This backend or instance cannot be dumped (e.g. no CRIU).
    #[error("{0}")]
    Unsupported(String),
    /// CRIU failed; the text quotes its log.
    #[error("criu dump failed: {0}")]
    Dump(String),
    /// A file operation around the dump or restore failed.
    #[error("{what}: {source}")]
    Io {
        /// What fcx was doing, with the path.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `id` into `<dir>/<id>` (readable by the instance's user) and returns the path.
pub(crate) fn write_identity(dir: &Path, id: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(id);
    std::fs::write(&path, format!("{id}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(path)
}

/// Bytes of memory pages in a set of images (`pages-*.img`).
pub(crate) fn pages_bytes(images: &Path) -> u64 {
    std::fs::read_dir(images)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pages-"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Resident memory of `pid` (`VmRSS`), in bytes.
pub(crate) fn rss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The inode naming a namespace or pipe fd (`fstat`), as CRIU names them.
pub(crate) fn inode(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u64> {
    Ok(nix::sys::stat::fstat(fd)
        .map_err(std::io::Error::from)?
        .st_ino)
}

/// Runs one `criu` command to its end (bounded by `within`), in `work`; the error quotes
/// CRIU's log there (`log`).
pub(crate) async fn run_criu(
    mut cmd: tokio::process::Command,
    work: &Path,
    log: &str,
    within: std::time::Duration,
) -> Result<(), String> {
    cmd.current_dir(work)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run criu: {e}"))?;
    match tokio::time::timeout(within, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{status}: {}", criu::log_errors(&work.join(log)))),
        Ok(Err(e)) => Err(format!("waiting for criu: {e}")),
        Err(_) => Err(format!("criu did not finish within {within:?}")),
    }
}
