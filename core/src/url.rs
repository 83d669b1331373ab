//! Configuration from URLs, written the way users of other Redis clients
//! know them; shared by both adapters.
//!
//! ```text
//! redis://[[username]:password@]host[:port][/db][?option=value&...]
//! rediss://...                              the same over TLS
//! redis://host1:port1,host2:port2,...[/db]  a cluster's seed nodes
//! unix:///path/to/redis.sock[?db=N&...]     a Unix domain socket (also unix:/path)
//! redis+unix:///path/to/redis.sock[?...]
//! valkey://, valkeys://, valkey+unix://     aliases
//! ```
//!
//! # What this module decides
//!
//! What a URL means, as a [`UrlConfig`]: [`UrlConfig::conn_config`] and
//! [`UrlConfig::client_config`] turn it into the core's configuration,
//! keeping the defaults wherever the URL is silent. Certificates never
//! travel in URLs: for `rediss://` the adapter builds the TLS configuration
//! itself (with `UrlConfig::tls_builder` under the `tls` feature), honouring
//! [`UrlConfig::insecure`] and [`UrlConfig::server_name`].
//!
//! # Rules
//!
//! - **Strict.** An unknown option, an option given twice, an option without
//!   a value or with a value it cannot take is an error that names it: a typo
//!   never silently falls back to a default. TLS options in a URL without TLS
//!   are errors too.
//! - **Nothing is canonicalised.** The host is kept as written (case,
//!   trailing dot); IPv6 addresses lose only their brackets (zone
//!   identifiers, `[fe80::1%25eth0]`, are not supported). Which spellings
//!   name the same node is decided in one place, the cluster's node key
//!   (invariant I4), not here.
//! - **Percent-decoding** applies to the user name, the password, the Unix
//!   socket path and the query; `+` is a literal plus, not a space (a `+` in
//!   a password is more likely than a space). Spaces, control characters and
//!   `#` must be percent-encoded: there are no fragments, and a stray newline
//!   from an environment variable must not end up in a password.
//! - **Passwords are never printed**: [`UrlConfig`]'s `Display` (the URL
//!   back, for logs) and `Debug` show `***`.
//! - An empty user name or password (`redis://:@host`) is no user name or
//!   password; a user name without a password sends no `AUTH`.
//!
//! # Options
//!
//! | option | aliases | value |
//! |---|---|---|
//! | `db` | | database number; must agree with the path's `/db` if both are given |
//! | `protocol` | | `resp2`, `resp3`, `2`, `3` |
//! | `client_name` | `name` | a name for `CLIENT SETNAME` (printable ASCII, no spaces) |
//! | `handshake_timeout` | `connect_timeout` | a duration |
//! | `response_timeout` | `timeout` | a duration |
//! | `set_info` | | a boolean: send `CLIENT SETINFO` |
//! | `username` | `user` | the ACL user (instead of the URL's user info) |
//! | `password` | `pass` | the password (instead of the URL's user info) |
//! | `insecure` | | a boolean; TLS only: skip certificate verification (tests only!) |
//! | `sni` | | TLS only: the name to verify the certificate against and send as SNI |
//!
//! Durations are `500ms`, `2s`, `1m` or a bare number of seconds; fractions
//! are allowed (`1.5`, `0.25s`), zero is not. Booleans are `true`/`false`,
//! `yes`/`no`, `on`/`off` or `1`/`0`.
//!
//! A cluster URL lists its seed nodes, separated by commas, where a single
//! server's URL has its host: `redis://10.0.0.1:7000,10.0.0.2:7000` or
//! `rediss://user:pw@[::1]:7000,localhost:7001`. The first is
//! [`UrlConfig::address`], the others [`UrlConfig::more_seeds`]; every
//! other part of the URL (credentials, TLS, options) applies to every node.
//! The adapters' builders make a cluster client of a URL with more than one
//! seed (a one-seed cluster client is asked for explicitly).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use crate::client::ClientConfig;
use crate::conn::{ConnConfig, Protocol};
use crate::io::Address;
use crate::time::Duration;

/// The port of a URL that names none.
pub const DEFAULT_PORT: u16 = 6379;

/// What a URL says. Fields the URL is silent about hold `None` (or the
/// defaults of [`UrlConfig::new`]), so that [`UrlConfig::conn_config`] keeps
/// the core's defaults for them.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub struct UrlConfig {
    /// Where the server is: host (IPv6 without brackets) and port, or a Unix
    /// socket path.
    pub address: Address,
    /// A cluster URL's other seed nodes (`redis://h1:p1,h2:p2`), in the
    /// order written; empty for a URL with one host.
    pub more_seeds: Vec<Address>,
    /// `rediss://` or `valkeys://`: the adapter must set up TLS.
    pub tls: bool,
    /// `insecure=true`: the adapter must skip certificate verification.
    pub insecure: bool,
    /// `sni=`: the TLS server name, instead of the host.
    pub server_name: Option<String>,
    /// The ACL user name.
    pub username: Option<String>,
    /// The password.
    pub password: Option<String>,
    /// The database to `SELECT`.
    pub database: u32,
    /// The protocol to ask for.
    pub protocol: Protocol,
    /// A name for `CLIENT SETNAME`.
    pub client_name: Option<String>,
    /// The one deadline for connect + TLS + the server handshake.
    pub handshake_timeout: Option<Duration>,
    /// The deadline of each request.
    pub response_timeout: Option<Duration>,
    /// Whether to send `CLIENT SETINFO`.
    pub set_info: Option<bool>,
}

