//! Import and unpack, end to end with real files: images made by the builder, written as OCI
//! layouts and `docker save` archives, imported into a real store, rootfs checked on disk.
//! Covers compression kinds, whiteouts and opaque dirs, metadata, and hostile layers.

use fcx_image::{Compression, ImageBuilder, ImageError, ImageStore, Layer};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    (dir, store)
}

fn base() -> ImageBuilder {
    ImageBuilder::new()
        .entrypoint(&["/bin/app"])
        .cmd(&["--serve"])
        .env("A=1")
        .working_dir("/srv")
        .user("1000:1000")
}

type Imported = Vec<(Vec<String>, fcx_image::Image)>;

/// Writes the image as an OCI layout in a fresh temp dir and imports it.
fn import_layout(store: &ImageStore, img: &ImageBuilder) -> Result<(String, Imported), ImageError> {
    let dir = tempfile::tempdir().unwrap();
    let digest = img
        .write_oci_layout(dir.path(), "example.com/app:v1")
        .unwrap();
    store.import(dir.path(), None).map(|r| (digest, r))
}

/// A verbatim tar header with any path bytes (the builder's helpers would refuse `..`).
fn raw(
    path: &[u8],
    kind: tar::EntryType,
    link: Option<&[u8]>,
    data: &[u8],
) -> (tar::Header, Vec<u8>) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    (h, data.to_vec())
}

fn unique(tag: &str) -> String {
    format!("fcx-test-{tag}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn no_whiteouts(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".wh."),
                "whiteout left in rootfs: {}",
                e.path().display()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn oci_layout_round_trip_with_config_modes_owners_and_links() {
    let (_d, store) = store();
    let img = base().layer(
        Layer::new()
            .file("bin/app", "#!/bin/sh\necho hi\n", 0o755)
            .file("usr/bin/su", "suid", 0o4755)
            .file_owned("home/u/.profile", "x", 0o600, 1000, 1001)
            .dir("srv", 0o750)
            .symlink("bin/sh", "/bin/busybox")
            .hardlink("bin/app2", "bin/app"),
    );
    let (digest, out) = import_layout(&store, &img).unwrap();
    assert_eq!(out.len(), 1);
    let (names, image) = &out[0];
    assert_eq!(names, &vec!["example.com/app:v1".to_string()]);
    assert_eq!(image.digest, digest);
    let c = &image.config;
    assert_eq!(c.entrypoint, vec!["/bin/app"]);
    assert_eq!(c.cmd, vec!["--serve"]);
    assert_eq!(c.env, vec!["A=1"]);
    assert_eq!(c.working_dir, "/srv");
    assert_eq!(c.user, "1000:1000");
    assert_eq!(c.platform, "linux/amd64");

    let root = &image.rootfs;
    assert_eq!(read(root, "bin/app"), "#!/bin/sh\necho hi\n");
    let m = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(m("bin/app").permissions().mode() & 0o7777, 0o755);
    assert_eq!(m("usr/bin/su").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(m("srv").permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        m("usr").permissions().mode() & 0o7777,
        0o755,
        "implicit parent dir"
    );
    if rustix_is_root() {
        assert_eq!(
            (m("home/u/.profile").uid(), m("home/u/.profile").gid()),
            (1000, 1001)
        );
    }
    // Builder mtimes are fixed at 0 and unpacking keeps them, dirs included.
    assert_eq!(m("bin/app").mtime(), 0);
    assert_eq!(m("srv").mtime(), 0);
    assert_eq!(m("bin").mtime(), 0);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        PathBuf::from("/bin/busybox")
    );
    assert_eq!(m("bin/sh").mtime(), 0);
    assert_eq!(m("bin/app2").ino(), m("bin/app").ino());

    assert_eq!(store.lookup("example.com/app:v1"), Some(image.clone()));
    assert_eq!(store.lookup(&digest), Some(image.clone()));
    assert_eq!(store.unpacks(), 1);
    // Importing the same image again unpacks nothing.
    import_layout(&store, &img).unwrap();
    assert_eq!(store.unpacks(), 1);
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn every_compression_kind_unpacks() {
    let (_d, store) = store();
    for (i, c) in [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let img = ImageBuilder::new()
            .compression(c)
            .layer(Layer::new().file("etc/kind", format!("{c:?}"), 0o644))
            .layer(Layer::new().file("etc/second", "2", 0o644));
        let (_, out) = import_layout(&store, &img).unwrap();
        let root = &out[0].1.rootfs;
        assert_eq!(read(root, "etc/kind"), format!("{c:?}"));
        assert_eq!(read(root, "etc/second"), "2");
        assert_eq!(store.unpacks(), i as u64 + 1);
    }
}

#[test]
fn whiteouts_and_opaque_dirs_across_layers() {
    let (_d, store) = store();
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("a/1", "1", 0o644)
                .file("a/2", "2", 0o644)
                .file("d/k1", "k1", 0o644)
                .file("d/sub/k2", "k2", 0o644)
                .file("gone/deep/f", "f", 0o644),
        )
        .layer(
            Layer::new()
                .whiteout("a/1")
                .whiteout("gone")
                // Same-layer entries written before the opaque marker (tar order) survive it.
                .file("d/new", "new", 0o644)
                .file("d/sub/mine", "mine", 0o644)
                .opaque("d"),
        )
        .layer(Layer::new().file("d/later", "later", 0o644));
    let (_, out) = import_layout(&store, &img).unwrap();
    let root = &out[0].1.rootfs;
    assert!(!root.join("a/1").exists());
    assert_eq!(read(root, "a/2"), "2");
    assert!(!root.join("gone").exists());
    assert!(!root.join("d/k1").exists());
    assert!(!root.join("d/sub/k2").exists());
    assert_eq!(read(root, "d/new"), "new");
    assert_eq!(read(root, "d/sub/mine"), "mine");
    assert_eq!(read(root, "d/later"), "later");
    no_whiteouts(root);
}

#[test]
fn docker_save_classic_archive() {
    let (d, store) = store();
    let img = base()
        .layer(Layer::new().file("bin/app", "v1", 0o755))
        .layer(Layer::new().file("etc/conf", "c", 0o644));
    let file = d.path().join("img.tar");
    let digest = img.write_docker_archive(&file, "myimg:v1").unwrap();
    let out = store.import(&file, None).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, vec!["docker.io/library/myimg:v1".to_string()]);
    assert_eq!(out[0].1.digest, digest);
    assert_eq!(read(&out[0].1.rootfs, "bin/app"), "v1");
    assert_eq!(out[0].1.config.entrypoint, vec!["/bin/app"]);
    assert_eq!(store.lookup("myimg:v1").unwrap().digest, digest);
}

#[test]
fn docker_save_oci_archive() {
    let (d, store) = store();
    let img = base()
        .compression(Compression::Zstd)
        .layer(Layer::new().file("bin/app", "oci", 0o755));
    let file = d.path().join("img.tar");
    let digest = img
        .write_oci_archive(&file, "127.0.0.1:5000/team/app:2")
        .unwrap();
    let out = store.import(&file, None).unwrap();
    assert_eq!(out[0].0, vec!["127.0.0.1:5000/team/app:2".to_string()]);
    assert_eq!(out[0].1.digest, digest);
    assert_eq!(read(&out[0].1.rootfs, "bin/app"), "oci");
}

#[test]
fn list_and_remove() {
    let (_d, store) = store();
    let img = ImageBuilder::new().layer(Layer::new().file("f", "x", 0o644));
    let (digest, out) = import_layout(&store, &img).unwrap();
    let rootfs = out[0].1.rootfs.clone();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, digest);
    assert_eq!(list[0].references, vec!["example.com/app:v1".to_string()]);
    assert_eq!(list[0].size, 1);
    store.remove("example.com/app:v1").unwrap();
    assert!(!rootfs.exists());
    assert!(store.list().unwrap().is_empty());
    assert!(store.lookup(&digest).is_none());
    assert!(matches!(
        store.remove("example.com/app:v1"),
        Err(ImageError::NotFound { .. })
    ));
}

