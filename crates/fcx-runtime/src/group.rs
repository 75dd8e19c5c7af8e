//! The cgroups that limit an instance's memory and processes, on cgroup v1, v2 and hybrid
//! hosts. An OCI instance lives under `/fcx/<prefix>/<id>`, which fcx makes with the memory
//! limit, and the runtime puts the container in `<that>/ctr` with the CPU and pids limits. A
//! process instance is put by fcx itself in `/fcx/<prefix>/<id>` of the memory and pids
//! hierarchies (v1) or of the cgroup2 hierarchy (v2), with both limits ([`InstanceGroup::for_process`]).
//! The limit sits on fcx's own group because the runtime deletes the container's group when
//! the container ends, taking its counters with it; fcx's group survives long enough to tell
//! an out-of-memory kill from any other SIGKILL. Works with cgroup v1 (and hybrid hosts,
//! where the memory controller is v1) and with a pure cgroup v2 host.

use std::io;
use std::path::{Path, PathBuf};

/// One cgroup mount: its directory and whether it is cgroup2.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    v2: bool,
    memory: bool,
    pids: bool,
}

/// The host's cgroup mounts, read from mountinfo once per server: they do not change while
/// it runs, and reading mountinfo on every cold start cost a scan of every mount.
fn hierarchies() -> Vec<Hierarchy> {
    static CACHE: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    CACHE.get_or_init(read_hierarchies).clone()
}

fn read_hierarchies() -> Vec<Hierarchy> {
    crate::mountinfo::current()
        .into_iter()
        .filter_map(|m| {
            let v2 = match m.fstype.as_str() {
                "cgroup" => false,
                "cgroup2" => true,
                _ => return None,
            };
            let has = |c: &str| !v2 && m.super_options.split(',').any(|o| o == c);
            Some(Hierarchy {
                memory: has("memory"),
                pids: has("pids"),
                mount: m.mount_point,
                v2,
            })
        })
        .collect()
}

/// Whether the host has cgroup2 only (no v1 hierarchy): the containers then get a cgroup
/// namespace of their own.
pub fn unified() -> bool {
    let all = hierarchies();
    !all.is_empty() && all.iter().all(|h| h.v2)
}

/// fcx's group of one OCI instance.
#[derive(Debug)]
pub struct InstanceGroup {
    /// `fcx/<prefix>/<id>`, relative to every hierarchy's root.
    rel: PathBuf,
    /// The group holding the memory limit and its counters.
    memory_dir: Option<(PathBuf, bool)>,
}

/// The groups a process instance's processes join (their `cgroup.procs` files), besides the
/// cgroup2 group fcx freezes and kills it through.
#[derive(Debug)]
pub struct ProcessGroups {
    pub group: InstanceGroup,
    pub procs: Vec<PathBuf>,
}

