//! OCI images: pull from registries (anonymous, basic and bearer-token auth), import OCI image
//! layouts and `docker save` archives, verify every blob's digest, and unpack layers (whiteouts,
//! opaque directories, links kept inside the rootfs) into a digest-keyed rootfs cache shared by
//! all instances. Also builds images from files ([`build`]), which tests and benchmarks use
//! to make real images without Docker.

pub mod build;
mod config;
mod error;
mod import;
pub mod media;
mod pull;
mod registry;
mod store;
mod unpack;

pub use build::{push_index, Compression, ImageBuilder, Layer};
pub use error::ImageError;
pub use registry::{is_loopback_registry, parse_reference};
pub use store::{ImageStore, ImageSummary};

/// Receives [`Progress`] events of a pull or import.
pub type ProgressFn = dyn Fn(&Progress) + Send + Sync;

/// What a pull or import is doing, for progress bars and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The reference resolved to this manifest digest with these layers.
    Resolved {
        /// The reference, normalized (registry and tag filled in).
        reference: String,
        /// The manifest digest.
        digest: String,
        /// Layers in the manifest.
        layers: usize,
        /// Their compressed size, as the manifest states it.
        total_bytes: u64,
    },
    /// Bytes of one layer downloaded so far.
    Layer {
        /// The layer blob's digest.
        digest: String,
        /// Bytes received so far.
        done_bytes: u64,
        /// The blob's size.
        total_bytes: u64,
    },
    /// A layer is being unpacked into the rootfs.
    Unpacking {
        /// The layer blob's digest.
        digest: String,
    },
    /// The image was already in the cache: no download, no unpack.
    Cached {
        /// The cached manifest digest.
        digest: String,
    },
}

pub(crate) fn report(progress: Option<&ProgressFn>, event: Progress) {
    if let Some(f) = progress {
        f(&event);
    }
}

use std::path::PathBuf;

/// What the OCI backend needs from an image: its unpacked root filesystem and the parts of
/// its config that shape the container's process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Image {
    /// Manifest digest (`sha256:<hex>`): the cache key.
    pub digest: String,
    /// The unpacked, flattened rootfs (read-only by convention: instances mount it as an
    /// overlay lower directory).
    pub rootfs: PathBuf,
    /// How the image's process is to be started.
    pub config: ImageConfig,
}

/// The process-shaping part of an image config (`config` in the OCI image config JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    /// ENTRYPOINT; a function's `entrypoint` replaces it.
    pub entrypoint: Vec<String>,
    /// CMD; a function's `command` replaces it.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// The process's working directory; empty means `/`.
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    pub user: String,
    /// `os/architecture`, e.g. `linux/amd64`.
    pub platform: String,
}

/// Per-function registry settings (FC 3.0's `customContainerConfig.registryConfig`). Its
/// `Debug` leaves the password out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// `authConfig.userName` / `authConfig.password`; `None`: anonymous (bearer tokens
    /// are still fetched anonymously when the registry asks for them).
    pub credentials: Option<(String, String)>,
    /// `certConfig.insecure`: accept any TLS certificate.
    pub insecure: bool,
    /// `certConfig.rootCaCertBase64`, decoded: an extra PEM root certificate.
    pub root_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("insecure", &self.insecure)
            .field("root_ca_pem", &self.root_ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}