#[test]
fn corrupted_blobs_are_digest_mismatches() {
    for which in ["layer", "config"] {
        let (_d, store) = store();
        let dir = tempfile::tempdir().unwrap();
        let img = ImageBuilder::new()
            .compression(Compression::None)
            .layer(Layer::new().file("f", "hello world", 0o644));
        img.write_oci_layout(dir.path(), "x/y:z").unwrap();
        // Find the blob to corrupt: the layer is the tar (starts with the path "f"), the
        // config is the JSON with "rootfs".
        let blobs = dir.path().join("blobs/sha256");
        let victim = std::fs::read_dir(&blobs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let b = std::fs::read(p).unwrap();
                match which {
                    "layer" => b.windows(11).any(|w| w == b"hello world"),
                    _ => b.windows(8).any(|w| w == b"\"rootfs\""),
                }
            })
            .unwrap();
        let mut bytes = std::fs::read(&victim).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x55;
        std::fs::write(&victim, bytes).unwrap();
        let err = store.import(dir.path(), None).unwrap_err();
        assert!(
            matches!(err, ImageError::DigestMismatch { .. }),
            "{which}: {err}"
        );
        assert_eq!(store.unpacks(), 0);
    }
}

#[test]
fn parent_escape_entry_is_rejected() {
    let (_d, store) = store();
    let (h, data) = raw(
        b"../../etc/fcx-escape",
        tar::EntryType::Regular,
        None,
        b"pwned",
    );
    let img = ImageBuilder::new().layer(Layer::new().raw(h, data));
    let err = import_layout(&store, &img).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeLayer { .. }), "{err}");
    assert!(!Path::new("/etc/fcx-escape").exists());
}

