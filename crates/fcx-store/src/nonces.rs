//! The signed requests' nonces, kept across restarts: each accepted nonce's fingerprint and
//! expiry (24 bytes) is appended to `<data dir>/nonces/<bucket>.log`, a file per 5 minutes
//! of expiry, before its request is handled. The write reaches the kernel at once, so a
//! crash, `kill -9` or restart of fcx loses none; a background thread `fdatasync`s the files
//! every second and deletes the buckets that have expired, so the journal holds at most the
//! signature window. [`NonceJournal::open`] reads back what has not expired.
//!
//! A host that lost power may lose the last second of appends: `open` then reports
//! [`Loaded::after_reboot`] (the host's boot id changed since the journal was last written),
//! and the caller refuses requests signed before its own start, which covers the lost ones
//! (they were all signed before).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::StoreError;

/// Seconds of expiry per journal file.
const BUCKET_SECS: i64 = 300;
const RECORD_LEN: usize = 24;
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// What an opened journal still vouches for.
#[derive(Debug, Default)]
pub struct Loaded {
    /// (fingerprint, expiry in unix seconds) of every nonce not yet expired.
    pub nonces: Vec<(u128, i64)>,
    /// The host rebooted since the journal was last written: its last second may be lost.
    pub after_reboot: bool,
}

/// The nonce journal of one data dir.
pub struct NonceJournal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    files: Mutex<HashMap<i64, (File, bool)>>,
}

impl NonceJournal {
    /// Opens (creating) `<data_dir>/nonces`, reads what expires after `now`, deletes the
    /// rest, and starts the syncing thread.
    pub fn open(data_dir: &Path, now: i64) -> Result<(NonceJournal, Loaded), StoreError> {
        let dir = data_dir.join("nonces");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let mut loaded = Loaded::default();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            let Some(bucket) = bucket_of(&path) else {
                continue;
            };
            if (bucket + 1) * BUCKET_SECS < now {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            // A torn last record (a crash mid-write) is left out: its request never ran.
            for record in bytes.chunks_exact(RECORD_LEN) {
                let print = u128::from_le_bytes(record[..16].try_into().unwrap_or_default());
                let expires = i64::from_le_bytes(record[16..].try_into().unwrap_or_default());
                if expires >= now {
                    loaded.nonces.push((print, expires));
                }
            }
        }
        let boot = std::fs::read_to_string(BOOT_ID).unwrap_or_default();
        let boot_file = dir.join("boot_id");
        let last_boot = std::fs::read_to_string(&boot_file).ok();
        loaded.after_reboot = last_boot.is_some_and(|b| b != boot) && !loaded.nonces.is_empty();
        std::fs::write(&boot_file, &boot)?;
        let inner = Arc::new(Inner {
            dir,
            files: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("nonce-journal".into())
            .spawn(move || sync_loop(weak))?;
        Ok((NonceJournal { inner }, loaded))
    }

    /// Records a nonce (its fingerprint) valid until `expires`.
    pub fn append(&self, print: u128, expires: i64) -> std::io::Result<()> {
        let bucket = expires.div_euclid(BUCKET_SECS);
        let mut record = [0u8; RECORD_LEN];
        record[..16].copy_from_slice(&print.to_le_bytes());
        record[16..].copy_from_slice(&expires.to_le_bytes());
        let mut files = self.inner.files.lock().unwrap_or_else(|p| p.into_inner());
        let (file, dirty) = match files.entry(bucket) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(self.inner.dir.join(format!("{bucket}.log")))?;
                e.insert((file, false))
            }
        };
        file.write_all(&record)?;
        *dirty = true;
        Ok(())
    }

    /// Flushes every file to disk now (also done every second).
    pub fn sync(&self) {
        self.inner.sync(unix_now());
    }
}

impl Inner {
    fn sync(&self, now: i64) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for (file, dirty) in files.values_mut() {
            if std::mem::take(dirty) {
                let _ = file.sync_data();
            }
        }
        let expired: Vec<i64> = files
            .keys()
            .copied()
            .filter(|b| (b + 1) * BUCKET_SECS < now)
            .collect();
        for bucket in expired {
            files.remove(&bucket);
            let _ = std::fs::remove_file(self.dir.join(format!("{bucket}.log")));
        }
    }
}

fn sync_loop(inner: Weak<Inner>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(inner) = inner.upgrade() else { return };
        inner.sync(unix_now());
    }
}

fn bucket_of(path: &Path) -> Option<i64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_come_back_until_they_expire_and_old_buckets_go() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_000_000;
        {
            let (j, loaded) = NonceJournal::open(dir.path(), now).unwrap();
            assert!(loaded.nonces.is_empty());
            j.append(1, now + 900).unwrap();
            j.append(2, now + 10).unwrap();
            j.append(3, now - 5000).unwrap();
        }
        let files = || {
            std::fs::read_dir(dir.path().join("nonces"))
                .unwrap()
                .count()
        };
        // 20 s later the second nonce has expired, though its bucket (5 minutes of
        // expiry) has not: the nonce is not loaded, the file stays.
        let (_j, loaded) = NonceJournal::open(dir.path(), now + 20).unwrap();
        assert_eq!(loaded.nonces, vec![(1, now + 900)]);
        assert!(!loaded.after_reboot);
        // boot_id and the two buckets not yet over.
        assert_eq!(files(), 3);
        // Once the second nonce's bucket is over, its file goes too.
        let (_j, loaded) = NonceJournal::open(dir.path(), now + 400).unwrap();
        assert_eq!(loaded.nonces, vec![(1, now + 900)]);
        assert_eq!(files(), 2);
    }

    #[test]
    fn a_changed_boot_id_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let now = 2_000_000;
        {
            let (j, _) = NonceJournal::open(dir.path(), now).unwrap();
            j.append(9, now + 900).unwrap();
        }
        std::fs::write(dir.path().join("nonces/boot_id"), "another boot\n").unwrap();
        let (_j, loaded) = NonceJournal::open(dir.path(), now).unwrap();
        assert!(loaded.after_reboot);
    }
}
