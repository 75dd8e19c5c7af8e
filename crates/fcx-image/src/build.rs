//! Image builder: real OCI images made from in-memory files and host files, without Docker.
//! Tests and benchmarks use it to write OCI image layouts, `docker save` archives, or to push
//! to a registry. Output is deterministic (fixed mtimes, fixed JSON field order, no timestamps
//! in gzip headers) so the same input always gives the same digests.

mod layer;

pub use layer::Layer;

use crate::media::{self, Descriptor};
use crate::{registry, ImageError, RegistryOptions};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::Path;

/// How layer blobs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip, what most registries hold.
    Gzip,
    /// zstd (always with the OCI media type: Docker's schema has none).
    Zstd,
}

/// Builds one single-platform image (config + ordered layers).
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    os: String,
    arch: String,
    variant: Option<String>,
    compression: Compression,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    user: String,
    layers: Vec<Layer>,
    docker_media_types: bool,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// A layer rendered to bytes: the uncompressed tar (diff id) and the blob as stored.
pub(crate) struct BuiltLayer {
    pub tar: Vec<u8>,
    pub diff_id: String,
    pub blob: Vec<u8>,
    pub digest: String,
    pub media_type: &'static str,
}

/// An image rendered to bytes, ready to be written in any format.
pub(crate) struct Built {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<BuiltLayer>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

pub(crate) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn strings(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| s.to_string()).collect()
}

impl ImageBuilder {
    /// An empty linux/amd64 image with gzip layers.
    pub fn new() -> Self {
        ImageBuilder {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            compression: Compression::Gzip,
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            working_dir: String::new(),
            user: String::new(),
            layers: Vec::new(),
            docker_media_types: false,
        }
    }

    /// `os/arch` or `os/arch/variant`, e.g. `linux/arm64/v8`.
    pub fn platform(mut self, os_arch: &str) -> Self {
        let mut parts = os_arch.splitn(3, '/');
        self.os = parts.next().unwrap_or("linux").to_string();
        self.arch = parts.next().unwrap_or("amd64").to_string();
        self.variant = parts.next().map(str::to_string);
        self
    }

    /// How layer blobs are compressed (default gzip).
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// The config's `Entrypoint`.
    pub fn entrypoint(mut self, argv: &[&str]) -> Self {
        self.entrypoint = strings(argv);
        self
    }

