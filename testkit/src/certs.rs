//! Certificates generated at test time with rcgen: a CA, a server certificate
//! for `localhost`, `127.0.0.1` and `::1`, and a client certificate.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A throwaway PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server key (PEM).
    pub server_key_pem: String,
    /// A client certificate signed by the CA (PEM).
    pub client_cert_pem: String,
    /// The client key (PEM).
    pub client_key_pem: String,
}

fn leaf(names: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    for name in names {
        let san = match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*name).try_into().expect("dns name")),
        };
        params.subject_alt_names.push(san);
    }
    params
}

impl Pki {
    /// A new CA with a server certificate for `localhost`, `127.0.0.1` and
    /// `::1`, and a client certificate.
    #[must_use]
    pub fn generate() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "redpoll test CA");
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
        let server_key = KeyPair::generate().expect("key");
        let server = leaf(&["localhost", "127.0.0.1", "::1"])
            .signed_by(&server_key, &ca)
            .expect("server cert");
        let client_key = KeyPair::generate().expect("key");
        let client = leaf(&["redpoll-client"])
            .signed_by(&client_key, &ca)
            .expect("client cert");
        Self {
            ca_pem: ca.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// A rustls server configuration presenting the server certificate;
    /// with `require_client_cert`, clients must present one signed by the CA.
    #[must_use]
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("ca"))
                .expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let chain =
            vec![CertificateDer::from_pem_slice(self.server_cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).expect("key");
        Arc::new(builder.with_single_cert(chain, key).expect("server config"))
    }

    /// A rustls client configuration trusting the CA (and nothing else);
    /// with `present_client_cert`, it presents the client certificate to
    /// servers that ask for one (mutual TLS).
    #[must_use]
    pub fn client_config(&self, present_client_cert: bool) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("ca"))
            .expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = if present_client_cert {
            let chain = vec![
                CertificateDer::from_pem_slice(self.client_cert_pem.as_bytes()).expect("cert"),
            ];
            let key = PrivateKeyDer::from_pem_slice(self.client_key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client config")
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }
}
