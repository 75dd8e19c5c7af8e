//! Reading the host's cgroup layout from `/proc/self/mountinfo`: unified (v2 only), hybrid
//! (v1 controllers plus a cgroup2 mount) or legacy (v1 only), and the hybrid trap that makes
//! crun refuse to run anything: a cgroup2 mount that still owns controllers (crun: "cgroups in
//! hybrid mode not supported, drop all controllers from cgroupv2"). Mounting each such
//! controller as a v1 hierarchy moves it off cgroup2, which is what `fix_hybrid` does.

use std::io;
use std::path::{Path, PathBuf};

pub use crate::mountinfo::{parse as parse_mountinfo, MountEntry};

/// Controller names listed in a `cgroup.controllers` file (space separated).
pub fn parse_controllers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Super options of a cgroup v1 mount that are not controllers.
fn is_v1_option(opt: &str) -> bool {
    opt.contains('=')
        || matches!(
            opt,
            "rw" | "ro"
                | "none"
                | "all"
                | "noprefix"
                | "clone_children"
                | "xattr"
                | "cpuset_v2_mode"
                | "favordynmods"
        )
}

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Only cgroup2, at `mount`.
    Unified {
        /// The cgroup2 mount point.
        mount: PathBuf,
    },
    /// v1 controller hierarchies (each in `v1`) plus a cgroup2 mount at `unified`.
    Hybrid {
        /// The cgroup2 mount point.
        unified: PathBuf,
        /// (controllers, mount point) of each v1 hierarchy.
        v1: Vec<(String, PathBuf)>,
    },
    /// Only v1 controller hierarchies.
    Legacy {
        /// (controllers, mount point) of each v1 hierarchy.
        v1: Vec<(String, PathBuf)>,
    },
    /// No cgroup filesystem is mounted at all.
    None,
}