    /// The config's `Cmd`.
    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = strings(argv);
        self
    }

    /// Appends one `KEY=VALUE` entry.
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_string());
        self
    }

    /// The config's `WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = dir.to_string();
        self
    }

    /// The config's `User` (`name`, `uid`, `user:group` or `uid:gid`).
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }

    /// Uses Docker's v2 schema 2 media types (manifest, config, `rootfs.diff.tar[.gzip]`)
    /// instead of OCI ones, as images built by `docker build` and pushed by `docker push`
    /// have. Zstd layers keep the OCI type (Docker's schema has none).
    pub fn docker_media_types(mut self) -> Self {
        self.docker_media_types = true;
        self
    }

    /// Appends a layer (layers apply in the order added).
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// `os/arch[/variant]` of this image.
    pub fn platform_string(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.arch, v),
            None => format!("{}/{}", self.os, self.arch),
        }
    }

    /// Renders config, layers and OCI manifest.
    pub(crate) fn build(&self) -> std::io::Result<Built> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let tar = layer.to_tar()?;
            let diff_id = sha256_digest(&tar);
            let docker = self.docker_media_types;
            let (blob, media_type) = match self.compression {
                Compression::None if docker => (tar.clone(), media::DOCKER_LAYER_TAR),
                Compression::None => (tar.clone(), media::OCI_LAYER_TAR),
                Compression::Gzip => {
                    // GzBuilder writes mtime 0 and no file name: deterministic.
                    let mut enc =
                        flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
                    enc.write_all(&tar)?;
                    let mt = if docker {
                        media::DOCKER_LAYER_GZIP
                    } else {
                        media::OCI_LAYER_GZIP
                    };
                    (enc.finish()?, mt)
                }
                Compression::Zstd => (zstd::encode_all(&tar[..], 3)?, media::OCI_LAYER_ZSTD),
            };
            let digest = sha256_digest(&blob);
            layers.push(BuiltLayer {
                tar,
                diff_id,
                blob,
                digest,
                media_type,
            });
        }
        let config = self.config_json(&layers)?;
        let config_digest = sha256_digest(&config);
        let (manifest_type, config_type) = self.manifest_types();
        let manifest = media::manifest_json(
            manifest_type,
            &Descriptor::new(config_type, &config_digest, config.len()),
            &layers
                .iter()
                .map(|l| Descriptor::new(l.media_type, &l.digest, l.blob.len()))
                .collect::<Vec<_>>(),
        )?;
        let manifest_digest = sha256_digest(&manifest);
        Ok(Built {
            config,
            config_digest,
            layers,
            manifest,
            manifest_digest,
        })
    }

    /// (manifest, config) media types.
    fn manifest_types(&self) -> (&'static str, &'static str) {
        if self.docker_media_types {
            (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
        } else {
            (media::OCI_MANIFEST, media::OCI_CONFIG)
        }
    }

    fn config_json(&self, layers: &[BuiltLayer]) -> std::io::Result<Vec<u8>> {
        let mut cfg = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            cfg.insert(k.to_string(), v);
        };
        if !self.entrypoint.is_empty() {
            put("Entrypoint", self.entrypoint.clone().into());
        }
        if !self.cmd.is_empty() {
            put("Cmd", self.cmd.clone().into());
        }
        if !self.env.is_empty() {
            put("Env", self.env.clone().into());
        }
        if !self.working_dir.is_empty() {
            put("WorkingDir", self.working_dir.clone().into());
        }
        if !self.user.is_empty() {
            put("User", self.user.clone().into());
        }
        let mut doc = serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": self.arch,
            "os": self.os,
            "config": cfg,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
        });
        if let Some(v) = &self.variant {
            doc["variant"] = v.clone().into();
        }
        serde_json::to_vec(&doc).map_err(std::io::Error::other)
    }

    /// Writes (or adds to) an OCI image layout in `dir`, naming the image `tag` in
    /// `index.json` (`org.opencontainers.image.ref.name`; an older entry of that name is
    /// replaced). Returns the manifest digest.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) -> std::io::Result<String> {
        let built = self.build()?;
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs)?;
        let put = |digest: &str, data: &[u8]| -> std::io::Result<()> {
            let hex = digest.trim_start_matches("sha256:");
            std::fs::write(blobs.join(hex), data)
        };
        for l in &built.layers {
            put(&l.digest, &l.blob)?;
        }
        put(&built.config_digest, &built.config)?;
        put(&built.manifest_digest, &built.manifest)?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index_path = dir.join("index.json");
        let mut entries: Vec<serde_json::Value> = match std::fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
                .unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        entries.retain(|e| e["annotations"][media::REF_NAME_ANNOTATION] != tag);
        let mut entry = serde_json::json!({
            "mediaType": self.manifest_types().0,
            "digest": built.manifest_digest,
            "size": built.manifest.len(),
            "annotations": { media::REF_NAME_ANNOTATION: tag },
        });
        entry["platform"] = self.platform_json();
        entries.push(entry);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": entries,
        });
        std::fs::write(
            &index_path,
            serde_json::to_vec(&index).map_err(std::io::Error::other)?,
        )?;
        Ok(built.manifest_digest)
    }

    fn platform_json(&self) -> serde_json::Value {
        let mut p = serde_json::json!({"architecture": self.arch, "os": self.os});
        if let Some(v) = &self.variant {
            p["variant"] = v.clone().into();
        }
        p
    }

    /// Writes a classic `docker save` archive (`manifest.json`, `<config hex>.json`,
    /// `<layer id>/layer.tar` uncompressed, `repositories`). Returns the digest of the OCI
    /// manifest that describes the archive's uncompressed layers, which is the digest
    /// [`crate::ImageStore::import`] gives the image.
    pub fn write_docker_archive(&self, file: &Path, repo_tag: &str) -> std::io::Result<String> {
        let built = self.build()?;
        let out = std::fs::File::create(file)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        let config_hex = built.config_digest.trim_start_matches("sha256:");
        let config_name = format!("{config_hex}.json");
        let mut layer_names = Vec::new();
        let mut written = std::collections::BTreeSet::new();
        for l in &built.layers {
            let id = l.diff_id.trim_start_matches("sha256:").to_string();
            layer_names.push(format!("{id}/layer.tar"));
            if !written.insert(id.clone()) {
                continue; // the same layer content twice: one copy is enough
            }
            append_dir(&mut tar, &format!("{id}/"))?;
            append_bytes(&mut tar, &format!("{id}/VERSION"), b"1.0")?;
            let json = serde_json::json!({"id": id});
            append_bytes(&mut tar, &format!("{id}/json"), json.to_string().as_bytes())?;
            append_bytes(&mut tar, &format!("{id}/layer.tar"), &l.tar)?;
        }
        append_bytes(&mut tar, &config_name, &built.config)?;
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": layer_names,
        }]);
        append_bytes(&mut tar, "manifest.json", manifest.to_string().as_bytes())?;
        if let Some((repo, tag)) = split_repo_tag(repo_tag) {
            let top = layer_names
                .last()
                .map(|n| n.trim_end_matches("/layer.tar").to_string())
                .unwrap_or_default();
            let repos = serde_json::json!({ repo: { tag: top } });
            append_bytes(&mut tar, "repositories", repos.to_string().as_bytes())?;
        }
        tar.into_inner()?.flush()?;
        let layers: Vec<Descriptor> = built
            .layers
            .iter()
            .map(|l| Descriptor::new(media::OCI_LAYER_TAR, &l.diff_id, l.tar.len()))
            .collect();
        Ok(media::archive_manifest(&built.config_digest, built.config.len(), &layers)?.1)
    }

    /// Writes the newer `docker save` format (Docker 25+): an OCI image layout inside a tar,
    /// plus the classic `manifest.json` naming the image `repo_tag`. Returns the manifest digest.
    pub fn write_oci_archive(&self, file: &Path, repo_tag: &str) -> std::io::Result<String> {
        let built = self.build()?;
        let out = std::fs::File::create(file)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        let mut written = std::collections::BTreeSet::new();
        for l in &built.layers {
            if written.insert(l.digest.clone()) {
                append_bytes(&mut tar, &blob(&l.digest), &l.blob)?;
            }
        }
        append_bytes(&mut tar, &blob(&built.config_digest), &built.config)?;
        append_bytes(&mut tar, &blob(&built.manifest_digest), &built.manifest)?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [{
                "mediaType": self.manifest_types().0,
                "digest": built.manifest_digest,
                "size": built.manifest.len(),
                "annotations": {
                    "io.containerd.image.name": repo_tag,
                    media::REF_NAME_ANNOTATION: split_repo_tag(repo_tag).map(|(_, t)| t).unwrap_or("latest"),
                },
            }],
        });
        append_bytes(&mut tar, "index.json", index.to_string().as_bytes())?;
        let manifest = serde_json::json!([{
            "Config": blob(&built.config_digest),
            "RepoTags": [repo_tag],
            "Layers": built.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
        }]);
        append_bytes(&mut tar, "manifest.json", manifest.to_string().as_bytes())?;
        tar.into_inner()?.flush()?;
        Ok(built.manifest_digest)
    }

    /// Pushes blobs and the manifest to `reference` (a tag or digest reference). Returns
    /// the manifest digest.
    pub async fn push(
        &self,
        reference: &str,
        opts: &RegistryOptions,
    ) -> Result<String, ImageError> {
        let built = self.build()?;
        let conn = registry::Connection::new(reference, opts)?;
        push_built(&conn, &built, self.manifest_types().0, conn.reference()).await?;
        Ok(built.manifest_digest)
    }
}

