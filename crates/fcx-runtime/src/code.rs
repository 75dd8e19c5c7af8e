//! Unpacked code packages, shared by the instances of one function: `<root>/<uid>/<checksum>/`,
//! where `<root>/<uid>` is `root:<gid> 0750`, so only that function's instances (its own uid
//! and gid) can reach its code. A package is unpacked once per owner (into a temporary
//! directory, then renamed into place), with nothing escaping the root.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use fcx_protocol::limits::{CODE_ENTRIES_MAX, CODE_UNPACKED_MAX as UNPACKED_MAX};

/// Longest symlink target read from a package.
const LINK_TARGET_MAX: u64 = 4096;
/// Most symlinks followed while resolving one path (the kernel's own limit).
const LINKS_FOLLOWED_MAX: usize = 40;

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

    /// The unpacked directory for the package `checksum` stored at `zip_path`, readable by
    /// `owner` (a uid that is also the gid) and nobody else but root.
    pub async fn ensure(
        &self,
        checksum: &str,
        zip_path: &Path,
        owner: u32,
    ) -> Result<PathBuf, CodeError> {
        let root = self.root.join(owner.to_string());
        let dir = root.join(checksum);
        if dir.is_dir() {
            return Ok(dir);
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(format!("{owner}/{checksum}")).or_default())
        };
        let _guard = lock.lock().await;
        if dir.is_dir() {
            return Ok(dir);
        }
        let (sum, zip) = (checksum.to_owned(), zip_path.to_owned());
        tokio::task::spawn_blocking(move || {
            owner_dir(&root, owner).map_err(|source| CodeError::Io {
                checksum: sum.clone(),
                source,
            })?;
            unpack_into_cache(&root, &sum, &zip)
        })
        .await
        .map_err(|e| CodeError::Io {
            checksum: checksum.to_owned(),
            source: io::Error::other(e),
        })?
    }
}

/// `<root>/<uid>`: owned by root, group `owner`, mode 0750.
fn owner_dir(dir: &Path, owner: u32) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(0), Some(owner))?;
    set_mode(dir, 0o750)
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

/// Unpacks `zip` into `dest`, keeping every entry inside `dest`. Symlinks are made last, so
/// no file written here goes through one; the sizes written are bounded whatever the zip
/// declares.
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
    let mut links = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name: String = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| bad(format!("entry '{name}' points outside the package")))?;
        let path = dest.join(&rel);
        if entry.is_dir() {
            create_dirs(dest, &path).map_err(io_err)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            create_dirs(dest, parent).map_err(io_err)?;
        }
        if entry.is_symlink() {
            links.push((rel, read_link_target(&mut entry).map_err(io_err)?));
            continue;
        }
        let mut out = std::fs::File::create(&path).map_err(io_err)?;
        let written =
            io::copy(&mut (&mut entry).take(UNPACKED_MAX - total + 1), &mut out).map_err(io_err)?;
        total += written;
        if total > UNPACKED_MAX {
            return Err(bad(format!(
                "entry '{name}' unpacks past the limit of {UNPACKED_MAX} bytes"
            )));
        }
        // Readable by the instance user; executable bits kept as packed.
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o755 | 0o444;
        set_mode(&path, mode).map_err(io_err)?;
    }
    let tree = Tree::new(
        links
            .iter()
            .map(|(rel, target)| (rel.clone(), target.clone())),
    );
    for (rel, target) in &links {
        tree.check_link(rel, target).map_err(bad)?;
        std::os::unix::fs::symlink(target, dest.join(rel)).map_err(io_err)?;
    }
    Ok(())
}

/// A symlink entry's target (its content), bounded.
fn read_link_target<R: io::Read>(entry: &mut R) -> io::Result<String> {
    let mut target = String::new();
    entry.take(LINK_TARGET_MAX).read_to_string(&mut target)?;
    Ok(target)
}

/// The symlinks of a package, to resolve a link's target through the links it meets (a
/// chain of links each inside the package may still lead out: `a/b/s -> ../..` then
/// `l -> a/b/s/..`).
struct Tree {
    links: HashMap<PathBuf, String>,
}

impl Tree {
    fn new(links: impl Iterator<Item = (PathBuf, String)>) -> Tree {
        Tree {
            links: links.collect(),
        }
    }

