//! Applies layer tars to a rootfs directory the way a container runtime must: whiteouts
//! and opaque directories remove lower-layer content, and nothing a layer holds can touch
//! the host outside the rootfs. Paths are cleaned lexically (escaping `..` is refused),
//! parent directories are resolved *inside* the rootfs (an absolute symlink target means
//! rootfs-relative, `..` stops at the rootfs), and the final component is never followed:
//! an existing entry there is replaced, not written through.

use crate::ImageError;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Symlinks followed while resolving one path before giving up (Linux uses 40).
const MAX_LINKS: u32 = 40;
const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT: &[u8] = b".wh.";

/// Unpacks layers of one image into one rootfs. Directory mtimes are applied once at the
/// end because writing a directory's children changes its mtime.
pub(crate) struct Unpacker {
    root: PathBuf,
    dir_times: HashMap<PathBuf, u64>,
    /// Whether lchown is possible (false when not running as root: ownership is then lost).
    chown: bool,
}

/// What the current layer wrote: opaque dirs and whiteouts spare these (they may come
/// before the marker in tar order).
#[derive(Default)]
struct Written {
    paths: HashSet<PathBuf>,
    ancestors: HashSet<PathBuf>,
}

impl Written {
    fn add(&mut self, rel: &Path) {
        let mut a = rel.parent();
        while let Some(p) = a {
            if p.as_os_str().is_empty() || !self.ancestors.insert(p.to_path_buf()) {
                break;
            }
            a = p.parent();
        }
        self.paths.insert(rel.to_path_buf());
    }

    fn keeps(&self, rel: &Path) -> bool {
        self.paths.contains(rel) || self.ancestors.contains(rel)
    }
}

/// A reader over a layer blob that undoes gzip or zstd, told by magic bytes (registries
/// sometimes label layers wrongly, so the bytes decide).
pub(crate) fn decompressed<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

impl Unpacker {
    pub fn new(root: &Path) -> Self {
        Unpacker {
            root: root.to_path_buf(),
            dir_times: HashMap::new(),
            chown: rustix::process::geteuid().is_root(),
        }
    }

    /// Applies one (possibly compressed) layer tar. `digest` names the layer in errors.
    pub fn apply(&mut self, layer: impl Read, digest: &str) -> Result<(), ImageError> {
        let mut archive = tar::Archive::new(decompressed(layer)?);
        let mut written = Written::default();
        let entries = archive.entries().map_err(|e| bad_tar(digest, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad_tar(digest, e))?;
            self.entry(&mut entry, digest, &mut written)?;
        }
        Ok(())
    }

    /// Sets directory mtimes recorded by [`Unpacker::apply`], deepest first.
    pub fn finish(self) -> Result<(), ImageError> {
        let mut dirs: Vec<_> = self.dir_times.into_iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, mtime) in dirs {
            match set_mtime(&self.root.join(&rel), mtime) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        digest: &str,
        written: &mut Written,
    ) -> Result<(), ImageError> {
        let raw_path = entry.path_bytes().into_owned();
        let comps = clean(&raw_path)
            .ok_or_else(|| unsafe_layer(digest, &raw_path, "path escapes the rootfs via .."))?;
        let Some((name, parent)) = comps.split_last() else {
            return Ok(()); // the root itself ("./"): the rootfs directory is ours
        };
        let kind = entry.header().entry_type();
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE {
            let dir = self.resolve_dir(parent, true, digest, &raw_path)?;
            if let Some(dir) = dir {
                self.clear_lower(&dir, written)?;
            }
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT) {
            if hidden.starts_with(WHITEOUT)
                || hidden.is_empty()
                || hidden == b"."
                || hidden == b".."
            {
                return Ok(()); // other aufs metadata (.wh..wh.plnk etc.): not content
            }
            if let Some(dir) = self.resolve_dir(parent, false, digest, &raw_path)? {
                let rel = dir.join(OsStr::from_bytes(hidden));
                if !written.keeps(&rel) {
                    remove_any(&self.root.join(&rel))?;
                }
            }
            return Ok(());
        }
        if matches!(
            kind,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            tracing::debug!(path = %String::from_utf8_lossy(&raw_path), "skipping device node or fifo in layer");
            return Ok(());
        }
        if !(kind.is_file()
            || kind.is_dir()
            || kind.is_symlink()
            || kind.is_hard_link()
            || kind == tar::EntryType::Continuous
            || kind == tar::EntryType::GNUSparse)
        {
            return Ok(()); // pax/gnu metadata the tar reader did not fold in
        }
        let dir = self
            .resolve_dir(parent, true, digest, &raw_path)?
            .unwrap_or_default();
        let rel = dir.join(name);
        let host = self.root.join(&rel);
        let header = entry.header();
        let mode = header.mode().map_err(|e| bad_tar(digest, e))? & 0o7777;
        // Empty numeric fields mean 0, as Go's archive/tar (Docker) reads them.
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);
        let owner = (
            u32::try_from(uid).map_err(|_| unsafe_layer(digest, &raw_path, "uid out of range"))?,
            u32::try_from(gid).map_err(|_| unsafe_layer(digest, &raw_path, "gid out of range"))?,
        );

