//! A small working CPython 3.11 taken from the host (Debian's `/usr/bin/python3.11`): the
//! interpreter, its library closure, the pure-Python stdlib without the parts no function
//! needs (tests, IDLE, Tk, the static libpython, bytecode caches), and the extension
//! modules of `lib-dynload` with their libraries, except those that would pull in large or
//! terminal-only libraries.

use super::closure::{named, utf8, Closure};
use fcx_image::build::Layer;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Debian's interpreter, not whatever `python3` on PATH is (it may be a pyenv shim).
pub const HOST_PYTHON: &str = "/usr/bin/python3.11";
/// Its stdlib; `sys.prefix` (`/usr`) is found from the interpreter's path through the
/// `lib/python3.11/os.py` landmark, so the image needs no PYTHONHOME.
pub const HOST_STDLIB: &str = "/usr/lib/python3.11";

/// Stdlib entries (top level) left out: tests and tools (~30 MB, mostly
/// `config-3.11-*`'s static libpython), third-party package dirs, and `lib-dynload`,
/// which [`runtime_layer`] adds through the closure.
const SKIPPED_TOP: &[&str] = &[
    "config-3.11-x86_64-linux-gnu",
    "dist-packages",
    "distutils",
    "ensurepip",
    "idlelib",
    "lib-dynload",
    "lib2to3",
    "pydoc_data",
    "site-packages",
    "test",
    "tkinter",
    "turtledemo",
];

/// Extension modules left out: test modules, and those needing OpenSSL, Berkeley DB,
/// SQLite, NIS/Kerberos or curses/readline (~12 MB of libraries a function sample does
/// not use). `import ssl` / `hashlib`'s OpenSSL digests fail in the image for that reason.
fn skipped_extension(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "_test",
        "_ctypes_test",
        "_xx",
        "xx",
        "_ssl.",
        "_hashlib.",
        "_dbm.",
        "_sqlite3.",
        "nis.",
        "_curses",
        "readline.",
        "_crypt.",
        "ossaudiodev.",
        "_tkinter.",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Interpreter (at its host path, plus a `python3` symlink beside it), library closure,
/// trimmed stdlib and extension modules, appended to `layer`.
pub(crate) fn runtime_layer(layer: Layer) -> io::Result<Layer> {
    let python = Path::new(HOST_PYTHON);
    let stdlib = Path::new(HOST_STDLIB);
    let mut closure = Closure::default();
    closure.add_binary(python)?;
    let dynload = stdlib.join("lib-dynload");
    for name in sorted_names(&dynload)? {
        if name.ends_with(".so") && !skipped_extension(&name) {
            closure.add_binary(&dynload.join(name))?;
        }
    }
    let layer = closure
        .into_layer(layer)?
        // Our own link, not the host's: `python3` on the host may point anywhere.
        .symlink("/usr/bin/python3", "python3.11")
        // Python finds `exec_prefix` by this directory: it must exist even if empty.
        .dir(utf8(&dynload)?, 0o755);
    copy_tree(layer, stdlib, true)
}

/// `host` copied to the same image path, recursively, in sorted order, without
/// `__pycache__` (bytecode compiled on the host would carry its mtimes, which the image
/// does not keep, so it would be stale anyway) and, at the top, without [`SKIPPED_TOP`].
fn copy_tree(mut layer: Layer, host: &Path, top: bool) -> io::Result<Layer> {
    let meta = std::fs::metadata(host).map_err(|e| named(e, host))?;
    layer = layer.dir(utf8(host)?, meta.mode() & 0o7777);
    for name in sorted_names(host)? {
        if name == "__pycache__" || (top && SKIPPED_TOP.contains(&name.as_str())) {
            continue;
        }
        let path = host.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| named(e, &path))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| named(e, &path))?;
            layer = layer.symlink(utf8(&path)?, utf8(&target)?);
        } else if ft.is_dir() {
            layer = copy_tree(layer, &path, false)?;
        } else if ft.is_file() {
            layer = layer
                .host_file(utf8(&path)?, &path)
                .map_err(|e| named(e, &path))?;
        }
    }
    Ok(layer)
}

/// Entry names of `dir`, sorted, so layers do not depend on directory order.
fn sorted_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| named(e, dir))? {
        let name = entry.map_err(|e| named(e, dir))?.file_name();
        let name = name.into_string().map_err(|n| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("non-UTF-8 name {n:?} in {}", dir.display()),
            )
        })?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_only_the_heavy_extensions() {
        assert!(skipped_extension("_ssl.cpython-311-x86_64-linux-gnu.so"));
        assert!(skipped_extension(
            "_testcapi.cpython-311-x86_64-linux-gnu.so"
        ));
        assert!(!skipped_extension("_json.cpython-311-x86_64-linux-gnu.so"));
        assert!(!skipped_extension(
            "_decimal.cpython-311-x86_64-linux-gnu.so"
        ));
    }
}
