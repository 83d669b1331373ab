//! TLS for the simulation: a throwaway PKI whose byte lengths never vary,
//! and rustls configurations without session resumption.
//!
//! A run must replay exactly, yet the TLS handshake is full of fresh
//! randomness (key shares, nonces). The network never looks at bytes, only
//! at their lengths, so what must not vary is the length of every record:
//! Ed25519 keys and signatures have fixed sizes (ECDSA signatures do not),
//! the certificates get fixed serial numbers, and no session tickets or
//! resumption attempts depend on what ran before in the process.

use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PKCS_ED25519, SanType,
    SerialNumber,
};
use redpoll_core::conn::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The host name the simulated server's certificate is for.
pub const SERVER_NAME: &str = "sim.redpoll.test";

struct Configs {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(build)
}

fn build() -> Configs {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.serial_number = Some(SerialNumber::from(1u64));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "redpoll sim CA");
    let ca_key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.serial_number = Some(SerialNumber::from(2u64));
    params
        .subject_alt_names
        .push(SanType::DnsName(SERVER_NAME.try_into().expect("dns name")));
    let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let cert = params.signed_by(&key, &ca).expect("server cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    server.send_tls13_tickets = 0;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("ca"))
        .expect("root");
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

/// The simulated server's rustls configuration.
#[must_use]
pub fn server_config() -> Arc<rustls::ServerConfig> {
    configs().server.clone()
}

/// The client's TLS configuration: trusts the simulation's CA, verifies
/// the name [`SERVER_NAME`].
#[must_use]
pub fn client_config() -> TlsConfig {
    TlsConfig::from_rustls(configs().client.clone(), Some(SERVER_NAME.to_owned()))
}
