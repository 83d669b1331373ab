//! Test support shared by redpoll's test suites.
//!
//! - [`certs`]: a CA, server and client certificates generated at test time.
//! - [`peer`]: a scripted server speaking RESP over plain bytes or an
//!   in-memory rustls server connection, built from the project's own codec.
//! - [`sim`]: the deterministic simulation of the whole client: virtual
//!   clock, simulated network and server, seeded faults, the invariants.
//! - [`world`]: a client driven on a virtual clock against scripted peers,
//!   with the open/close accounting every test checks.
//! - [`server`]: real `redis-server` processes on loopback (plain, TLS,
//!   unix socket), killed when dropped.
//! - [`cluster`]: a real Redis Cluster of those servers (`redis-cli --cluster
//!   create`), with slot migration, resharding and failover for the tests.
//! - [`reshard`]: live resharding under load: a model of every acknowledged
//!   write, the topology changes made meanwhile, the checks afterwards.

pub mod certs;
pub mod cluster;
pub mod fake;
pub mod peer;
pub mod reshard;
pub mod server;
pub mod sim;
pub mod world;
