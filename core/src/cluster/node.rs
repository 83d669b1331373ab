//! Node identity: [`NodeKey`], and [`NodeKeys`], the one canonicalizer that
//! builds keys.
//!
//! # Invariants
//!
//! - **One spelling per node** (I4). A `NodeKey` has private fields and no
//!   public constructor, no `From<&str>`, no parser: the only way to get one
//!   is [`NodeKeys::key`], which canonicalizes what it is given. Two spellings
//!   of one endpoint give equal keys, so a pool looked up under any spelling
//!   is the pool stored under any other.
//! - **Refuse, never guess.** A host that is neither an IP address nor a
//!   plain DNS name is an [`InvalidHost`], not a key.
//! - **A learnt alias makes the IP form canonical**, and a key always says
//!   exactly where to connect.
//!
//! The canonical forms and the alias rule are documented on [`NodeKeys`].

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::ToString;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::io::Address;

/// The name of one cluster node: a canonical host and a port.
///
/// Built only by [`NodeKeys::key`], which documents the canonical forms.
/// Displays as `host:port`, IPv6 hosts bracketed (`[::1]:7000`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    host: Host,
    port: u16,
}

/// A canonical host: the variants never overlap, so derived equality is
/// identity.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Host {
    V4(Ipv4Addr),
    V6 {
        addr: Ipv6Addr,
        zone: Option<Box<str>>,
    },
    /// A lowercase DNS name without trailing dot, never an IP literal.
    Name(Box<str>),
}

impl NodeKey {
    /// The port.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The IP address, for keys in IP form.
    #[must_use]
    pub const fn ip(&self) -> Option<IpAddr> {
        match &self.host {
            Host::V4(addr) => Some(IpAddr::V4(*addr)),
            Host::V6 { addr, .. } => Some(IpAddr::V6(*addr)),
            Host::Name(_) => None,
        }
    }

    /// The same host on another port: still canonical, since the host is.
    /// Used where the protocol says "the node that answered, on port P".
    pub(crate) fn with_port(&self, port: u16) -> Self {
        Self {
            host: self.host.clone(),
            port,
        }
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::V4(addr) => write!(f, "{addr}:{}", self.port),
            Host::V6 { addr, zone: None } => write!(f, "[{addr}]:{}", self.port),
            Host::V6 {
                addr,
                zone: Some(zone),
            } => write!(f, "[{addr}%{zone}]:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({self})")
    }
}

/// A host that is neither an IP address nor a plain DNS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidHost;

impl fmt::Display for InvalidHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an IP address or a DNS host name")
    }
}

/// What [`NodeKeys::learn`] changed.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Learnt {
    /// Nothing: the name already resolved to that IP, or it is an IP
    /// literal or not a valid name.
    Unchanged,
    /// The name had no alias: keys handed out for it in name form are no
    /// longer canonical; re-key them with [`NodeKeys::canonical`].
    New,
    /// The name resolved to `previous` before: [`NodeKeys::key`] now gives
    /// the new IP for it. Keys of the previous IP remain valid keys of that
    /// address.
    Changed {
        /// The IP the name resolved to before.
        previous: IpAddr,
    },
}

