//! A small local PKI for a site: a CA and the embedded broker's server certificate, so MQTT
//! over TLS works without openssl (`aggregator gen-certs`). Agents trust `ca.pem`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use thiserror::Error;

/// Certificate generation failures.
#[derive(Debug, Error)]
pub enum PkiError {
    /// rcgen refused the parameters (e.g. a host name that is not a DNS name).
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A host is neither an IP address nor a DNS name.
    #[error("{0:?} is neither an IP address nor a DNS name")]
    BadHost(String),
    /// The directory already holds a CA and `force` was not given.
    #[error("{0} already exists (pass --force to replace the CA and every certificate)")]
    Exists(PathBuf),
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Files {
    /// CA certificate: agents and the aggregator's clients trust it (`ca_file`).
    pub ca_cert: PathBuf,
    /// CA private key (keep it offline once the certificates are made).
    pub ca_key: PathBuf,
    /// Broker certificate (`broker.tls_cert`).
    pub server_cert: PathBuf,
    /// Broker private key (`broker.tls_key`).
    pub server_key: PathBuf,
}

/// Years the certificates are valid.
pub const VALID_YEARS: i32 = 10;

fn write(path: &Path, text: &str, private: bool) -> Result<(), PkiError> {
    use std::io::Write;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

fn validity(p: &mut CertificateParams) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let year = 1970 + (now / 31_556_952) as i32;
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + VALID_YEARS, 1, 1);
}

/// Writes a new CA and a server certificate for `hosts` (DNS names or IP addresses;
/// `localhost` and `127.0.0.1` are always included) into `dir` (created if missing).
pub fn generate(dir: &Path, hosts: &[String], force: bool) -> Result<Files, PkiError> {
    for h in hosts {
        let dns = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
                })
        };
        if h.parse::<IpAddr>().is_err() && !dns(h) {
            return Err(PkiError::BadHost(h.clone()));
        }
    }
    let files = Files {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    if files.ca_cert.exists() && !force {
        return Err(PkiError::Exists(files.ca_cert));
    }
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Sharp Eyes site CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Sharp Eyes");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let mut server = CertificateParams::new(Vec::<String>::new())?;
    for n in &names {
        server.subject_alt_names.push(match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(n.clone().try_into()?),
        });
    }
    server.distinguished_name.push(
        DnType::CommonName,
        names.last().cloned().unwrap_or_default(),
    );
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    validity(&mut server);
    let server_key = KeyPair::generate()?;
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    write(&files.ca_cert, &ca_cert.pem(), false)?;
    write(&files.ca_key, &issuer.key().serialize_pem(), true)?;
    write(&files.server_cert, &server_cert.pem(), false)?;
    write(&files.server_key, &server_key.serialize_pem(), true)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_make_working_tls_configs() {
        let dir = tempfile::tempdir().unwrap();
        let f = generate(
            dir.path(),
            &["broker.site-a.lan".into(), "10.0.0.5".into()],
            false,
        )
        .unwrap();
        sharpeyes_common::tls::client_config(&f.ca_cert).unwrap();
        sharpeyes_common::tls::server_config(&f.server_cert, &f.server_key).unwrap();
        // A second run keeps the CA unless forced.
        assert!(matches!(
            generate(dir.path(), &[], false),
            Err(PkiError::Exists(_))
        ));
        generate(dir.path(), &[], true).unwrap();
        assert!(matches!(
            generate(dir.path(), &["not a host".into()], true),
            Err(PkiError::BadHost(_))
        ));
    }
}
