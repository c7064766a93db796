//! TLS for every gRPC endpoint: PEM files in, tonic configurations out. Files are read and
//! checked at start-up, so a wrong path or a key in the certificate slot fails there, naming the
//! file, rather than at the first handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct TlsError {
    what: String,
    message: String,
}

fn tls_error(what: impl std::fmt::Display, message: impl Into<String>) -> TlsError {
    TlsError { what: what.to_string(), message: message.into() }
}

/// The PEM files of one endpoint: `ca` verifies the other side, `cert` + `key` are this side.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A certificate's PEM and its private key's PEM.
type PemPair = (Vec<u8>, Vec<u8>);

/// Whether a server demands a certificate from every client at the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Verified when presented; the server's access policy decides which calls need one (facectl
    /// may authenticate with a token instead).
    Optional,
    /// Every client must present one the CA signed (worker-to-worker traffic).
    Required,
}

impl TlsFiles {
    pub fn is_configured(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    fn identity(&self) -> Result<Option<Identity>, TlsError> {
        Ok(self.pem_pair()?.map(|(cert, key)| Identity::from_pem(cert, key)))
    }

    /// This side's certificate and key PEMs, checked to belong together.
    fn pem_pair(&self) -> Result<Option<PemPair>, TlsError> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = (read_pem(cert, Pem::Certificate)?, read_pem(key, Pem::PrivateKey)?);
                check_key_pair(cert, &cert_pem, key, &key_pem)?;
                Ok(Some((cert_pem, key_pem)))
            }
            (None, None) => Ok(None),
            (Some(cert), None) => Err(tls_error(cert.display(), "a certificate needs its private key (--tls-key)")),
            (None, Some(key)) => Err(tls_error(key.display(), "a private key needs its certificate (--tls-cert)")),
        }
    }

    fn ca(&self) -> Result<Option<Certificate>, TlsError> {
        self.ca.as_deref().map(|ca| read_pem(ca, Pem::Certificate).map(Certificate::from_pem)).transpose()
    }

    /// `None` when no TLS file is given (plaintext). A server needs a certificate and key; with a
    /// CA it verifies client certificates (mutual TLS).
    pub fn server_config(&self, clients: ClientCertificates) -> Result<Option<ServerTlsConfig>, TlsError> {
        if !self.is_configured() {
            return Ok(None);
        }
        let identity = self
            .identity()?
            .ok_or_else(|| tls_error("TLS", "a TLS server needs --tls-cert and --tls-key (PEM files)"))?;
        let mut config = ServerTlsConfig::new().identity(identity).timeout(Duration::from_secs(10));
        match self.ca()? {
            Some(ca) => {
                config = config.client_ca_root(ca).client_auth_optional(clients == ClientCertificates::Optional)
            }
            None if clients == ClientCertificates::Required => {
                return Err(tls_error("TLS", "verifying client certificates needs the CA (--tls-ca)"));
            }
            None => {}
        }
        Ok(Some(config))
    }

    /// The rustls configuration a client of `url` needs, for a client that runs the TLS
    /// handshake itself rather than through [`TlsFiles::endpoint`] (facectl does, to report why
    /// a connection failed: tonic keeps a TLS alert to itself). The same checks and trust as
    /// `endpoint`; `None` for `http://`.
    pub fn client_config(&self, url: &str) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        if !url.starts_with("https://") {
            if self.is_configured() {
                return Err(tls_error(format!("URL `{url}`"), "TLS files are given, so use an https:// URL"));
            }
            return Ok(None);
        }
        let ca = self.ca.as_deref().ok_or_else(|| {
            tls_error(
                format!("URL `{url}`"),
                "https:// needs the CA that signed the server's certificate (--tls-ca or FACETRAIN_TLS_CA)",
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in parse_chain(ca, &read_pem(ca, Pem::Certificate)?)? {
            roots.add(cert).map_err(|e| tls_error(ca.display(), format!("not a usable CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS", e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (self.pem_pair()?, &self.cert, &self.key) {
            (Some((cert_pem, key_pem)), Some(cert), Some(key)) => builder
                .with_client_auth_cert(parse_chain(cert, &cert_pem)?, parse_key(key, &key_pem)?)
                .map_err(|e| tls_error(key.display(), e.to_string()))?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// A client endpoint for `url`. `https://` needs the CA that signed the server's certificate;
    /// a client certificate is sent when given. `server_name` overrides the name checked against
    /// the server's certificate (the URL's host by default).
    pub fn endpoint(&self, url: &str, server_name: Option<&str>) -> Result<Endpoint, TlsError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| tls_error(format!("URL `{url}`"), format!("not a valid URL: {e}")))?;
        if !url.starts_with("https://") {
            if self.is_configured() {
                return Err(tls_error(format!("URL `{url}`"), "TLS files are given, so use an https:// URL"));
            }
            return Ok(endpoint);
        }
        let ca = self.ca()?.ok_or_else(|| {
            tls_error(
                format!("URL `{url}`"),
                "https:// needs the CA that signed the server's certificate (--tls-ca or FACETRAIN_TLS_CA)",
            )
        })?;
        let mut config = ClientTlsConfig::new().ca_certificate(ca).timeout(Duration::from_secs(10));
        if let Some(identity) = self.identity()? {
            config = config.identity(identity);
        }
        if let Some(name) = server_name {
            config = config.domain_name(name);
        }
        endpoint.tls_config(config).map_err(|e| tls_error(format!("URL `{url}`"), e.to_string()))
    }
}

/// Whether the first (end-entity) certificate a peer presented names `name` (a DNS name in its
/// subject alternative names). The TLS handshake already verified the chain to the CA; this
/// tells which role the certificate was issued for.
pub fn presents_name(certificates: &[rustls_pki_types::CertificateDer<'static>], name: &str) -> bool {
    let Some(first) = certificates.first() else { return false };
    let Ok(server_name) = rustls_pki_types::ServerName::try_from(name) else { return false };
    webpki::EndEntityCert::try_from(first).is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&server_name).is_ok())
}

/// Parses the pair as rustls will and checks the key belongs to the certificate. tonic builds
/// the server's rustls configuration only when it starts serving, after the process announced
/// its address; checked here, a mismatch stops start-up before anything is announced.
fn check_key_pair(cert: &Path, cert_pem: &[u8], key: &Path, key_pem: &[u8]) -> Result<(), TlsError> {
    let (chain, private_key) = (parse_chain(cert, cert_pem)?, parse_key(key, key_pem)?);
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, private_key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(tls_error(
            key.display(),
            format!("this private key does not belong to the certificate {}", cert.display()),
        )),
        Err(e) => Err(tls_error(key.display(), format!("unusable with the certificate {}: {e}", cert.display()))),
    }
}

fn parse_chain(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path.display(), format!("not a readable PEM certificate: {e}")))
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| tls_error(path.display(), format!("not a readable PEM private key: {e}")))
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// Reads a PEM file and checks it holds what its slot expects.
fn read_pem(path: &Path, expected: Pem) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| tls_error(path.display(), format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let ok = match expected {
        Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        Pem::PrivateKey => text.contains("PRIVATE KEY-----"),
    };
    if !ok {
        let expected = match expected {
            Pem::Certificate => "a PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "a PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)",
        };
        return Err(tls_error(path.display(), format!("expected {expected}")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_urls_need_no_files_and_https_needs_a_ca() {
        let none = TlsFiles::default();
        assert!(none.endpoint("http://127.0.0.1:7070", None).is_ok());
        let error = none.endpoint("https://127.0.0.1:7070", None).unwrap_err().to_string();
        assert!(error.contains("--tls-ca"), "{error}");
        assert!(none.server_config(ClientCertificates::Optional).unwrap().is_none());
    }

    #[test]
    fn a_key_in_the_certificate_slot_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let files = TlsFiles { ca: Some(key.clone()), ..TlsFiles::default() };
        let error = files.endpoint("https://localhost:7070", None).unwrap_err().to_string();
        assert!(error.contains("key.pem") && error.contains("expected a PEM certificate"), "{error}");
        let files = TlsFiles { cert: Some(key.clone()), ..TlsFiles::default() };
        let error = files.server_config(ClientCertificates::Optional).unwrap_err().to_string();
        assert!(error.contains("--tls-key"), "{error}");
    }

    #[test]
    fn a_key_that_does_not_belong_to_the_certificate_is_refused_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let file = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).unwrap();
            Some(dir.path().join(name))
        };
        let files =
            TlsFiles { ca: None, cert: file("cert.pem", cert.pem()), key: file("key.pem", key.serialize_pem()) };
        assert!(files.server_config(ClientCertificates::Optional).unwrap().is_some());
        let files = TlsFiles { key: file("other-key.pem", other.serialize_pem()), ..files };
        let error = files.server_config(ClientCertificates::Optional).unwrap_err().to_string();
        assert!(error.contains("other-key.pem: this private key does not belong to the certificate"), "{error}");
        assert!(error.contains("cert.pem"), "{error}");
    }

    #[test]
    fn tls_files_with_a_plaintext_url_are_refused() {
        let files = TlsFiles { ca: Some("/nonexistent/ca.pem".into()), ..TlsFiles::default() };
        let error = files.endpoint("http://127.0.0.1:7070", None).unwrap_err().to_string();
        assert!(error.contains("use an https:// URL"), "{error}");
        let error = files.endpoint("https://127.0.0.1:7070", None).unwrap_err().to_string();
        assert!(error.contains("ca.pem") && error.contains("cannot read"), "{error}");
    }
}
