//! Why an image could not be pulled, imported or unpacked. Each variant says what to do.

/// Image failures, separated the way users must act on them.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The registry has no such repository, tag or digest.
    #[error("image {reference} not found in its registry: check the repository name and tag (or digest)")]
    NotFound {
        /// The image, by reference (`registry/repository:tag` or `@sha256:...`).
        reference: String,
    },
    /// Credentials missing or refused (the seed FAQ's "permissions for images that are not public").
    #[error("access to image {reference} denied ({detail}): the image is not public, so set customContainerConfig.registryConfig.authConfig {{userName, password}} to an account that can pull it")]
    Unauthorized {
        /// The image, by reference (`registry/repository:tag` or `@sha256:...`).
        reference: String,
        /// What the registry answered.
        detail: String,
    },
    /// The registry could not be reached (DNS, connection, TLS).
    #[error("registry of image {reference} unreachable: {detail}")]
    Unreachable {
        /// The image, by reference (`registry/repository:tag` or `@sha256:...`).
        reference: String,
        /// The connection, DNS or TLS failure.
        detail: String,
    },
    /// No linux/amd64 variant.
    #[error("image {reference} has no linux/amd64 variant (it offers {offered}); fcx runs amd64 images only, as FC does")]
    UnsupportedPlatform {
        /// The image, by reference (`registry/repository:tag` or `@sha256:...`).
        reference: String,
        /// The platforms the image has (`os/arch[/variant]`, comma-separated).
        offered: String,
    },
    /// A blob's content does not match its digest.
    #[error("blob {digest} of image {reference} is corrupt: its content hashes to {actual}")]
    DigestMismatch {
        /// The image, by reference (`registry/repository:tag` or `@sha256:...`).
        reference: String,
        /// The digest the manifest names.
        digest: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A layer tries to write outside the rootfs or holds an entry fcx refuses.
    #[error("layer {digest} is unsafe: {detail}")]
    UnsafeLayer {
        /// The layer blob's digest.
        digest: String,
        /// The offending entry and why it is refused.
        detail: String,
    },
    /// The reference, manifest, config, layout or archive is malformed.
    #[error("invalid image {reference}: {detail}")]
    Invalid {
        /// The image, by reference (`registry/repository:tag` or `@sha256:...`).
        reference: String,
        /// What is malformed.
        detail: String,
    },
    /// Local disk or filesystem trouble.
    #[error("image cache: {0}")]
    Io(#[from] std::io::Error),
}
