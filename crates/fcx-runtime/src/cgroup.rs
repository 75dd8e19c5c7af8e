//! Per-instance cgroup v2 groups (`<cgroup2 mount>/fcx/<prefix>/<instance>`): every process of
//! an instance, forks included, is in its group, so fcx can freeze and thaw it
//! (`cgroup.freeze`), kill all of it at once (`cgroup.kill`), and find leftovers after a crash.
//! Works on a pure cgroup v2 host and on hybrid hosts with a cgroup2 mount (no controllers needed).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory under which one server keeps its instances' groups.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    dir: PathBuf,
}

/// One instance's group.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// `<dir>/cgroup.procs`, ready for the child to write itself into before `exec`.
    pub(crate) procs: CString,
}

/// Controllers fcx's groups get on cgroup v2: the OCI limits on memorySize, the process
/// count and cpu.
pub const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Enables, in `dir/cgroup.subtree_control`, those of [`V2_CONTROLLERS`] that `dir` has (its
/// `cgroup.controllers`) and does not hand on yet, in one write: the kernel applies it whole
/// or not at all. Enabling them one by one is a trap: in a group with processes (a
/// container's cgroup namespace root) `+memory` fails with EBUSY while `+pids` and `+cpu`,
/// threaded controllers, succeed and turn the group into a thread root, under which no
/// child can hold a process again (EOPNOTSUPP), evacuated or not. `Err` names the
/// controllers the write asked for.
pub fn enable_subtree_controllers(dir: &Path) -> Result<(), (Vec<String>, io::Error)> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let (available, enabled) = (read("cgroup.controllers"), read("cgroup.subtree_control"));
    let wanted: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| c.to_string())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let line = wanted
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(dir.join("cgroup.subtree_control"), line).map_err(|e| (wanted, e))
}

/// The controllers `dir` hands to its children (`cgroup.subtree_control`).
pub fn subtree_controllers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The processes in group `dir` (its `cgroup.procs`).
pub fn procs_of(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Moves every process of group `dir` into its child `leaf` (created), so that `dir` may
/// enable controllers for its children: cgroup v2 refuses that to a non-root group with
/// processes. Processes that exit meanwhile are skipped. Returns how many moved.
pub fn evacuate(dir: &Path, leaf: &str) -> io::Result<usize> {
    let to = dir.join(leaf);
    std::fs::create_dir_all(&to)
        .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", to.display())))?;
    let mut moved = 0;
    // New processes may be forked while moving: a few rounds catch them.
    for _ in 0..10 {
        let pids = procs_of(dir);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            match std::fs::write(to.join("cgroup.procs"), pid.to_string()) {
                Ok(()) => moved += 1,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("moving pid {pid} into {}: {e}", to.display()),
                    ))
                }
            }
        }
    }
    Ok(moved)
}

/// Where cgroup2 is mounted (read once found: it does not move while the server runs; a
/// host without one is asked again, since `fcx doctor --fix` may mount it).
pub fn cgroup2_mount() -> Option<PathBuf> {
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(found) = CACHE.get() {
        return Some(found.clone());
    }
    let found = crate::mountinfo::current()
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.mount_point)?;
    Some(CACHE.get_or_init(|| found).clone())
}

impl CgroupRoot {
    /// `<cgroup2>/fcx/<prefix>`, created; `None` when the host has no writable cgroup2 mount.
    pub fn open(prefix: &str) -> Option<CgroupRoot> {
        let dir = cgroup2_mount()?.join("fcx").join(prefix);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(CgroupRoot { dir }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no cgroup for instances: freezing is unavailable");
                None
            }
        }
    }

    /// Creates the group of instance `id`.
    pub fn create(&self, id: &str) -> io::Result<Cgroup> {
        let dir = self.dir.join(id);
        std::fs::create_dir(&dir)?;
        let procs = CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(|_| io::Error::other("cgroup path contains NUL"))?;
        Ok(Cgroup { dir, procs })
    }

    /// Kills and removes every group left by a previous run; returns how many had processes.
    pub fn reap(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut reaped = 0;
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let group = Cgroup {
                procs: CString::default(),
                dir,
            };
            if group.has_processes() {
                reaped += 1;
            }
            group.kill();
            group.remove_when_empty(Duration::from_secs(2));
        }
        reaped
    }
}

impl CgroupRoot {
    /// Removes the (emptied) groups and the server's own directory (clean shutdown).
    pub fn remove(&self) {
        self.reap();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Cgroup {
    /// A group made by someone else (an OCI runtime), for freezing and removal.
    pub fn existing(dir: PathBuf) -> Cgroup {
        let procs = CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap_or_default();
        Cgroup { dir, procs }
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.dir.join(file), value)
    }

    /// Whether any process is still in the group.
    pub fn has_processes(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false)
    }

