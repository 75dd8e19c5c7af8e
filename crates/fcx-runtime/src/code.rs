//! Unpacked code packages, shared by all instances of the same code: `<root>/<checksum>/`.
//! A package is unpacked once (into a temporary directory, then renamed into place), with
//! permissions that let the unprivileged instance user read it and nothing escaping the root.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest total size of an unpacked package (guards against zip bombs).
const UNPACKED_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// Why a code package could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The package is not a zip archive fcx unpacks (corrupt, unsafe paths, too large).
    #[error("code package {checksum} is not a valid zip archive: {reason}")]
    BadArchive {
        /// The package's SHA-256.
        checksum: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the unpacked files failed.
    #[error("cannot unpack code package {checksum}: {source}")]
    Io {
        /// The package's SHA-256.
        checksum: String,
        /// The file system's error.
        #[source]
        source: io::Error,
    },
}

/// The directory of unpacked packages.
pub struct CodeCache {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl CodeCache {
    /// A cache rooted at `root` (created on first unpack).
    pub fn new(root: PathBuf) -> CodeCache {
        CodeCache {
            root,
            locks: Mutex::default(),
        }
    }

    /// The unpacked directory for the package `checksum` stored at `zip_path`.
    pub async fn ensure(&self, checksum: &str, zip_path: &Path) -> Result<PathBuf, CodeError> {
        let dir = self.root.join(checksum);
        if dir.is_dir() {
            return Ok(dir);
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(checksum.to_owned()).or_default())
        };
        let _guard = lock.lock().await;
        if dir.is_dir() {
            return Ok(dir);
        }
        let (root, sum, zip) = (self.root.clone(), checksum.to_owned(), zip_path.to_owned());
        tokio::task::spawn_blocking(move || unpack_into_cache(&root, &sum, &zip))
            .await
            .map_err(|e| CodeError::Io {
                checksum: checksum.to_owned(),
                source: io::Error::other(e),
            })?
    }
}

fn unpack_into_cache(root: &Path, checksum: &str, zip: &Path) -> Result<PathBuf, CodeError> {
    let io_err = |source| CodeError::Io {
        checksum: checksum.to_owned(),
        source,
    };
    std::fs::create_dir_all(root).map_err(io_err)?;
    // A unique scratch name: an unpack whose caller was cancelled may still be running in
    // its blocking thread while another caller unpacks the same package.
    let tmp = root.join(format!(".tmp-{checksum}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp).map_err(io_err)?;
    set_mode(&tmp, 0o755).map_err(io_err)?;
    if let Err(e) = unpack(zip, &tmp, checksum) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let dir = root.join(checksum);
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another unpack of the same package won the race: its result is identical.
        if !dir.is_dir() {
            return Err(io_err(e));
        }
    }
    Ok(dir)
}

/// Unpacks `zip` into `dest`, keeping every entry inside `dest`.
pub fn unpack(zip: &Path, dest: &Path, checksum: &str) -> Result<(), CodeError> {
    let bad = |reason: String| CodeError::BadArchive {
        checksum: checksum.to_owned(),
        reason,
    };
    let io_err = |source| CodeError::Io {
        checksum: checksum.to_owned(),
        source,
    };
    let file = std::fs::File::open(zip).map_err(io_err)?;
    let mut archive =
        zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        let rel = entry.enclosed_name().ok_or_else(|| {
            bad(format!(
                "entry {:?} points outside the package",
                entry.name().unwrap_or_default()
            ))
        })?;
        let path = dest.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(io_err)?;
            set_mode(&path, 0o755).map_err(io_err)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            create_dirs(dest, parent).map_err(io_err)?;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            io::Read::read_to_string(&mut entry, &mut target).map_err(io_err)?;
            if !symlink_stays_inside(&rel, Path::new(&target)) {
                return Err(bad(format!(
                    "symlink '{}' -> '{target}' points outside the package",
                    rel.display()
                )));
            }
            std::os::unix::fs::symlink(&target, &path).map_err(io_err)?;
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > UNPACKED_MAX {
            return Err(bad(format!("unpacks to more than {UNPACKED_MAX} bytes")));
        }
        let mut out = std::fs::File::create(&path).map_err(io_err)?;
        io::copy(&mut entry, &mut out).map_err(io_err)?;
        // Readable by the instance user; executable bits kept as packed.
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o755 | 0o444;
        set_mode(&path, mode).map_err(io_err)?;
    }
    Ok(())
}

