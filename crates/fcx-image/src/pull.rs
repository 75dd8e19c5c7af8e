//! Pulling from registries into the cache: resolve the reference (picking linux/amd64 from
//! indexes), verify manifest, config and layer digests while downloading, unpack each layer
//! into a staging rootfs and commit it. `ensure` serves the cache first and shares one pull
//! among concurrent callers; a per-digest flock keeps other fcx processes from unpacking the
//! same image at the same time.

use crate::config::{self, digest_hex};
use crate::media::{self, AnyManifest, Descriptor};
use crate::registry::{parse_reference, Connection};
use crate::store::{DigestLock, RefSource, StoreInner};
use crate::unpack::Unpacker;
use crate::{report, Image, ImageError, ImageStore, Progress, ProgressFn, RegistryOptions};
use oci_client::Reference;
use sha2::{Digest as _, Sha256};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Report download progress at most once per this many bytes (plus at the end).
const PROGRESS_STEP: u64 = 1 << 20;

/// How long a cache hit waits for its registry to confirm the caller's access.
const AUTHORIZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Names one (reference, credentials) pair without keeping the password in memory as is.
fn authorization_key(whole: &str, opts: &RegistryOptions) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(whole.as_bytes());
    match &opts.credentials {
        Some((user, password)) => {
            h.update([1]);
            h.update((user.len() as u64).to_le_bytes());
            h.update(user.as_bytes());
            h.update(password.as_bytes());
        }
        None => h.update([0]),
    }
    h.update([u8::from(opts.insecure)]);
    if let Some(ca) = &opts.root_ca_pem {
        h.update(ca);
    }
    h.finalize().into()
}

impl ImageStore {
    /// Cached image for the reference (a tag is resolved once, then served from the cache;
    /// a digest reference is looked up by digest), pulled when absent. Concurrent calls for
    /// the same reference share one pull; a file lock guards against another fcx process
    /// pulling the same digest.
    pub async fn ensure(
        &self,
        reference: &str,
        opts: &RegistryOptions,
        progress: Option<&ProgressFn>,
    ) -> Result<Image, ImageError> {
        let r = parse_reference(reference)?;
        let whole = r.whole();
        if let Some(img) = self.inner.lookup(&whole) {
            self.authorize_cached(&r, opts).await?;
            report(
                progress,
                Progress::Cached {
                    digest: img.digest.clone(),
                },
            );
            return Ok(img);
        }
        let flight = self.flight(&whole);
        let guard = flight.lock().await;
        // Another caller may have pulled it while this one waited.
        let result = match self.inner.lookup(&whole) {
            Some(img) => self.authorize_cached(&r, opts).await.map(|()| {
                report(
                    progress,
                    Progress::Cached {
                        digest: img.digest.clone(),
                    },
                );
                img
            }),
            None => self.pull_parsed(&r, opts, progress).await,
        };
        drop(guard);
        self.land(&whole, flight);
        result
    }

    /// Always re-resolves the reference against the registry (`fcx image pull`); unpacks
    /// only when the digest is new.
    pub async fn pull(
        &self,
        reference: &str,
        opts: &RegistryOptions,
        progress: Option<&ProgressFn>,
    ) -> Result<Image, ImageError> {
        let r = parse_reference(reference)?;
        let whole = r.whole();
        let flight = self.flight(&whole);
        let guard = flight.lock().await;
        let result = self.pull_parsed(&r, opts, progress).await;
        drop(guard);
        self.land(&whole, flight);
        result
    }

