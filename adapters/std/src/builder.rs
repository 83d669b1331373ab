//! [`Builder`]: a client from a URL and what URLs do not carry.

#[cfg(feature = "tls")]
use std::convert::Infallible;
use std::time::Duration;

#[cfg(feature = "tls")]
use redpoll_core::conn::TlsConfigBuilder;

use redpoll_core::ClientConfig;

use crate::driver::Shared;
use crate::{Client, Error};

/// How long a write may make no progress before the connection is
/// reported broken, unless [`Builder::write_timeout`] says otherwise.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a [`Client`]: from a URL ([`Client::builder`]) or a configuration
/// ([`Builder::from_config`]), plus certificates, pool sizes and deadlines.
#[derive(Debug)]
#[must_use]
pub struct Builder {
    config: ClientConfig,
    /// Set for a cluster client: its seed nodes.
    seeds: Option<Vec<redpoll_core::Address>>,
    /// A cluster client's reads go to replicas.
    read_from_replicas: bool,
    write_timeout: Duration,
    /// TLS asked for (`rediss://` or a TLS setting), and whether anything
    /// makes the server certificate checkable (roots, or no checking).
    #[cfg(feature = "tls")]
    tls: Option<(TlsConfigBuilder, bool)>,
}

impl Builder {
    /// Starts from a URL (`redis://`, `rediss://`, `unix://`, ...; see
    /// [`redpoll_core::url`]); a URL with several hosts
    /// (`redis://h1:7000,h2:7001`) makes a cluster client seeded with them.
    ///
    /// # Errors
    ///
    /// [`Error::Url`] for an invalid URL; [`Error::Tls`] for a `rediss://`
    /// URL without the `tls` feature.
    pub fn new(url: &str) -> Result<Self, Error> {
        let url = redpoll_core::url::parse(url)?;
        #[allow(unused_mut)]
        let mut builder = Self::from_config(url.client_config());
        builder.seeds = redpoll_core::url::cluster_seeds(&url);
        #[cfg(feature = "tls")]
        {
            builder.tls = url.tls_builder().map(|tls| (tls, url.insecure));
        }
        #[cfg(not(feature = "tls"))]
        if url.tls {
            return Err(config_error("rediss:// needs the `tls` feature"));
        }
        Ok(builder)
    }

