//! Builds code packages (zip, base64) from files and directories, keeping unix modes and
//! symlinks, as `zip -ry` would.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use zip::write::SimpleFileOptions;

/// The test function binary packed as `bootstrap`, base64 (built once per test process).
pub fn testfn_zip_base64() -> String {
    static ZIP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ZIP.get_or_init(|| {
        let bin = std::fs::read(super::testfn_bin()).expect("read fcx-testfn");
        base64(&zip_files(&[("bootstrap", &bin, 0o755)]))
    })
    .clone()
}

/// The test function binary packed as `bootstrap`.
pub fn testfn_zip() -> Vec<u8> {
    zip_files(&[("bootstrap", &testfn_bootstrap(), 0o755)])
}

/// The test function binary itself.
pub fn testfn_bootstrap() -> Vec<u8> {
    std::fs::read(super::testfn_bin()).expect("read fcx-testfn")
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A zip of (name, content, mode) entries.
pub fn zip_files(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content, mode) in files {
        let opts = SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A zip of everything under `dir`, paths relative to it.
pub fn zip_dir(dir: &Path) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add_dir(&mut w, dir, dir);
    w.finish().unwrap().into_inner()
}

fn add_dir(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, root: &Path, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let opts = SimpleFileOptions::default().unix_permissions(mode);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            w.add_symlink(rel, target.to_string_lossy(), opts).unwrap();
        } else if meta.is_dir() {
            w.add_directory(format!("{rel}/"), opts).unwrap();
            add_dir(w, root, &path);
        } else {
            w.start_file(rel, opts).unwrap();
            w.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
}
