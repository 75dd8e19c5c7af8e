//! Host binaries plus their shared-library closure (as `ldd` resolves it), laid out so the
//! binaries run in an otherwise empty rootfs: every file sits at the path the dynamic loader
//! looks for, and the symlinks on the way (`libz.so.1 -> libz.so.1.2.13`,
//! `/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`) are kept.
//!
//! Directory symlinks of the host (merged `/usr`: `/lib -> usr/lib`) are not reproduced: a
//! path's directories become real directories in the image, which is all the loader needs.

use fcx_image::build::Layer;
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Chain of symlinks is bounded like the kernel's (40), so a loop is an error, not a hang.
const MAX_LINKS: usize = 40;

/// One image path of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Regular file: copied from this host path.
    File(PathBuf),
    /// Symlink with this target, as written on the host (relative or absolute).
    Symlink(PathBuf),
}

/// Files and symlinks keyed by image path (which is also their host path). A `BTreeMap`
/// so the layer lists them in one fixed order whatever order they were found in.
#[derive(Debug, Default)]
pub(crate) struct Closure {
    entries: BTreeMap<PathBuf, Entry>,
}

/// A layer with `binaries` (absolute host paths, kept at the same paths in the image) and
/// every shared library they load, including the dynamic loader and the symlinks leading
/// to each file. Static binaries contribute only themselves.
pub fn closure(binaries: &[&Path]) -> io::Result<Layer> {
    let mut c = Closure::default();
    for b in binaries {
        c.add_binary(b)?;
    }
    c.into_layer(Layer::new())
}

impl Closure {
    /// Adds `binary` (and the symlinks leading to it) plus its `ldd` closure.
    pub(crate) fn add_binary(&mut self, binary: &Path) -> io::Result<()> {
        self.add_path(binary)?;
        for lib in ldd(binary)? {
            self.add_path(&lib)?;
        }
        Ok(())
    }

    /// Adds the file at `path`, following symlinks in its last component: each link is
    /// kept as a link, and its target is added the same way.
    pub(crate) fn add_path(&mut self, path: &Path) -> io::Result<()> {
        let mut path = absolute(path)?;
        for _ in 0..MAX_LINKS {
            if self.entries.contains_key(&path) {
                return Ok(());
            }
            let meta = std::fs::symlink_metadata(&path).map_err(|e| named(e, &path))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| named(e, &path))?;
                let next = normalize(&path.parent().unwrap_or(Path::new("/")).join(&target));
                self.entries.insert(path, Entry::Symlink(target));
                path = next;
            } else if meta.is_file() {
                self.entries.insert(path.clone(), Entry::File(path));
                return Ok(());
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a regular file", path.display()),
                ));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("too many levels of symlinks at {}", path.display()),
        ))
    }

    /// Appends the collected entries to `layer`, sorted by path.
    pub(crate) fn into_layer(self, mut layer: Layer) -> io::Result<Layer> {
        for (path, entry) in self.entries {
            let image_path = utf8(&path)?;
            layer = match entry {
                Entry::File(host) => layer
                    .host_file(image_path, &host)
                    .map_err(|e| named(e, &host))?,
                Entry::Symlink(target) => layer.symlink(image_path, utf8(&target)?),
            };
        }
        Ok(layer)
    }
}

/// The libraries `ldd` reports for `binary`, the dynamic loader included. A static binary
/// (or a script) has none. A library `ldd` cannot find is an error naming it.
pub(crate) fn ldd(binary: &Path) -> io::Result<Vec<PathBuf>> {
    // Check first: `ldd` on a missing file fails with a message that is easy to misread.
    std::fs::metadata(binary).map_err(|e| named(e, binary))?;
    let out = Command::new("ldd")
        .arg(binary)
        // The loader must resolve as it will in the image: no test-environment overrides.
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running ldd {}: {e}", binary.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(io::Error::other(format!(
            "ldd {} failed ({}): {}{}",
            binary.display(),
            out.status,
            stdout.trim(),
            stderr.trim()
        )));
    }
    parse_ldd(&stdout)
        .map_err(|e| io::Error::new(e.kind(), format!("ldd {}: {e}", binary.display())))
}

/// Paths from `ldd` output lines: `name => /path (0x…)`, `/path (0x…)`; the vDSO (no path)
/// is skipped; `name => not found` is an error.
fn parse_ldd(output: &str) -> io::Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let resolved = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("shared library {} not found", name.trim()),
                    ));
                }
                rest
            }
            None => line,
        };
        let path = resolved.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// `path` made absolute without touching the filesystem; relative paths are refused
/// because the image path is the host path.
fn absolute(path: &Path) -> io::Result<PathBuf> {
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not an absolute path", path.display()),
        ));
    }
    Ok(normalize(path))
}

/// Lexical `.`/`..` resolution, so a link target like `../lib/x` names the image path the
/// loader will reach.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

pub(crate) fn utf8(path: &Path) -> io::Result<&str> {
    path.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("non-UTF-8 path {}", path.display()),
        )
    })
}

/// The error with the path it is about, so "No such file or directory" says which.
pub(crate) fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_lines() {
        let out = "\tlinux-vdso.so.1 (0x00007ff2a9b25000)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007ff2a9b27000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn missing_library_is_named() {
        let err = parse_ldd("\tlibnope.so.7 => not found\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("libnope.so.7"), "{err}");
    }

    #[test]
    fn normalizes_link_targets() {
        assert_eq!(
            normalize(Path::new("/usr/lib64/../lib/./x")),
            PathBuf::from("/usr/lib/x")
        );
    }

    #[test]
    fn keeps_symlink_chain_to_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("libx.so.1.2");
        std::fs::write(&real, b"elf").unwrap();
        std::os::unix::fs::symlink("libx.so.1.2", dir.path().join("libx.so.1")).unwrap();
        let mut c = Closure::default();
        c.add_path(&dir.path().join("libx.so.1")).unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(
            c.entries[&dir.path().join("libx.so.1")],
            Entry::Symlink("libx.so.1.2".into())
        );
        assert_eq!(c.entries[&real], Entry::File(real.clone()));
    }

    #[test]
    fn missing_binary_names_its_path() {
        let err = closure(&[Path::new("/nonexistent/fcxt-binary")]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("/nonexistent/fcxt-binary"),
            "{err}"
        );
    }

    #[test]
    fn dynamic_binary_brings_loader_and_libc() {
        // This test binary is itself dynamically linked against libc.
        let exe = std::env::current_exe().unwrap();
        let mut c = Closure::default();
        c.add_binary(&exe).unwrap();
        assert!(
            c.entries
                .contains_key(Path::new("/lib64/ld-linux-x86-64.so.2")),
            "{:?}",
            c.entries
        );
        let files = |name: &str| {
            c.entries
                .iter()
                .any(|(p, e)| p.ends_with(name) && matches!(e, Entry::File(_)))
        };
        assert!(
            files("ld-linux-x86-64.so.2"),
            "loader's real file: {:?}",
            c.entries
        );
        assert!(
            c.entries.keys().any(|p| p.ends_with("libc.so.6")),
            "{:?}",
            c.entries
        );
    }
}
