//! TLS inside the core, with rustls (feature `tls`).
//!
//! rustls is itself sans-IO: it takes ciphertext and gives plaintext, and the
//! reverse. So the adapters only ever hold raw transport sockets, and every
//! decision about a connection (is it alive? did the server close it?) is
//! made here the same way for TLS and plain connections (invariant I2).
//!
//! Records a server may send on an idle connection (TLS 1.3
//! NewSessionTicket, KeyUpdate) are consumed by rustls and yield no
//! plaintext; a close_notify is an end of stream.

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::{BufMut, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};

use crate::error::{TlsError, TlsErrorKind};

/// How to set up TLS: trust, client identity, server name.
///
/// ```no_run
/// # fn main() -> Result<(), redpoll_core::TlsError> {
/// use redpoll_core::conn::TlsConfig;
/// let ca = std::fs::read("ca.pem").unwrap();
/// let tls = TlsConfig::builder().add_root_pem(&ca)?.build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl core::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TlsConfig`].
#[derive(Debug, Default)]
pub struct TlsConfigBuilder {
    roots: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    server_name: Option<String>,
    skip_verification: bool,
}

fn config_error(message: impl ToString) -> TlsError {
    TlsError {
        kind: TlsErrorKind::Config,
        message: message.to_string(),
    }
}

impl TlsConfig {
    /// Starts a configuration with no trusted roots.
    #[must_use]
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder::default()
    }

    /// A configuration from a ready rustls configuration.
    #[must_use]
    pub const fn from_rustls(
        config: Arc<rustls::ClientConfig>,
        server_name: Option<String>,
    ) -> Self {
        Self {
            config,
            server_name,
        }
    }
}

impl TlsConfigBuilder {
    /// Trusts the CA certificates in `pem`.
    ///
    /// # Errors
    ///
    /// When `pem` holds no certificate or one that does not parse.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        let before = self.roots.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            self.roots.push(cert.map_err(config_error)?);
        }
        if self.roots.len() == before {
            return Err(config_error("no certificate in the root PEM"));
        }
        Ok(self)
    }

    /// Presents the certificate chain and private key in these PEMs to the
    /// server (mutual TLS).
    ///
    /// # Errors
    ///
    /// When either PEM does not parse.
    pub fn client_auth_pem(mut self, cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(config_error)?;
        if chain.is_empty() {
            return Err(config_error("no certificate in the client certificate PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(config_error)?;
        self.client = Some((chain, key));
        Ok(self)
    }

    /// The name to verify the server certificate against and to send as
    /// SNI, instead of the host of the address.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Accepts any server certificate. **For tests only**: it removes all
    /// protection against an active attacker. Off by default.
    #[must_use]
    pub const fn dangerous_skip_verification(mut self) -> Self {
        self.skip_verification = true;
        self
    }

    /// Builds the configuration.
    ///
    /// # Errors
    ///
    /// When rustls refuses the roots or the client identity.
    pub fn build(self) -> Result<TlsConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?;
        let builder = if self.skip_verification {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for cert in self.roots {
                roots.add(cert).map_err(config_error)?;
            }
            builder.with_root_certificates(roots)
        };
        let config = match self.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(config_error)?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConfig {
            config: Arc::new(config),
            server_name: self.server_name,
        })
    }
}

/// The verifier behind [`TlsConfigBuilder::dangerous_skip_verification`].
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection's TLS session.
pub(crate) struct Session {
    tls: rustls::ClientConnection,
}

/// What feeding ciphertext produced besides plaintext.
pub(crate) enum Fed {
    /// The stream goes on.
    Open,
    /// The server sent close_notify.
    Closed,
}

fn tls_error(err: &rustls::Error) -> TlsError {
    let kind = match err {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsErrorKind::Certificate
        }
        _ => TlsErrorKind::Protocol,
    };
    TlsError {
        kind,
        message: err.to_string(),
    }
}

impl Session {
    pub(crate) fn new(config: &TlsConfig, host: Option<&str>) -> Result<Self, TlsError> {
        let name = config
            .server_name
            .as_deref()
            .or(host)
            .ok_or_else(|| config_error("TLS needs a server name"))?;
        let name = ServerName::try_from(String::from(name)).map_err(config_error)?;
        let mut tls = rustls::ClientConnection::new(config.config.clone(), name)
            .map_err(|e| tls_error(&e))?;
        // Plaintext written is flushed into the connection's own output
        // buffer at once, so rustls needs no limit of its own; with its
        // default (64 KiB) a large batch (a pipeline written after a probe)
        // would be cut short.
        tls.set_buffer_limit(None);
        Ok(Self { tls })
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Takes ciphertext from the server; appends the plaintext to `rx`.
    pub(crate) fn feed(&mut self, mut data: &[u8], rx: &mut BytesMut) -> Result<Fed, TlsError> {
        let mut closed = false;
        loop {
            if !data.is_empty() {
                // rustls takes at most one buffer's worth at a time; the
                // plaintext is drained below before it takes more.
                self.tls
                    .read_tls(&mut data)
                    .map_err(|e| config_error(e.to_string()))?;
            }
            let state = self.tls.process_new_packets().map_err(|e| tls_error(&e))?;
            let want = state.plaintext_bytes_to_read();
            if want > 0 {
                let start = rx.len();
                rx.resize(start + want, 0);
                let n = self.tls.reader().read(&mut rx[start..]).unwrap_or(0);
                rx.truncate(start + n);
            }
            closed |= state.peer_has_closed();
            if data.is_empty() {
                return Ok(if closed { Fed::Closed } else { Fed::Open });
            }
        }
    }

    /// Encrypts `plain` for sending (buffered until the handshake is done).
    pub(crate) fn write(&mut self, plain: &[u8]) {
        // Writing into rustls's own buffer, unlimited, cannot fail short of
        // memory.
        let _ = self.tls.writer().write_all(plain);
    }

    /// Moves every TLS record waiting to be sent into `tx`.
    pub(crate) fn flush(&mut self, tx: &mut BytesMut) {
        let mut writer = tx.writer();
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut writer).is_err() {
                break;
            }
        }
    }

    /// Queues a close_notify.
    pub(crate) fn close_notify(&mut self) {
        self.tls.send_close_notify();
    }
}
