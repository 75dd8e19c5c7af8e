//! Talking to one registry repository through oci-client: client setup from
//! [`RegistryOptions`] (plain HTTP for loopback registries as Docker does, basic auth, extra
//! CA, insecure TLS), and the mapping of oci-client errors onto [`ImageError`] kinds.

use crate::{ImageError, RegistryOptions};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::net::IpAddr;
use tokio::io::AsyncWrite;

/// Parses and normalizes a reference docker-style (`busybox` →
/// `docker.io/library/busybox:latest`).
pub fn parse_reference(reference: &str) -> Result<Reference, ImageError> {
    reference
        .trim()
        .parse::<Reference>()
        .map_err(|e| ImageError::Invalid {
            reference: reference.to_string(),
            detail: format!("not an image reference: {e}"),
        })
}

/// `localhost`, 127.0.0.0/8 and `[::1]` (with or without port): registries Docker talks
/// plain HTTP to without configuration.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client bound to one reference's registry, with credentials stored.
pub struct Connection {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    auth_stored: tokio::sync::OnceCell<()>,
}

#[allow(dead_code)] // the pull side is used by the image store
impl Connection {
    pub fn new(reference: &str, opts: &RegistryOptions) -> Result<Connection, ImageError> {
        let reference = parse_reference(reference)?;
        let registry = reference.resolve_registry().to_string();
        let protocol = if is_loopback_registry(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: opts.insecure,
            extra_root_certificates: opts
                .root_ca_pem
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            // fcx chooses platforms itself (see pull), so the client never resolves indexes.
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| ImageError::Invalid {
            reference: reference.whole(),
            detail: format!("registry client settings (root CA?): {e}"),
        })?;
        let auth = match &opts.credentials {
            Some((user, pass)) => RegistryAuth::Basic(user.clone(), pass.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Connection {
            client,
            reference,
            auth,
            auth_stored: tokio::sync::OnceCell::new(),
        })
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    async fn ensure_auth(&self) {
        self.auth_stored
            .get_or_init(|| async {
                self.client
                    .store_auth_if_needed(self.reference.resolve_registry(), &self.auth)
                    .await
            })
            .await;
    }

    fn map(&self, e: OciDistributionError) -> ImageError {
        map_error(&self.reference.whole(), e)
    }

    /// Raw manifest bytes and their digest (verified against a digest reference).
    pub async fn manifest(&self, target: &Reference) -> Result<(Vec<u8>, String), ImageError> {
        self.ensure_auth().await;
        let (body, digest) = self
            .client
            .pull_manifest_raw(target, &self.auth, crate::media::MANIFEST_TYPES)
            .await
            .map_err(|e| self.map(e))?;
        Ok((body.to_vec(), digest))
    }

    /// Streams a blob into `out`. oci-client checks the digest; callers hash too.
    pub async fn blob<W: AsyncWrite + Unpin>(
        &self,
        digest: &str,
        out: W,
    ) -> Result<(), ImageError> {
        self.ensure_auth().await;
        self.client
            .pull_blob(&self.reference, digest, out)
            .await
            .map_err(|e| self.map(e))
    }

    /// Uploads a blob unless the repository already has it.
    pub async fn push_blob(&self, data: &[u8], digest: &str) -> Result<(), ImageError> {
        self.ensure_auth().await;
        let exists = self
            .client
            .blob_exists(&self.reference, digest)
            .await
            .map_err(|e| self.map(e))?;
        if !exists {
            self.client
                .push_blob(&self.reference, data.to_vec(), digest)
                .await
                .map_err(|e| self.map(e))?;
        }
        Ok(())
    }

    pub async fn push_manifest(
        &self,
        target: &Reference,
        body: &[u8],
        media_type: &str,
    ) -> Result<(), ImageError> {
        self.ensure_auth().await;
        let content_type = media_type.parse().map_err(|_| ImageError::Invalid {
            reference: target.whole(),
            detail: format!("bad media type {media_type}"),
        })?;
        self.client
            .push_manifest_raw(target, body.to_vec(), content_type)
            .await
            .map_err(|e| self.map(e))?;
        Ok(())
    }
}

/// Sorts registry failures into the kinds users act on differently.
pub fn map_error(reference: &str, e: OciDistributionError) -> ImageError {
    let reference = reference.to_string();
    let detail = e.to_string();
    let not_found = || ImageError::NotFound {
        reference: reference.clone(),
    };
    let unauthorized = |d: String| ImageError::Unauthorized {
        reference: reference.clone(),
        detail: d,
    };
    match e {
        OciDistributionError::RegistryError { ref envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized(detail)
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found()
            } else {
                ImageError::Invalid { reference, detail }
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(detail),
        OciDistributionError::ServerError { code, .. } => match code {
            404 => not_found(),
            401 | 403 => unauthorized(detail),
            _ => ImageError::Unreachable { reference, detail },
        },
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => ImageError::DigestMismatch {
            reference,
            digest: expected,
            actual,
        },
        OciDistributionError::RequestError(ref re) => match re.status().map(|s| s.as_u16()) {
            Some(404) => not_found(),
            Some(401) | Some(403) => unauthorized(detail),
            // Connection refused, DNS, TLS, timeouts: the registry is not reachable as given.
            _ => ImageError::Unreachable {
                reference,
                detail: error_chain(re),
            },
        },
        OciDistributionError::IoError(io) => ImageError::Io(io),
        _ => ImageError::Invalid { reference, detail },
    }
}

/// An error with its causes, so "connection refused" or a TLS reason is not hidden.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_registry("localhost:5000"));
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("127.1.2.3"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("docker.io"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
    }

    #[test]
    fn normalizes_docker_style() {
        assert_eq!(
            parse_reference("busybox").unwrap().whole(),
            "docker.io/library/busybox:latest"
        );
        assert!(parse_reference("bad ref with spaces").is_err());
    }
}