fn create_dirs(dest: &Path, dir: &Path) -> io::Result<()> {
    if dir == dest || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(dest, parent)?;
    }
    std::fs::create_dir(dir)?;
    set_mode(dir, 0o755)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// A relative target that, resolved from the link's directory, never climbs above the root.
fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Checks that `bytes` is a zip archive fcx can unpack (used when code is uploaded, so a bad
/// package is refused at deploy time rather than at the first invocation).
pub fn validate_zip(bytes: &[u8]) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| e.to_string())?;
        if entry.enclosed_name().is_none() {
            return Err(format!(
                "entry {:?} points outside the package",
                entry.name().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Lets instances execute what is unpacked under `run_root` (created already). systemd
/// mounts `/run` `noexec` (Debian 12; found by scripts/portability.sh, where every
/// process-backend start failed with EACCES at exec), so fcx bind-mounts `run_root` onto
/// itself and clears `noexec` on that bind, keeping `nosuid` and `nodev`. Shared by every
/// server using the same run root, and it lasts until reboot. `Ok(false)` when the mount
/// `run_root` is on allows executing already.
pub fn allow_exec(run_root: &Path) -> io::Result<bool> {
    let root = run_root.canonicalize()?;
    let mounts = crate::mountinfo::current();
    let Some(mount) = crate::mountinfo::mount_of(&mounts, &root) else {
        return Ok(false);
    };
    if !crate::mountinfo::is_noexec(mount) {
        return Ok(false);
    }
    let path = root.to_string_lossy();
    let failed = |what: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("{path} is on a noexec mount ({}) and {what} failed: {e}; give fcx a run dir where files may be executed (--run-dir)", mount.mount_point.display()),
        )
    };
    if mount.mount_point != root {
        crate::sys::mount(&path, &root, "", libc::MS_BIND, None)
            .map_err(|e| failed(&format!("mount --bind {path} {path}"), e))?;
    }
    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV;
    crate::sys::mount("none", &root, "", flags, None)
        .map_err(|e| failed(&format!("mount -o remount,bind,exec {path}"), e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run root on a `noexec` tmpfs, as systemd mounts `/run`: after `allow_exec` a
    /// program unpacked there runs, and a second call has nothing to do.
    #[test]
    fn allow_exec_lifts_noexec_from_the_run_root() {
        if !crate::sys::is_root() {
            return;
        }
        let base = tempfile::tempdir().expect("temp dir");
        let run = base.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        crate::sys::mount("tmpfs", &run, "tmpfs", flags, Some("size=1m")).expect("tmpfs");
        let root = run.join("fcx");
        std::fs::create_dir(&root).expect("mkdir");
        let prog = root.join("prog");
        std::fs::write(&prog, "#!/bin/sh\necho ran\n").expect("write");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let run_prog = || std::process::Command::new(&prog).output();
        let denied = run_prog();
        let first = allow_exec(&root);
        let after = run_prog();
        let second = allow_exec(&root);
        // Unmount before asserting, so a failure leaves nothing mounted.
        let _ = crate::sys::umount(&root, true);
        let _ = crate::sys::umount(&run, true);
        let denied = denied.expect_err("noexec must refuse the program");
        assert_eq!(denied.raw_os_error(), Some(libc::EACCES), "{denied}");
        assert!(first.expect("allow_exec"));
        assert_eq!(after.expect("runs after allow_exec").stdout, b"ran\n");
        assert!(!second.expect("second allow_exec"));
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_stays_inside(Path::new("a/b"), Path::new("c")));
        assert!(symlink_stays_inside(
            Path::new("node_modules/.bin/x"),
            Path::new("../x/bin.js")
        ));
        assert!(!symlink_stays_inside(
            Path::new("a"),
            Path::new("../etc/passwd")
        ));
        assert!(!symlink_stays_inside(
            Path::new("a/b"),
            Path::new("../../x")
        ));
        assert!(!symlink_stays_inside(
            Path::new("a"),
            Path::new("/etc/passwd")
        ));
    }
}