impl InstanceGroup {
    /// Creates the group and sets its memory limit (`memory_mb`; swap included).
    pub fn create(rel: &Path, memory_mb: u32) -> io::Result<InstanceGroup> {
        let all = hierarchies();
        let bytes = (u64::from(memory_mb) * 1024 * 1024).to_string();
        let mut group = InstanceGroup {
            rel: rel.to_owned(),
            memory_dir: None,
        };
        if let Some(h) = all.iter().find(|h| h.memory) {
            let dir = h.mount.join(rel);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("memory.limit_in_bytes"), &bytes)?;
            // Present only with swap accounting; without it there is no swap to limit.
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &bytes);
            group.memory_dir = Some((dir, false));
        } else if let Some(h) = all.iter().find(|h| h.v2) {
            let dir = h.mount.join(rel);
            std::fs::create_dir_all(&dir)?;
            enable_controllers(&h.mount, rel)?;
            std::fs::write(dir.join("memory.max"), &bytes)?;
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            group.memory_dir = Some((dir, true));
        }
        Ok(group)
    }

    /// Creates the container's group (`<rel>/ctr`) in every hierarchy, as the OCI runtime
    /// would, with the pids limit and CPU quota, and returns the `cgroup.procs` files to
    /// join (a restored container has no runtime to do it).
    pub fn create_container_groups(
        &self,
        pids_limit: i64,
        cpu: Option<f64>,
    ) -> io::Result<Vec<std::ffi::CString>> {
        let mut procs = Vec::new();
        for h in hierarchies() {
            let dir = h.mount.join(&self.rel).join("ctr");
            std::fs::create_dir_all(&dir)?;
            inherit_cpuset(&h.mount, &self.rel.join("ctr"));
            let has = |f: &str| dir.join(f).exists();
            if has("pids.max") {
                std::fs::write(dir.join("pids.max"), pids_limit.to_string())?;
            }
            if let Some(cpu) = cpu {
                let quota = ((cpu * 100_000.0).round() as i64).max(1000);
                if has("cpu.max") {
                    std::fs::write(dir.join("cpu.max"), format!("{quota} 100000"))?;
                } else if has("cpu.cfs_quota_us") {
                    std::fs::write(dir.join("cpu.cfs_period_us"), "100000")?;
                    std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
                }
            }
            let path = dir.join("cgroup.procs");
            procs.push(
                std::ffi::CString::new(path.into_os_string().into_encoded_bytes())
                    .map_err(|_| io::Error::other("cgroup path contains NUL"))?,
            );
        }
        Ok(procs)
    }

    /// The limits of a process instance: `memory_mb` (swap included) and at most `pids`
    /// processes, in the v1 memory and pids hierarchies where the host has them, else in the
    /// cgroup2 group `rel` (which the caller creates for freezing; made here if missing).
    /// Controllers the host lacks leave that limit out (with a warning).
    pub fn for_process(rel: &Path, memory_mb: u32, pids: i64) -> io::Result<ProcessGroups> {
        let all = hierarchies();
        let bytes = (u64::from(memory_mb) * 1024 * 1024).to_string();
        let mut group = InstanceGroup {
            rel: rel.to_owned(),
            memory_dir: None,
        };
        let mut procs = Vec::new();
        let v2 = all.iter().find(|h| h.v2);
        if let Some(h) = all.iter().find(|h| h.memory) {
            let dir = h.mount.join(rel);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("memory.limit_in_bytes"), &bytes)?;
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &bytes);
            procs.push(dir.join("cgroup.procs"));
            group.memory_dir = Some((dir, false));
        } else if let Some(h) = v2 {
            let dir = h.mount.join(rel);
            enable_controllers(&h.mount, rel.parent().unwrap_or(rel))?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("memory.max"), &bytes)?;
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            group.memory_dir = Some((dir, true));
        } else {
            tracing::warn!("no memory cgroup on this host: memorySize is not enforced");
        }
        if let Some(h) = all.iter().find(|h| h.pids) {
            let dir = h.mount.join(rel);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("pids.max"), pids.to_string())?;
            procs.push(dir.join("cgroup.procs"));
        } else if let Some(h) = v2 {
            let dir = h.mount.join(rel);
            enable_controllers(&h.mount, rel.parent().unwrap_or(rel))?;
            std::fs::create_dir_all(&dir)?;
            if std::fs::write(dir.join("pids.max"), pids.to_string()).is_err() {
                tracing::warn!(
                    "no pids cgroup controller on this host: --pids-limit is not enforced"
                );
            }
        }
        Ok(ProcessGroups { group, procs })
    }

    /// The container's group path for `config.json`.
    pub fn container_path(&self) -> String {
        format!("/{}/ctr", self.rel.display())
    }

    /// The container's group in the cgroup2 hierarchy (freezing), when the host has one.
    pub fn container_v2_dir(&self) -> Option<PathBuf> {
        hierarchies()
            .into_iter()
            .find(|h| h.v2)
            .map(|h| h.mount.join(&self.rel).join("ctr"))
    }

    /// Whether the memory limit was hit: a SIGKILL then is the kernel's OOM killer.
    pub fn hit_memory_limit(&self) -> bool {
        let Some((dir, v2)) = &self.memory_dir else {
            return false;
        };
        let count = |file: &str, key: Option<&str>| -> u64 {
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            match key {
                None => text.trim().parse().unwrap_or(0),
                Some(k) => text
                    .lines()
                    .find_map(|l| l.strip_prefix(k)?.trim().parse().ok())
                    .unwrap_or(0),
            }
        };
        if *v2 {
            count("memory.events", Some("oom_kill ")) > 0
                || count("memory.events", Some("max ")) > 0
        } else {
            // With swap accounting the memory+swap counter (same limit) is the one that
            // fails; without it, the memory counter.
            // Some kernels count no failures on the parent when the charge that hits the
            // limit comes from a child group; the peak usage then tells.
            let limit = count("memory.limit_in_bytes", None);
            count("memory.failcnt", None) > 0
                || count("memory.memsw.failcnt", None) > 0
                || (limit > 0 && count("memory.max_usage_in_bytes", None) >= limit)
        }
    }

    /// Current and peak memory use of the instance (bytes), from the group with its limit.
    pub fn memory_usage(&self) -> (Option<u64>, Option<u64>) {
        let Some((dir, v2)) = &self.memory_dir else {
            return (None, None);
        };
        let read = |file: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(file))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        if *v2 {
            (read("memory.current"), read("memory.peak"))
        } else {
            (
                read("memory.usage_in_bytes"),
                read("memory.max_usage_in_bytes"),
            )
        }
    }

    /// Removes the group in every hierarchy; whether none is left (a group with processes
    /// cannot be removed yet).
    pub fn remove_when_empty(&self) -> bool {
        let mut gone = true;
        for h in hierarchies() {
            let dir = h.mount.join(&self.rel);
            if dir.exists() && std::fs::remove_dir(&dir).is_err() && !h.v2 {
                gone = false;
            }
        }
        gone
    }

    /// Removes the group (and a container group the runtime left) in every hierarchy.
    pub fn remove(&self) {
        for h in hierarchies() {
            let dir = h.mount.join(&self.rel);
            let _ = std::fs::remove_dir(dir.join("ctr"));
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// A v1 cpuset group starts with no CPUs and memory nodes, and nothing can join it (ENOSPC)
/// until they are set: copies them down from the parent at each level (as runtimes do).
fn inherit_cpuset(mount: &Path, rel: &Path) {
    let mut dir = mount.to_path_buf();
    for part in rel.iter() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let Ok(own) = std::fs::read_to_string(dir.join(file)) else {
                return;
            };
            if own.trim().is_empty() {
                if let Ok(up) = std::fs::read_to_string(parent.join(file)) {
                    let _ = std::fs::write(dir.join(file), up.trim());
                }
            }
        }
    }
}

