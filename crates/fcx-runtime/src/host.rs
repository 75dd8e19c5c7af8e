//! Can this host run OCI (custom-container) instances? Each check tries the real thing where
//! it can (runs the runtime, mounts an overlay, creates a network namespace) and says exactly
//! what to run when it fails. The server calls [`ensure_oci_ready`] before it starts the OCI
//! backend; `fcx doctor` prints [`check_host`]'s list and [`check_egress`]'s (outbound
//! networking) and can apply [`fix_hybrid_cgroups`].

mod cgroups;
mod delegation;
mod egress;
mod probe;

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

pub use cgroups::{
    hybrid_fix_command, parse_controllers, parse_mountinfo, Layout as CgroupLayout, MountEntry,
};
pub use egress::check_egress;
pub use probe::find_executable;

/// Check names, in the order [`check_host`] returns them.
pub const ROOT: &str = "root";
/// The OCI runtime binary is there and answers `--version`.
pub const RUNTIME: &str = "oci runtime";
/// The cgroup layout is one crun can use.
pub const CGROUPS: &str = "cgroups";
/// The controllers limits need are enabled.
pub const CONTROLLERS: &str = "cgroup controllers";
/// The cgroup subtree is delegated to the controllers fcx needs.
pub const DELEGATION: &str = "cgroup delegation";
/// The locked-memory limit is high enough.
pub const MEMLOCK: &str = "locked memory";
/// An overlay mount works in the data dir.
pub const OVERLAYFS: &str = "overlayfs";
/// Network namespaces can be created.
pub const NETNS: &str = "network namespaces";
/// `pasta` is installed (outbound networking).
pub const PASTA: &str = "pasta";
pub use egress::{EGRESS, FORWARDING, NFTABLES, VETH};

/// Controllers the OCI backend puts limits on (memorySize, cpu, process count).
const CONTROLLERS_NEEDED: [&str; 3] = ["memory", "cpu", "pids"];

/// How long `<runtime> --version` may take.
const VERSION_LIMIT: Duration = Duration::from_secs(10);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, with a caveat `detail` names.
    Warn,
    /// What needs it cannot work until `fix` is applied.
    Fail,
}

/// What fails when a check fails: the whole OCI backend, or only instances with
/// `internetAccess: true` (the server decides what is fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every OCI instance.
    Oci,
    /// Instances with outbound networking only.
    Egress,
    /// Snapshot starts (functions with the `fcxSnapshot` extension).
    Snapshots,
}

