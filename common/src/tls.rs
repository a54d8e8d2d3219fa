//! TLS for MQTT, in one place: the client side (agents and the aggregator trust a CA file)
//! and the server side (the aggregator's embedded broker presents a certificate). Both use
//! rustls with the `ring` provider, chosen explicitly so no process-wide default is needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// A TLS set-up that cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    File {
        /// `CA file`, `certificate file` or `key file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the material (e.g. a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |reason: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// A client configuration that trusts the certificates in `ca_file` (PEM) and nothing else.
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("CA file", ca_file)? {
        roots.add(cert).map_err(|e| TlsError::File {
            what: "CA file",
            path: ca_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server configuration presenting `cert_file` (PEM chain, leaf first) with `key_file`.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("certificate file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::File {
        what: "key file",
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The rumqttc transport for a broker: TLS trusting `ca_file` when given, else plain TCP.
pub fn mqtt_transport(ca_file: Option<&Path>) -> Result<rumqttc::Transport, TlsError> {
    Ok(match ca_file {
        Some(ca) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
            client_config(ca)?,
        )),
        None => rumqttc::Transport::tcp(),
    })
}
