//! TLS for `wss://`, with rustls: the listener's certificate and key, the connector's roots.
//!
//! Both sides put TLS under the WebSocket and above the [`Progress`](crate::progress::Progress)
//! wrapper, so write progress is still measured on the raw socket.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::WebsocketError;

/// A connection's byte stream, plain or TLS.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// The first byte of a TLS handshake record: tells a TLS client on a plain port (and the
/// opposite) apart before any handshake work.
pub(crate) const TLS_HANDSHAKE_RECORD: u8 = 0x16;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: impl std::fmt::Display) -> WebsocketError {
    WebsocketError::Tls(what.to_string())
}

/// The listener's TLS set-up from a PEM certificate chain and a PEM private key.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, WebsocketError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_error(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(tls_error(format!("{}: no certificate in the file", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error(format!("{}: {e}", key.display())))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(format!("certificate and key do not make a server identity: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector's TLS set-up: the platform's roots, or only the CAs in `ca` (a PEM file).
pub(crate) fn connector(ca: Option<&Path>) -> Result<TlsConnector, WebsocketError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| tls_error(format!("{}: {e}", ca.display())))? {
                let cert = cert.map_err(|e| tls_error(format!("{}: {e}", ca.display())))?;
                roots.add(cert).map_err(|e| tls_error(format!("{}: {e}", ca.display())))?;
            }
            if roots.is_empty() {
                return Err(tls_error(format!("{}: no certificate in the file", ca.display())));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "a platform root certificate could not be read");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no platform root certificates found: wss:// connections will fail (give ca=FILE)");
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the server's certificate must carry.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, WebsocketError> {
    ServerName::try_from(host.to_string()).map_err(|e| tls_error(format!("`{host}` is not a TLS server name: {e}")))
}
