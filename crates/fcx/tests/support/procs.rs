//! Finding and ending the processes a test server started (and only those).

use std::path::Path;
use std::time::{Duration, Instant};

/// Pids of processes whose working directory is under `run_dir` (every instance runs from its
/// unpacked code there).
pub fn under(run_dir: &Path) -> Vec<u32> {
    // Every path starts with the empty one: a server that never said its run dir (it did
    // not start) has no processes, not every process of the machine.
    if !run_dir.is_absolute() || run_dir.parent().is_none() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|cwd| cwd.starts_with(run_dir))
                .unwrap_or(false)
        })
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(true)
}

pub fn kill(pid: u32) {
    // SAFETY: plain kill(2) of a pid this test found under its own server's run dir.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// SIGTERM, then wait up to `grace` for the process to exit.
pub fn terminate(pid: u32, grace: Duration) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on the server process this harness spawned.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `cond` holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes the server's instance cgroups (`<cgroup2>/fcx/<prefix>`, prefix = run dir name),
/// killing anything still inside.
pub fn remove_cgroups(run_dir: &Path) {
    let Some(prefix) = run_dir.file_name() else {
        return;
    };
    let mounts = fcx_runtime::mountinfo::current();
    if let Some(mount) = mounts.iter().find(|m| m.fstype == "cgroup2") {
        let root = mount.mount_point.join("fcx").join(prefix);
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let dir = e.path();
                if dir.is_dir() {
                    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
                    let _ = eventually(Duration::from_secs(5), || {
                        std::fs::remove_dir(&dir).is_ok() || !dir.exists()
                    });
                }
            }
        }
        let _ = std::fs::remove_dir(&root);
    }
    // After the kill above: v1 groups can only go once their processes have.
    remove_v1_groups(&mounts, Path::new(prefix));
}

/// Container instances also have groups in every cgroup v1 hierarchy (`fcx/<prefix>/<id>/ctr`,
/// made by the OCI runtime): removed deepest first once their processes are gone.
fn remove_v1_groups(mounts: &[fcx_runtime::mountinfo::MountEntry], prefix: &Path) {
    fn remove_tree(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove_tree(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        remove_tree(&m.mount_point.join("fcx").join(prefix));
    }
}

/// Removes what a server that could not clean up left of its egress: its veth links
/// (`fcx<8 hex>…`) and its nftables table (`inet fcx-<8 hex>`; prefix = run dir name). A
/// stopped server has removed them itself; its stale lease goes at the next server's start.
pub fn remove_egress(run_dir: &Path) {
    let Some(prefix) = run_dir
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
    else {
        return;
    };
    let links = prefix.replace('-', "");
    for entry in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&links) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &name])
                .status();
        }
    }
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", &prefix])
        .stderr(std::process::Stdio::null())
        .status();
}