    /// The link `rel -> target` resolves inside the package (or dangles inside it).
    fn check_link(&self, rel: &Path, target: &str) -> Result<(), String> {
        let outside = || {
            format!(
                "symlink '{}' -> '{target}' points outside the package",
                rel.display()
            )
        };
        if Path::new(target).is_absolute() {
            return Err(outside());
        }
        let base = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let start: Vec<String> = parts(&base);
        self.resolve(start, target, 0)
            .map(|_| ())
            .map_err(|_| outside())
    }

    /// Walks `target` from the directory `at` (components from the package root),
    /// following links; `Err` when the walk climbs above the root or loops.
    fn resolve(&self, mut at: Vec<String>, target: &str, depth: usize) -> Result<Vec<String>, ()> {
        if depth > LINKS_FOLLOWED_MAX || Path::new(target).is_absolute() {
            return Err(());
        }
        for c in Path::new(target).components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    at.pop().ok_or(())?;
                }
                Component::Normal(name) => {
                    at.push(name.to_string_lossy().into_owned());
                    let here: PathBuf = at.iter().collect();
                    if let Some(next) = self.links.get(&here) {
                        at.pop();
                        at = self.resolve(at, next, depth + 1)?;
                    }
                }
                _ => return Err(()),
            }
        }
        Ok(at)
    }
}

fn parts(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
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

/// Checks that `bytes` is a zip archive fcx can unpack, when code is uploaded, so a bad
/// package is refused at create (400, naming the entry) rather than failing every
/// invocation: every entry stays inside the package (names, and symlinks followed through
/// each other), at most [`CODE_ENTRIES_MAX`] entries, and at most [`UNPACKED_MAX`] bytes,
/// both as declared and as really decompressed (stopping at the limit: a zip bomb is not
/// expanded further).
pub fn validate_zip(bytes: &[u8]) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes))
        .map_err(|e| format!("not a valid zip archive: {e}"))?;
    if archive.len() > CODE_ENTRIES_MAX {
        return Err(format!(
            "the package holds {} entries, more than the limit of {CODE_ENTRIES_MAX}",
            archive.len()
        ));
    }
    let mut declared: u64 = 0;
    let mut actual: u64 = 0;
    let mut links = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("not a valid zip archive: entry {i}: {e}"))?;
        let name: String = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let Some(rel) = entry.enclosed_name() else {
            return Err(format!("entry '{name}' points outside the package"));
        };
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            let target = read_link_target(&mut entry)
                .map_err(|e| format!("entry '{name}': cannot read the symlink's target: {e}"))?;
            links.push((rel, target));
            continue;
        }
        declared = declared.saturating_add(entry.size());
        if declared > UNPACKED_MAX {
            return Err(format!(
                "entry '{name}': the package declares more than {UNPACKED_MAX} bytes unpacked, \
                 the limit"
            ));
        }
        let read = io::copy(
            &mut (&mut entry).take(UNPACKED_MAX - actual + 1),
            &mut io::sink(),
        )
        .map_err(|e| format!("entry '{name}' does not decompress: {e}"))?;
        actual += read;
        if actual > UNPACKED_MAX {
            return Err(format!(
                "entry '{name}' unpacks past the limit of {UNPACKED_MAX} bytes (it declares \
                 {} bytes: a zip bomb?)",
                entry.size()
            ));
        }
    }
    let tree = Tree::new(links.iter().cloned());
    for (rel, target) in &links {
        tree.check_link(rel, target)?;
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

    fn check(links: &[(&str, &str)], link: &str, target: &str) -> bool {
        let tree = Tree::new(links.iter().map(|(l, t)| (PathBuf::from(l), t.to_string())));
        tree.check_link(Path::new(link), target).is_ok()
    }

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
        assert!(check(&[], "a/b", "c"));
        assert!(check(&[], "node_modules/.bin/x", "../x/bin.js"));
        assert!(!check(&[], "a", "../etc/passwd"));
        assert!(!check(&[], "a/b", "../../x"));
        assert!(!check(&[], "a", "/etc/passwd"));
    }

    #[test]
    fn a_chain_of_links_that_leads_out_is_caught() {
        // a/b/s -> ../.. is the package root; l -> a/b/s/.. is then above it.
        let links = [("a/b/s", "../.."), ("l", "a/b/s/..")];
        assert!(check(&links, "a/b/s", "../.."));
        assert!(!check(&links, "l", "a/b/s/.."));
        // Loops are refused, not followed forever.
        let loops = [("x", "y"), ("y", "x")];
        assert!(!check(&loops, "x", "y"));
    }
}