    /// A cache hit is served only to a caller the registry lets read the reference: a
    /// private image pulled with one function's credentials must not start for another
    /// function that has wrong or no credentials (the cache is shared by all functions).
    /// The registry is asked once per (reference, credentials) in this process, with one
    /// manifest request and no layers. Imported names have no registry to ask. Only an
    /// explicit refusal denies: an unreachable registry (or one that does not answer within
    /// [`AUTHORIZE_TIMEOUT`]) leaves the cached image usable, as it is whenever a registry
    /// is down, and is logged.
    async fn authorize_cached(
        &self,
        r: &Reference,
        opts: &RegistryOptions,
    ) -> Result<(), ImageError> {
        let whole = r.whole();
        if self.inner.ref_imported(&whole) {
            return Ok(());
        }
        let key = authorization_key(&whole, opts);
        if self.inner.lock_authorized().contains(&key) {
            return Ok(());
        }
        let asked = async {
            let conn = Connection::new(&whole, opts)?;
            conn.manifest(r).await.map(drop)
        };
        match tokio::time::timeout(AUTHORIZE_TIMEOUT, asked).await {
            Ok(Ok(())) => {}
            Ok(Err(e @ ImageError::Unauthorized { .. })) => return Err(e),
            Ok(Err(e)) => tracing::warn!(
                image = %whole,
                error = %e,
                "serving the cached image: its registry could not confirm access"
            ),
            Err(_) => tracing::warn!(
                image = %whole,
                "serving the cached image: its registry did not answer the access check within {AUTHORIZE_TIMEOUT:?}"
            ),
        }
        self.inner.lock_authorized().insert(key);
        Ok(())
    }

    /// The single-flight mutex of a reference.
    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    /// Drops the reference's mutex from the map once nobody else holds or waits on it.
    fn land(&self, key: &str, flight: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // The map's copy plus ours: nobody else is waiting.
        if Arc::strong_count(&flight) <= 2 {
            map.remove(key);
        }
    }

    async fn pull_parsed(
        &self,
        r: &Reference,
        opts: &RegistryOptions,
        progress: Option<&ProgressFn>,
    ) -> Result<Image, ImageError> {
        let whole = r.whole();
        let conn = Connection::new(&whole, opts)?;
        let (digest, manifest) = resolve(&conn, r).await?;
        // The registry let these credentials read the reference: later cache hits need not ask.
        self.inner
            .lock_authorized()
            .insert(authorization_key(&whole, opts));
        let config_desc = manifest
            .config
            .clone()
            .ok_or_else(|| invalid(&whole, "manifest has no config"))?;
        let layers = manifest.layers.clone().unwrap_or_default();
        for l in &layers {
            digest_hex(&whole, &l.digest)?;
            if media::layer_codec(&l.media_type).is_none() {
                return Err(invalid(
                    &whole,
                    &format!("unsupported layer media type {:?}", l.media_type),
                ));
            }
        }
        if let Some(img) = self.inner.image_by_digest(&digest) {
            self.inner.record_ref(&whole, &digest, RefSource::Pulled)?;
            report(progress, Progress::Cached { digest });
            return Ok(img);
        }
        digest_hex(&whole, &config_desc.digest)?;
        let mut config_bytes = Vec::new();
        conn.blob(&config_desc.digest, &mut config_bytes).await?;
        verify(&whole, &config_desc.digest, &config_bytes)?;
        let parsed = config::parse(&whole, &config_bytes)?;
        report(
            progress,
            Progress::Resolved {
                reference: whole.clone(),
                digest: digest.clone(),
                layers: layers.len(),
                total_bytes: layers.iter().map(|l| l.size).sum(),
            },
        );

        let _lock = self.lock_digest(&digest).await?;
        if let Some(img) = self.inner.image_by_digest(&digest) {
            // Another process finished it while this one waited for the lock.
            self.inner.record_ref(&whole, &digest, RefSource::Pulled)?;
            return Ok(img);
        }
        let staging = self.inner.stage()?;
        let mut unpacker = Unpacker::new(&staging.rootfs());
        let blob_path = staging.dir.join("layer");
        for l in &layers {
            let file = tokio::fs::File::create(&blob_path).await?;
            let mut sink = Sink {
                file,
                hasher: Sha256::new(),
                done: 0,
                reported: 0,
                total: l.size,
                digest: &l.digest,
                progress,
            };
            conn.blob(&l.digest, &mut sink).await?;
            sink.report_now();
            let actual = format!("sha256:{}", hex::encode(sink.hasher.finalize_reset()));
            if actual != l.digest {
                return Err(ImageError::DigestMismatch {
                    reference: whole,
                    digest: l.digest.clone(),
                    actual,
                });
            }
            report(
                progress,
                Progress::Unpacking {
                    digest: l.digest.clone(),
                },
            );
            let (path, d) = (blob_path.clone(), l.digest.clone());
            let (back, res) = tokio::task::spawn_blocking(move || {
                let res = std::fs::File::open(&path)
                    .map_err(ImageError::from)
                    .and_then(|f| unpacker.apply(f, &d));
                (unpacker, res)
            })
            .await
            .map_err(|e| ImageError::Io(std::io::Error::other(e)))?;
            res?;
            unpacker = back;
            tokio::fs::remove_file(&blob_path).await?;
        }
        let inner = self.inner.clone();
        let d = digest.clone();
        let img = tokio::task::spawn_blocking(move || {
            inner.commit(&staging, unpacker, &d, parsed.config)
        })
        .await
        .map_err(|e| ImageError::Io(std::io::Error::other(e)))??;
        self.inner.record_ref(&whole, &digest, RefSource::Pulled)?;
        Ok(img)
    }

