//! Fuzzing code-package handling with proptest: arbitrary bytes, and real zips of hostile
//! entries (names with `..`, absolute paths, backslashes, symlinks to anywhere, links
//! through links, directories and files colliding). `validate_zip` never panics; a package
//! it accepts unpacks with nothing written outside the destination and every symlink in it
//! resolving inside it.
//! Budget and seed: `FCX_FUZZ_CASES`, `FCX_FUZZ_SEED` (see `scripts/fuzz.sh`).

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Entry {
    File(String, Vec<u8>),
    Dir(String),
    Link(String, String),
}

fn segment() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "a", "b", "..", ".", "", "c\\..", "x y", "/", "etc", "tmp",
    ])
    .prop_map(str::to_owned)
}

fn path() -> impl Strategy<Value = String> {
    (proptest::collection::vec(segment(), 1..5), any::<bool>())
        .prop_map(|(parts, abs)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (path(), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(p, c)| Entry::File(p, c)),
        path().prop_map(Entry::Dir),
        (path(), path()).prop_map(|(p, t)| Entry::Link(p, t)),
    ]
}

fn build(entries: &[Entry]) -> Option<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for e in entries {
        let ok = match e {
            Entry::File(p, c) => w.start_file(p.as_str(), opts).is_ok() && w.write_all(c).is_ok(),
            Entry::Dir(p) => w.add_directory(p.as_str(), opts).is_ok(),
            Entry::Link(p, t) => w.add_symlink(p.as_str(), t.as_str(), opts).is_ok(),
        };
        if !ok {
            return None;
        }
    }
    w.finish().ok().map(|c| c.into_inner())
}

/// Every path under `dir` (links not followed).
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&p, out);
        }
    }
}

#[test]
fn arbitrary_bytes_are_refused_or_accepted_without_panic() {
    fcx_fuzz::run(
        "zip bytes",
        512,
        proptest::collection::vec(any::<u8>(), 0..512),
        |bytes| {
            let _ = fcx_runtime::code::validate_zip(&bytes);
            Ok(())
        },
    );
}

#[test]
fn accepted_packages_unpack_inside_their_directory() {
    let scratch = tempfile::tempdir().unwrap();
    fcx_fuzz::run(
        "zip entries with hostile paths",
        256,
        proptest::collection::vec(entry(), 0..8),
        |entries| {
            let Some(zip) = build(&entries) else {
                return Ok(());
            };
            if fcx_runtime::code::validate_zip(&zip).is_err() {
                return Ok(());
            }
            // Accepted: unpack into parent/dest next to an empty sibling.
            let parent = tempfile::tempdir_in(scratch.path()).unwrap();
            let dest = parent.path().join("dest");
            let sibling = parent.path().join("sibling");
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::create_dir_all(&sibling).unwrap();
            let file = parent.path().join("pkg.zip");
            std::fs::write(&file, &zip).unwrap();
            let _ = fcx_runtime::code::unpack(&file, &dest, "fuzz");
            let top: Vec<_> = std::fs::read_dir(parent.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            prop_assert_eq!(top.len(), 3, "written next to the package: {:?}", top);
            prop_assert_eq!(std::fs::read_dir(&sibling).unwrap().count(), 0);
            let root = dest.canonicalize().unwrap();
            let mut all = Vec::new();
            walk(&dest, &mut all);
            for p in all {
                if let Ok(resolved) = p.canonicalize() {
                    prop_assert!(
                        resolved.starts_with(&root),
                        "{} resolves to {} outside the package ({:?})",
                        p.display(),
                        resolved.display(),
                        entries
                    );
                }
            }
            Ok(())
        },
    );
}