    /// Starts from a configuration (TLS, if any, set in it already or
    /// added here).
    pub const fn from_config(config: ClientConfig) -> Self {
        Self {
            config,
            seeds: None,
            read_from_replicas: false,
            write_timeout: WRITE_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The deadline of each request (blocking commands get their block
    /// time on top); `None` for no deadline.
    pub const fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// The one deadline for connect + TLS + the server handshake.
    pub const fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.conn.handshake_timeout = timeout;
        self
    }

    /// How long a write may make no progress before the connection counts
    /// as broken. Default: 10 s.
    pub const fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The most dedicated connections (blocking commands, transactions)
    /// open at once.
    pub const fn max_dedicated(mut self, n: usize) -> Self {
        self.config.pool.max_size = n;
        self
    }

    /// How many idle dedicated connections are kept for reuse.
    pub const fn max_idle_dedicated(mut self, n: usize) -> Self {
        self.config.pool.max_idle = n;
        self
    }

    /// The pool of dedicated connections and the liveness rules of every
    /// connection: sizes, idle timeout, lifetime, probes, waiters.
    pub fn pool(mut self, pool: redpoll_core::pool::PoolConfig) -> Self {
        self.config.pool = pool;
        self
    }

    /// Which requests are sent again after their connection failed
    /// (default: none).
    pub const fn retry(mut self, retry: redpoll_core::pool::RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Trusts the CA certificates in `pem`, and turns TLS on.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), redpoll_std::Error> {
    /// let ca = std::fs::read("ca.pem").unwrap();
    /// let client = redpoll_std::Client::builder("rediss://localhost:6380")?
    ///     .tls_root_pem(&ca)?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when `pem` holds no certificate or a broken one.
    #[cfg(feature = "tls")]
    pub fn tls_root_pem(self, pem: &[u8]) -> Result<Self, Error> {
        Ok(self.update_tls(true, |tls| tls.add_root_pem(pem))?)
    }

    /// Presents this certificate chain and key to the server (mutual TLS),
    /// and turns TLS on.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when either PEM does not parse.
    #[cfg(feature = "tls")]
    pub fn tls_client_auth_pem(self, cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        Ok(self.update_tls(false, |tls| tls.client_auth_pem(cert_chain, key))?)
    }

    /// Verifies the server certificate against `name` (and sends it as
    /// SNI) instead of the host; turns TLS on.
    #[cfg(feature = "tls")]
    pub fn tls_server_name(self, name: impl Into<String>) -> Self {
        let Ok(builder) = self.update_tls(false, |tls| Ok::<_, Infallible>(tls.server_name(name)));
        builder
    }

    /// Accepts any server certificate, and turns TLS on. **For tests
    /// only**: it removes all protection against an active attacker.
    #[cfg(feature = "tls")]
    pub fn dangerous_skip_verification(self) -> Self {
        let Ok(builder) = self.update_tls(true, |tls| {
            Ok::<_, Infallible>(tls.dangerous_skip_verification())
        });
        builder
    }

    /// Applies `f` to the TLS builder (a new one if TLS was off);
    /// `trusts`: whether this step makes the server certificate checkable.
    #[cfg(feature = "tls")]
    fn update_tls<E>(
        mut self,
        trusts: bool,
        f: impl FnOnce(TlsConfigBuilder) -> Result<TlsConfigBuilder, E>,
    ) -> Result<Self, E> {
        let (tls, trusted) = self.tls.take().unwrap_or_default();
        self.tls = Some((f(tls)?, trusted || trusts));
        Ok(self)
    }

    /// Builds the client. It connects on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when TLS is on without a way to check the server
    /// (no [root](Self::tls_root_pem): there are no default roots), or its
    /// configuration is unusable.
    pub fn build(self) -> Result<Client, Error> {
        #[cfg(feature = "tls")]
        let mut builder = self;
        #[cfg(not(feature = "tls"))]
        let builder = self;
        #[cfg(feature = "tls")]
        if let Some((tls, trusted)) = builder.tls.take() {
            if !trusted {
                return Err(config_error(
                    "TLS needs the server's CA: Builder::tls_root_pem (there are no default roots)",
                ));
            }
            builder.config.conn.tls = Some(tls.build()?);
        }
        Ok(builder.client())
    }

    /// Makes the client a Redis Cluster client: the builder's URL names one
    /// seed node, `more` names others (URLs such as `redis://localhost:7001`;
    /// any spelling of an address: the client keys nodes by one canonical
    /// name). Every other setting is the template of each node's
    /// connections.
    ///
    /// # Errors
    ///
    /// [`Error::Url`] for an invalid seed URL.
    pub fn cluster(mut self, more: &[&str]) -> Result<Self, Error> {
        let mut seeds = self
            .seeds
            .take()
            .unwrap_or_else(|| vec![self.config.conn.address.clone()]);
        for url in more {
            seeds.push(redpoll_core::url::parse(url)?.address);
        }
        self.seeds = Some(seeds);
        Ok(self)
    }

    /// A cluster client sends read-only commands to replicas of their
    /// slot's shard, which may lag their primary (see
    /// [`ClusterConfig::read_from_replicas`](redpoll_core::cluster::ClusterConfig::read_from_replicas)).
    /// Default: off.
    pub const fn read_from_replicas(mut self, on: bool) -> Self {
        self.read_from_replicas = on;
        self
    }

    /// The client, TLS settled already.
    pub(crate) fn client(self) -> Client {
        let mut config = self.config;
        // Clients restarted together must not reconnect in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        config
            .reconnect
            .seed_unless_chosen(nanos ^ u64::from(std::process::id()).rotate_left(32));
        let core = match self.seeds {
            Some(seeds) => {
                let mut cluster = redpoll_core::cluster::ClusterConfig::new(seeds, config);
                cluster.read_from_replicas = self.read_from_replicas;
                redpoll_core::cluster::ClusterClient::new(cluster).into()
            }
            None => redpoll_core::Client::new(config).into(),
        };
        Client {
            shared: Shared::new(core, self.write_timeout),
        }
    }
}

fn config_error(message: &str) -> Error {
    Error::Tls(redpoll_core::TlsError {
        kind: redpoll_core::TlsErrorKind::Config,
        message: message.into(),
    })
}
