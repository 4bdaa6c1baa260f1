//! TLS for the web listener (`<web cert-file key-file>`): rustls on ring, the same stack the
//! alert mail uses, with the PEM certificate chain and private key read at start.
//!
//! Not here: client certificates (basic auth identifies people), or reloading the certificate
//! on SIGHUP (a renewed certificate needs a restart).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use monitor_core::config::Tls;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The rustls server configuration for `tls`.
pub fn server_config(tls: &Tls) -> anyhow::Result<ServerConfig> {
    let certs = certificates(&tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).with_context(|| {
        format!(
            "cannot read a PEM private key from {} (<web key-file>)",
            tls.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls has no safe protocol version")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the certificate {} and the key {} do not go together (<web cert-file>, <web key-file>)",
                tls.cert_file.display(),
                tls.key_file.display()
            )
        })
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read PEM certificates from {} (<web cert-file>)",
                path.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} (<web cert-file>) holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}
