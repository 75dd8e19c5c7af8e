//! The HTTPS listener's TLS settings (`--https-listen`, custom domains with `protocol:
//! HTTPS`): rustls picks each connection's certificate by SNI from the domains the control
//! plane serves. `conn.rs` accepts and bounds the connections (handshake within the header
//! timeout, the connection cap, idle and body timeouts) and serves HTTP/1.1 on them, upgrades
//! included, with the same front as the plain listener.

use std::sync::Arc;

use fcx_control::ControlPlane;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Certificates by SNI name: a custom domain's, or none (the handshake fails).
struct ByServerName(Arc<ControlPlane>);

impl std::fmt::Debug for ByServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByServerName(custom domains)")
    }
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let cert = self.0.certificate(name);
        if cert.is_none() {
            tracing::debug!(
                server_name = name,
                "TLS handshake for a name without a certificate"
            );
        }
        cert
    }
}

/// The TLS settings: rustls' safe defaults, HTTP/1.1, certificates by SNI.
pub fn acceptor(control: Arc<ControlPlane>) -> Result<TlsAcceptor, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(fcx_control::web::tls_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByServerName(control)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