/// One host check, as `fcx doctor` prints it.
#[derive(Debug, Clone)]
pub struct Check {
    /// One of the check names above.
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found, or what went wrong.
    pub detail: String,
    /// The command (or step) that fixes a Warn or Fail.
    pub fix: Option<String>,
    /// What a failure affects.
    pub need: Need,
    /// [`apply_fix`] (`fcx doctor --fix`) applies `fix`.
    pub fixable: bool,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix: None,
            need: Need::Oci,
            fixable: false,
        }
    }

    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, detail)
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Fail, detail).with_fix(fix)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs every host check for the OCI backend with `runtime` (`crun`, `runc`, `youki` or a
/// path), testing overlay mounts on the filesystem of `data_dir` (or of its nearest existing
/// parent when it does not exist yet).
pub fn check_host(runtime: &str, data_dir: &Path) -> Vec<Check> {
    let root = crate::sys::is_root();
    let layout = cgroups::Layout::current();
    vec![
        check_root(root),
        check_runtime(runtime),
        check_cgroups(&layout, runtime),
        check_controllers(&layout),
        check_delegation(&layout),
        check_memlock(&layout, runtime),
        check_overlay(data_dir, root),
        check_netns(root),
        check_pasta(),
    ]
}

/// Moves every controller a hybrid host's cgroup2 mount still owns to a v1 hierarchy of its
/// own (`mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`), so crun accepts the host.
/// Idempotent: `Ok(false)` when nothing needed changing. Lasts until the next reboot.
pub fn fix_hybrid_cgroups() -> io::Result<bool> {
    cgroups::fix_hybrid()
}

/// Applies the fix of the fixable check `name` (`fcx doctor --fix`): the hybrid-cgroup mount
/// ([`fix_hybrid_cgroups`]) or the cgroup2 delegation (a read-only mount remounted, a
/// container's processes moved off its cgroup namespace root). `Ok(false)`: nothing to do.
pub fn apply_fix(name: &str) -> io::Result<bool> {
    match name {
        CGROUPS => fix_hybrid_cgroups(),
        DELEGATION => match crate::cgroup::cgroup2_mount() {
            Some(mount) => delegation::fix(&mount),
            None => Ok(false),
        },
        _ => Ok(false),
    }
}

/// `Err` with every failing check needed by the OCI backend and its fix (the lines of
/// [`failure_report`]): the server refuses to start the OCI backend with this message.
pub fn ensure_oci_ready(runtime: &str, data_dir: &Path) -> Result<(), String> {
    match failure_report(&check_host(runtime, data_dir), Need::Oci) {
        Some(report) => Err(report),
        None => Ok(()),
    }
}

/// The failing checks of `checks` needed for `need`, two lines each (`  - name: detail`,
/// `    fix: command`, the second marked when `fcx doctor --fix` applies it), for the caller
/// to put under its own headline; `None` when none fail.
pub fn failure_report(checks: &[Check], need: Need) -> Option<String> {
    let lines: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Fail && c.need == need)
        .map(|c| {
            let mut line = format!("  - {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                let auto = if c.fixable {
                    " (or: fcx doctor --fix)"
                } else {
                    ""
                };
                let _ = write!(line, "\n    fix: {fix}{auto}");
            }
            line
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn check_root(root: bool) -> Check {
    if root {
        Check::ok(ROOT, "running as root (uid 0)")
    } else {
        Check::fail(
            ROOT,
            "not running as root: containers need mounts, namespaces and cgroups",
            "run fcx as root (sudo fcx ...)",
        )
    }
}

fn install_hint(runtime: &str) -> String {
    match runtime {
        "crun" | "runc" => format!("apt-get install -y {runtime}"),
        "youki" => "install youki from https://github.com/youki-dev/youki/releases into \
                    /usr/local/bin, or use crun: apt-get install -y crun"
            .to_string(),
        _ => {
            format!("put an OCI runtime binary at {runtime}, or use crun: apt-get install -y crun")
        }
    }
}

fn check_runtime(runtime: &str) -> Check {
    let Some(bin) = probe::find_executable(runtime) else {
        let detail = if runtime.contains('/') {
            format!("OCI runtime {runtime} not found (no executable file there)")
        } else {
            format!("OCI runtime '{runtime}' not found in $PATH or /usr/sbin, /usr/bin, /sbin")
        };
        return Check::fail(RUNTIME, detail, install_hint(runtime));
    };
    match probe::version_line(&bin, VERSION_LIMIT) {
        Ok(version) if !version.is_empty() => {
            Check::ok(RUNTIME, format!("{}: {version}", bin.display()))
        }
        Ok(_) => Check::fail(
            RUNTIME,
            format!(
                "{} --version printed nothing: not an OCI runtime?",
                bin.display()
            ),
            install_hint(runtime),
        ),
        Err(e) => Check::fail(RUNTIME, e, install_hint(runtime)),
    }
}

fn is_crun(runtime: &str) -> bool {
    Path::new(runtime)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("crun"))
}

fn check_cgroups(layout: &io::Result<cgroups::Layout>, runtime: &str) -> Check {
    use cgroups::Layout;
    let layout = match layout {
        Ok(l) => l,
        Err(e) => {
            return Check::fail(
                CGROUPS,
                format!("cannot read /proc/self/mountinfo: {e}"),
                "mount -t proc proc /proc",
            )
        }
    };
    let Layout::Hybrid { unified, .. } = layout else {
        return match layout {
            Layout::None => Check::fail(
                CGROUPS,
                layout.describe(),
                "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
            ),
            _ => Check::ok(CGROUPS, layout.describe()),
        };
    };
    let owned = match cgroups::hybrid_v2_controllers(unified) {
        Ok(c) => c,
        Err(e) => {
            return Check::new(
                CGROUPS,
                Status::Warn,
                format!(
                    "{}; cannot read {}/cgroup.controllers: {e}",
                    layout.describe(),
                    unified.display()
                ),
            )
        }
    };
    if owned.is_empty() {
        return Check::ok(
            CGROUPS,
            format!(
                "{}, which owns no controllers (as crun needs)",
                layout.describe()
            ),
        );
    }
    // crun refuses any container on such a host; runc copes with it.
    let status = if is_crun(runtime) {
        Status::Fail
    } else {
        Status::Warn
    };
    let mut check = Check::new(
        CGROUPS,
        status,
        format!(
            "{}, which still owns controllers: {}. crun refuses every container here \
             (\"cgroups in hybrid mode not supported, drop all controllers from cgroupv2\")",
            layout.describe(),
            owned.join(" ")
        ),
    )
    .with_fix(hybrid_fix_command(&layout.v1_parent(), &owned));
    check.fixable = true;
    check
}

/// `/proc/cgroups`: which controllers the kernel has, and whether each is enabled.
fn kernel_controllers() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.to_string(), *f.get(3)? == "1"))
        })
        .collect()
}

