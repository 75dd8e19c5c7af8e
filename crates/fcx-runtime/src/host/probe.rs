//! Probes that try the real thing on this host: find and run a binary (bounded), mount a
//! tiny overlay next to the data dir, and create a network namespace.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys;

/// Directories searched after `$PATH`: a server started by an init system may have a short
/// `$PATH` that misses `/usr/sbin`, where some distributions put container tools.
const FALLBACK_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Resolves a command name through `$PATH` (then the usual system dirs); a name with a `/` is
/// taken as a path. Only executable regular files count.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_PATH.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The first line `<bin> --version` prints, waiting at most `limit` (a wedged binary must not
/// hang the server's start).
pub fn version_line(bin: &Path, limit: Duration) -> Result<String, String> {
    let mut child = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} --version: {e}", bin.display()))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} --version did not finish within {limit:?}",
                    bin.display()
                ));
            }
            Err(e) => return Err(format!("waiting for {} --version: {e}", bin.display())),
        }
    };
    // Version output is a few lines: it fits the pipe buffer, so reading after exit is safe.
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if out.trim().is_empty() {
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut out);
        }
    }
    let first = out.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !status.success() {
        return Err(format!(
            "{} --version exited with {status}: {first}",
            bin.display()
        ));
    }
    Ok(first.trim().to_string())
}

/// The nearest existing ancestor of `dir` (itself when it exists): where its files would go.
pub fn existing_ancestor(dir: &Path) -> PathBuf {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.ancestors()
        .find(|p| p.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Mounts a one-file overlay in a fresh temp dir inside `base`, reads the file through it,
/// then unmounts and removes everything.
pub fn overlay_mount(base: &Path) -> Result<(), String> {
    let dir = base.join(format!(
        ".fcx-host-check-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = try_overlay(&dir);
    let cleanup = std::fs::remove_dir_all(&dir);
    result?;
    cleanup.map_err(|e| format!("removing the test dir {}: {e}", dir.display()))
}

fn try_overlay(dir: &Path) -> Result<(), String> {
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| dir.join(d));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    std::fs::write(lower.join("probe"), b"fcx")
        .map_err(|e| format!("writing {}: {e}", lower.display()))?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    sys::mount("overlay", &merged, "overlay", 0, Some(&data)).map_err(|e| {
        format!(
            "mount -t overlay overlay -o {data} {}: {e}",
            merged.display()
        )
    })?;
    // A write through the overlay proves copy-up works on this filesystem, not just the mount.
    let used = std::fs::read(merged.join("probe"))
        .and_then(|b| {
            if b == b"fcx" {
                std::fs::write(merged.join("probe"), b"up")
            } else {
                Err(std::io::Error::other("lower file reads back wrong"))
            }
        })
        .map_err(|e| format!("using the overlay at {}: {e}", merged.display()));
    let unmounted = sys::umount(&merged, false)
        .or_else(|_| sys::umount(&merged, true))
        .map_err(|e| format!("umount {}: {e}", merged.display()));
    used.and(unmounted)
}

/// Creates a network namespace in a throwaway thread (so no other thread changes namespace)
/// and brings its loopback up, as every instance's sandbox does.
pub fn network_namespace() -> Result<(), String> {
    let thread = std::thread::Builder::new()
        .name("host-check-netns".into())
        .stack_size(64 * 1024);
    sys::spawn_namespace_thread(thread, |own| {
        sys::unshare_netns(own).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        sys::loopback_up().map_err(|e| format!("bringing lo up in a new namespace: {e}"))
    })
    .map_err(|e| format!("spawning a thread: {e}"))?
    .join()
    .unwrap_or_else(|_| Err("the namespace probe thread panicked".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_refuses_non_executables() {
        assert!(find_executable("sh").is_some());
        assert!(find_executable("/nonexistent/rt").is_none());
        // A directory is not an executable even with x bits.
        assert!(find_executable("/").is_none());
        assert!(find_executable("fcx-no-such-command-anywhere").is_none());
    }

    /// A shell script in a fresh temp dir, removed with the dir by the caller.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_default();
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
        path
    }

    /// `version_line`, retried while another test thread's fork still holds the fresh script
    /// open for writing (ETXTBSY, "Text file busy").
    fn version_of(bin: &Path, limit: Duration) -> Result<String, String> {
        let mut result = version_line(bin, limit);
        for _ in 0..50 {
            if !matches!(&result, Err(e) if e.contains("busy")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            result = version_line(bin, limit);
        }
        result
    }

    #[test]
    fn version_line_is_bounded_and_reports_failures() {
        let dir = std::env::temp_dir().join(format!("fcx-probe-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let ok = script(&dir, "rt", "echo; echo 'rt version 1.2'; echo commit: abc");
        let bad = script(&dir, "bad", "echo 'unknown flag' >&2; exit 3");
        let stuck = script(&dir, "stuck", "exec sleep 30");
        let limit = Duration::from_secs(10);
        assert_eq!(version_of(&ok, limit), Ok("rt version 1.2".to_string()));
        let err = version_of(&bad, limit).unwrap_err();
        assert!(
            err.contains("unknown flag") && err.contains("exit status: 3"),
            "{err}"
        );
        let err = version_of(&stuck, Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(version_line(&dir.join("absent"), limit).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn existing_ancestor_walks_up() {
        let tmp = std::env::temp_dir();
        assert_eq!(existing_ancestor(&tmp.join("a/b/c")), tmp);
    }
}
