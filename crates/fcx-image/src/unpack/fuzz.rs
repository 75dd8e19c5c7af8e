//! Fuzzing the layer unpacker with proptest: layers of hostile tar entries (names with
//! `..` and absolute paths, symlinks to the rootfs root, to its parent and through each
//! other, hard links, whiteouts and opaque markers, entries replacing each other across
//! layers). Whatever a layer holds, the unpacker never writes outside the rootfs.
//! Budget and seed: `FCX_FUZZ_CASES`, `FCX_FUZZ_SEED` (see `scripts/fuzz.sh`).

use std::path::Path;

use proptest::prelude::*;

use super::Unpacker;

#[derive(Debug, Clone)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// Names unlikely to exist anywhere on the host, so a write that escaped is noticed.
fn segment() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "fzq",
        "fzr",
        "..",
        ".",
        "",
        ".wh.fzq",
        ".wh..wh..opq",
        "PARENT",
    ])
    .prop_map(str::to_owned)
}

fn path() -> impl Strategy<Value = String> {
    (proptest::collection::vec(segment(), 1..4), any::<bool>())
        .prop_map(|(p, abs)| format!("{}{}", if abs { "/" } else { "" }, p.join("/")))
}

fn entry() -> impl Strategy<Value = (String, Kind)> {
    let kind = prop_oneof![
        Just(Kind::File),
        Just(Kind::Dir),
        path().prop_map(Kind::Symlink),
        path().prop_map(Kind::Hardlink),
    ];
    (path(), kind)
}

/// A tar of `entries` with names written raw (the tar crate's own checks bypassed, as a
/// hostile layer would); `PARENT` stands for the absolute path of the rootfs's parent.
fn layer(entries: &[(String, Kind)], parent: &Path) -> Vec<u8> {
    let parent = parent.display().to_string();
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let name = name.replace("PARENT", &parent);
        let mut h = tar::Header::new_gnu();
        let raw = name.as_bytes();
        let n = raw.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&raw[..n]);
        h.set_mode(0o755);
        let (ty, size) = match kind {
            Kind::File => (tar::EntryType::Regular, 3),
            Kind::Dir => (tar::EntryType::Directory, 0),
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                let t = t.replace("PARENT", &parent);
                let tb = t.as_bytes();
                let m = tb.len().min(99);
                h.as_old_mut().linkname[..m].copy_from_slice(&tb[..m]);
                let ty = if matches!(kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                (ty, 0)
            }
        };
        h.set_entry_type(ty);
        h.set_size(size);
        h.set_cksum();
        let data: &[u8] = if size > 0 { b"xyz" } else { b"" };
        let _ = b.append(&h, data);
    }
    b.into_inner().unwrap_or_default()
}

#[test]
fn hostile_layers_never_write_outside_the_rootfs() {
    let scratch = tempfile::tempdir().unwrap();
    let layers = proptest::collection::vec(proptest::collection::vec(entry(), 0..8), 1..3);
    fcx_fuzz::run("tar layers with hostile paths", 128, layers, |layers| {
        let parent = tempfile::tempdir_in(scratch.path()).unwrap();
        let root = parent.path().join("rootfs");
        let sibling = parent.path().join("fzq");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&sibling).unwrap();
        let mut u = Unpacker::new(&root);
        for (i, entries) in layers.iter().enumerate() {
            let tar = layer(entries, parent.path());
            if u.apply(&tar[..], &format!("sha256:{i}")).is_err() {
                break;
            }
        }
        let _ = u.finish();
        let top: Vec<_> = std::fs::read_dir(parent.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        prop_assert_eq!(
            top.len(),
            2,
            "written beside the rootfs: {:?} {:?}",
            top,
            layers
        );
        prop_assert_eq!(std::fs::read_dir(&sibling).unwrap().count(), 0);
        for host in ["/fzq", "/fzr"] {
            prop_assert!(!Path::new(host).exists(), "wrote {} on the host", host);
        }
        Ok(())
    });
}