/// The canonicalizer: the only maker of [`NodeKey`]s, and the record of the
/// name → IP aliases learnt from resolution.
///
/// One registry serves one client, so that every key of the client went
/// through the same aliases.
///
/// # Canonical forms
///
/// An IPv4 address is parsed and printed back (`127.0.0.1`). An IPv6
/// address is parsed, brackets stripped, and printed in its RFC 5952 form
/// (`[::1]`, an IPv4-mapped address as `[::ffff:127.0.0.1]`), its zone
/// (`%eth0`) kept verbatim since two zones are two different links. A host
/// name is lowercased and loses one trailing dot. Names that are not plain
/// DNS names (empty labels, a numeric last label such as `127.1`, bytes
/// other than ASCII letters, digits, `-`, `_`, `.`) are refused rather
/// than guessed at.
///
/// # The alias rule
///
/// When the adapter reports that a name resolved to an IP
/// ([`learn`](Self::learn)), the name becomes an alias: from then on
/// [`key`](Self::key) gives the **IP form** for that name, on every port.
/// The IP form wins because the cluster announces nodes by IP: `localhost`,
/// `LOCALHOST.` and `127.0.0.1` all name the node the topology calls
/// `127.0.0.1`. The latest resolution of a name wins, so a name that moved
/// to a new address follows it; [`forget`](Self::forget) drops the aliases
/// of an address that stopped answering, so its names are resolved afresh.
///
/// A key handed out in the name form before the alias was learnt stays a
/// valid value but is no longer canonical: `learn` says so ([`Learnt`]),
/// and the holder re-keys with [`canonical`](Self::canonical).
///
/// # Where to connect
///
/// [`address`](Self::address) of an IP-form key is that IP, never the name
/// it was learnt from: a name may resolve to several nodes (a round-robin
/// DNS entry for the whole cluster), and connecting by name could reach
/// another node than the key names. The name stays available for TLS server
/// name verification ([`server_name`](Self::server_name)).
#[derive(Debug, Clone, Default)]
pub struct NodeKeys {
    /// Canonical name → the IP it resolved to last.
    aliases: BTreeMap<Box<str>, IpAddr>,
    /// IP → the name that resolved to it last, for TLS server names.
    names: BTreeMap<IpAddr, Box<str>>,
}

impl NodeKeys {
    /// A registry with no aliases.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of `host:port`, whatever the spelling of `host`: an IPv4 or
    /// IPv6 address (bracketed or not, with an optional `%zone`) or a DNS
    /// name; a name with a learnt alias gives the IP form.
    ///
    /// # Errors
    ///
    /// [`InvalidHost`] when `host` is neither an IP address nor a plain DNS
    /// name (empty, spaces, a colon outside an IPv6 address, ...).
    pub fn key(&self, host: &str, port: u16) -> Result<NodeKey, InvalidHost> {
        // Mutant for the simulation (scripts/mutants.sh): the key of a name
        // is the raw host string, without canonical form or alias (I4).
        #[cfg(redpoll_mutant = "raw_host_node_key")]
        if let Host::Name(_) = parse_host(host)? {
            return Ok(NodeKey {
                host: Host::Name(host.into()),
                port,
            });
        }
        let host = match parse_host(host)? {
            Host::Name(name) => self.resolve(name),
            ip => ip,
        };
        Ok(NodeKey { host, port })
    }

    /// Records that `name` resolved to `ip` (the adapter connected there).
    /// The latest resolution of a name wins. IP literals and invalid names
    /// teach nothing.
    pub fn learn(&mut self, name: &str, ip: IpAddr) -> Learnt {
        let Ok(Host::Name(name)) = parse_host(name) else {
            return Learnt::Unchanged;
        };
        self.names.insert(ip, name.clone());
        match self.aliases.insert(name.clone(), ip) {
            None => Learnt::New,
            Some(previous) if previous == ip => Learnt::Unchanged,
            Some(previous) => {
                if self.names.get(&previous) == Some(&name) {
                    self.names.remove(&previous);
                }
                Learnt::Changed { previous }
            }
        }
    }

    /// Forgets every alias that resolved to `ip`, so that those names are
    /// resolved afresh: for when connections to `ip` fail and the names may
    /// have moved. Returns whether there was any.
    pub fn forget(&mut self, ip: IpAddr) -> bool {
        let before = self.aliases.len();
        self.aliases.retain(|_, resolved| *resolved != ip);
        self.names.remove(&ip);
        self.aliases.len() != before
    }

    /// The canonical key of `key` now: the IP form if its name has learnt an
    /// alias since it was handed out, `key` itself otherwise.
    #[must_use]
    pub fn canonical(&self, key: &NodeKey) -> NodeKey {
        match &key.host {
            Host::Name(name) => NodeKey {
                host: self.resolve(name.clone()),
                port: key.port,
            },
            _ => key.clone(),
        }
    }

