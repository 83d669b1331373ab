//! `redpoll-core`: the sans-IO protocol core of redpoll.
//!
//! The core never touches a socket, a clock or a random number generator. It
//! is fed bytes and time and answers with effects, events and deadlines; the
//! `redpoll-std` and `redpoll-smol` adapters carry those out, and anyone can
//! drive it from their own event loop. It takes `&mut self`, holds no locks,
//! channels or `Rc`, and never blocks.
//!
//! # The driving contract
//!
//! A [`Client`] is driven by three kinds of calls:
//!
//! - **Application commands**: [`Client::send`] (returns a [`RequestId`]),
//!   [`Client::cancel`], [`Client::shutdown`].
//! - **Inputs**, each carrying `now`: [`Client::handle_connected`],
//!   [`Client::handle_connect_failed`], [`Client::handle_data`],
//!   [`Client::handle_eof`], [`Client::handle_io_error`] and
//!   [`Client::handle_timeout`]. Calling `handle_timeout` early or twice is
//!   harmless.
//! - **Outputs**, pulled: [`Client::poll_effect`] (what the adapter must do),
//!   [`Client::poll_event`] (what the application must hear),
//!   [`Client::poll_timeout`] (when to call `handle_timeout` next).
//!
//! ```text
//!              application                         adapter (sockets, timer)
//!                  │ send / cancel / shutdown           │ handle_connected, handle_data,
//!                  ▼                                    ▼ handle_eof, handle_timeout, ...
//!            ┌───────────────────────────────────────────────────┐
//!            │ Client ── Conn (socket 0) ── TLS ── RESP decoder  │
//!            │        └─ Conn (socket 1) ...                     │
//!            └───────────────────────────────────────────────────┘
//!                  │ poll_event                         │ poll_effect, poll_timeout
//!                  ▼                                    ▼
//!        Response / Push / Connected            Connect / Send / Close / Probe,
//!                                               the next deadline
//! ```
//!
//! ## The run loop
//!
//! The one rule: after every input or application command, drain the outputs
//! until the machine says "nothing more".
//!
//! 1. Call the application commands you have (`send`, `cancel`, ...).
//! 2. Drain [`Client::poll_effect`] until `None`, carrying out each effect in
//!    order (below).
//! 3. Drain [`Client::poll_event`] until `None`: hand each reply to its
//!    waiter, each push to its subscriber.
//! 4. Ask [`Client::poll_timeout`] for the next deadline and wait until the
//!    first of: a socket is readable, the deadline passes, the application
//!    has a new command.
//! 5. Report what happened with the `handle_*` calls, each with the current
//!    time (`handle_timeout(now)` when the deadline passed), and go to 1.
//!
//! ## Carrying out effects
//!
//! - [`Effect::Connect`]: open a socket to the address (resolve the host,
//!   connect without blocking) and later report `handle_connected` or
//!   `handle_connect_failed`. Keep the socket under the given [`SocketId`].
//! - [`Effect::Send`]: write the bytes in order; keep what the socket would
//!   not take and write it first next time. For TLS connections the bytes
//!   are already encrypted: adapters only ever hold raw transport sockets.
//! - [`Effect::Close`]: close the socket and forget the id. Every socket of
//!   a `Connect` gets exactly one `Close`, on every path (invariant I1); an
//!   adapter never closes a socket on its own, it reports EOF and errors and
//!   waits for the `Close`.
//! - [`Effect::Probe`]: look at the socket without blocking and report what
//!   is there: bytes with `handle_data` (fed to the core, never thrown
//!   away; the core asks again), an EOF or error with `handle_eof` or
//!   `handle_io_error`, nothing waiting with
//!   [`Client::handle_probe_done`]. Requests wait, unwritten, for the
//!   answer, so answer at once (before polling further effects) if you can.
//!   A core that is never answered holds those requests until their
//!   deadline: set [`pool::PoolConfig::probe_after`] to `None` if your
//!   runtime cannot look at a socket without blocking.
//!
//! Dropping a client with open sockets: call [`Client::shutdown`] and carry
//! out the resulting effects (TLS connections get a close_notify) first.
//!
//! The `examples/embed.rs` program of the repository drives a client with
//! a hand-written blocking loop over `std::net`, mapping the next deadline
//! onto a socket read timeout.
//!
//! # Modules, one per concern
//!
//! - [`resp`]: RESP2/RESP3 frames, the incremental zero-copy
//!   [`resp::Decoder`] and the encoder.
//! - [`command`]: anything that can encode itself as a command.
//! - [`cmd`]: the command API both adapters share: typed builders
//!   ([`cmd::get`], [`cmd::set`], ...) that know their reply types, the
//!   [`cmd::FromFrame`] conversions, pipelines, scripts, scans, pub/sub
//!   messages.
//! - [`conn`]: one socket's machine: handshake with one deadline, TLS,
//!   pipelining.
//! - [`client`]: the top machine adapters drive.
//! - [`cluster`]: hash slots, [`cluster::NodeKey`] and its one
//!   canonicalizer, topology from `CLUSTER SHARDS`/`SLOTS`, redirect
//!   resolution as a total function, key positions for routing.
//! - [`pool`]: the connections to one node: checkout, probes, eviction,
//!   waiters, retries, statistics.
//! - [`reconnect`]: error classes, phases, the reconnect decision, backoff.
//! - [`time`]: [`Instant`], [`Duration`] and the one [`Timer`] enum.
//! - [`url`]: configuration from `redis://`, `rediss://` and `unix://` URLs
//!   ([`url::parse`], [`UrlConfig`]), shared by both adapters.
//!
//! # Features
//!
//! - `std` (default): lets `bytes` use std. Without it (and without `tls`)
//!   the crate is `#![no_std]` and needs only `alloc`; CI proves it by
//!   linking the core into a `no_std` static library with its own panic
//!   handler and allocator.
//! - `tls`: TLS inside the core, with rustls and its ring provider. It needs
//!   `std` (rustls's buffered connection) and a C compiler (ring).

#![no_std]
#![forbid(unsafe_code)]
#![warn(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod client;
pub mod cluster;
pub mod cmd;
pub mod command;
pub mod conn;
mod error;
mod id;
mod io;
mod machine;
pub mod pool;
pub mod reconnect;
pub mod resp;
pub mod time;
pub mod url;

pub use client::{Client, ClientConfig, Status};
pub use error::{
    CommandError, Error, HandshakeError, HandshakeErrorKind, HandshakeStep, TlsError, TlsErrorKind,
};
pub use id::{LeaseId, RequestId, SocketId};
pub use io::{Address, CloseReason, Effect, Event, IoError};
pub use machine::Machine;
pub use time::{Duration, Instant, Timer};
pub use url::{UrlConfig, UrlError};
