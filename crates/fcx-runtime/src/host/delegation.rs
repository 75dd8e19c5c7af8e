//! Can fcx make its groups in the cgroup2 hierarchy and hand them controllers? On a host this
//! is a given for root; inside a container (a Kubernetes DaemonSet pod) two things stand in
//! the way, both found by the portability guest (`scripts/portability.sh`):
//! - the runtime mounts `/sys/fs/cgroup` read-only into a non-privileged container;
//! - the container's cgroup namespace root holds the container's own processes, and cgroup
//!   v2 lets a non-root group with processes enable no controller for its children ("no
//!   internal processes": EBUSY), so `+memory +pids +cpu` cannot reach fcx's groups.
//!
//! The fixes (`fcx doctor --fix`): remount the cgroup2 mount read-write, and move the
//! processes of the namespace root into a leaf group `init` (what k3s and dind do).

use std::io;
use std::path::Path;

use super::{Check, Status, DELEGATION};
use crate::cgroup;

/// The leaf a container's processes move to, off its cgroup namespace root.
pub const EVACUATION_LEAF: &str = "init";

/// What stops fcx from using the cgroup2 mount at `mount`.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    ReadOnly,
    /// The root holds these processes, so it cannot enable `controllers` for children.
    InternalProcesses {
        pids: Vec<u32>,
        controllers: Vec<String>,
    },
    Other(String),
}

/// The fix for a problem, as shell commands.
fn fix_command(mount: &Path, problem: &Problem) -> Option<String> {
    let m = mount.display();
    match problem {
        Problem::ReadOnly => Some(format!("mount -o remount,rw {m}")),
        Problem::InternalProcesses { .. } => Some(format!(
            "mkdir -p {m}/{leaf} && for p in $(cat {m}/cgroup.procs); do echo $p > \
             {m}/{leaf}/cgroup.procs; done",
            leaf = EVACUATION_LEAF
        )),
        Problem::Other(_) => None,
    }
}

/// Tries what fcx does at its first container: a group under `mount`, and the controllers
/// enabled in the root's `cgroup.subtree_control`. `Ok(())`, or what stands in the way.
fn probe(mount: &Path) -> Result<(), Problem> {
    let dir = mount.join(format!("fcx-doctor-{}", std::process::id()));
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&dir);
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => return Err(Problem::ReadOnly),
        Err(e) => return Err(Problem::Other(format!("mkdir {}: {e}", dir.display()))),
    }
    match cgroup::enable_subtree_controllers(mount) {
        Ok(()) => Ok(()),
        Err((controllers, e)) if e.raw_os_error() == Some(libc::EBUSY) => {
            Err(Problem::InternalProcesses {
                pids: cgroup::procs_of(mount),
                controllers,
            })
        }
        Err((controllers, e)) => Err(Problem::Other(format!(
            "enabling {} in {}/cgroup.subtree_control: {e}",
            controllers.join(" "),
            mount.display()
        ))),
    }
}

