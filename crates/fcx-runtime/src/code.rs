//! Unpacked code packages, shared by the instances of one function: `<root>/<uid>/<checksum>/`,
//! where `<root>/<uid>` is `root:<gid> 0750`, so only that function's instances (its own uid
//! and gid) can reach its code. A package is unpacked once per owner (into a temporary
//! directory, then renamed into place), with nothing escaping the root.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest total size of an unpacked package (guards against zip bombs).
const UNPACKED_MAX: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("code package {checksum} is not a valid zip archive: {reason}")]
    BadArchive { checksum: String, reason: String },
    #[error("cannot unpack code package {checksum}: {source}")]
    Io {
        checksum: String,
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

#[cfg(test)]
mod tests {
    use super::*;

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
