//! An instance's root filesystem: the cached image, read-only, as the lower layer of an
//! overlay whose upper layer is a per-instance directory on disk, discarded when the
//! instance stops.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A mounted overlay rootfs; unmounted and deleted on [`Rootfs::remove`].
#[derive(Debug)]
pub struct Rootfs {
    /// Where the overlay is mounted (the bundle's `rootfs`).
    pub target: PathBuf,
    /// The instance's writable layer (`upper`) and overlay work directory (`work`).
    layer_dir: PathBuf,
}

impl Rootfs {
    /// Mounts `lower` + a fresh writable layer in `layer_dir` at `target`.
    pub fn mount(lower: &Path, layer_dir: &Path, target: &Path) -> io::Result<Rootfs> {
        Rootfs::mount_seeded(lower, layer_dir, target, None)
    }

    /// Like [`Rootfs::mount`], with the writable layer starting as a copy of `seed` (the
    /// layer of a snapshotted instance: what it wrote while it initialized).
    pub fn mount_seeded(
        lower: &Path,
        layer_dir: &Path,
        target: &Path,
        seed: Option<&Path>,
    ) -> io::Result<Rootfs> {
        let upper = layer_dir.join("upper");
        let work = layer_dir.join("work");
        if let Some(seed) = seed {
            std::fs::create_dir_all(layer_dir)?;
            copy_tree(seed, &upper)?;
        }
        for dir in [&upper, &work, &target.to_path_buf()] {
            std::fs::create_dir_all(dir)?;
        }
        for p in [lower, &upper, &work] {
            // Overlay options are comma- and colon-separated; fcx's own paths never hold
            // either, but a data dir chosen by the user might.
            let s = p.to_string_lossy();
            if s.contains(',') || s.contains(':') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("overlay paths cannot contain ',' or ':': {s}"),
                ));
            }
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .map_err(|e| io::Error::other(format!("overlay mount at {}: {e}", target.display())))?;
        Ok(Rootfs {
            target: target.to_owned(),
            layer_dir: layer_dir.to_owned(),
        })
    }

    /// The writable layer (overlay `upperdir`).
    pub fn upper(&self) -> PathBuf {
        self.layer_dir.join("upper")
    }

    /// Unmounts the overlay and deletes the writable layer (blocking: the layer may be big).
    pub fn remove(&self) {
        unmount(&self.target);
        let _ = std::fs::remove_dir_all(&self.layer_dir);
    }
}

/// Copies a directory tree with owners, modes, times, links and special files as they are
/// (`cp -a`, which also keeps overlay whiteouts, character devices 0/0).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg("--")
        .arg(from)
        .arg(to)
        .stdin(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cp -a {} {}: {status}",
            from.display(),
            to.display()
        )))
    }
}

/// Detaches a mount (if any) at `target`; the kernel finishes once nothing uses it.
pub fn unmount(target: &Path) {
    let _ = umount2(target, MntFlags::MNT_DETACH);
}

/// Mount points under `dir` (deepest first), for reaping what a crashed server left mounted.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = crate::mountinfo::current()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_writes_go_to_the_instance_layer_only() {
        if !crate::is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        std::fs::create_dir_all(&lower).unwrap();
        std::fs::write(lower.join("f"), "image").unwrap();
        let rootfs = Rootfs::mount(&lower, &d.path().join("layer"), &d.path().join("root"))
            .expect("overlay mount (run as root on a host with overlayfs)");
        assert_eq!(
            std::fs::read_to_string(d.path().join("root/f")).unwrap(),
            "image"
        );
        std::fs::write(d.path().join("root/f"), "changed").unwrap();
        assert_eq!(std::fs::read_to_string(lower.join("f")).unwrap(), "image");
        assert!(mounts_under(d.path()).contains(&d.path().join("root")));
        rootfs.remove();
        assert!(!d.path().join("layer").exists());
        assert!(mounts_under(d.path()).is_empty());
    }
}
