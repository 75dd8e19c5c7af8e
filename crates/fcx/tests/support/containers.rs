//! Removing what a test server's container instances left, if the server could not: its
//! OCI runtime state (containers named with the server's prefix) and mounts under its run dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `crun delete --force` of every container in the server's runtime state root.
pub fn remove_containers(run_dir: &Path) {
    let root = run_dir.join("oci-state");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for e in entries.flatten() {
        let _ = Command::new("crun")
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force"])
            .arg(e.file_name())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fcx_runtime::mountinfo::current()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Detaches every mount under `dir`.
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&m)
            .stderr(Stdio::null())
            .status();
    }
}