/// Why a URL was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// No `scheme://` at the start (`localhost:6379`).
    MissingScheme,
    /// A scheme other than `redis`, `rediss`, `unix`, `redis+unix` and their
    /// `valkey` aliases.
    UnsupportedScheme(String),
    /// A space, a control character or `#`, which must be percent-encoded.
    InvalidCharacter {
        /// Its byte offset in the URL.
        position: usize,
        /// The character.
        character: char,
    },
    /// A TCP URL without a host (`redis://:6379`, `redis:///0`).
    MissingHost,
    /// A host that is neither a name, an IPv4 address nor a bracketed IPv6
    /// address.
    BadHost(String),
    /// A host in a Unix socket URL (`unix://tmp/redis.sock` names the host
    /// `tmp`; the path needs three slashes: `unix:///tmp/redis.sock`).
    UnixHost(String),
    /// A Unix socket URL without a path.
    EmptyUnixPath,
    /// A port that is not a number from 1 to 65535.
    BadPort(String),
    /// A database (path or `db=`) that is not a number.
    BadDatabase(String),
    /// The path and `db=` name different databases.
    ConflictingDatabase {
        /// The database of the path.
        path: u32,
        /// The database of the `db=` option.
        query: u32,
    },
    /// A `%` not followed by two hex digits, or escapes that do not decode
    /// to UTF-8. The value is not repeated: it may be a password.
    BadPercentEncoding {
        /// What held it: `username`, `password`, `unix socket path`, an
        /// option's name, or `option name`.
        component: String,
    },
    /// An option this parser does not know.
    UnknownOption(String),
    /// An option given twice, under any of its names, or as both user info
    /// and option (`username`, `password`).
    DuplicateOption(String),
    /// An option with a value it cannot take, or without a value.
    BadOptionValue {
        /// The option, as written.
        option: String,
        /// The value (empty when missing).
        value: String,
    },
    /// A TLS option (`insecure`, `sni`) in a URL without TLS.
    TlsOnly(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingScheme => {
                f.write_str("not a URL: expected `redis://`, `rediss://` or `unix://` at the start")
            }
            Self::UnsupportedScheme(scheme) => write!(
                f,
                "unsupported scheme `{scheme}`: expected redis, rediss, unix, redis+unix, \
                 valkey, valkeys or valkey+unix"
            ),
            Self::InvalidCharacter {
                position,
                character,
            } => {
                write!(
                    f,
                    "character {character:?} at byte {position} must be percent-encoded"
                )?;
                if *character == '#' {
                    f.write_str(" (%23); URLs here have no fragment, use `?insecure=true`")?;
                }
                Ok(())
            }
            Self::MissingHost => f.write_str("the URL names no host"),
            Self::BadHost(host) => {
                write!(f, "bad host `{host}`")?;
                if host.matches(':').count() > 1 {
                    f.write_str(" (IPv6 addresses go in brackets: `[::1]:6379`)")?;
                }
                Ok(())
            }
            Self::UnixHost(host) => write!(
                f,
                "unix socket URLs take no host (`{host}`): write `unix:///path/to/redis.sock`"
            ),
            Self::EmptyUnixPath => f.write_str("the unix socket URL has no path"),
            Self::BadPort(port) => write!(f, "bad port `{port}`: expected 1 to 65535"),
            Self::BadDatabase(db) => write!(f, "bad database `{db}`: expected a number"),
            Self::ConflictingDatabase { path, query } => write!(
                f,
                "the path names database {path} and the `db` option database {query}"
            ),
            Self::BadPercentEncoding { component } => {
                write!(f, "bad percent-encoding in the {component}")
            }
            Self::UnknownOption(option) => {
                write!(f, "unknown option `{option}`; known options:")?;
                for (i, (name, _)) in OPTIONS.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{name}")?;
                }
                Ok(())
            }
            Self::DuplicateOption(option) => write!(f, "option `{option}` is given twice"),
            Self::BadOptionValue { option, value } if value.is_empty() => {
                write!(f, "option `{option}` needs a value")
            }
            Self::BadOptionValue { option, value } => {
                write!(f, "bad value `{value}` for option `{option}`")?;
                if let Some(expected) = OPTIONS
                    .iter()
                    .find(|(name, _)| name == option)
                    .and_then(|(_, opt)| opt.expected())
                {
                    write!(f, ": expected {expected}")?;
                }
                Ok(())
            }
            Self::TlsOnly(option) => write!(
                f,
                "option `{option}` needs TLS: use `rediss://` or `valkeys://`"
            ),
        }
    }
}

impl core::error::Error for UrlError {}

/// Parses a URL. See the [module docs](self) for the forms and options.
///
/// ```
/// use redpoll_core::{Address, url};
/// let config = url::parse("rediss://app:s3cret@cache.example.com:6380/2?timeout=500ms")?;
/// assert_eq!(config.address, Address::tcp("cache.example.com", 6380));
/// assert!(config.tls);
/// assert_eq!(config.database, 2);
/// assert_eq!(config.to_string(), "rediss://app:***@cache.example.com:6380/2?response_timeout=500ms");
/// # Ok::<(), url::UrlError>(())
/// ```
///
/// # Errors
///
/// When the URL is not one of the supported forms, or an option is unknown,
/// repeated or has a bad value: see [`UrlError`].
pub fn parse(url: &str) -> Result<UrlConfig, UrlError> {
    if let Some((position, character)) = url
        .char_indices()
        .find(|&(_, c)| c == '#' || c == ' ' || c.is_control())
    {
        return Err(UrlError::InvalidCharacter {
            position,
            character,
        });
    }
    let (scheme, rest) = url.split_once(':').ok_or(UrlError::MissingScheme)?;
    let Some(kind) = scheme_kind(scheme) else {
        return Err(if rest.starts_with("//") {
            UrlError::UnsupportedScheme(scheme.to_string())
        } else {
            UrlError::MissingScheme
        });
    };
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(rest) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
        // `unix:/path` (RFC 8089 style) has no authority.
        None if kind == Kind::Unix && (rest.is_empty() || rest.starts_with(['/', '?'])) => {
            ("", rest)
        }
        None => return Err(UrlError::MissingScheme),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rest, ""),
    };
    // The last `@`: a password with an unescaped `@` still parses.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };

    let mut parser = Parser::default();
    let mut config = match kind {
        Kind::Tcp { tls } => {
            let mut hosts = hostport.split(',');
            let (host, port) = parse_host_port(hosts.next().unwrap_or_default())?;
            let mut config = UrlConfig::new(Address::Tcp { host, port });
            for seed in hosts {
                let (host, port) = parse_host_port(seed)?;
                config.more_seeds.push(Address::Tcp { host, port });
            }
            config.tls = tls;
            if path.len() > 1 {
                let db = parse_database(&path[1..])?;
                config.database = db;
                parser.path_db = Some(db);
            }
            config
        }
        Kind::Unix => {
            if !hostport.is_empty() {
                return Err(UrlError::UnixHost(hostport.to_string()));
            }
            let path = percent_decode(path, "unix socket path")?;
            if path.is_empty() {
                return Err(UrlError::EmptyUnixPath);
            }
            UrlConfig::new(Address::Unix(path))
        }
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = percent_decode(user, "username")?;
        if !user.is_empty() {
            parser.seen |= Opt::Username.bit();
            config.username = Some(user);
        }
        if let Some(password) = password {
            let password = percent_decode(password, "password")?;
            if !password.is_empty() {
                parser.seen |= Opt::Password.bit();
                config.password = Some(password);
            }
        }
    }
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        parser.option(&mut config, pair)?;
    }
    Ok(config)
}

