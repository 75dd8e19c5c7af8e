//! Media types fcx reads and writes, and the manifest JSON it writes (builder output, and the
//! manifest synthesized for `docker save` archives, whose images have none).

use serde::{Deserialize, Serialize};

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI index (one manifest per platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed OCI layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzip OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd OCI layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// An uncompressed non-distributable layer (deprecated by OCI, still found in old images).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// A gzip non-distributable layer.
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// A zstd non-distributable layer.
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// A Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list (Docker's index).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// A gzip Docker layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// An uncompressed Docker layer (`docker save` archives hold these).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// A gzip Docker layer hosted elsewhere (Windows base layers); unpacked like any other.
pub const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// The annotation naming an image in an OCI layout's index (its tag).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Manifest media types a pull accepts.
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCodec {
    /// Uncompressed.
    Tar,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The codec of a layer media type, `None` for types that are not filesystem layers.
pub fn layer_codec(media_type: &str) -> Option<LayerCodec> {
    match media_type {
        OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR => Some(LayerCodec::Tar),
        OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_GZIP => {
            Some(LayerCodec::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD => Some(LayerCodec::Zstd),
        _ => None,
    }
}

/// A content descriptor (the subset fcx uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is (one of the media types above).
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>` of the blob's bytes.
    pub digest: String,
    /// The blob's length in bytes.
    #[serde(default)]
    pub size: u64,
    /// In an index: which platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// In an OCI layout's index: the image's name (see [`REF_NAME_ANNOTATION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// A descriptor without platform or annotations.
    pub fn new(media_type: &str, digest: &str, size: usize) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size: size as u64,
            platform: None,
            annotations: None,
        }
    }
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8` for arm64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch` or `os/arch/variant`, as error messages show it.
    pub fn describe(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// An image manifest or an index, told apart by their fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyManifest {
    /// Absent in some older manifests; then the fields decide.
    #[serde(default)]
    pub media_type: Option<String>,
    /// A manifest's config blob.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// A manifest's layers, lowest first.
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    /// An index's manifests.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

impl AnyManifest {
    /// Whether this is an index (by media type, or by its fields when it has none).
    pub fn is_index(&self) -> bool {
        matches!(
            self.media_type.as_deref(),
            Some(OCI_INDEX) | Some(DOCKER_LIST)
        ) || (self.media_type.is_none() && self.manifests.is_some() && self.config.is_none())
    }
}

/// Serializes an image manifest (fixed field order: deterministic).
pub fn manifest_json(
    media_type: &str,
    config: &Descriptor,
    layers: &[Descriptor],
) -> std::io::Result<Vec<u8>> {
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config,
        "layers": layers,
    });
    serde_json::to_vec(&doc).map_err(std::io::Error::other)
}

/// The manifest (bytes, digest) fcx gives a `docker save` image: its config and
/// uncompressed layers, as the builder and the importer both compute it.
pub fn archive_manifest(
    config_digest: &str,
    config_size: usize,
    layers: &[Descriptor],
) -> std::io::Result<(Vec<u8>, String)> {
    let bytes = manifest_json(
        OCI_MANIFEST,
        &Descriptor::new(OCI_CONFIG, config_digest, config_size),
        layers,
    )?;
    let digest = crate::build::sha256_digest(&bytes);
    Ok((bytes, digest))
}
