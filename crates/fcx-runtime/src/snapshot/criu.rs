//! The CRIU binary fcx drives: where it is, whether it is new enough (4.2: older releases
//! fail on current kernels, see docs/snapshots.md), whether `criu check` passes, and whether
//! lazy pages (userfaultfd) work on this kernel. Also the argument lists of a dump and a
//! restore, so both backends pass CRIU the same options.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The oldest CRIU that dumps and restores on kernels 6.x with TCP listeners (4.1 fails on
/// `SO_PASSCRED`, 3.17 on the vDSO).
pub const MIN_VERSION: (u32, u32) = (4, 2);

/// A CRIU binary that passed its checks.
#[derive(Debug, Clone)]
pub struct Criu {
    /// The binary.
    pub path: PathBuf,
    /// `criu --version`'s number, e.g. `4.2.1`.
    pub version: String,
    /// Whether `criu check --feature uffd-noncoop` passed: restores may use lazy pages.
    pub lazy_pages: bool,
    /// Restores of images with more memory pages than this use lazy pages (when
    /// `lazy_pages`); default [`super::LAZY_PAGES_ABOVE`].
    pub lazy_pages_above: u64,
}

impl Criu {
    /// Whether a restore of `pages_bytes` of memory uses lazy pages.
    pub fn lazy_for(&self, pages_bytes: u64) -> bool {
        self.lazy_pages && pages_bytes > self.lazy_pages_above
    }
}

/// Where fcx looks for `criu` when not told: PATH, then the usual install places.
fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_owned()];
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("criu"))
        .collect()
}

impl Criu {
    /// Finds `criu` (or takes `explicit`), and checks its version and `criu check`.
    /// Blocking (about 50 ms). The error says what is missing and how to get it.
    pub fn probe(explicit: Option<&Path>) -> Result<Criu, String> {
        let Some(path) = candidates(explicit).into_iter().find(|p| p.is_file()) else {
            return Err(match explicit {
                Some(p) => format!("criu not found at {}", p.display()),
                None => "criu is not installed (looked on PATH, /usr/local/sbin, /usr/sbin); \
                         build CRIU 4.2 with `bash scripts/criu.sh install` (or `bash scripts/setup.sh`)"
                    .into(),
            });
        };
        let out = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| format!("{} --version printed no version: {text:?}", path.display()))?;
        if parse_version(&version) < MIN_VERSION {
            return Err(format!(
                "{} is CRIU {version}, older than {}.{}, which fails on this kernel; build 4.2 \
                 from the distribution's source package with `bash scripts/criu.sh install`",
                path.display(),
                MIN_VERSION.0,
                MIN_VERSION.1
            ));
        }
        let check = Command::new(&path)
            .arg("check")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {} check: {e}", path.display()))?;
        if !check.status.success() {
            let said = String::from_utf8_lossy(&check.stderr);
            let said: Vec<&str> = said.lines().filter(|l| l.contains("Error")).collect();
            return Err(format!(
                "`{} check` failed ({}): {}",
                path.display(),
                check.status,
                said.join("; ")
            ));
        }
        let lazy_pages = Command::new(&path)
            .args(["check", "--feature", "uffd-noncoop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ok(Criu {
            path,
            version,
            lazy_pages,
            lazy_pages_above: super::LAZY_PAGES_ABOVE,
        })
    }
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The name the instance's network namespace has in an image: CRIU leaves it out of the
/// dump and takes the fresh namespace the restorer passes in.
pub const NET_NAME: &str = "fcx-netns";

/// fd numbers the restorer hands to `criu restore` (`--inherit-fd`).
pub const FD_NETNS: i32 = 3;
/// The instance's log pipe (its stdout and stderr).
pub const FD_LOG: i32 = 4;
/// The instance's identity file (`FCX_INSTANCE_ID_FILE`).
pub const FD_IDENTITY: i32 = 5;

/// `criu dump` of the tree rooted at `pid` into `images`, leaving it running (it serves its
/// first request next). Established TCP connections (fcx's own, used for `/initialize`) are
/// restored closed; the network namespace is external.
pub fn dump_args(pid: i32, images: &Path, netns_inode: u64, root: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "dump".to_owned(),
        "-t".into(),
        pid.to_string(),
        "-D".into(),
        images.display().to_string(),
        "-o".into(),
        "dump.log".into(),
        "-v1".into(),
        "--shell-job".into(),
        "--leave-running".into(),
        "--tcp-close".into(),
        "--network-lock".into(),
        "skip".into(),
        "--manage-cgroups=ignore".into(),
        "--external".into(),
        format!("net[{netns_inode}]:{NET_NAME}"),
    ];
    if let Some(root) = root {
        args.push("--root".into());
        args.push(root.display().to_string());
    }
    args
}