fn check_controllers(layout: &io::Result<cgroups::Layout>) -> Check {
    let Ok(layout) = layout else {
        return Check::fail(
            CONTROLLERS,
            "cgroup layout unknown",
            "see the cgroups check",
        );
    };
    let v2 = match layout {
        cgroups::Layout::Unified { mount } => {
            cgroups::hybrid_v2_controllers(mount).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let missing: Vec<String> = CONTROLLERS_NEEDED
        .iter()
        .filter(|c| !layout.has_controller(c, &v2))
        .map(|c| c.to_string())
        .collect();
    let version = match layout {
        cgroups::Layout::Unified { .. } => "v2",
        _ => "v1",
    };
    if missing.is_empty() {
        return Check::ok(
            CONTROLLERS,
            format!("{} available ({version})", CONTROLLERS_NEEDED.join(", ")),
        );
    }
    let kernel = kernel_controllers();
    let disabled: Vec<&String> = missing
        .iter()
        .filter(|m| !kernel.iter().any(|(k, on)| k == *m && *on))
        .collect();
    let detail = format!("missing: {} (limits need them)", missing.join(", "));
    let fix = if !disabled.is_empty() {
        format!(
            "the kernel lacks or disables {}: boot without cgroup_disable=... on the kernel \
             command line (or with a kernel built with them)",
            disabled
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if version == "v1" {
        hybrid_fix_command(&layout.v1_parent(), &missing)
    } else {
        "boot with the controllers enabled (systemd.unified_cgroup_hierarchy=1)".to_string()
    };
    Check::fail(CONTROLLERS, detail, fix)
}

fn check_delegation(layout: &io::Result<cgroups::Layout>) -> Check {
    match layout {
        Ok(cgroups::Layout::Unified { mount }) => delegation::check(mount, true),
        Ok(cgroups::Layout::Hybrid { unified, .. }) => delegation::check(unified, false),
        Ok(cgroups::Layout::Legacy { .. }) => Check::ok(
            DELEGATION,
            "no cgroup2 mount: limits in v1, no freezing of instances",
        ),
        _ => Check::fail(DELEGATION, "cgroup layout unknown", "see the cgroups check"),
    }
}

/// crun attaches its device filter as an eBPF program on cgroup v2 and first raises
/// RLIMIT_MEMLOCK to unlimited; with a finite hard limit and no CAP_SYS_RESOURCE (fcx in a
/// container: found by scripts/portability.sh) every container fails with
/// "setrlimit (RLIM_MEMLOCK): Operation not permitted".
fn check_memlock(layout: &io::Result<cgroups::Layout>, runtime: &str) -> Check {
    let unified = matches!(layout, Ok(cgroups::Layout::Unified { .. }));
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    memlock_check(
        unified && is_crun(runtime),
        &read("/proc/self/limits"),
        &read("/proc/thread-self/status"),
    )
}

/// [`check_memlock`] on the texts of `/proc/self/limits` and `/proc/thread-self/status`.
fn memlock_check(applies: bool, limits: &str, status: &str) -> Check {
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or("unlimited")
        .to_string();
    const CAP_SYS_RESOURCE: u32 = 24;
    let cap = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0);
    let limit = if hard == "unlimited" {
        "unlimited".to_string()
    } else {
        format!("{hard} bytes")
    };
    if !applies || hard == "unlimited" || cap {
        let why = if cap { ", CAP_SYS_RESOURCE held" } else { "" };
        return Check::ok(MEMLOCK, format!("hard limit {limit}{why}"));
    }
    Check::fail(
        MEMLOCK,
        format!(
            "hard limit {limit} and no CAP_SYS_RESOURCE: crun raises the limit to load its \
             cgroup v2 device filter (eBPF), and every container would fail with \
             \"setrlimit (RLIM_MEMLOCK): Operation not permitted\""
        ),
        "grant fcx CAP_SYS_RESOURCE (Kubernetes: securityContext.capabilities.add: \
         [SYS_RESOURCE]), or start it with no locked-memory limit (ulimit -l unlimited; \
         systemd: LimitMEMLOCK=infinity)",
    )
}

/// The filesystem type `path` lives on (longest mount point prefix).
fn fstype_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let path = path.canonicalize().ok()?;
    parse_mountinfo(&text)
        .into_iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .map(|m| m.fstype)
}

fn check_overlay(data_dir: &Path, root: bool) -> Check {
    let listed = std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    });
    let base = probe::existing_ancestor(data_dir);
    let fs = fstype_of(&base).unwrap_or_else(|| "unknown fs".to_string());
    let place = if std::path::absolute(data_dir).is_ok_and(|abs| abs == base) {
        format!("{} ({fs})", base.display())
    } else {
        format!(
            "{} ({fs}; the data dir {} does not exist yet)",
            base.display(),
            data_dir.display()
        )
    };
    match probe::overlay_mount(&base) {
        Ok(()) => Check::ok(
            OVERLAYFS,
            format!("test overlay mounted and written in {place}"),
        ),
        Err(e) => {
            let fix = if !root {
                "run fcx as root".to_string()
            } else if !listed {
                "modprobe overlay".to_string()
            } else {
                format!("use a data dir on ext4, xfs or tmpfs (not {fs}): --data-dir /var/lib/fcx")
            };
            let listed = if listed {
                ""
            } else {
                "; overlay is not in /proc/filesystems"
            };
            Check::fail(
                OVERLAYFS,
                format!("test mount in {place} failed: {e}{listed}"),
                fix,
            )
        }
    }
}