    async fn lock_digest(&self, digest: &str) -> Result<DigestLock, ImageError> {
        let hex = digest_hex(digest, digest)?.to_string();
        let inner: Arc<StoreInner> = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.lock_digest(&hex))
            .await
            .map_err(|e| ImageError::Io(std::io::Error::other(e)))?
            .map_err(ImageError::from)
    }
}

/// Resolves a reference to (image manifest digest, manifest), going through an index to
/// its linux/amd64 entry. Every manifest is checked against the digest it was asked by.
async fn resolve(conn: &Connection, r: &Reference) -> Result<(String, AnyManifest), ImageError> {
    let whole = r.whole();
    let (body, _) = conn.manifest(r).await?;
    let mut digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    if let Some(want) = r.digest() {
        if want != digest {
            return Err(ImageError::DigestMismatch {
                reference: whole,
                digest: want.to_string(),
                actual: digest,
            });
        }
    }
    let mut manifest = parse_manifest(&whole, &body)?;
    if manifest.is_index() {
        let entries = manifest.manifests.clone().unwrap_or_default();
        let chosen = pick_amd64(&entries).ok_or_else(|| ImageError::UnsupportedPlatform {
            reference: whole.clone(),
            offered: offered(&entries),
        })?;
        digest_hex(&whole, &chosen.digest)?;
        let (body, _) = conn
            .manifest(&r.clone_with_digest(chosen.digest.clone()))
            .await?;
        digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if digest != chosen.digest {
            return Err(ImageError::DigestMismatch {
                reference: whole,
                digest: chosen.digest.clone(),
                actual: digest,
            });
        }
        manifest = parse_manifest(&whole, &body)?;
        if manifest.is_index() {
            return Err(invalid(&whole, "an index entry points to another index"));
        }
    }
    Ok((digest, manifest))
}

pub(crate) fn parse_manifest(reference: &str, body: &[u8]) -> Result<AnyManifest, ImageError> {
    serde_json::from_slice(body)
        .map_err(|e| invalid(reference, &format!("manifest is not valid JSON: {e}")))
}

/// The linux/amd64 entry of an index (entries without a platform are not guessed at).
pub(crate) fn pick_amd64(entries: &[Descriptor]) -> Option<&Descriptor> {
    entries.iter().find(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    })
}

/// The platforms an index offers, for the UnsupportedPlatform message (attestation
/// manifests, `unknown/unknown`, are left out).
pub(crate) fn offered(entries: &[Descriptor]) -> String {
    let list: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.describe())
        .collect();
    if list.is_empty() {
        "no platform".to_string()
    } else {
        list.join(", ")
    }
}

fn verify(reference: &str, digest: &str, data: &[u8]) -> Result<(), ImageError> {
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    if actual == digest {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            reference: reference.to_string(),
            digest: digest.to_string(),
            actual,
        })
    }
}

fn invalid(reference: &str, detail: &str) -> ImageError {
    ImageError::Invalid {
        reference: reference.to_string(),
        detail: detail.to_string(),
    }
}

/// Where a layer download goes: a file, hashed and counted on the way.
struct Sink<'a> {
    file: tokio::fs::File,
    hasher: Sha256,
    done: u64,
    reported: u64,
    total: u64,
    digest: &'a str,
    progress: Option<&'a ProgressFn>,
}

impl Sink<'_> {
    fn report_now(&mut self) {
        self.reported = self.done;
        report(
            self.progress,
            Progress::Layer {
                digest: self.digest.to_string(),
                done_bytes: self.done,
                total_bytes: self.total,
            },
        );
    }
}

impl AsyncWrite for Sink<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.done += n as u64;
                if this.done - this.reported >= PROGRESS_STEP {
                    this.report_now();
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}