/// The seed list of a cluster URL (its first host, then the others, in the
/// order written); `None` for a URL with one host, which names a single
/// server.
#[must_use]
pub fn cluster_seeds(url: &UrlConfig) -> Option<Vec<Address>> {
    if url.more_seeds.is_empty() {
        return None;
    }
    let mut seeds = Vec::with_capacity(1 + url.more_seeds.len());
    seeds.push(url.address.clone());
    seeds.extend(url.more_seeds.iter().cloned());
    Some(seeds)
}

impl FromStr for UrlConfig {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        parse(url)
    }
}

impl UrlConfig {
    /// What a URL naming only `address` says: no TLS, no credentials,
    /// database 0, RESP3, everything else left to the defaults.
    #[must_use]
    pub const fn new(address: Address) -> Self {
        Self {
            address,
            more_seeds: Vec::new(),
            tls: false,
            insecure: false,
            server_name: None,
            username: None,
            password: None,
            database: 0,
            protocol: Protocol::Resp3,
            client_name: None,
            handshake_timeout: None,
            response_timeout: None,
            set_info: None,
        }
    }

    /// The connection configuration: [`ConnConfig::new`]'s defaults,
    /// overridden by what the URL says. TLS is left unset: the adapter adds
    /// it when [`UrlConfig::tls`] is set.
    #[must_use]
    pub fn conn_config(&self) -> ConnConfig {
        let mut conn = ConnConfig::new(self.address.clone());
        conn.protocol = self.protocol;
        conn.username.clone_from(&self.username);
        conn.password.clone_from(&self.password);
        conn.client_name.clone_from(&self.client_name);
        conn.database = self.database;
        if let Some(set_info) = self.set_info {
            conn.set_info = set_info;
        }
        if let Some(timeout) = self.handshake_timeout {
            conn.handshake_timeout = timeout;
        }
        conn
    }

    /// The client configuration: [`ClientConfig::new`]'s defaults around
    /// [`UrlConfig::conn_config`], with the URL's response timeout.
    #[must_use]
    pub fn client_config(&self) -> ClientConfig {
        let mut client = ClientConfig::new(self.conn_config());
        if let Some(timeout) = self.response_timeout {
            client.response_timeout = Some(timeout);
        }
        client
    }

    /// For a TLS URL, a TLS builder with the URL's server name and, for
    /// `insecure=true`, verification switched off; the adapter adds the
    /// trusted roots (and a client identity) and builds it. `None` without
    /// TLS.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_builder(&self) -> Option<crate::conn::TlsConfigBuilder> {
        if !self.tls {
            return None;
        }
        let mut builder = crate::conn::TlsConfig::builder();
        if let Some(name) = &self.server_name {
            builder = builder.server_name(name.clone());
        }
        if self.insecure {
            builder = builder.dangerous_skip_verification();
        }
        Some(builder)
    }
}

/// The URL back, with the password as `***`: for logs.
impl fmt::Display for UrlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (&self.address, self.tls) {
            (Address::Unix(_), _) => "unix",
            (Address::Tcp { .. }, true) => "rediss",
            (Address::Tcp { .. }, false) => "redis",
        };
        write!(f, "{scheme}://")?;
        if self.username.is_some() || self.password.is_some() {
            if let Some(user) = &self.username {
                write!(f, "{}", Encoded(user, false))?;
            }
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        let mut query = Query(false);
        match &self.address {
            Address::Tcp { .. } => {
                for (i, seed) in core::iter::once(&self.address)
                    .chain(&self.more_seeds)
                    .enumerate()
                {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match seed {
                        Address::Tcp { host, port } if host.contains(':') => {
                            write!(f, "[{host}]:{port}")?;
                        }
                        Address::Tcp { host, port } => write!(f, "{host}:{port}")?,
                        Address::Unix(path) => write!(f, "{}", Encoded(path, true))?,
                    }
                }
                write!(f, "/{}", self.database)?;
            }
            Address::Unix(path) => {
                write!(f, "{}", Encoded(path, true))?;
                if self.database != 0 {
                    query.put(f, "db", self.database)?;
                }
            }
        }
        if self.protocol == Protocol::Resp2 {
            query.put(f, "protocol", "resp2")?;
        }
        if let Some(name) = &self.client_name {
            query.put(f, "client_name", Encoded(name, false))?;
        }
        if let Some(timeout) = self.handshake_timeout {
            query.put(f, "handshake_timeout", DurationValue(timeout))?;
        }
        if let Some(timeout) = self.response_timeout {
            query.put(f, "response_timeout", DurationValue(timeout))?;
        }
        if let Some(set_info) = self.set_info {
            query.put(f, "set_info", set_info)?;
        }
        if self.insecure {
            query.put(f, "insecure", true)?;
        }
        if let Some(name) = &self.server_name {
            query.put(f, "sni", Encoded(name, false))?;
        }
        Ok(())
    }
}

/// Like the derived one, with the password as `***`.
impl fmt::Debug for UrlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlConfig")
            .field("address", &self.address)
            .field("more_seeds", &self.more_seeds)
            .field("tls", &self.tls)
            .field("insecure", &self.insecure)
            .field("server_name", &self.server_name)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("protocol", &self.protocol)
            .field("client_name", &self.client_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("set_info", &self.set_info)
            .finish()
    }
}

// ---- parsing --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp { tls: bool },
    Unix,
}

fn scheme_kind(scheme: &str) -> Option<Kind> {
    const SCHEMES: [(&str, Kind); 7] = [
        ("redis", Kind::Tcp { tls: false }),
        ("rediss", Kind::Tcp { tls: true }),
        ("valkey", Kind::Tcp { tls: false }),
        ("valkeys", Kind::Tcp { tls: true }),
        ("unix", Kind::Unix),
        ("redis+unix", Kind::Unix),
        ("valkey+unix", Kind::Unix),
    ];
    SCHEMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(scheme))
        .map(|&(_, kind)| kind)
}