impl Layout {
    /// Classifies the cgroup mounts of a parsed mountinfo.
    pub fn from_mounts(mounts: &[MountEntry]) -> Layout {
        let unified = mounts
            .iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| m.mount_point.clone());
        let v1: Vec<(String, PathBuf)> = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup")
            .flat_map(|m| {
                m.super_options
                    .split(',')
                    .filter(|o| !o.is_empty() && !is_v1_option(o))
                    .map(|c| (c.to_string(), m.mount_point.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        match (unified, v1.is_empty()) {
            (Some(mount), true) => Layout::Unified { mount },
            (Some(unified), false) => Layout::Hybrid { unified, v1 },
            (None, false) => Layout::Legacy { v1 },
            (None, true) => Layout::None,
        }
    }

    /// Reads this host's layout.
    pub fn current() -> io::Result<Layout> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(Layout::from_mounts(&parse_mountinfo(&text)))
    }

    /// Whether `controller` is usable: a v1 hierarchy of its own, or listed by the cgroup2
    /// root's `cgroup.controllers` on a unified host (`v2_controllers`).
    pub fn has_controller(&self, controller: &str, v2_controllers: &[String]) -> bool {
        match self {
            Layout::Unified { .. } => v2_controllers.iter().any(|c| c == controller),
            Layout::Hybrid { v1, .. } | Layout::Legacy { v1 } => {
                v1.iter().any(|(c, _)| c == controller)
            }
            Layout::None => false,
        }
    }

    /// The directory holding the v1 hierarchies (`/sys/fs/cgroup`), where a moved
    /// controller's hierarchy goes.
    pub fn v1_parent(&self) -> PathBuf {
        let from_v1 = match self {
            Layout::Hybrid { v1, .. } | Layout::Legacy { v1 } => v1
                .first()
                .and_then(|(_, p)| p.parent())
                .map(Path::to_path_buf),
            _ => None,
        };
        from_v1.unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
    }

    /// One line naming the layout and its mounts, for the host checks.
    pub fn describe(&self) -> String {
        match self {
            Layout::Unified { mount } => format!("cgroup v2 (unified) at {}", mount.display()),
            Layout::Hybrid { unified, .. } => format!(
                "hybrid: v1 controllers under {}, cgroup2 at {}",
                self.v1_parent().display(),
                unified.display()
            ),
            Layout::Legacy { .. } => {
                format!("cgroup v1 under {}", self.v1_parent().display())
            }
            Layout::None => "no cgroup filesystem mounted".to_string(),
        }
    }
}

/// The controllers a hybrid host's cgroup2 mount still owns (what crun refuses).
pub fn hybrid_v2_controllers(unified: &Path) -> io::Result<Vec<String>> {
    Ok(parse_controllers(&std::fs::read_to_string(
        unified.join("cgroup.controllers"),
    )?))
}

/// The shell commands that move `controllers` off cgroup2: one v1 hierarchy each.
pub fn hybrid_fix_command(parent: &Path, controllers: &[String]) -> String {
    controllers
        .iter()
        .map(|c| {
            let dir = parent.join(c);
            format!(
                "mkdir -p {d} && mount -t cgroup -o {c} cgroup {d}",
                d = dir.display()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Mounts every controller the cgroup2 mount of a hybrid host still lists as its own v1
/// hierarchy; `Ok(false)` when there is nothing to do (not hybrid, or already fixed).
pub fn fix_hybrid() -> io::Result<bool> {
    let layout = Layout::current()?;
    let Layout::Hybrid { unified, .. } = &layout else {
        return Ok(false);
    };
    let controllers = hybrid_v2_controllers(unified)?;
    if controllers.is_empty() {
        return Ok(false);
    }
    let parent = layout.v1_parent();
    for controller in &controllers {
        let dir = parent.join(controller);
        make_dir_on_readonly_tmpfs(&parent, &dir)?;
        crate::sys::mount("cgroup", &dir, "cgroup", 0, Some(controller)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "mount -t cgroup -o {controller} cgroup {}: {e} (is the controller in use \
                     by a cgroup2 subtree_control?)",
                    dir.display()
                ),
            )
        })?;
    }
    Ok(true)
}

/// `mkdir -p dir`; systemd mounts the `/sys/fs/cgroup` tmpfs read-only on hybrid hosts, so on
/// EROFS the parent is remounted read-write for the mkdir and read-only again after.
fn make_dir_on_readonly_tmpfs(parent: &Path, dir: &Path) -> io::Result<()> {
    match std::fs::create_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() != Some(libc::EROFS) => {
            return Err(io::Error::new(
                e.kind(),
                format!("mkdir {}: {e}", dir.display()),
            ))
        }
        Err(_) => {}
    }
    let remount = |flags| crate::sys::mount("none", parent, "", libc::MS_REMOUNT | flags, None);
    remount(0).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{} is read-only and remounting it failed: {e}",
                parent.display()
            ),
        )
    })?;
    let made = std::fs::create_dir_all(dir);
    let _ = remount(libc::MS_RDONLY);
    made.map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const UNIFIED: &str = "\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_mountinfo_is_hybrid_with_its_v1_controllers() {
        let layout = Layout::from_mounts(&parse_mountinfo(HYBRID));
        let Layout::Hybrid { unified, v1 } = &layout else {
            panic!("expected hybrid, got {layout:?}");
        };
        assert_eq!(unified, Path::new("/sys/fs/cgroup/unified"));
        let names: Vec<&str> = v1.iter().map(|(c, _)| c.as_str()).collect();
        // name=systemd and xattr are options, not controllers.
        assert_eq!(names, ["cpu", "cpuacct", "memory", "pids"]);
        assert!(layout.has_controller("memory", &[]));
        assert!(!layout.has_controller("hugetlb", &["hugetlb".into()]));
        assert_eq!(layout.v1_parent(), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn unified_mountinfo_takes_controllers_from_cgroup_controllers() {
        let layout = Layout::from_mounts(&parse_mountinfo(UNIFIED));
        assert_eq!(
            layout,
            Layout::Unified {
                mount: PathBuf::from("/sys/fs/cgroup")
            }
        );
        let v2 = parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n");
        assert!(layout.has_controller("pids", &v2));
        assert!(!layout.has_controller("freezer", &v2));
    }

    #[test]
    fn legacy_and_empty_layouts() {
        let legacy = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(matches!(
            Layout::from_mounts(&parse_mountinfo(&legacy)),
            Layout::Legacy { .. }
        ));
        assert_eq!(Layout::from_mounts(&parse_mountinfo("")), Layout::None);
    }

    #[test]
    fn escaped_mount_points_and_garbage_lines() {
        let text = "garbage\n36 25 0:33 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, Path::new("/mnt/with space"));
    }

    /// `/proc/self/mountinfo` of the portability guest (Debian 12, kernel 6.1, systemd 252)
    /// and of the DaemonSet-like container in it, captured by scripts/portability.sh.
    const GUEST: &str = include_str!("fixtures/debian12-guest.mountinfo");
    const CONTAINER: &str = include_str!("fixtures/debian12-container.mountinfo");

    #[test]
    fn debian12_guest_is_pure_v2_and_its_run_is_noexec() {
        let mounts = parse_mountinfo(GUEST);
        assert_eq!(
            Layout::from_mounts(&mounts),
            Layout::Unified {
                mount: PathBuf::from("/sys/fs/cgroup")
            }
        );
        // systemd mounts /run noexec: unpacked code under /run/fcx could not run until
        // fcx_runtime::code::allow_exec.
        let run = crate::mountinfo::mount_of(&mounts, Path::new("/run/fcx/fcx-1/code"));
        let run = run.expect("/run is mounted");
        assert_eq!(run.mount_point, Path::new("/run"));
        assert!(crate::mountinfo::is_noexec(run), "{run:?}");
        let root = crate::mountinfo::mount_of(&mounts, Path::new("/var/lib/fcx"));
        assert!(!crate::mountinfo::is_noexec(root.expect("root mount")));
    }

    #[test]
    fn debian12_container_is_pure_v2_with_a_read_only_cgroup_mount() {
        let mounts = parse_mountinfo(CONTAINER);
        let layout = Layout::from_mounts(&mounts);
        assert_eq!(
            layout,
            Layout::Unified {
                mount: PathBuf::from("/sys/fs/cgroup")
            }
        );
        // The runtime mounts cgroup2 read-only: `fcx doctor` names the remount.
        let cg = crate::mountinfo::mount_of(&mounts, Path::new("/sys/fs/cgroup/fcx"));
        let cg = cg.expect("cgroup2 mount");
        assert!(cg.options.split(',').any(|o| o == "ro"), "{cg:?}");
        assert_eq!(cg.fstype, "cgroup2");
    }

    #[test]
    fn fix_command_mounts_each_controller_as_v1() {
        let cmd = hybrid_fix_command(Path::new("/sys/fs/cgroup"), &parse_controllers("hugetlb"));
        assert_eq!(
            cmd,
            "mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"
        );
        assert!(parse_controllers("\n").is_empty());
    }
}
