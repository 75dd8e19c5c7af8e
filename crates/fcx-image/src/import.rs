//! Importing images from files: an OCI image layout directory, or a `docker save` tar in
//! the classic format (`manifest.json` + `<id>/layer.tar`) or the newer one (an OCI layout
//! inside the tar). Archives are extracted with the same safe unpacker as layers, every
//! blob is hashed before it is used, and nothing outside the archive is ever read.

use crate::config::{self, digest_hex};
use crate::media::{self, AnyManifest, Descriptor};
use crate::pull::{offered, parse_manifest, pick_amd64};
use crate::registry::parse_reference;
use crate::store::RefSource;
use crate::unpack::{decompressed, Unpacker};
use crate::{report, Image, ImageConfig, ImageError, ImageStore, Progress, ProgressFn};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One entry of a `docker save` manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// An image ready to install: names, manifest digest, config and layer blob files.
struct Prepared {
    names: Vec<String>,
    digest: String,
    config: ImageConfig,
    layers: Vec<(PathBuf, String)>,
}

impl ImageStore {
    /// Imports an OCI image layout directory or a `docker save` tar (either format);
    /// returns (normalized reference names, image) per image in it. Every blob's digest is
    /// verified; images already cached are not unpacked again.
    pub fn import(
        &self,
        path: &Path,
        progress: Option<&ProgressFn>,
    ) -> Result<Vec<(Vec<String>, Image)>, ImageError> {
        let src = path.display().to_string();
        if fs::metadata(path)?.is_dir() {
            let images = layout_images(path, &src, &HashMap::new())?;
            return self.install_all(images, progress);
        }
        {
            // Extract with the layer unpacker: archive paths cannot escape, links stay inside.
            let staging = self.inner.stage()?;
            let dir = staging.rootfs();
            let mut u = Unpacker::new(&dir);
            u.apply(fs::File::open(path)?, &src)?;
            u.finish()?;
            let images = if dir.join("oci-layout").exists() && dir.join("index.json").exists() {
                let names = match read_archive_manifest(&dir, &src) {
                    Ok(entries) => names_by_config(&dir, &src, &entries),
                    Err(_) => HashMap::new(),
                };
                layout_images(&dir, &src, &names)?
            } else if dir.join("manifest.json").exists() {
                classic_images(&dir, &src)?
            } else {
                return Err(invalid(
                    &src,
                    "neither an OCI layout (oci-layout, index.json) nor a docker save archive (manifest.json)",
                ));
            };
            // `staging` (the extracted archive) lives until the install is done.
            let result = self.install_all(images, progress);
            drop(staging);
            result
        }
    }

    fn install_all(
        &self,
        images: Vec<Prepared>,
        progress: Option<&ProgressFn>,
    ) -> Result<Vec<(Vec<String>, Image)>, ImageError> {
        let mut out = Vec::new();
        for p in images {
            let img = self.install(&p, progress)?;
            for name in &p.names {
                self.inner
                    .record_ref(name, &img.digest, RefSource::Imported)?;
            }
            out.push((p.names, img));
        }
        Ok(out)
    }