/// The options, each under one canonical name and its aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Db,
    Protocol,
    ClientName,
    HandshakeTimeout,
    ResponseTimeout,
    SetInfo,
    Username,
    Password,
    Insecure,
    Sni,
}

/// Every option name; the first of each option is its canonical name.
const OPTIONS: &[(&str, Opt)] = &[
    ("db", Opt::Db),
    ("protocol", Opt::Protocol),
    ("client_name", Opt::ClientName),
    ("name", Opt::ClientName),
    ("handshake_timeout", Opt::HandshakeTimeout),
    ("connect_timeout", Opt::HandshakeTimeout),
    ("response_timeout", Opt::ResponseTimeout),
    ("timeout", Opt::ResponseTimeout),
    ("set_info", Opt::SetInfo),
    ("username", Opt::Username),
    ("user", Opt::Username),
    ("password", Opt::Password),
    ("pass", Opt::Password),
    ("insecure", Opt::Insecure),
    ("sni", Opt::Sni),
];

impl Opt {
    const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// What a value should look like, for error messages.
    const fn expected(self) -> Option<&'static str> {
        match self {
            Self::Db => Some("a number"),
            Self::Protocol => Some("resp2, resp3, 2 or 3"),
            Self::ClientName => Some("printable ASCII without spaces"),
            Self::HandshakeTimeout | Self::ResponseTimeout => {
                Some("a duration above zero: 500ms, 2s, 1m or a number of seconds")
            }
            Self::SetInfo | Self::Insecure => Some("true or false"),
            Self::Username | Self::Password | Self::Sni => None,
        }
    }
}

/// What the parse has seen so far.
#[derive(Debug, Default)]
struct Parser {
    /// A bit per [`Opt`] given.
    seen: u16,
    /// The database of the path, if any.
    path_db: Option<u32>,
}

impl Parser {
    fn option(&mut self, config: &mut UrlConfig, pair: &str) -> Result<(), UrlError> {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key, "option name")?;
        let Some(&(_, opt)) = OPTIONS.iter().find(|(name, _)| *name == key) else {
            return Err(UrlError::UnknownOption(key));
        };
        if self.seen & opt.bit() != 0 {
            return Err(UrlError::DuplicateOption(key));
        }
        self.seen |= opt.bit();
        if matches!(opt, Opt::Insecure | Opt::Sni) && !config.tls {
            return Err(UrlError::TlsOnly(key));
        }
        let value = percent_decode(value, &key)?;
        let bad = |value: String| UrlError::BadOptionValue {
            option: key.clone(),
            value,
        };
        if value.is_empty() {
            return Err(bad(value));
        }
        match opt {
            Opt::Db => {
                let db = parse_database(&value)?;
                if let Some(path) = self.path_db.filter(|&path| path != db) {
                    return Err(UrlError::ConflictingDatabase { path, query: db });
                }
                config.database = db;
            }
            Opt::Protocol => {
                config.protocol = match value.to_ascii_lowercase().as_str() {
                    "resp2" | "2" => Protocol::Resp2,
                    "resp3" | "3" => Protocol::Resp3,
                    _ => return Err(bad(value)),
                };
            }
            Opt::ClientName => {
                // What `CLIENT SETNAME` accepts: failing here beats failing
                // every handshake.
                if !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(bad(value));
                }
                config.client_name = Some(value);
            }
            Opt::HandshakeTimeout => {
                config.handshake_timeout = Some(parse_duration(&value).ok_or_else(|| bad(value))?);
            }
            Opt::ResponseTimeout => {
                config.response_timeout = Some(parse_duration(&value).ok_or_else(|| bad(value))?);
            }
            Opt::SetInfo => config.set_info = Some(parse_bool(&value).ok_or_else(|| bad(value))?),
            Opt::Insecure => config.insecure = parse_bool(&value).ok_or_else(|| bad(value))?,
            Opt::Username => config.username = Some(value),
            Opt::Password => config.password = Some(value),
            Opt::Sni => config.server_name = Some(value),
        }
        Ok(())
    }
}

fn parse_host_port(hostport: &str) -> Result<(String, u16), UrlError> {
    let bad_host = || UrlError::BadHost(hostport.to_string());
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad_host)?;
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(bad_host());
        }
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (ip, port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        };
        if port.is_some_and(|port| port.contains(':')) {
            // An IPv6 address without brackets.
            return Err(bad_host());
        }
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        let valid = host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
        // Digits and dots only must be an IPv4 address: resolvers read `1.2`
        // or `123` as odd IPv4 spellings, never as names.
        let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !valid || (numeric && host.parse::<Ipv4Addr>().is_err()) {
            return Err(bad_host());
        }
        (host, port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => parse_digits(port)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n != 0)
            .ok_or_else(|| UrlError::BadPort(port.to_string()))?,
    };
    Ok((host.to_string(), port))
}

fn parse_database(db: &str) -> Result<u32, UrlError> {
    parse_digits(db)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| UrlError::BadDatabase(db.to_string()))
}