fn check_netns(root: bool) -> Check {
    match probe::network_namespace() {
        Ok(()) => Check::ok(NETNS, "created one with loopback up"),
        Err(e) => Check::fail(
            NETNS,
            e,
            if root {
                "allow network namespaces (sysctl user.max_net_namespaces > 0; in a container, \
                 run it with CAP_SYS_ADMIN / --privileged)"
            } else {
                "run fcx as root"
            },
        ),
    }
}

/// The check name of [`check_snapshots`].
pub const SNAPSHOTS: &str = "snapshots";

/// Whether snapshot starts work here: a CRIU 4.2+ (at `criu`, or found on PATH) that passes
/// `criu check`, and whether its restores can use lazy pages. A warning, not a failure:
/// without it snapshot-enabled functions start cold.
pub fn check_snapshots(criu: Option<&Path>) -> Check {
    let mut check = match crate::snapshot::Criu::probe(criu) {
        Ok(c) => Check::ok(
            SNAPSHOTS,
            format!(
                "{} (CRIU {}; lazy pages {})",
                c.path.display(),
                c.version,
                if c.lazy_pages {
                    "available"
                } else {
                    "unavailable: no userfaultfd"
                }
            ),
        ),
        Err(why) => Check::new(
            SNAPSHOTS,
            Status::Warn,
            format!("snapshot starts unavailable, functions with fcxSnapshot start cold: {why}"),
        )
        .with_fix("bash scripts/criu.sh install (builds CRIU 4.2 from Debian's source package)"),
    };
    check.need = Need::Snapshots;
    check
}