    fn install(&self, p: &Prepared, progress: Option<&ProgressFn>) -> Result<Image, ImageError> {
        let hex = digest_hex(&p.digest, &p.digest)?;
        let _lock = self.inner.lock_digest(hex)?;
        if let Some(img) = self.inner.image_by_digest(&p.digest) {
            report(
                progress,
                Progress::Cached {
                    digest: p.digest.clone(),
                },
            );
            return Ok(img);
        }
        let total: u64 = p
            .layers
            .iter()
            .map(|(f, _)| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        report(
            progress,
            Progress::Resolved {
                reference: p.names.first().cloned().unwrap_or_default(),
                digest: p.digest.clone(),
                layers: p.layers.len(),
                total_bytes: total,
            },
        );
        let staging = self.inner.stage()?;
        let mut u = Unpacker::new(&staging.rootfs());
        for (file, digest) in &p.layers {
            report(
                progress,
                Progress::Unpacking {
                    digest: digest.clone(),
                },
            );
            u.apply(fs::File::open(file)?, digest)?;
        }
        self.inner.commit(&staging, u, &p.digest, p.config.clone())
    }
}

/// Images of an OCI layout: every index.json entry (an index inside resolves to its
/// linux/amd64 entry). `extra` adds names by config digest (docker's manifest.json).
fn layout_images(
    dir: &Path,
    src: &str,
    extra: &HashMap<String, Vec<String>>,
) -> Result<Vec<Prepared>, ImageError> {
    let index = parse_manifest(src, &read_in(dir, "index.json", src)?)?;
    let entries = index.manifests.unwrap_or_default();
    // Top-level entries for other platforms are skipped when something is importable.
    let wanted: Vec<&Descriptor> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .map_or(true, |p| p.os == "linux" && p.architecture == "amd64")
        })
        .collect();
    if wanted.is_empty() {
        return Err(ImageError::UnsupportedPlatform {
            reference: src.to_string(),
            offered: offered(&entries),
        });
    }
    let mut out = Vec::new();
    for entry in wanted {
        let mut names = Vec::new();
        let ann = entry.annotations.clone().unwrap_or_default();
        if let Some(n) = ann.get(CONTAINERD_NAME) {
            names.extend(normalize(n));
        } else if let Some(n) = ann.get(media::REF_NAME_ANNOTATION) {
            // A bare tag ("latest") names no repository: only full references count.
            if n.contains(['/', ':', '@']) {
                names.extend(normalize(n));
            }
        }
        let (digest, body) = read_blob(dir, src, &entry.digest)?;
        let mut manifest = parse_manifest(src, &body)?;
        let mut digest = digest;
        if manifest.is_index() {
            let list = manifest.manifests.clone().unwrap_or_default();
            let chosen = pick_amd64(&list).ok_or_else(|| ImageError::UnsupportedPlatform {
                reference: src.to_string(),
                offered: offered(&list),
            })?;
            let (d, body) = read_blob(dir, src, &chosen.digest)?;
            digest = d;
            manifest = parse_manifest(src, &body)?;
            if manifest.is_index() {
                return Err(invalid(src, "an index entry points to another index"));
            }
        }
        let (config, layers) = manifest_parts(dir, src, &manifest)?;
        if let Some(more) = extra.get(&config.1) {
            for n in more {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        out.push(Prepared {
            names,
            digest,
            config: config.0,
            layers,
        });
    }
    Ok(out)
}

/// Config (parsed, digest) and verified layer files of an image manifest.
#[allow(clippy::type_complexity)]
fn manifest_parts(
    dir: &Path,
    src: &str,
    manifest: &AnyManifest,
) -> Result<((ImageConfig, String), Vec<(PathBuf, String)>), ImageError> {
    let cd = manifest
        .config
        .as_ref()
        .ok_or_else(|| invalid(src, "manifest has no config"))?;
    let (_, config_bytes) = read_blob(dir, src, &cd.digest)?;
    let parsed = config::parse(src, &config_bytes)?;
    let mut layers = Vec::new();
    for l in manifest.layers.clone().unwrap_or_default() {
        if media::layer_codec(&l.media_type).is_none() {
            return Err(invalid(
                src,
                &format!("unsupported layer media type {:?}", l.media_type),
            ));
        }
        let hex = digest_hex(src, &l.digest)?;
        let path = inside(dir, &format!("blobs/sha256/{hex}"), src)?;
        let (actual, _) = hash_file(&path, false)?;
        check(src, &l.digest, actual)?;
        layers.push((path, l.digest.clone()));
    }
    Ok(((parsed.config, cd.digest.clone()), layers))
}

/// Images of a classic `docker save` archive. Their manifest is synthesized from the config
/// and the uncompressed layers (see [`media::archive_manifest`]).
fn classic_images(dir: &Path, src: &str) -> Result<Vec<Prepared>, ImageError> {
    let mut out = Vec::new();
    for entry in read_archive_manifest(dir, src)? {
        let config_path = inside(dir, &entry.config, src)?;
        let config_bytes = fs::read(&config_path)?;
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config_bytes)));
        // The file is named by its digest (`<hex>.json` or `blobs/sha256/<hex>`): check it.
        let stem = Path::new(&entry.config)
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".json").to_string())
            .unwrap_or_default();
        if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            check(src, &format!("sha256:{stem}"), config_digest.clone())?;
        }
        let parsed = config::parse(src, &config_bytes)?;
        if parsed.diff_ids.len() != entry.layers.len() {
            return Err(invalid(
                src,
                "manifest.json and the config disagree on the layer count",
            ));
        }
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(&parsed.diff_ids) {
            let path = inside(dir, name, src)?;
            let (actual, size) = hash_file(&path, true)?;
            check(src, diff_id, actual)?;
            descs.push(Descriptor::new(
                media::OCI_LAYER_TAR,
                diff_id,
                size as usize,
            ));
            layers.push((path, diff_id.clone()));
        }
        let (_, digest) = media::archive_manifest(&config_digest, config_bytes.len(), &descs)?;
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .flat_map(|n| normalize(n))
            .collect();
        out.push(Prepared {
            names,
            digest,
            config: parsed.config,
            layers,
        });
    }
    Ok(out)
}

