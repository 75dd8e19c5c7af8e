//! Snapshots on disk: `<data>/snapshots/<key>/` holds CRIU's images (`images/`), what the
//! backend needs to restore them (`meta.json`) and, for containers, the instance's writable
//! layer as it was (`upper/`). A dump is written under `tmp/` and published by one rename,
//! so a server killed mid-dump leaves only `tmp/`, which the next start removes. The total
//! size is kept under a budget by evicting the least recently used snapshots (a restore
//! marks its snapshot used and holds a shared lock on it, so eviction skips it meanwhile).

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// What a backend wrote next to the images, and what it needs to restore them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SnapshotMeta {
    /// The backend that dumped it (`process`, `oci`).
    pub backend: String,
    /// The dumped log pipe as CRIU names it (`pipe:[inode]`).
    pub pipe: String,
    /// The identity file the dumped instance had open as fd 3, as CRIU names it (process
    /// instances: `file[mnt_id:inode]`, external to the instance's mount namespace); empty
    /// for containers (theirs is a bind mount).
    pub identity: String,
    /// Bind mounts named external in the dump: (name, what the restorer binds there:
    /// `resolv`, `hosts`, `identity` or `null`).
    pub external_mounts: Vec<(String, String)>,
    /// Bytes of memory pages in the images.
    pub pages_bytes: u64,
    /// Resident memory of the instance when it was dumped.
    pub memory_bytes: u64,
}

/// A published snapshot, locked (shared) while held so it is not evicted under a restore.
pub struct Snapshot {
    /// `<snapshots>/<key>`.
    pub dir: PathBuf,
    /// Its `meta.json`.
    pub meta: SnapshotMeta,
    _lock: Flock<File>,
}

