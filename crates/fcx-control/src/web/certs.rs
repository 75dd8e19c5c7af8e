//! A custom domain's certificate for TLS: the PEM chain and private key of its `certConfig`
//! parsed and checked to belong together, once, when the domain is applied.

use std::sync::Arc;

use fcx_model::ModelError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use rustls::sign::CertifiedKey;

/// The crypto fcx's TLS uses (aws-lc-rs, as the image registry client already does).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate chain and key of a `certConfig`, ready for rustls.
pub fn certified_key(certificate: &str, private_key: &str) -> Result<CertifiedKey, ModelError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certificate.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                ModelError::new(
                    "certConfig.certificate",
                    format!("is not PEM certificates: {e}"),
                )
            })?;
    if chain.is_empty() {
        return Err(ModelError::new(
            "certConfig.certificate",
            "holds no -----BEGIN CERTIFICATE----- block",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(private_key.as_bytes()).map_err(|e| {
        ModelError::new(
            "certConfig.privateKey",
            format!("is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        ModelError::new(
            "certConfig.privateKey",
            format!("does not fit the certificate: {e}"),
        )
    })
}