fn read_archive_manifest(dir: &Path, src: &str) -> Result<Vec<ArchiveEntry>, ImageError> {
    serde_json::from_slice(&read_in(dir, "manifest.json", src)?)
        .map_err(|e| invalid(src, &format!("manifest.json: {e}")))
}

/// RepoTags of a new-format archive's manifest.json, keyed by config digest.
fn names_by_config(
    dir: &Path,
    src: &str,
    entries: &[ArchiveEntry],
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for e in entries {
        let Ok(path) = inside(dir, &e.config, src) else {
            continue;
        };
        let Ok(bytes) = fs::read(path) else { continue };
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let names = e.repo_tags.iter().flatten().flat_map(|n| normalize(n));
        out.entry(digest).or_default().extend(names);
    }
    out
}

fn normalize(name: &str) -> Option<String> {
    parse_reference(name).ok().map(|r| r.whole())
}

/// A path of the archive/layout, refused when it (or a symlink on the way) leads outside.
fn inside(dir: &Path, rel: &str, src: &str) -> Result<PathBuf, ImageError> {
    let base = fs::canonicalize(dir)?;
    let path = fs::canonicalize(dir.join(rel.trim_start_matches('/')))
        .map_err(|e| invalid(src, &format!("{rel}: {e}")))?;
    if path.starts_with(&base) {
        Ok(path)
    } else {
        Err(ImageError::UnsafeLayer {
            digest: src.to_string(),
            detail: format!("{rel} points outside the archive"),
        })
    }
}

fn read_in(dir: &Path, rel: &str, src: &str) -> Result<Vec<u8>, ImageError> {
    Ok(fs::read(inside(dir, rel, src)?)?)
}

/// A small blob (manifest, config) read and verified: (digest, bytes).
fn read_blob(dir: &Path, src: &str, digest: &str) -> Result<(String, Vec<u8>), ImageError> {
    let hex = digest_hex(src, digest)?;
    let bytes = read_in(dir, &format!("blobs/sha256/{hex}"), src)?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    check(src, digest, actual)?;
    Ok((digest.to_string(), bytes))
}

fn check(src: &str, want: &str, actual: String) -> Result<(), ImageError> {
    if want == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            reference: src.to_string(),
            digest: want.to_string(),
            actual,
        })
    }
}

/// sha256 and length of a file, or of its decompressed content when `uncompressed`.
fn hash_file(path: &Path, uncompressed: bool) -> Result<(String, u64), ImageError> {
    struct Hashing(Sha256, u64);
    impl Write for Hashing {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.update(b);
            self.1 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let f = fs::File::open(path)?;
    let mut r: Box<dyn Read> = if uncompressed {
        decompressed(f)?
    } else {
        Box::new(io::BufReader::new(f))
    };
    let mut h = Hashing(Sha256::new(), 0);
    io::copy(&mut r, &mut h)?;
    Ok((format!("sha256:{}", hex::encode(h.0.finalize())), h.1))
}

fn invalid(src: &str, detail: &str) -> ImageError {
    ImageError::Invalid {
        reference: src.to_string(),
        detail: detail.to_string(),
    }
}