/// A number of ASCII digits only (`str::parse` would take a `+` too).
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `500ms`, `2s`, `1m`, or seconds; fractions allowed, zero refused.
fn parse_duration(s: &str) -> Option<Duration> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let (number, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, NANOS_PER_SEC)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60 * NANOS_PER_SEC)
    } else {
        (s, NANOS_PER_SEC)
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || (number.contains('.') && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let mut nanos: u128 = 0;
    for b in whole.bytes() {
        nanos = nanos.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    nanos = nanos.checked_mul(unit)?;
    // Nine fraction digits reach below a nanosecond for every unit; the
    // rest is dropped.
    let mut scale = 1;
    let mut fraction_nanos = 0;
    for b in fraction.bytes().take(9) {
        scale *= 10;
        fraction_nanos = fraction_nanos * 10 + u128::from(b - b'0');
    }
    nanos = nanos.checked_add(fraction_nanos * unit / scale)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    #[allow(clippy::cast_possible_truncation)] // below 10^9
    let duration = Duration::new(secs, (nanos % NANOS_PER_SEC) as u32);
    (!duration.is_zero()).then_some(duration)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn percent_decode(s: &str, component: &str) -> Result<String, UrlError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bad = || UrlError::BadPercentEncoding {
        component: component.to_string(),
    };
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(|h| Some(hex(h[0])? << 4 | hex(h[1])?))
                .ok_or_else(bad)?;
            #[allow(clippy::cast_possible_truncation)] // two hex digits
            out.push(byte as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

// ---- printing -------------------------------------------------------------

/// Percent-encodes all but unreserved characters (and `/` in paths).
struct Encoded<'a>(&'a str, bool);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'_' | b'~')
                || (self.1 && b == b'/')
            {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// A duration as the parser reads it back exactly: `2s`, `500ms`, `1.5ms`.
struct DurationValue(Duration);

impl fmt::Display for DurationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos.is_multiple_of(1_000_000_000) {
            return write!(f, "{}s", nanos / 1_000_000_000);
        }
        write!(f, "{}", nanos / 1_000_000)?;
        let rest = nanos % 1_000_000;
        if rest != 0 {
            let mut digits = rest;
            let mut width = 6;
            while digits.is_multiple_of(10) {
                digits /= 10;
                width -= 1;
            }
            write!(f, ".{digits:0width$}")?;
        }
        f.write_str("ms")
    }
}

/// The `?a=1&b=2` of a printed URL.
struct Query(bool);

impl Query {
    fn put(
        &mut self,
        f: &mut fmt::Formatter<'_>,
        name: &str,
        value: impl fmt::Display,
    ) -> fmt::Result {
        let sep = if self.0 { '&' } else { '?' };
        self.0 = true;
        write!(f, "{sep}{name}={value}")
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    use super::*;

    fn tcp(host: &str, port: u16) -> UrlConfig {
        UrlConfig::new(Address::tcp(host, port))
    }

    fn unix(path: &str) -> UrlConfig {
        UrlConfig::new(Address::Unix(path.to_string()))
    }

    fn tls(host: &str, port: u16) -> UrlConfig {
        UrlConfig {
            tls: true,
            ..tcp(host, port)
        }
    }

    fn seeds(first: UrlConfig, more: &[(&str, u16)]) -> UrlConfig {
        UrlConfig {
            more_seeds: more.iter().map(|&(h, p)| Address::tcp(h, p)).collect(),
            ..first
        }
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    /// Every accepted form, with what it means.
    #[rustfmt::skip]
    fn accepted() -> Vec<(&'static str, UrlConfig)> {
        alloc::vec![
            // Hosts and ports; hosts kept as written.
            ("redis://localhost", tcp("localhost", 6379)),
            ("redis://localhost:6380", tcp("localhost", 6380)),
            ("redis://LocalHost.:6380", tcp("LocalHost.", 6380)),
            ("redis://cache-1.example_svc.local", tcp("cache-1.example_svc.local", 6379)),
            ("redis://127.0.0.1:7000", tcp("127.0.0.1", 7000)),
            ("redis://host:65535", tcp("host", 65535)),
            ("redis://host:0080", tcp("host", 80)),
            ("redis://bücher.example", tcp("bücher.example", 6379)),
            ("redis://[::1]", tcp("::1", 6379)),
            ("redis://[::1]:6380", tcp("::1", 6380)),
            ("redis://[2001:DB8::1]:7000/1", UrlConfig { database: 1, ..tcp("2001:DB8::1", 7000) }),
            ("redis://[::ffff:127.0.0.1]", tcp("::ffff:127.0.0.1", 6379)),
            // Cluster seed lists: every host as written, one port each.
            ("redis://h1:7000,h2:7001", seeds(tcp("h1", 7000), &[("h2", 7001)])),
            ("redis://LOCALHOST:7000,[::1]:7001,127.0.0.1", seeds(tcp("LOCALHOST", 7000), &[("::1", 7001), ("127.0.0.1", 6379)])),
            ("rediss://u:pw@[::1]:7000,localhost:7001/2?name=app", UrlConfig { username: s("u"), password: s("pw"), database: 2, client_name: s("app"), ..seeds(tls("::1", 7000), &[("localhost", 7001)]) }),
            // Schemes, case-insensitive, and aliases.
            ("REDIS://host", tcp("host", 6379)),
            ("valkey://host", tcp("host", 6379)),
            ("rediss://host", tls("host", 6379)),
            ("Rediss://host:6380", tls("host", 6380)),
            ("valkeys://host", tls("host", 6379)),
            // Credentials.
            ("redis://user:secret@host", UrlConfig { username: s("user"), password: s("secret"), ..tcp("host", 6379) }),
            ("redis://:secret@host", UrlConfig { password: s("secret"), ..tcp("host", 6379) }),
            ("redis://user@host", UrlConfig { username: s("user"), ..tcp("host", 6379) }),
            ("redis://user:@host", UrlConfig { username: s("user"), ..tcp("host", 6379) }),
            ("redis://:@host", tcp("host", 6379)),
            ("redis://@host", tcp("host", 6379)),
            ("redis://us%40er:p%40ss%3Aw%2Fo%25rd%3F@host", UrlConfig { username: s("us@er"), password: s("p@ss:w/o%rd?"), ..tcp("host", 6379) }),
            ("redis://:p%C3%A4ss@host", UrlConfig { password: s("päss"), ..tcp("host", 6379) }),
            ("redis://:pa:ss@host", UrlConfig { password: s("pa:ss"), ..tcp("host", 6379) }),
            // An unescaped `@` in a password: the last `@` ends the user info.
            ("redis://:p@ss@host", UrlConfig { password: s("p@ss"), ..tcp("host", 6379) }),
            ("redis://:a+b@host", UrlConfig { password: s("a+b"), ..tcp("host", 6379) }),
            ("redis://:secret@[::1]:7000/2", UrlConfig { password: s("secret"), database: 2, ..tcp("::1", 7000) }),
            // Credentials as options, alone or with the user info's other half.
            ("redis://host?password=pw&username=me", UrlConfig { username: s("me"), password: s("pw"), ..tcp("host", 6379) }),
            ("redis://me@host?password=p%26w+x", UrlConfig { username: s("me"), password: s("p&w+x"), ..tcp("host", 6379) }),
            ("redis://:pw@host?user=me", UrlConfig { username: s("me"), password: s("pw"), ..tcp("host", 6379) }),
            // Databases.
            ("redis://host/", tcp("host", 6379)),
            ("redis://host/0", tcp("host", 6379)),
            ("redis://host/3", UrlConfig { database: 3, ..tcp("host", 6379) }),
            ("redis://host?db=5", UrlConfig { database: 5, ..tcp("host", 6379) }),
            ("redis://host/5?db=5", UrlConfig { database: 5, ..tcp("host", 6379) }),
            ("redis://host/?db=4", UrlConfig { database: 4, ..tcp("host", 6379) }),
            ("redis://host:1/4294967295", UrlConfig { database: u32::MAX, ..tcp("host", 1) }),
            // Unix sockets.
            ("unix:///tmp/redis.sock", unix("/tmp/redis.sock")),
            ("unix:/tmp/redis.sock", unix("/tmp/redis.sock")),
            ("UNIX:///tmp/redis.sock", unix("/tmp/redis.sock")),
            ("redis+unix:///var/run/redis%20server.sock", unix("/var/run/redis server.sock")),
            ("valkey+unix:///s", unix("/s")),
            ("unix:///tmp/redis.sock?db=2&password=pw&username=me", UrlConfig { database: 2, username: s("me"), password: s("pw"), ..unix("/tmp/redis.sock") }),
            ("redis+unix:///tmp/redis.sock?db=1&pass=secret&user=name", UrlConfig { database: 1, username: s("name"), password: s("secret"), ..unix("/tmp/redis.sock") }),
            ("unix://:pw@/tmp/redis.sock", UrlConfig { password: s("pw"), ..unix("/tmp/redis.sock") }),
            ("unix://me:pw@/tmp/redis.sock", UrlConfig { username: s("me"), password: s("pw"), ..unix("/tmp/redis.sock") }),
            ("unix:/s?db=3", UrlConfig { database: 3, ..unix("/s") }),
            // Options.
            ("redis://host?protocol=resp2", UrlConfig { protocol: Protocol::Resp2, ..tcp("host", 6379) }),
            ("redis://host?protocol=2", UrlConfig { protocol: Protocol::Resp2, ..tcp("host", 6379) }),
            ("redis://host?protocol=RESP3", tcp("host", 6379)),
            ("redis://host?protocol=3", tcp("host", 6379)),
            ("redis://host?client_name=app-1:worker", UrlConfig { client_name: s("app-1:worker"), ..tcp("host", 6379) }),
            ("redis://host?name=app", UrlConfig { client_name: s("app"), ..tcp("host", 6379) }),
            ("redis://host?client_name=a%26b", UrlConfig { client_name: s("a&b"), ..tcp("host", 6379) }),
            ("redis://host?set_info=false", UrlConfig { set_info: Some(false), ..tcp("host", 6379) }),
            ("redis://host?set_info=TRUE", UrlConfig { set_info: Some(true), ..tcp("host", 6379) }),
            ("redis://host?set_info=0", UrlConfig { set_info: Some(false), ..tcp("host", 6379) }),
            ("redis://host?set_info=yes", UrlConfig { set_info: Some(true), ..tcp("host", 6379) }),
            ("redis://host?set_info=off", UrlConfig { set_info: Some(false), ..tcp("host", 6379) }),
            ("redis://host?connect_timeout=500ms&timeout=2s", UrlConfig { handshake_timeout: ms(500), response_timeout: ms(2000), ..tcp("host", 6379) }),
            ("redis://host?handshake_timeout=1.5&response_timeout=1m", UrlConfig { handshake_timeout: ms(1500), response_timeout: ms(60_000), ..tcp("host", 6379) }),
            ("rediss://host?insecure=true", UrlConfig { insecure: true, ..tls("host", 6379) }),
            ("rediss://host?insecure=false", tls("host", 6379)),
            ("valkeys://10.0.0.1?sni=cache.example.com", UrlConfig { server_name: s("cache.example.com"), ..tls("10.0.0.1", 6379) }),
            (
                "rediss://u:p@[::1]:6380/7?insecure=1&sni=n&protocol=resp2&name=x&timeout=250ms&connect_timeout=3&set_info=no",
                UrlConfig {
                    insecure: true,
                    server_name: s("n"),
                    username: s("u"),
                    password: s("p"),
                    database: 7,
                    protocol: Protocol::Resp2,
                    client_name: s("x"),
                    handshake_timeout: ms(3000),
                    response_timeout: ms(250),
                    set_info: Some(false),
                    ..tls("::1", 6380)
                },
            ),
            // Empty query parts are nothing.
            ("redis://host?", tcp("host", 6379)),
            ("redis://host?&db=1&&", UrlConfig { database: 1, ..tcp("host", 6379) }),
            // Percent-encoded option names.
            ("redis://host?%64b=1", UrlConfig { database: 1, ..tcp("host", 6379) }),
        ]
    }

    #[test]
    fn accepts_every_form() {
        for (url, expected) in accepted() {
            assert_eq!(parse(url), Ok(expected.clone()), "{url}");
            assert_eq!(url.parse::<UrlConfig>(), Ok(expected), "{url} (FromStr)");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn refuses_with_a_precise_error() {
        use UrlError as E;
        let host = |h: &str| E::BadHost(h.to_string());
        let port = |p: &str| E::BadPort(p.to_string());
        let db = |d: &str| E::BadDatabase(d.to_string());
        let pct = |c: &str| E::BadPercentEncoding { component: c.to_string() };
        let value = |o: &str, v: &str| E::BadOptionValue { option: o.to_string(), value: v.to_string() };
        let cases = [
            // Not a URL, or not ours.
            ("", E::MissingScheme),
            ("localhost", E::MissingScheme),
            ("localhost:6379", E::MissingScheme),
            ("redis:host", E::MissingScheme),
            ("unix:tmp/redis.sock", E::MissingScheme),
            ("http://host", E::UnsupportedScheme("http".into())),
            ("rediss+unix:///s", E::UnsupportedScheme("rediss+unix".into())),
            ("://host", E::UnsupportedScheme(String::new())),
            // Characters that must be encoded.
            ("redis://host#frag", E::InvalidCharacter { position: 12, character: '#' }),
            ("rediss://host/#insecure", E::InvalidCharacter { position: 14, character: '#' }),
            ("redis://:my pass@host", E::InvalidCharacter { position: 11, character: ' ' }),
            ("redis://host\n", E::InvalidCharacter { position: 12, character: '\n' }),
            ("redis://host?password=a\tb", E::InvalidCharacter { position: 23, character: '\t' }),
            // Hosts.
            ("redis://", E::MissingHost),
            ("redis://:6379", E::MissingHost),
            ("redis://user:pw@", E::MissingHost),
            ("redis://user:pw@:6379/0", E::MissingHost),
            ("redis:///0", E::MissingHost),
            ("redis://?db=1", E::MissingHost),
            ("redis://h1:7000,", E::MissingHost),
            ("redis://h1,,h2", E::MissingHost),
            ("redis://,h2", E::MissingHost),
            ("redis://h1,::1", host("::1")),
            ("redis://h1,h2:0", E::BadPort("0".into())),
            ("redis://::1", host("::1")),
            ("redis://fe80::1:6379", host("fe80::1:6379")),
            ("redis://host:6379:1", host("host:6379:1")),
            ("redis://[::1", host("[::1")),
            ("redis://[::1]x", host("[::1]x")),
            ("redis://[]", host("[]")),
            ("redis://[not-ip]:6379", host("[not-ip]:6379")),
            ("redis://[127.0.0.1]", host("[127.0.0.1]")),
            ("redis://ho$t", host("ho$t")),
            ("redis://ho%41st", host("ho%41st")),
            ("redis://1.2.3", host("1.2.3")),
            ("redis://256.0.0.1", host("256.0.0.1")),
            ("redis://12345", host("12345")),
            // Ports.
            ("redis://host:", port("")),
            ("redis://host:0", port("0")),
            ("redis://host:65536", port("65536")),
            ("redis://host:99999999999999999999999", port("99999999999999999999999")),
            ("redis://host:+80", port("+80")),
            ("redis://host:-1", port("-1")),
            ("redis://host:http", port("http")),
            ("redis://[::1]:", port("")),
            ("redis://[::1]:x", port("x")),
            // Databases.
            ("redis://host/x", db("x")),
            ("redis://host/1/2", db("1/2")),
            ("redis://host/1/", db("1/")),
            ("redis://host//1", db("/1")),
            ("redis://host/-1", db("-1")),
            ("redis://host/+1", db("+1")),
            ("redis://host/%31", db("%31")),
            ("redis://host/4294967296", db("4294967296")),
            ("redis://host?db=x", db("x")),
            ("unix:///s?db=-1", db("-1")),
            ("redis://host/1?db=2", E::ConflictingDatabase { path: 1, query: 2 }),
            ("redis://host/0?db=1", E::ConflictingDatabase { path: 0, query: 1 }),
            // Unix sockets.
            ("unix://", E::EmptyUnixPath),
            ("unix:", E::EmptyUnixPath),
            ("unix://?db=1", E::EmptyUnixPath),
            ("unix://:pw@", E::EmptyUnixPath),
            ("unix://tmp/redis.sock", E::UnixHost("tmp".into())),
            ("unix://localhost/tmp/redis.sock", E::UnixHost("localhost".into())),
            ("redis+unix://h:6379/s", E::UnixHost("h:6379".into())),
            ("unix://:pw@h/s", E::UnixHost("h".into())),
            // Percent-encoding.
            ("redis://:p%4@host", pct("password")),
            ("redis://:p%@host", pct("password")),
            ("redis://:%ff@host", pct("password")),
            ("redis://u%zz@host", pct("username")),
            ("unix:///tmp/%", pct("unix socket path")),
            ("unix:///tmp/%C3", pct("unix socket path")),
            ("redis://host?client_name=%", pct("client_name")),
            ("redis://host?pass=%G0", pct("pass")),
            ("redis://host?%=1", pct("option name")),
            // Options.
            ("redis://host?dbb=1", E::UnknownOption("dbb".into())),
            ("redis://host?DB=1", E::UnknownOption("DB".into())),
            ("redis://host?tls=true", E::UnknownOption("tls".into())),
            ("redis://host?=1", E::UnknownOption(String::new())),
            ("redis://host?db=1&db=1", E::DuplicateOption("db".into())),
            ("redis://host?name=a&client_name=b", E::DuplicateOption("client_name".into())),
            ("redis://host?timeout=1s&response_timeout=1s", E::DuplicateOption("response_timeout".into())),
            ("redis://host?connect_timeout=1&handshake_timeout=1", E::DuplicateOption("handshake_timeout".into())),
            ("redis://:pw@host?password=pw", E::DuplicateOption("password".into())),
            ("redis://me@host?user=me", E::DuplicateOption("user".into())),
            ("rediss://host?sni=a&sni=b", E::DuplicateOption("sni".into())),
            ("redis://host?db", value("db", "")),
            ("redis://host?db=", value("db", "")),
            ("redis://host?password=", value("password", "")),
            ("redis://host?protocol=resp4", value("protocol", "resp4")),
            ("redis://host?protocol=", value("protocol", "")),
            ("redis://host?client_name=my%20app", value("client_name", "my app")),
            ("redis://host?name=caf%C3%A9", value("name", "café")),
            ("redis://host?timeout=soon", value("timeout", "soon")),
            ("redis://host?timeout=0", value("timeout", "0")),
            ("redis://host?connect_timeout=-1s", value("connect_timeout", "-1s")),
            ("redis://host?handshake_timeout=1h", value("handshake_timeout", "1h")),
            ("redis://host?set_info=maybe", value("set_info", "maybe")),
            ("rediss://host?insecure=sure", value("insecure", "sure")),
            ("rediss://host?sni=", value("sni", "")),
            ("redis://host?insecure=true", E::TlsOnly("insecure".into())),
            ("redis://host?insecure=false", E::TlsOnly("insecure".into())),
            ("redis://host?sni=name", E::TlsOnly("sni".into())),
            ("unix:///s?insecure=true", E::TlsOnly("insecure".into())),
        ];
        for (url, expected) in cases {
            assert_eq!(parse(url), Err(expected), "{url}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn durations() {
        let cases = [
            ("500ms", ms(500)),
            ("2s", ms(2000)),
            ("1m", ms(60_000)),
            ("3", ms(3000)),
            ("1.5", ms(1500)),
            ("0.25s", ms(250)),
            (".5s", ms(500)),
            ("1.5m", ms(90_000)),
            ("0.5ms", Some(Duration::from_micros(500))),
            ("2.000000001", Some(Duration::new(2, 1))),
            // Beyond nine fraction digits is below a nanosecond.
            ("1.0000000019", Some(Duration::new(1, 1))),
            ("0.000000001", Some(Duration::from_nanos(1))),
            ("18446744073709551615", Some(Duration::from_secs(u64::MAX))),
            ("0", None),
            ("0ms", None),
            ("0.0000000001", None),
            ("", None),
            ("s", None),
            ("ms", None),
            (".", None),
            ("1.", None),
            ("1..2", None),
            ("1.5.5s", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("inf", None),
            ("NaN", None),
            ("1h", None),
            ("1S", None),
            ("1 s", None),
            ("18446744073709551616", None),
            ("99999999999999999999999999999999999999999m", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "{text}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn prints_the_url_back_without_the_password() {
        let cases = [
            ("redis://user:secret@host", "redis://user:***@host:6379/0"),
            ("redis://:secret@[::1]:7000/2", "redis://:***@[::1]:7000/2"),
            ("redis://user@host", "redis://user@host:6379/0"),
            ("redis://us%40er:p@host", "redis://us%40er:***@host:6379/0"),
            ("valkeys://host?insecure=true&sni=cache.example.com", "rediss://host:6379/0?insecure=true&sni=cache.example.com"),
            ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
            ("unix:///tmp/a%20b.sock?db=2&password=pw", "unix://:***@/tmp/a%20b.sock?db=2"),
            (
                "redis://host?timeout=1.5&connect_timeout=0.0015ms&name=a%26b&protocol=2&set_info=0",
                "redis://host:6379/0?protocol=resp2&client_name=a%26b&handshake_timeout=0.0015ms&response_timeout=1500ms&set_info=false",
            ),
            ("redis://host?timeout=1m", "redis://host:6379/0?response_timeout=60s"),
            ("redis://host?timeout=0.000000001", "redis://host:6379/0?response_timeout=0.000001ms"),
        ];
        for (url, printed) in cases {
            assert_eq!(parse(url).unwrap().to_string(), printed, "{url}");
        }
    }

    #[test]
    fn printed_urls_parse_back_redacted() {
        for (url, config) in accepted() {
            let printed = config.to_string();
            let mut expected = config.clone();
            if expected.password.is_some() {
                expected.password = s("***");
                let debug = format!("{config:?}");
                assert!(debug.contains(r#"password: Some("***")"#), "{debug}");
            }
            assert_eq!(parse(&printed), Ok(expected), "{url} printed as {printed}");
        }
    }

    #[test]
    fn conn_config_keeps_the_defaults_where_the_url_is_silent() {
        let address = Address::tcp("host", 6379);
        let config = parse("redis://host").unwrap();
        assert_eq!(
            format!("{:?}", config.conn_config()),
            format!("{:?}", ConnConfig::new(address.clone()))
        );
        assert_eq!(
            format!("{:?}", config.client_config()),
            format!("{:?}", ClientConfig::new(ConnConfig::new(address)))
        );
        let unix = parse("unix:///s").unwrap();
        assert_eq!(
            format!("{:?}", unix.conn_config()),
            format!("{:?}", ConnConfig::new(Address::Unix("/s".into())))
        );
    }

    #[test]
    fn conn_config_takes_what_the_url_says() {
        let config = parse(
            "rediss://me:pw@h:1/3?protocol=resp2&name=n&connect_timeout=2s&timeout=250ms\
             &set_info=false&insecure=true",
        )
        .unwrap();
        let client = config.client_config();
        assert_eq!(client.response_timeout, ms(250));
        let defaults = ClientConfig::new(ConnConfig::new(Address::tcp("h", 1)));
        assert_eq!(client.pool, defaults.pool);
        let conn = client.conn;
        assert_eq!(conn.address, Address::tcp("h", 1));
        assert_eq!(conn.protocol, Protocol::Resp2);
        assert_eq!(conn.username.as_deref(), Some("me"));
        assert_eq!(conn.password.as_deref(), Some("pw"));
        assert_eq!(conn.client_name.as_deref(), Some("n"));
        assert_eq!(conn.database, 3);
        assert!(!conn.set_info);
        assert_eq!(conn.handshake_timeout, Duration::from_secs(2));
        assert_eq!(conn.stall_timeout, defaults.conn.stall_timeout);
        #[cfg(feature = "tls")]
        assert!(conn.tls.is_none(), "TLS is the adapter's to add");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_builder_carries_the_tls_options() {
        assert!(parse("redis://h").unwrap().tls_builder().is_none());
        let plain = parse("rediss://h").unwrap().tls_builder().unwrap();
        assert!(format!("{plain:?}").contains("skip_verification: false"));
        let insecure = parse("rediss://h?insecure=true&sni=name.example")
            .unwrap()
            .tls_builder()
            .unwrap();
        let debug = format!("{insecure:?}");
        assert!(debug.contains("skip_verification: true"), "{debug}");
        assert!(debug.contains("name.example"), "{debug}");
        assert!(insecure.build().is_ok());
    }

    #[test]
    fn error_messages_name_what_is_wrong() {
        let message = |url: &str| parse(url).unwrap_err().to_string();
        assert!(message("redis://host?dbb=1").contains("`dbb`"));
        assert!(message("redis://host?dbb=1").contains("response_timeout"));
        assert!(message("redis://host?timeout=soon").contains("`timeout`"));
        assert!(message("redis://host?timeout=soon").contains("`soon`"));
        assert!(message("redis://host?timeout=soon").contains("500ms"));
        assert!(message("redis://host?db").contains("needs a value"));
        assert!(message("redis://host?insecure=true").contains("rediss://"));
        assert!(message("redis://::1").contains("[::1]"));
        assert!(message("unix://tmp/s").contains("unix:///"));
        assert!(message("rediss://h/#insecure").contains("?insecure=true"));
        assert!(message("redis://host/1?db=2").contains("database 1"));
        // A password is never repeated in an error.
        let bad = message("redis://:s3cret%zz@host");
        assert!(bad.contains("password") && !bad.contains("s3cret"), "{bad}");
        let bad = message("redis://host?password=s3cret%zz");
        assert!(bad.contains("password") && !bad.contains("s3cret"), "{bad}");
    }

    #[test]
    fn every_option_is_in_the_module_docs() {
        let docs = include_str!("url.rs");
        for (name, _) in OPTIONS {
            assert!(
                docs.contains(&format!("| `{name}` |")) || docs.contains(&format!(" `{name}` |")),
                "{name}"
            );
        }
    }
}