/// Uploads a built image's blobs (skipping ones the registry has) and its manifest.
async fn push_built(
    conn: &registry::Connection,
    built: &Built,
    manifest_type: &str,
    target: &oci_client::Reference,
) -> Result<(), ImageError> {
    for l in &built.layers {
        conn.push_blob(&l.blob, &l.digest).await?;
    }
    conn.push_blob(&built.config, &built.config_digest).await?;
    conn.push_manifest(target, &built.manifest, manifest_type)
        .await
}

/// Pushes every image by digest, then an OCI index with one entry per image's platform
/// to `reference`. Returns the index digest.
pub async fn push_index(
    images: &[&ImageBuilder],
    reference: &str,
    opts: &RegistryOptions,
) -> Result<String, ImageError> {
    let conn = registry::Connection::new(reference, opts)?;
    let mut entries = Vec::new();
    for img in images {
        let built = img.build()?;
        let by_digest = conn
            .reference()
            .clone_with_digest(built.manifest_digest.clone());
        push_built(&conn, &built, img.manifest_types().0, &by_digest).await?;
        entries.push(serde_json::json!({
            "mediaType": img.manifest_types().0,
            "digest": built.manifest_digest,
            "size": built.manifest.len(),
            "platform": img.platform_json(),
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    }))
    .map_err(std::io::Error::other)?;
    conn.push_manifest(conn.reference(), &index, media::OCI_INDEX)
        .await?;
    Ok(sha256_digest(&index))
}

fn split_repo_tag(repo_tag: &str) -> Option<(&str, &str)> {
    let slash = repo_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let colon = repo_tag[slash..].rfind(':')? + slash;
    Some((&repo_tag[..colon], &repo_tag[colon + 1..]))
}

fn file_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = file_header(tar::EntryType::Regular, 0o644, data.len() as u64);
    tar.append_data(&mut h, path, data)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> std::io::Result<()> {
    let mut h = file_header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, std::io::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_digest() {
        let make = || {
            ImageBuilder::new()
                .cmd(&["/bin/sh"])
                .layer(Layer::new().file("bin/x", "hi", 0o755))
                .build()
                .unwrap()
                .manifest_digest
        };
        assert_eq!(make(), make());
    }

    #[test]
    fn repo_tag_split() {
        assert_eq!(split_repo_tag("a/b:c"), Some(("a/b", "c")));
        assert_eq!(
            split_repo_tag("127.0.0.1:5000/b:c"),
            Some(("127.0.0.1:5000/b", "c"))
        );
        assert_eq!(split_repo_tag("127.0.0.1:5000/b"), None);
    }
}