#[test]
fn absolute_entry_paths_land_inside_the_rootfs() {
    let (_d, store) = store();
    let name = unique("abs");
    let path = format!("/tmp/{name}");
    let (h, data) = raw(path.as_bytes(), tar::EntryType::Regular, None, b"inside");
    let img = ImageBuilder::new().layer(Layer::new().raw(h, data));
    let (_, out) = import_layout(&store, &img).unwrap();
    assert_eq!(read(&out[0].1.rootfs, &format!("tmp/{name}")), "inside");
    assert!(!Path::new(&path).exists());
}

#[test]
fn writes_through_symlinks_stay_inside_the_rootfs() {
    let (_d, store) = store();
    let abs = unique("abs-link");
    let rel = unique("rel-link");
    let fin = unique("final-link");
    let (h1, d1) = raw(b"evil/x", tar::EntryType::Regular, None, b"one");
    let (h2, d2) = raw(b"evil2/y", tar::EntryType::Regular, None, b"two");
    let (h3, d3) = raw(b"evil3", tar::EntryType::Regular, None, b"three");
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .symlink("evil", &format!("/tmp/{abs}"))
                .symlink("evil2", &format!("../../../../../tmp/{rel}"))
                .symlink("evil3", &format!("/tmp/{fin}")),
        )
        // Raw entries: the builder would emit a real `evil/` dir first.
        .layer(Layer::new().raw(h1, d1).raw(h2, d2).raw(h3, d3));
    let result = import_layout(&store, &img);
    for name in [&abs, &rel, &fin] {
        assert!(
            !Path::new("/tmp").join(name).exists(),
            "wrote outside the rootfs: /tmp/{name}"
        );
    }
    match result {
        Err(ImageError::UnsafeLayer { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok((_, out)) => {
            let root = &out[0].1.rootfs;
            assert_eq!(read(root, &format!("tmp/{abs}/x")), "one");
            assert_eq!(read(root, &format!("tmp/{rel}/y")), "two");
            // The final component replaced the symlink instead of writing through it.
            assert!(std::fs::symlink_metadata(root.join("evil3"))
                .unwrap()
                .is_file());
            assert_eq!(read(root, "evil3"), "three");
        }
    }
}

#[test]
fn hardlinks_out_of_the_rootfs_are_rejected() {
    for target in [
        &b"../../etc/passwd"[..],
        b"/etc/passwd",
        b"a/../../../etc/passwd",
    ] {
        let (_d, store) = store();
        let (h, d) = raw(b"pw", tar::EntryType::Link, Some(target), b"");
        let img = ImageBuilder::new().layer(Layer::new().raw(h, d));
        let err = import_layout(&store, &img).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeLayer { .. }), "{err}");
    }
    // Through a symlink: `l -> /etc` then hardlink to `l/passwd` resolves to rootfs/etc/passwd,
    // which does not exist in the image, so it must fail rather than link the host file.
    let (_d, store) = store();
    let (h, d) = raw(b"pw", tar::EntryType::Link, Some(b"l/passwd"), b"");
    let img = ImageBuilder::new().layer(Layer::new().symlink("l", "/etc").raw(h, d));
    assert!(matches!(
        import_layout(&store, &img),
        Err(ImageError::UnsafeLayer { .. })
    ));
}

#[test]
fn device_nodes_are_skipped() {
    let (_d, store) = store();
    let (h, d) = raw(b"dev/evil", tar::EntryType::Char, None, b"");
    let img = ImageBuilder::new().layer(
        Layer::new()
            .dir("dev", 0o755)
            .raw(h, d)
            .file("ok", "1", 0o644),
    );
    let (_, out) = import_layout(&store, &img).unwrap();
    assert!(!out[0].1.rootfs.join("dev/evil").exists());
    assert_eq!(read(&out[0].1.rootfs, "ok"), "1");
}

#[test]
fn non_amd64_layout_is_unsupported() {
    let (_d, store) = store();
    let img = ImageBuilder::new()
        .platform("linux/arm64/v8")
        .layer(Layer::new().file("f", "x", 0o644));
    let err = import_layout(&store, &img).unwrap_err();
    match err {
        ImageError::UnsupportedPlatform { offered, .. } => assert_eq!(offered, "linux/arm64/v8"),
        e => panic!("{e}"),
    }
}

#[test]
fn docker_media_types_in_a_layout() {
    let (_d, store) = store();
    let img = ImageBuilder::new()
        .docker_media_types()
        .layer(Layer::new().file("f", "docker", 0o644));
    let (digest, out) = import_layout(&store, &img).unwrap();
    assert_eq!(out[0].1.digest, digest);
    assert_eq!(read(&out[0].1.rootfs, "f"), "docker");
}
