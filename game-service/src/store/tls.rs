//! The TLS of a `rediss://` store: the PEM files of `--store-tls-ca`, `--store-tls-cert` and
//! `--store-tls-key`, read and checked once, at start-up. redis-rs only builds its TLS
//! settings when it connects, so a wrong file (empty, not PEM, a key that is not the
//! certificate's) would otherwise start a service that stays `NOT_SERVING`, looking like
//! Redis down.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis::{ClientTlsConfig, TlsCertificates};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;

use crate::config::{StoreConfig, StoreTls};

/// Why the store's TLS files cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("--store-tls-* are for a rediss:// store, not {0}")]
    NotRediss(&'static str),
    #[error("{flag} {}: {source}", path.display())]
    Unreadable {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {}: {reason}", path.display())]
    Invalid {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// The certificates redis-rs is given for `store`, checked; `None` when no TLS flag is set
/// (a `rediss://` store then trusts the public authorities and shows no certificate).
pub fn certificates(
    tls: &StoreTls,
    store: &StoreConfig,
) -> Result<Option<TlsCertificates>, TlsError> {
    if !tls.is_set() {
        return Ok(None);
    }
    match store {
        StoreConfig::Memory => return Err(TlsError::NotRediss("the memory store")),
        StoreConfig::Redis(url) if !url.starts_with("rediss://") => {
            return Err(TlsError::NotRediss("a redis:// URL"));
        }
        StoreConfig::Redis(_) => {}
    }
    let mut roots = RootCertStore::empty();
    let root_cert = match &tls.ca {
        Some(path) => {
            let pem = read("--store-tls-ca", path)?;
            for certificate in certificates_in("--store-tls-ca", path, &pem)? {
                roots
                    .add(certificate)
                    .map_err(|error| invalid("--store-tls-ca", path, error))?;
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert_path), Some(key_path)) => {
            let client_cert = read("--store-tls-cert", cert_path)?;
            let client_key = read("--store-tls-key", key_path)?;
            let chain = certificates_in("--store-tls-cert", cert_path, &client_cert)?;
            let key = PrivateKeyDer::from_pem_slice(&client_key).map_err(|error| match error {
                pem::Error::NoItemsFound => {
                    invalid("--store-tls-key", key_path, "no PEM private key in it")
                }
                error => invalid("--store-tls-key", key_path, error),
            })?;
            // The settings redis-rs will build, built once here: this is where rustls finds
            // a key that is not the certificate's.
            ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|error| invalid("--store-tls-key", key_path, error))?;
            Some(ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
        // clap requires both or neither.
        _ => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// Makes [`provider`] the process's rustls crypto provider, which redis-rs' TLS connections
/// use. rustls picks one by itself only while exactly one is built in; installed, it no
/// longer depends on what other crates turn on.
pub fn install_crypto_provider() {
    // Err: one is installed already (another store, or a test before), which is as good.
    let _ = provider().install_default();
}

/// ring's provider. rustls 0.23.48 deprecates it for aws-lc-rs, which adds post-quantum key
/// exchange; ring is the one already built here (webpki), and aws-lc-rs would add a C library
/// of its own to every build and image for the one connection to Redis.
#[expect(deprecated, reason = "ring kept on purpose, see above")]
fn provider() -> CryptoProvider {
    ring::default_provider()
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// The PEM certificates in `pem`, at least one.
fn certificates_in(
    flag: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(flag, path, error))?;
    if certificates.is_empty() {
        return Err(invalid(flag, path, "no PEM certificate in it"));
    }
    Ok(certificates)
}

fn invalid(flag: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Invalid {
        flag,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}