impl Snapshot {
    /// CRIU's image directory.
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// The writable layer the instance had when dumped (containers).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

/// A dump being written: removed on drop unless published.
pub struct PendingSnapshot {
    /// Its directory under `tmp/`.
    pub dir: PathBuf,
    key: String,
    published: bool,
}

impl PendingSnapshot {
    /// Where CRIU writes the images.
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// Where a container's writable layer is copied.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

impl Drop for PendingSnapshot {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills each `criu` process whose image directory (`-D`) is under `tmp`, and waits (up to
/// 5 s) until it has ended. A dump runs with the instance user's real ids and root's
/// effective ids, so its exec is a secure one, which clears `PR_SET_PDEATHSIG`: when the
/// server is killed mid-dump, CRIU goes on writing into `tmp/` (and holding the dumped
/// instance stopped). Only a dump that names this data dir's `tmp/` is touched.
fn stop_interrupted_dumps(tmp: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_dump_under(pid, tmp))
        .collect();
    for &pid in &pids {
        tracing::warn!(pid, "snapshots: killing a criu dump a previous run left");
        crate::sys::kill(pid, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pids.iter().any(|&pid| is_dump_under(pid, tmp)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether `pid` is a live `criu` whose `-D` argument lies under `tmp` (a process that has
/// exited has an empty command line, even before it is reaped).
fn is_dump_under(pid: u32, tmp: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let is_criu = args
        .first()
        .is_some_and(|a| Path::new(std::ffi::OsStr::from_bytes(a)).ends_with("criu"));
    is_criu
        && args
            .windows(2)
            .any(|w| w[0] == b"-D" && Path::new(std::ffi::OsStr::from_bytes(w[1])).starts_with(tmp))
}

/// The snapshot directory of one data dir.
pub struct SnapshotStore {
    root: PathBuf,
    budget: u64,
    seq: AtomicU64,
}

/// Why a snapshot was not kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation on the store failed.
    #[error("snapshot store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The snapshot alone exceeds the budget.
    #[error("the snapshot takes {size} bytes, more than the whole budget of {budget} bytes (--snapshot-budget-mb)")]
    OverBudget {
        /// The snapshot's bytes on disk.
        size: u64,
        /// `--snapshot-budget-mb` in bytes.
        budget: u64,
    },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl SnapshotStore {
    /// Opens (creates) `root`, removing what an interrupted dump left: a `criu dump` still
    /// writing under `tmp/`, then `tmp/` itself, and any entry without its `meta.json`.
    pub fn open(root: &Path, budget: u64) -> Result<SnapshotStore, StoreError> {
        let tmp = root.join("tmp");
        stop_interrupted_dumps(&tmp);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(at(&tmp))?;
        for entry in std::fs::read_dir(root).map_err(at(root))?.flatten() {
            let path = entry.path();
            if path != tmp && !path.join("meta.json").is_file() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(SnapshotStore {
            root: root.to_owned(),
            budget,
            seq: AtomicU64::new(0),
        })
    }

    /// `<data dir>/snapshots`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The published snapshot under `key`, marked used and locked; `None` if there is none
    /// (or its metadata does not read).
    pub fn get(&self, key: &str) -> Option<Snapshot> {
        let dir = self.root.join(key);
        let lock = File::open(dir.join("meta.json")).ok()?;
        let lock = Flock::lock(lock, FlockArg::LockSharedNonblock).ok()?;
        let text = std::fs::read_to_string(dir.join("meta.json")).ok()?;
        let meta: SnapshotMeta = serde_json::from_str(&text).ok()?;
        let _ = File::options()
            .write(true)
            .open(dir.join("meta.json"))
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(Snapshot {
            dir,
            meta,
            _lock: lock,
        })
    }

    /// A fresh directory for a dump to be published as `key`.
    pub fn begin(&self, key: &str) -> Result<PendingSnapshot, StoreError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join("tmp")
            .join(format!("{key}.{}.{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("images")).map_err(at(&dir))?;
        Ok(PendingSnapshot {
            dir,
            key: key.to_owned(),
            published: false,
        })
    }

    /// Writes `meta`, moves the dump into place (replacing an older one under the same key)
    /// and evicts the least recently used snapshots beyond the budget. Returns the
    /// snapshot's size in bytes.
    pub fn publish(
        &self,
        mut pending: PendingSnapshot,
        meta: &SnapshotMeta,
    ) -> Result<u64, StoreError> {
        let size = dir_size(&pending.dir);
        if size > self.budget {
            return Err(StoreError::OverBudget {
                size,
                budget: self.budget,
            });
        }
        let text = serde_json::to_vec_pretty(meta).map_err(|e| StoreError::Io {
            path: pending.dir.clone(),
            source: io::Error::other(e),
        })?;
        let meta_path = pending.dir.join("meta.json");
        std::fs::write(&meta_path, text).map_err(at(&meta_path))?;
        let target = self.root.join(&pending.key);
        self.remove(&pending.key);
        std::fs::rename(&pending.dir, &target).map_err(at(&target))?;
        pending.published = true;
        self.evict(&pending.key);
        Ok(size)
    }

    /// Removes the snapshot under `key` (a restore from it failed, or its function
    /// changed). Held snapshots go too: their readers keep what they opened.
    pub fn remove(&self, key: &str) {
        let dir = self.root.join(key);
        if dir.exists() {
            // Renamed first, so a concurrent `get` never sees half a directory.
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let gone = self.root.join("tmp").join(format!("gone.{key}.{n}"));
            if std::fs::rename(&dir, &gone).is_ok() {
                let _ = std::fs::remove_dir_all(&gone);
            }
        }
    }

    /// Removes every snapshot whose key starts with `prefix` but not with `keep` (the
    /// function was updated: its old snapshots can never be used again).
    pub fn remove_prefix(&self, prefix: &str, keep: Option<&str>) {
        for name in self.keys() {
            if name.starts_with(prefix) && !keep.is_some_and(|k| name.starts_with(k)) {
                self.remove(&name);
            }
        }
    }

    fn keys(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "tmp")
            .collect()
    }

    /// Total bytes of the published snapshots.
    pub fn total_bytes(&self) -> u64 {
        self.keys()
            .iter()
            .map(|k| dir_size(&self.root.join(k)))
            .sum()
    }

    /// Deletes least recently used snapshots (never `keep`, never one a restore holds)
    /// until the total fits the budget.
    fn evict(&self, keep: &str) {
        let mut entries: Vec<(SystemTime, String, u64)> = self
            .keys()
            .into_iter()
            .map(|k| {
                let dir = self.root.join(&k);
                let used = std::fs::metadata(dir.join("meta.json"))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (used, k, dir_size(&dir))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.2).sum();
        entries.sort();
        for (_, key, size) in entries {
            if total <= self.budget {
                break;
            }
            if key == keep {
                continue;
            }
            let dir = self.root.join(&key);
            let Ok(f) = File::open(dir.join("meta.json")) else {
                continue;
            };
            // A restore holds a shared lock: leave that one for now.
            let Ok(lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            drop(lock);
            tracing::info!(snapshot = %key, bytes = size, budget = self.budget, "evicting the least recently used snapshot");
            self.remove(&key);
            total = total.saturating_sub(size);
        }
    }
}

/// Bytes used by the files under `dir` (apparent sizes).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(store: &SnapshotStore, key: &str, bytes: usize) -> u64 {
        let p = store.begin(key).unwrap();
        std::fs::write(p.images().join("pages-1.img"), vec![0u8; bytes]).unwrap();
        store.publish(p, &SnapshotMeta::default()).unwrap()
    }

    /// A stand-in `criu dump` (a shell named `criu`, with `-D <images>` among its arguments)
    /// that runs until it is killed.
    fn fake_dump(images: &Path) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("/bin/sh")
            .arg0("/usr/local/bin/criu")
            .args(["-c", "while :; do sleep 1; done", "dump", "-D"])
            .arg(images)
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_dump_left_running_under_tmp_is_killed_at_open_and_others_are_not() {
        let d = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let images = d.path().join("tmp").join("f.1.0").join("images");
        std::fs::create_dir_all(&images).unwrap();
        let mut left = fake_dump(&images);
        let mut elsewhere = fake_dump(&other.path().join("tmp/g.1.0/images"));
        let tmp = d.path().join("tmp");
        assert!(is_dump_under(left.id(), &tmp));
        assert!(!is_dump_under(elsewhere.id(), &tmp));
        assert!(!is_dump_under(std::process::id(), &tmp));

        SnapshotStore::open(d.path(), 1 << 20).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(left.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(!tmp.join("f.1.0").exists());
        assert!(
            elsewhere.try_wait().unwrap().is_none(),
            "another data dir's dump runs on"
        );
        elsewhere.kill().unwrap();
        elsewhere.wait().unwrap();
    }

    #[test]
    fn interrupted_dumps_and_incomplete_entries_are_removed_at_open() {
        let d = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(d.path(), 1 << 20).unwrap();
        let pending = store.begin("f@LATEST-1").unwrap();
        std::fs::write(pending.images().join("core-1.img"), b"x").unwrap();
        std::mem::forget(pending); // as if the server were killed mid-dump
        std::fs::create_dir_all(d.path().join("half")).unwrap();
        dump(&store, "f@LATEST-2", 10);
        drop(store);
        let store = SnapshotStore::open(d.path(), 1 << 20).unwrap();
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        assert!(!d.path().join("half").exists());
        assert!(store.get("f@LATEST-2").is_some());
        assert!(store.get("f@LATEST-1").is_none());
    }

    #[test]
    fn least_recently_used_snapshots_go_first_and_held_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(d.path(), 2500).unwrap();
        dump(&store, "a", 1000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        dump(&store, "b", 1000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // `a` is used again (and held), so `b` is now the least recently used.
        let held = store.get("a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        dump(&store, "c", 1000);
        assert!(store.get("b").is_none(), "b should have been evicted");
        assert!(store.get("c").is_some());
        drop(held);
        assert!(store.get("a").is_some());
        assert!(store.total_bytes() <= 2500 + 600);
    }

    #[test]
    fn a_snapshot_larger_than_the_budget_is_refused_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(d.path(), 100).unwrap();
        let p = store.begin("big").unwrap();
        std::fs::write(p.images().join("pages-1.img"), vec![0u8; 1000]).unwrap();
        let err = store.publish(p, &SnapshotMeta::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than the whole budget of 100"),
            "{err}"
        );
        assert!(store.get("big").is_none());
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn an_update_removes_the_function_s_other_snapshots() {
        let d = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(d.path(), 1 << 20).unwrap();
        dump(&store, "f@LATEST-old", 1);
        dump(&store, "f@LATEST-new", 1);
        dump(&store, "g@LATEST-x", 1);
        store.remove_prefix("f@LATEST-", Some("f@LATEST-new"));
        assert!(store.get("f@LATEST-old").is_none());
        assert!(store.get("f@LATEST-new").is_some());
        assert!(store.get("g@LATEST-x").is_some());
    }
}