    /// SIGKILL to every process in the group.
    pub fn kill(&self) {
        let _ = self.write("cgroup.kill", "1");
    }

    /// Freezes the group and waits (bounded) until the kernel reports it frozen.
    pub async fn freeze(&self) -> io::Result<()> {
        self.write("cgroup.freeze", "1")?;
        self.wait_frozen(true).await
    }

    /// Thaws the group and waits (bounded) until the kernel reports it running.
    pub async fn thaw(&self) -> io::Result<()> {
        self.write("cgroup.freeze", "0")?;
        self.wait_frozen(false).await
    }

    async fn wait_frozen(&self, frozen: bool) -> io::Result<()> {
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..1000 {
            let events = std::fs::read_to_string(self.dir.join("cgroup.events"))?;
            if events.lines().any(|l| l == want) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Err(io::Error::other(format!("cgroup did not reach '{want}'")))
    }

    /// Removes the group once its processes are gone (bounded wait).
    pub fn remove_when_empty(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.has_processes() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// The group's directory in the cgroup2 hierarchy.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Memory and CPU use from the group's `memory.current`, `memory.peak` and `cpu.stat`
    /// (memory files exist only where the memory controller is enabled for the group).
    pub fn stats(&self) -> crate::InstanceStats {
        let number = |file: &str| -> Option<u64> {
            std::fs::read_to_string(self.dir.join(file))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let cpu = std::fs::read_to_string(self.dir.join("cpu.stat"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
            })
            .map(Duration::from_micros);
        crate::InstanceStats {
            memory_current_bytes: number("memory.current"),
            memory_peak_bytes: number("memory.peak"),
            cpu_usage: cpu,
        }
    }
}

/// Removes `cgroup` once the kernel has reaped its processes, off the async workers.
pub(crate) fn remove_in_background(cgroup: Cgroup) {
    let remove = move || cgroup.remove_when_empty(Duration::from_secs(5));
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(remove)),
        Err(_) => remove(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_read_memory_and_cpu_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
        std::fs::write(dir.path().join("memory.peak"), "8192\n").unwrap();
        std::fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        )
        .unwrap();
        let stats = Cgroup::existing(dir.path().to_owned()).stats();
        assert_eq!(stats.memory_current_bytes, Some(4096));
        assert_eq!(stats.memory_peak_bytes, Some(8192));
        assert_eq!(stats.cpu_usage, Some(Duration::from_micros(1500)));
    }

    #[test]
    fn stats_without_a_memory_controller_say_unknown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.stat"), "usage_usec 7\n").unwrap();
        let stats = Cgroup::existing(dir.path().to_owned()).stats();
        assert_eq!(stats.memory_current_bytes, None);
        assert_eq!(stats.cpu_usage, Some(Duration::from_micros(7)));
    }

    /// The controllers go in one write (the kernel applies it whole or not at all); only
    /// the available ones not yet handed on are asked for. A plain directory stands in for
    /// the group: this is the request's shape, the guest run proves the kernel's side.
    #[test]
    fn controllers_are_enabled_in_one_write_of_the_missing_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).expect("write");
        write(
            "cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        );
        write("cgroup.subtree_control", "memory\n");
        enable_subtree_controllers(dir.path()).expect("enable");
        let written = std::fs::read_to_string(dir.path().join("cgroup.subtree_control"));
        assert_eq!(written.expect("read"), "+pids +cpu");
        // Nothing missing: nothing written.
        write("cgroup.subtree_control", "cpu memory pids\n");
        enable_subtree_controllers(dir.path()).expect("enable");
        let kept = std::fs::read_to_string(dir.path().join("cgroup.subtree_control"));
        assert_eq!(kept.expect("read"), "cpu memory pids\n");
    }

    /// Moving a group's processes into its `init` leaf, on this host's real cgroup2 mount.
    #[test]
    fn evacuate_moves_every_process_into_the_leaf() {
        let Some(mount) = cgroup2_mount() else { return };
        if !crate::sys::is_root() {
            return;
        }
        let dir = mount.join(format!("fcx-test-evacuate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let joined = std::fs::write(dir.join("cgroup.procs"), child.id().to_string());
        let moved = evacuate(&dir, "init");
        let (in_dir, in_leaf) = (procs_of(&dir), procs_of(&dir.join("init")));
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir(dir.join("init"));
        let _ = std::fs::remove_dir(&dir);
        joined.expect("joining the test group");
        assert_eq!(moved.expect("evacuate"), 1);
        assert!(in_dir.is_empty(), "{in_dir:?}");
        assert_eq!(in_leaf, [child.id()]);
    }
}