fn check_pasta() -> Check {
    let mut check = match probe::find_executable("pasta") {
        Some(bin) => {
            let version = probe::version_line(&bin, VERSION_LIMIT).unwrap_or_default();
            let version = if version.is_empty() {
                String::new()
            } else {
                format!(": {version}")
            };
            Check::ok(
                PASTA,
                format!(
                    "{}{version} (egress with --egress pasta, or where veth egress cannot run)",
                    bin.display()
                ),
            )
        }
        None => Check::fail(
            PASTA,
            "pasta not found: instances with internetAccess true cannot reach the network",
            "apt-get install -y passt",
        ),
    };
    check.need = Need::Egress;
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_host_on_this_machine_lists_every_check_with_fixes_for_failures() {
        let data = std::env::temp_dir().join("fcx-host-test-no-such-dir");
        let checks = check_host("crun", &data);
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                ROOT,
                RUNTIME,
                CGROUPS,
                CONTROLLERS,
                DELEGATION,
                MEMLOCK,
                OVERLAYFS,
                NETNS,
                PASTA
            ]
        );
        for c in &checks {
            assert!(!c.detail.is_empty(), "{c:?}");
            if c.status == Status::Fail {
                assert!(
                    c.fix.is_some(),
                    "a failing check must say how to fix it: {c:?}"
                );
            }
        }
        if crate::sys::is_root() {
            assert_eq!(checks[0].status, Status::Ok);
            // Root can always create a network namespace on Linux.
            assert_eq!(checks[7].status, Status::Ok, "{:?}", checks[7]);
        }
        // The overlay probe cleans up after itself, and did not create the data dir.
        assert!(!data.exists());
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".fcx-host-check-{}-", std::process::id()))
            })
            .count();
        assert_eq!(leftovers, 0);
        match ensure_oci_ready("crun", &data) {
            Ok(()) => assert!(failure_report(&checks, Need::Oci).is_none()),
            Err(report) => assert!(report.contains("fix: "), "{report}"),
        }
    }

    #[test]
    fn a_missing_runtime_fails_with_what_to_install() {
        let c = check_runtime("/nonexistent/rt");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("/nonexistent/rt"), "{}", c.detail);
        assert!(c
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("apt-get install -y crun"));
        let c = check_runtime("runc-that-is-not-installed");
        assert!(c.detail.contains("not found in $PATH"), "{}", c.detail);
    }

    #[test]
    fn failure_report_lists_each_failure_with_its_fix_and_only_for_its_need() {
        let mut cg = Check::fail(CGROUPS, "hybrid", "mount -t cgroup -o hugetlb ...");
        cg.fixable = true;
        let mut pasta = Check::fail(PASTA, "pasta not found", "apt-get install -y passt");
        pasta.need = Need::Egress;
        let checks = vec![Check::ok(ROOT, "root"), cg, pasta];
        let report = failure_report(&checks, Need::Oci).unwrap_or_default();
        assert_eq!(
            report,
            "  - cgroups: hybrid\n    fix: mount -t cgroup -o hugetlb ... (or: fcx doctor --fix)"
        );
        assert!(!report.contains("pasta"));
        let egress = failure_report(&checks, Need::Egress).unwrap_or_default();
        assert!(egress.contains("apt-get install -y passt"));
        assert!(failure_report(&checks[..1], Need::Oci).is_none());
    }

    /// As in the guest's DaemonSet-like container: 8 MB hard limit, Docker's capabilities
    /// plus SYS_ADMIN and NET_ADMIN (CapEff a82435fb), crun on pure cgroup v2.
    #[test]
    fn memlock_limit_without_cap_sys_resource_fails_for_crun_on_v2() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max locked memory         8388608              8388608              bytes\n";
        let container = "Name:\tfcx\nCapEff:\t00000000a82435fb\n";
        let c = memlock_check(true, limits, container);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("8388608 bytes"), "{}", c.detail);
        assert!(c.fix.as_deref().unwrap_or("").contains("SYS_RESOURCE"));
        // With CAP_SYS_RESOURCE (bit 24), an unlimited hard limit, or not crun on v2: fine.
        let with_cap = "CapEff:\t00000000a92435fb\n";
        assert_eq!(memlock_check(true, limits, with_cap).status, Status::Ok);
        let unlimited =
            "Max locked memory         8388608              unlimited            bytes\n";
        assert_eq!(memlock_check(true, unlimited, container).status, Status::Ok);
        assert_eq!(memlock_check(false, limits, container).status, Status::Ok);
    }

    #[test]
    fn hybrid_trap_is_fatal_for_crun_only() {
        assert!(is_crun("crun") && is_crun("/usr/local/bin/crun"));
        assert!(!is_crun("runc") && !is_crun("/opt/youki"));
    }
}
