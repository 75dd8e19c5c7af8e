//! The on-disk image cache: unpacked rootfs trees keyed by manifest digest, image metadata,
//! and reference → digest records. Layout under the root (created 0700):
//!
//! - `rootfs/<hex>/`   the unpacked image (renamed into place when complete)
//! - `images/<hex>.json` config, size and time of the image (written tmp + rename)
//! - `refs/<sha256 of reference>.json` one record per reference (one file each, so
//!   processes never rewrite a shared file)
//! - `locks/<hex>.lock` flock taken while an image is installed or removed
//! - `tmp/<pid>-<n>/`  staging; left-overs of dead processes are removed on open
//!
//! Pulling lives in `pull.rs`, importing in `import.rs`; both install through here.

use crate::config::digest_hex;
use crate::unpack::{tree_size, Unpacker};
use crate::{registry, Image, ImageConfig, ImageError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One cached image as `fcx image ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// Manifest digest (`sha256:<hex>`).
    pub digest: String,
    /// Normalized references that point to this image.
    pub references: Vec<String>,
    /// Bytes of the unpacked rootfs.
    pub size: u64,
    /// When it was pulled or imported (Unix seconds).
    pub created_unix: u64,
}

#[derive(Serialize, Deserialize)]
struct ImageMeta {
    digest: String,
    config: ImageConfig,
    size: u64,
    created_unix: u64,
}

#[derive(Serialize, Deserialize)]
struct RefRecord {
    reference: String,
    digest: String,
    /// Written by an import (`fcx image import`, code builds): no registry stands behind the
    /// name, so a cache hit needs no credential check. Records from before the field count as
    /// pulled, which is the safe side.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    imported: bool,
}

/// Where a reference record came from: what decides whether a cache hit is checked
/// against the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefSource {
    /// Pulled from the registry the reference names.
    Pulled,
    /// Imported from an archive or a build.
    Imported,
}

/// The image cache. Cheap to share via `Arc`; every method is safe to call concurrently,
/// also from several processes on the same root.
pub struct ImageStore {
    /// Shared with blocking tasks (unpacking, locking) that outlive a borrow.
    pub(crate) inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    pub(crate) root: PathBuf,
    unpacks: AtomicU64,
    /// Single flight: one async mutex per reference being resolved/pulled in this process.
    pub(crate) inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// (reference, credentials) pairs the registry has let read the reference in this
    /// process: a cache hit for a pair not in here asks the registry first (`pull.rs`).
    pub(crate) authorized: Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// A staging directory removed on drop unless its rootfs was moved into the cache.
pub(crate) struct Staging {
    pub dir: PathBuf,
}

impl Staging {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An exclusive flock on one digest; released when dropped (the file closes).
pub(crate) struct DigestLock(#[allow(dead_code)] fs::File);

fn mkdir_private(p: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).recursive(true).create(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `data` to `path` atomically (tmp file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl ImageStore {
    /// Opens (creating, 0700) the cache at `root`, e.g. `<data dir>/images`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore, ImageError> {
        Ok(ImageStore {
            inner: Arc::new(StoreInner::open(root.into())?),
        })
    }

    /// How many rootfs unpacks this store did (each image counts once).
    pub fn unpacks(&self) -> u64 {
        self.inner.unpacks.load(Ordering::SeqCst)
    }

    /// Cached image for a reference (normalized) or a bare `sha256:` digest; no network.
    pub fn lookup(&self, reference: &str) -> Option<Image> {
        self.inner.lookup(reference)
    }

    /// Every cached image with the references that point to it, sorted by digest.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        self.inner.list()
    }

    /// Removes a reference (or, given a `sha256:` digest, every reference to that image);
    /// deletes the rootfs once no reference points to it.
    pub fn remove(&self, reference_or_digest: &str) -> Result<(), ImageError> {
        self.inner.remove(reference_or_digest)
    }

    /// Where the cache lives.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }
}

impl StoreInner {
    /// Opens (creating, 0700) the cache at `root`, e.g. `<data dir>/images`.
    fn open(root: PathBuf) -> Result<StoreInner, ImageError> {
        for sub in ["", "rootfs", "images", "refs", "locks", "tmp"] {
            mkdir_private(&root.join(sub))?;
        }
        let store = StoreInner {
            root,
            unpacks: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            authorized: Mutex::new(std::collections::HashSet::new()),
        };
        store.clean_stale_staging();
        Ok(store)
    }

    /// Staging dirs are named `<pid>-<n>`; those of processes that are gone are garbage.
    fn clean_stale_staging(&self) {
        let Ok(rd) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid
                .and_then(rustix::process::Pid::from_raw)
                .is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
            if !alive {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    pub(crate) fn stage(&self) -> io::Result<Staging> {
        // Process-wide: two stores on one root in one process must not share a name.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        mkdir_private(&dir)?;
        fs::DirBuilder::new()
            .mode(0o755)
            .create(dir.join("rootfs"))?;
        Ok(Staging { dir })
    }

    /// Blocks until this process holds the digest's flock. flock locks belong to the open
    /// file, so this also serializes threads of one process.
    pub(crate) fn lock_digest(&self, hex: &str) -> io::Result<DigestLock> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("locks").join(format!("{hex}.lock")))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(DigestLock(f))
    }

    fn meta_path(&self, hex: &str) -> PathBuf {
        self.root.join("images").join(format!("{hex}.json"))
    }

    fn rootfs_path(&self, hex: &str) -> PathBuf {
        self.root.join("rootfs").join(hex)
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        let key = hex::encode(Sha256::digest(reference.as_bytes()));
        self.root.join("refs").join(format!("{key}.json"))
    }

    fn read_meta(&self, hex: &str) -> Option<ImageMeta> {
        let bytes = fs::read(self.meta_path(hex)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The installed image with this manifest digest (metadata and rootfs both present).
    pub(crate) fn image_by_digest(&self, digest: &str) -> Option<Image> {
        let hex = digest_hex("", digest).ok()?;
        let meta = self.read_meta(hex)?;
        let rootfs = self.rootfs_path(hex);
        if !rootfs.is_dir() {
            return None;
        }
        Some(Image {
            digest: meta.digest,
            rootfs,
            config: meta.config,
        })
    }

    pub(crate) fn ref_digest(&self, reference: &str) -> Option<String> {
        let bytes = fs::read(self.ref_path(reference)).ok()?;
        let rec: RefRecord = serde_json::from_slice(&bytes).ok()?;
        (rec.reference == reference).then_some(rec.digest)
    }

    /// The set of authorized (reference, credentials) pairs, also after a panic elsewhere.
    pub(crate) fn lock_authorized(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashSet<[u8; 32]>> {
        self.authorized.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the reference's record says it was imported (no registry to ask).
    pub(crate) fn ref_imported(&self, reference: &str) -> bool {
        fs::read(self.ref_path(reference))
            .ok()
            .and_then(|b| serde_json::from_slice::<RefRecord>(&b).ok())
            .is_some_and(|rec| rec.reference == reference && rec.imported)
    }

    pub(crate) fn record_ref(
        &self,
        reference: &str,
        digest: &str,
        source: RefSource,
    ) -> io::Result<()> {
        let rec = RefRecord {
            reference: reference.to_string(),
            digest: digest.to_string(),
            imported: source == RefSource::Imported,
        };
        write_atomic(
            &self.ref_path(reference),
            &serde_json::to_vec(&rec).map_err(io::Error::other)?,
        )
    }

    /// Moves a fully unpacked staging rootfs into the cache and writes its metadata.
    /// The caller holds the digest lock.
    pub(crate) fn commit(
        &self,
        staging: &Staging,
        unpacker: Unpacker,
        digest: &str,
        config: ImageConfig,
    ) -> Result<Image, ImageError> {
        let hex = digest_hex(digest, digest)?;
        unpacker.finish()?;
        let size = tree_size(&staging.rootfs())?;
        let dst = self.rootfs_path(hex);
        if dst.exists() {
            // Left by a crash between rename and metadata write: replace it.
            let trash = staging.dir.join("old");
            fs::rename(&dst, &trash)?;
        }
        fs::rename(staging.rootfs(), &dst)?;
        let meta = ImageMeta {
            digest: digest.to_string(),
            config: config.clone(),
            size,
            created_unix: now_unix(),
        };
        write_atomic(
            &self.meta_path(hex),
            &serde_json::to_vec(&meta).map_err(io::Error::other)?,
        )?;
        self.unpacks.fetch_add(1, Ordering::SeqCst);
        Ok(Image {
            digest: digest.to_string(),
            rootfs: dst,
            config,
        })
    }

    pub fn lookup(&self, reference: &str) -> Option<Image> {
        if reference.starts_with("sha256:") {
            return self.image_by_digest(reference);
        }
        let r = registry::parse_reference(reference).ok()?;
        if let Some(d) = r.digest() {
            if let Some(img) = self.image_by_digest(d) {
                return Some(img);
            }
        }
        self.image_by_digest(&self.ref_digest(&r.whole())?)
    }

    fn all_refs(&self) -> Result<Vec<(PathBuf, RefRecord)>, ImageError> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root.join("refs"))? {
            let e = e?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                if let Ok(rec) = fs::read(&p)
                    .map_err(|_| ())
                    .and_then(|b| serde_json::from_slice::<RefRecord>(&b).map_err(|_| ()))
                {
                    out.push((p, rec));
                }
            }
        }
        Ok(out)
    }

    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let refs = self.all_refs()?;
        let mut out = Vec::new();
        for e in fs::read_dir(self.root.join("images"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".json") else {
                continue;
            };
            let Some(meta) = self.read_meta(hex) else {
                continue;
            };
            let mut references: Vec<String> = refs
                .iter()
                .filter(|(_, r)| r.digest == meta.digest)
                .map(|(_, r)| r.reference.clone())
                .collect();
            references.sort();
            out.push(ImageSummary {
                digest: meta.digest,
                references,
                size: meta.size,
                created_unix: meta.created_unix,
            });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    pub fn remove(&self, reference_or_digest: &str) -> Result<(), ImageError> {
        let refs = self.all_refs()?;
        let digest = if reference_or_digest.starts_with("sha256:") {
            reference_or_digest.to_string()
        } else {
            let r = registry::parse_reference(reference_or_digest)?;
            let whole = r.whole();
            match refs.iter().find(|(_, rec)| rec.reference == whole) {
                Some((_, rec)) => rec.digest.clone(),
                None => match r.digest().filter(|d| self.image_by_digest(d).is_some()) {
                    Some(d) => d.to_string(),
                    None => return Err(ImageError::NotFound { reference: whole }),
                },
            }
        };
        let hex = digest_hex(reference_or_digest, &digest)?.to_string();
        let _lock = self.lock_digest(&hex)?;
        let whole = registry::parse_reference(reference_or_digest)
            .map(|r| r.whole())
            .unwrap_or_default();
        let mut remaining = 0;
        let mut found = false;
        for (path, rec) in &refs {
            if rec.digest != digest {
                continue;
            }
            if reference_or_digest.starts_with("sha256:") || rec.reference == whole {
                fs::remove_file(path).or_else(ignore_missing)?;
                found = true;
            } else {
                remaining += 1;
            }
        }
        let exists = self.meta_path(&hex).exists() || self.rootfs_path(&hex).exists();
        if !found && !exists {
            return Err(ImageError::NotFound {
                reference: reference_or_digest.to_string(),
            });
        }
        if remaining == 0 {
            // Metadata first: a half-removed image is then simply "not cached".
            fs::remove_file(self.meta_path(&hex)).or_else(ignore_missing)?;
            let rootfs = self.rootfs_path(&hex);
            if rootfs.exists() {
                let staging = self.stage()?;
                fs::rename(&rootfs, staging.dir.join("doomed"))?;
                drop(staging); // removes the tree
            }
        }
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
