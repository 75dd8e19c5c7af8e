//! Media types fcx reads and writes, and the manifest JSON it writes (builder output, and the
//! manifest synthesized for `docker save` archives, whose images have none).

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Manifest media types a pull accepts.
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCodec {
    Tar,
    Gzip,
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
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
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
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
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
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

impl AnyManifest {
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