    /// Where to connect for `key`: the IP for IP-form keys (never a name
    /// that might resolve elsewhere), the name for name-form keys (the
    /// adapter resolves it, then reports [`learn`](Self::learn)).
    #[must_use]
    pub fn address(&self, key: &NodeKey) -> Address {
        let host = match &key.host {
            Host::V4(addr) => addr.to_string(),
            Host::V6 { addr, zone: None } => addr.to_string(),
            Host::V6 {
                addr,
                zone: Some(zone),
            } => format!("{addr}%{zone}"),
            Host::Name(name) => name.to_string(),
        };
        Address::tcp(host, key.port)
    }

    /// The DNS name to verify a TLS certificate against for `key`: its name
    /// for name-form keys, the name last learnt to resolve to its IP for
    /// IP-form keys, `None` for a bare IP.
    #[must_use]
    pub fn server_name<'a>(&'a self, key: &'a NodeKey) -> Option<&'a str> {
        match &key.host {
            Host::Name(name) => Some(name),
            Host::V4(addr) => self.names.get(&IpAddr::V4(*addr)).map(|n| &**n),
            Host::V6 { addr, zone: _ } => self.names.get(&IpAddr::V6(*addr)).map(|n| &**n),
        }
    }

    fn resolve(&self, name: Box<str>) -> Host {
        match self.aliases.get(&name) {
            Some(IpAddr::V4(addr)) => Host::V4(*addr),
            Some(IpAddr::V6(addr)) => Host::V6 {
                addr: *addr,
                zone: None,
            },
            None => Host::Name(name),
        }
    }
}

/// The longest DNS name (RFC 1035), without the trailing dot.
const MAX_NAME_LEN: usize = 253;
/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;

fn parse_host(host: &str) -> Result<Host, InvalidHost> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return parse_v6(inner);
    }
    if host.contains(':') {
        return parse_v6(host);
    }
    if let Ok(addr) = host.parse::<Ipv4Addr>() {
        return Ok(Host::V4(addr));
    }
    parse_name(host)
}

fn parse_v6(text: &str) -> Result<Host, InvalidHost> {
    let (addr, zone) = match text.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (text, None),
    };
    let addr = addr.parse::<Ipv6Addr>().map_err(|_| InvalidHost)?;
    let zone = match zone {
        None => None,
        Some(zone) if is_zone(zone) => Some(zone.into()),
        Some(_) => return Err(InvalidHost),
    };
    Ok(Host::V6 { addr, zone })
}