/// The `criu restore` child of both backends: `args` run in `work` with a clean environment
/// and no stdio, as a subreaper in a fresh PID namespace joined to `netns`, in the cgroups of
/// `cgroup_procs`, inheriting `netns` as [`FD_NETNS`] and each of `fds` (the log pipe as
/// [`FD_LOG`], a process instance's identity file as [`FD_IDENTITY`]).
pub fn restore_command(
    criu: &Path,
    args: &[String],
    work: &Path,
    netns: std::os::fd::RawFd,
    cgroup_procs: Vec<std::ffi::CString>,
    fds: &[(std::os::fd::RawFd, std::os::fd::RawFd)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(criu);
    cmd.args(args)
        .current_dir(work)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut inherited = vec![(netns, FD_NETNS)];
    inherited.extend_from_slice(fds);
    crate::sys::prepare_pidns_command(
        &mut cmd,
        crate::sys::PidnsSetup {
            netns,
            cgroup_procs,
            user: None,
            fds: inherited,
            subreaper: true,
            private: None,
        },
    );
    cmd
}

/// `criu restore -d` of `images` (the restorer's work files in `work`), with the
/// instance's fresh namespace, log pipe and (process instances) identity file inherited as
/// fds 3, 4, 5.
pub fn restore_args(
    images: &Path,
    work: &Path,
    pidfile: &Path,
    pipe: &str,
    identity: Option<&str>,
) -> Vec<String> {
    let mut args = vec![
        "restore".to_owned(),
        "-d".into(),
        "-D".into(),
        images.display().to_string(),
        "-W".into(),
        work.display().to_string(),
        "-o".into(),
        "restore.log".into(),
        "-v1".into(),
        "--shell-job".into(),
        "--tcp-close".into(),
        "--manage-cgroups=ignore".into(),
        "--pidfile".into(),
        pidfile.display().to_string(),
        "--inherit-fd".into(),
        format!("fd[{FD_NETNS}]:{NET_NAME}"),
        "--inherit-fd".into(),
        format!("fd[{FD_LOG}]:{pipe}"),
    ];
    if let Some(identity) = identity {
        args.push("--inherit-fd".into());
        args.push(format!("fd[{FD_IDENTITY}]:{identity}"));
    }
    args
}

/// The options of a dump and a restore of a process instance's own mount namespace (a copy
/// of the host's with private mounts on top): every mount CRIU finds in its own namespace too
/// is external, bind-mounted again from there on restore; only the private mounts (and
/// their tmpfs contents) go into the image.
pub const HOST_MOUNTS: [&str; 3] = [
    "--ext-mount-map=auto",
    "--enable-external-sharing",
    "--enable-external-masters",
];

/// The key CRIU gives a file opened outside the dumped mount namespace when it is named
/// external (`--external` on dump, `--inherit-fd fd[N]:KEY` on restore): its mount id and
/// inode, in hex.
pub fn external_file(mnt_id: u64, inode: u64) -> String {
    format!("file[{mnt_id:x}:{inode:x}]")
}

/// The last error lines of a CRIU log (what a fallback reason quotes).
pub fn log_errors(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error") && !l.contains("RLIMIT_NOFILE"))
        .collect();
    let tail = &errors[errors.len().saturating_sub(3)..];
    if tail.is_empty() {
        format!("no error in {}", log.display())
    } else {
        tail.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(parse_version("4.2.1") >= MIN_VERSION);
        assert!(parse_version("4.2") >= MIN_VERSION);
        assert!(parse_version("4.1.1") < MIN_VERSION);
        assert!(parse_version("3.17.1") < MIN_VERSION);
        assert!(parse_version("10.0") >= MIN_VERSION);
    }

    #[test]
    fn external_files_are_named_in_hex_as_criu_does() {
        assert_eq!(external_file(0x1a, 255), "file[1a:ff]");
    }

    #[test]
    fn restore_inherits_namespace_log_and_identity() {
        let a = restore_args(
            Path::new("/s/images"),
            Path::new("/w"),
            Path::new("/w/pid"),
            "pipe:[42]",
            Some("run/fcx/identity/c-1"),
        );
        let joined = a.join(" ");
        assert!(joined.contains("--inherit-fd fd[3]:fcx-netns"), "{joined}");
        assert!(joined.contains("--inherit-fd fd[4]:pipe:[42]"), "{joined}");
        assert!(
            joined.contains("--inherit-fd fd[5]:run/fcx/identity/c-1"),
            "{joined}"
        );
        assert!(a.contains(&"-d".to_owned()));
    }
}