        if kind.is_dir() {
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(&host)?;
                    mkdir(&host)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => mkdir(&host)?,
                Err(e) => return Err(e.into()),
            }
            self.own(&host, owner)?;
            fs::set_permissions(&host, fs::Permissions::from_mode(mode))?;
            self.dir_times.insert(rel.clone(), mtime);
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_layer(digest, &raw_path, "symlink without target"))?
                .into_owned();
            replace(&host)?;
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), &host)?;
            self.own(&host, owner)?;
            set_mtime(&host, mtime)?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_layer(digest, &raw_path, "hardlink without target"))?
                .into_owned();
            let tcomps = clean(&target).ok_or_else(|| {
                unsafe_layer(
                    digest,
                    &raw_path,
                    "hardlink target escapes the rootfs via ..",
                )
            })?;
            let Some((tname, tparent)) = tcomps.split_last() else {
                return Err(unsafe_layer(
                    digest,
                    &raw_path,
                    "hardlink to the rootfs itself",
                ));
            };
            let tdir = self
                .resolve_dir(tparent, false, digest, &target)?
                .ok_or_else(|| {
                    unsafe_layer(
                        digest,
                        &raw_path,
                        "hardlink target does not exist in the rootfs",
                    )
                })?;
            let thost = self.root.join(tdir.join(tname));
            match fs::symlink_metadata(&thost) {
                Ok(m) if m.is_dir() => {
                    return Err(unsafe_layer(digest, &raw_path, "hardlink to a directory"))
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(unsafe_layer(
                        digest,
                        &raw_path,
                        "hardlink target does not exist in the rootfs",
                    ))
                }
            }
            if thost != host {
                replace(&host)?;
                // link(2) does not follow a symlink target: the link names the symlink itself.
                fs::hard_link(&thost, &host)?;
            }
        } else {
            replace(&host)?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&host)?;
            io::copy(entry, &mut f).map_err(|e| bad_tar(digest, e))?;
            drop(f);
            self.own(&host, owner)?;
            // After chown: chown clears setuid/setgid bits.
            fs::set_permissions(&host, fs::Permissions::from_mode(mode))?;
            set_mtime(&host, mtime)?;
        }
        written.add(&rel);
        Ok(())
    }

    fn own(&self, host: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
        if self.chown {
            std::os::unix::fs::lchown(host, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// Resolves `comps` as a directory inside the rootfs, following symlinks as a process
    /// chrooted there would. Missing directories are created (0755) when `create`; without
    /// it a missing one gives `None`. Returns the rootfs-relative path with no symlinks.
    fn resolve_dir(
        &self,
        comps: &[OsString],
        create: bool,
        digest: &str,
        raw: &[u8],
    ) -> Result<Option<PathBuf>, ImageError> {
        let mut resolved: Vec<OsString> = Vec::new();
        let mut pending: VecDeque<OsString> = comps.iter().cloned().collect();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                resolved.pop(); // never above the rootfs
                continue;
            }
            let rel: PathBuf = resolved.iter().chain(std::iter::once(&c)).collect();
            let host = self.root.join(&rel);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(unsafe_layer(
                            digest,
                            raw,
                            "too many levels of symbolic links",
                        ));
                    }
                    let target = fs::read_link(&host)?;
                    let t = target.as_os_str().as_bytes();
                    if t.starts_with(b"/") {
                        resolved.clear(); // absolute targets mean rootfs-relative
                    }
                    for part in t.split(|b| *b == b'/').rev() {
                        pending.push_front(OsStr::from_bytes(part).to_os_string());
                    }
                }
                Ok(m) if m.is_dir() => resolved.push(c),
                Ok(_) => {
                    return Err(unsafe_layer(
                        digest,
                        raw,
                        &format!("{} is not a directory", rel.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    mkdir(&host)?;
                    resolved.push(c);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(resolved.into_iter().collect()))
    }

    /// Opaque directory: removes what lower layers put in `dir`, keeping this layer's entries.
    fn clear_lower(&self, dir: &Path, written: &Written) -> io::Result<()> {
        for child in fs::read_dir(self.root.join(dir))? {
            let child = child?;
            let rel = dir.join(child.file_name());
            if written.keeps(&rel) {
                if child.file_type()?.is_dir() {
                    self.clear_lower(&rel, written)?;
                }
            } else {
                remove_any(&child.path())?;
            }
        }
        Ok(())
    }
}

/// Lexically cleaned components of a tar path: leading `/` dropped (absolute means
/// rootfs-relative), `.` dropped, `..` applied. `None` when `..` climbs above the root.
fn clean(raw: &[u8]) -> Option<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            p => out.push(OsStr::from_bytes(p).to_os_string()),
        }
    }
    Some(out)
}

fn mkdir(host: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(host)
}

/// Clears the final component before writing it: removes a file, symlink or directory tree
/// there (a symlink is removed, never followed).
fn replace(host: &Path) -> io::Result<()> {
    remove_any(host)
}

fn remove_any(host: &Path) -> io::Result<()> {
    match fs::symlink_metadata(host) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(host),
        Ok(_) => fs::remove_file(host),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets atime and mtime without following a symlink at `host`.
fn set_mtime(host: &Path, mtime: u64) -> io::Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        host,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Bytes a rootfs takes (hardlinked files counted once).
pub(crate) fn tree_size(root: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let m = fs::symlink_metadata(e.path())?;
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    Ok(total)
}

fn unsafe_layer(digest: &str, path: &[u8], why: &str) -> ImageError {
    ImageError::UnsafeLayer {
        digest: digest.to_string(),
        detail: format!("entry {:?}: {why}", String::from_utf8_lossy(path)),
    }
}

fn bad_tar(digest: &str, e: io::Error) -> ImageError {
    ImageError::Invalid {
        reference: digest.to_string(),
        detail: format!("layer is not a readable tar: {e}"),
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let c = |s: &str| {
            clean(s.as_bytes()).map(|v| {
                v.iter()
                    .map(|o| o.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
        };
        assert_eq!(c("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(c("./a/./b/../c").unwrap(), "a/c");
        assert_eq!(c("../../etc/x"), None);
        assert_eq!(c("a/../../x"), None);
        assert_eq!(c("./").unwrap(), "");
    }
}