/// An interface name or number, as `getaddrinfo` takes after `%`.
fn is_zone(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() <= MAX_LABEL_LEN
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_name(host: &str) -> Result<Host, InvalidHost> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(InvalidHost);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    };
    if !name.split('.').all(label_ok) {
        return Err(InvalidHost);
    }
    // A numeric last label would make the name read as an IP address to a
    // resolver (`127.1`, `10.0.0.010`): refuse instead of guessing.
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidHost);
    }
    Ok(Host::Name(name.to_ascii_lowercase().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn key(keys: &NodeKeys, host: &str, port: u16) -> NodeKey {
        keys.key(host, port)
            .unwrap_or_else(|_| panic!("{host} is valid"))
    }

    fn shown(keys: &NodeKeys, host: &str) -> String {
        key(keys, host, 7000).to_string()
    }

    #[test]
    fn ipv4_is_parsed_and_printed_back() {
        let keys = NodeKeys::new();
        assert_eq!(shown(&keys, "127.0.0.1"), "127.0.0.1:7000");
        assert_eq!(shown(&keys, "10.1.2.3"), "10.1.2.3:7000");
        assert_eq!(
            key(&keys, "10.1.2.3", 7000).ip(),
            Some("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_is_normalised_and_bracketed() {
        let keys = NodeKeys::new();
        let spellings = ["::1", "[::1]", "0:0:0:0:0:0:0:1", "[0000::0001]"];
        for spelling in spellings {
            assert_eq!(shown(&keys, spelling), "[::1]:7000", "{spelling}");
        }
        assert_eq!(shown(&keys, "2001:DB8:0:0:0:0:0:1"), "[2001:db8::1]:7000");
        assert_eq!(shown(&keys, "::ffff:127.0.0.1"), "[::ffff:127.0.0.1]:7000");
        assert_ne!(
            key(&keys, "::ffff:127.0.0.1", 1),
            key(&keys, "127.0.0.1", 1)
        );
    }

    #[test]
    fn ipv6_zones_are_kept() {
        let keys = NodeKeys::new();
        assert_eq!(shown(&keys, "fe80::1%eth0"), "[fe80::1%eth0]:7000");
        assert_eq!(
            key(&keys, "[FE80::0001%eth0]", 1),
            key(&keys, "fe80::1%eth0", 1)
        );
        assert_ne!(key(&keys, "fe80::1%eth0", 1), key(&keys, "fe80::1%eth1", 1));
        assert_ne!(key(&keys, "fe80::1%eth0", 1), key(&keys, "fe80::1", 1));
        assert_eq!(
            keys.address(&key(&keys, "fe80::1%eth0", 1)),
            Address::tcp("fe80::1%eth0", 1)
        );
    }

    #[test]
    fn names_are_lowercased_without_trailing_dot() {
        let keys = NodeKeys::new();
        for spelling in ["node-1.example", "Node-1.Example", "NODE-1.EXAMPLE."] {
            assert_eq!(shown(&keys, spelling), "node-1.example:7000");
        }
        assert_eq!(shown(&keys, "localhost"), "localhost:7000");
        assert_eq!(shown(&keys, "redis_1"), "redis_1:7000");
        assert_eq!(key(&keys, "localhost", 1).ip(), None);
    }

    #[test]
    fn ports_tell_nodes_apart() {
        let keys = NodeKeys::new();
        assert_ne!(key(&keys, "127.0.0.1", 7000), key(&keys, "127.0.0.1", 7001));
        assert_eq!(
            key(&keys, "127.0.0.1", 7000).with_port(7001),
            key(&keys, "127.0.0.1", 7001)
        );
    }

    #[test]
    fn garbage_is_not_a_host() {
        let keys = NodeKeys::new();
        let bad = [
            "",
            ".",
            "..",
            "a..b",
            "a b",
            "host:7000",
            "[127.0.0.1]",
            "[::1",
            "::1]",
            "[]",
            "fe80::1%",
            "fe80::1%a b",
            "127.1",
            "1.2.3.04",
            "01.2.3.4",
            "exa\u{e9}mple",
            "a/b",
            "a@b",
            "-%",
            "\n",
        ];
        for host in bad {
            assert_eq!(keys.key(host, 1), Err(InvalidHost), "{host:?}");
        }
        let long = ["a"; 127].join(".");
        assert_eq!(long.len(), 253);
        assert!(keys.key(&long, 1).is_ok());
        assert_eq!(keys.key(&(long + "a"), 1), Err(InvalidHost));
        assert_eq!(keys.key(&"a".repeat(64), 1), Err(InvalidHost));
    }

    #[test]
    fn every_spelling_of_localhost_is_one_node_once_learnt() {
        let mut keys = NodeKeys::new();
        let before = key(&keys, "localhost", 7000);
        assert_eq!(
            keys.learn("localhost", "127.0.0.1".parse().unwrap()),
            Learnt::New
        );

        let canonical = key(&keys, "127.0.0.1", 7000);
        for spelling in ["localhost", "LOCALHOST", "LocalHost.", "127.0.0.1"] {
            assert_eq!(key(&keys, spelling, 7000), canonical, "{spelling}");
        }
        // On every port: resolution does not depend on the port.
        assert_eq!(
            key(&keys, "LOCALHOST.", 7005),
            key(&keys, "127.0.0.1", 7005)
        );
        // A key handed out before the alias re-keys to the IP form.
        assert_ne!(before, canonical);
        assert_eq!(keys.canonical(&before), canonical);
        assert_eq!(keys.canonical(&canonical), canonical);
    }

    #[test]
    fn learning_again_is_unchanged_and_a_move_is_followed() {
        let mut keys = NodeKeys::new();
        let first: IpAddr = "10.0.0.1".parse().unwrap();
        let second: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(keys.learn("redis.example", first), Learnt::New);
        assert_eq!(keys.learn("REDIS.example.", first), Learnt::Unchanged);
        assert_eq!(
            keys.learn("redis.example", second),
            Learnt::Changed { previous: first }
        );
        assert_eq!(shown(&keys, "redis.example"), "10.0.0.2:7000");
    }

    #[test]
    fn ip_literals_and_garbage_teach_nothing() {
        let mut keys = NodeKeys::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(keys.learn("10.0.0.9", ip), Learnt::Unchanged);
        assert_eq!(keys.learn("::1", ip), Learnt::Unchanged);
        assert_eq!(keys.learn("not a name", ip), Learnt::Unchanged);
        assert_eq!(shown(&keys, "10.0.0.9"), "10.0.0.9:7000");
    }

    #[test]
    fn ipv6_aliases_give_the_bracketed_form() {
        let mut keys = NodeKeys::new();
        let _ = keys.learn("localhost", "::1".parse().unwrap());
        assert_eq!(key(&keys, "localhost", 7000), key(&keys, "[::1]", 7000));
        assert_eq!(shown(&keys, "localhost"), "[::1]:7000");
    }

    #[test]
    fn address_is_the_ip_and_the_name_is_kept_for_tls() {
        let mut keys = NodeKeys::new();
        let named = key(&keys, "Redis.Example", 6379);
        assert_eq!(keys.address(&named), Address::tcp("redis.example", 6379));
        assert_eq!(keys.server_name(&named), Some("redis.example"));

        let _ = keys.learn("redis.example", "10.0.0.1".parse().unwrap());
        let aliased = key(&keys, "redis.example", 6379);
        assert_eq!(keys.address(&aliased), Address::tcp("10.0.0.1", 6379));
        assert_eq!(keys.server_name(&aliased), Some("redis.example"));

        let v6 = key(&keys, "[::1]", 6379);
        assert_eq!(keys.address(&v6), Address::tcp("::1", 6379));
        assert_eq!(keys.address(&v6).to_string(), "[::1]:6379");
        assert_eq!(keys.server_name(&v6), None);
    }

    #[test]
    fn forgetting_an_ip_lets_its_names_resolve_afresh() {
        let mut keys = NodeKeys::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _ = keys.learn("a.example", ip);
        let _ = keys.learn("b.example", ip);
        let _ = keys.learn("c.example", "10.0.0.3".parse().unwrap());
        assert!(keys.forget(ip));
        assert!(!keys.forget(ip));
        assert_eq!(shown(&keys, "a.example"), "a.example:7000");
        assert_eq!(shown(&keys, "b.example"), "b.example:7000");
        assert_eq!(shown(&keys, "c.example"), "10.0.0.3:7000");
        assert_eq!(keys.server_name(&key(&keys, "10.0.0.1", 7000)), None);
    }

    #[test]
    fn keys_order_and_dedupe_in_collections() {
        let mut keys = NodeKeys::new();
        let _ = keys.learn("localhost", "127.0.0.1".parse().unwrap());
        let set: alloc::collections::BTreeSet<NodeKey> = ["localhost", "127.0.0.1", "LOCALHOST."]
            .iter()
            .map(|h| key(&keys, h, 7000))
            .collect();
        assert_eq!(set.len(), 1);
        let debug: Vec<String> = set.iter().map(|k| format!("{k:?}")).collect();
        assert_eq!(debug, ["NodeKey(127.0.0.1:7000)"]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the input, `key` answers without panicking, and a key's
        /// own address spells the same key: the canonical form is a fixed
        /// point (I4).
        #[test]
        fn canonical_form_is_a_fixed_point(host in "\\PC{0,40}", port: u16) {
            let keys = NodeKeys::new();
            if let Ok(key) = keys.key(&host, port) {
                let Address::Tcp { host: again, port: same } = keys.address(&key) else {
                    panic!("nodes are TCP");
                };
                prop_assert_eq!(keys.key(&again, same), Ok(key));
            }
        }

        #[test]
        fn any_ip_spelling_is_one_key(ip: IpAddr, port: u16) {
            let keys = NodeKeys::new();
            let plain = keys.key(&ip.to_string(), port);
            prop_assert!(plain.is_ok());
            prop_assert_eq!(keys.key(&alloc::format!("[{ip}]"), port).ok(), match ip {
                IpAddr::V6(_) => plain.clone().ok(),
                IpAddr::V4(_) => None,
            });
            prop_assert_eq!(plain.unwrap().ip(), Some(ip));
        }
    }
}