/// Enables the memory, cpu and pids controllers on the path down to `rel` (cgroup v2 only
/// hands a controller to children whose parent lists it in `cgroup.subtree_control`). A
/// controller the path cannot hand on is an error naming the group and the kernel's reason
/// (EBUSY: that group holds processes; `fcx doctor` says what to do).
fn enable_controllers(mount: &Path, rel: &Path) -> io::Result<()> {
    let mut dir = mount.to_path_buf();
    let mut dirs = vec![dir.clone()];
    for part in rel.iter() {
        dir.push(part);
        dirs.push(dir.clone());
    }
    for d in &dirs {
        if let Err((wanted, e)) = crate::cgroup::enable_subtree_controllers(d) {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot enable {} in {}/cgroup.subtree_control: {e}{}",
                    wanted.join(" "),
                    d.display(),
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        " (the group holds processes; run `fcx doctor --fix`)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Removes every instance group under `fcx/<prefix>` in every hierarchy (deepest first):
/// what a crashed server left. The processes in them must be gone already. `fcx/<prefix>`
/// itself stays: the process backend keeps its own groups there too.
pub fn remove_tree(rel: &Path) {
    for h in hierarchies() {
        if let Ok(entries) = std::fs::read_dir(h.mount.join(rel)) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove_dirs(&e.path());
                }
            }
        }
    }
}

/// Removes the server's own `fcx/<prefix>` groups (clean shutdown), where empty.
pub fn remove_root(rel: &Path) {
    for h in hierarchies() {
        let _ = std::fs::remove_dir(h.mount.join(rel));
    }
}

fn remove_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
