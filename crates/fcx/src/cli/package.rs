//! Code packages: a folder (or one file) zipped for CreateFunction's `code.zipFile`, with unix
//! modes and symlinks kept so the package unpacks as it was on disk.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context as _};

/// A zip of `path` (a directory's contents, or one file), unix modes and symlinks kept.
pub fn zip_path(path: &Path) -> anyhow::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        add_dir(&mut w, path, path)?;
    } else {
        use std::os::unix::fs::PermissionsExt;
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("{}: no file name", path.display()))?
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".zip") {
            return Ok(std::fs::read(path)?);
        }
        let opts = SimpleFileOptions::default().unix_permissions(meta.permissions().mode() & 0o777);
        w.start_file(name, opts)?;
        w.write_all(&std::fs::read(path)?)?;
    }
    Ok(w.finish()?.into_inner())
}

fn add_dir(
    w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>,
    root: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use zip::write::SimpleFileOptions;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o777;
        let opts = SimpleFileOptions::default()
            .unix_permissions(mode)
            .large_file(meta.len() >= 0xFFFF_FFFF);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            w.add_symlink(rel, target.to_string_lossy(), opts)?;
        } else if meta.is_dir() {
            w.add_directory(format!("{rel}/"), opts)?;
            add_dir(w, root, &path)?;
        } else {
            w.start_file(rel, opts)?;
            w.write_all(
                &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_folder_keeps_its_modes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("lib/a.txt", dir.path().join("link")).unwrap();

        let zip = zip_path(dir.path()).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let names: Vec<String> = (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        assert_eq!(names, ["bootstrap", "lib/", "lib/a.txt", "link"]);
        assert_eq!(
            archive.by_name("bootstrap").unwrap().unix_mode().unwrap() & 0o777,
            0o755
        );
        let link = archive.by_name("link").unwrap();
        assert!(link.is_symlink());
    }
}