/// The `cgroup delegation` check for the cgroup2 mount at `mount` (`unified`: the host has
/// no v1 controllers, so the limits live in this hierarchy).
pub fn check(mount: &Path, unified: bool) -> Check {
    let m = mount.display();
    let problem = match probe(mount) {
        Ok(()) if unified => {
            let given = cgroup::subtree_controllers(mount);
            return Check::ok(
                DELEGATION,
                format!(
                    "fcx's groups go under {m}/fcx, which gets {} from {m}",
                    given.join(" ")
                ),
            );
        }
        Ok(()) => return Check::ok(DELEGATION, format!("fcx's groups go under {m}/fcx")),
        // Without v1 controllers on the way a hybrid host's cgroup2 only freezes.
        Err(Problem::InternalProcesses { .. }) if !unified => {
            return Check::ok(DELEGATION, format!("fcx's groups go under {m}/fcx"))
        }
        Err(p) => p,
    };
    // Behind a read-only mount the next obstacle is already visible: a container's cgroup
    // root (not the host's: that one has no cgroup.type) holding processes.
    let busy_root = unified
        && problem == Problem::ReadOnly
        && mount.join("cgroup.type").exists()
        && !cgroup::procs_of(mount).is_empty();
    let detail = match &problem {
        Problem::ReadOnly if busy_root => format!(
            "cgroup2 at {m} is mounted read-only (as a container runtime mounts it for a \
             non-privileged container): fcx cannot create its groups; and its root holds \
             processes ({}) and is not the host's, so cgroup v2 would refuse to enable \
             controllers for fcx's groups",
            cgroup::procs_of(mount)
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Problem::ReadOnly => format!(
            "cgroup2 at {m} is mounted read-only (as a container runtime mounts it for a \
             non-privileged container): fcx cannot create its groups"
        ),
        Problem::InternalProcesses { pids, controllers } => format!(
            "{m} holds processes ({}) and is not the host's root group (a container's cgroup \
             namespace), so cgroup v2 refuses to enable {} for fcx's groups (EBUSY: no \
             internal processes)",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            controllers.join(" ")
        ),
        Problem::Other(e) => e.clone(),
    };
    let fixable = !matches!(problem, Problem::Other(_));
    let busy = Problem::InternalProcesses {
        pids: Vec::new(),
        controllers: Vec::new(),
    };
    let fix = match (fix_command(mount, &problem), busy_root) {
        (Some(first), true) => fix_command(mount, &busy).map(|then| format!("{first} && {then}")),
        (fix, _) => fix,
    };
    let fix = fix.unwrap_or_else(|| {
        format!("give fcx a writable cgroup2 subtree whose root lists memory, pids and cpu in {m}/cgroup.subtree_control")
    });
    let mut check = Check::new(DELEGATION, Status::Fail, detail).with_fix(fix);
    check.fixable = fixable;
    check
}

/// `fcx doctor --fix` for the delegation check: remounts the cgroup2 mount read-write, moves
/// the processes of a container's cgroup namespace root into its `init` leaf, then enables the
/// controllers. `Ok(false)` when nothing needed changing.
pub fn fix(mount: &Path) -> io::Result<bool> {
    let mut changed = false;
    for _ in 0..2 {
        match probe(mount) {
            Ok(()) => return Ok(changed),
            Err(Problem::ReadOnly) => {
                remount_rw(mount)?;
                changed = true;
            }
            Err(Problem::InternalProcesses { .. }) => {
                cgroup::evacuate(mount, EVACUATION_LEAF)?;
                changed = true;
            }
            Err(Problem::Other(e)) => return Err(io::Error::other(e)),
        }
    }
    probe(mount).map_err(|p| io::Error::other(format!("still not usable: {p:?}")))?;
    Ok(changed)
}

/// Clears the read-only flag of the mount at `mount` (a bind remount changes only this mount's
/// flag, which is how a container runtime sets it).
fn remount_rw(mount: &Path) -> io::Result<()> {
    let flags =
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    crate::sys::mount("none", mount, "", flags, None)
        .or_else(|_| crate::sys::mount("none", mount, "", libc::MS_REMOUNT, None))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mount -o remount,rw {}: {e}", mount.display()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_name_the_mount_and_the_leaf() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(
            fix_command(m, &Problem::ReadOnly).as_deref(),
            Some("mount -o remount,rw /sys/fs/cgroup")
        );
        let busy = Problem::InternalProcesses {
            pids: vec![1, 7],
            controllers: vec!["memory".into()],
        };
        assert_eq!(
            fix_command(m, &busy).as_deref(),
            Some(
                "mkdir -p /sys/fs/cgroup/init && for p in $(cat /sys/fs/cgroup/cgroup.procs); \
                 do echo $p > /sys/fs/cgroup/init/cgroup.procs; done"
            )
        );
        assert_eq!(fix_command(m, &Problem::Other("x".into())), None);
    }
}
