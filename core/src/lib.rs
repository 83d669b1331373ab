//! `redpoll-core`: the sans-IO protocol core of redpoll.
//!
//! The core never touches a socket, a clock or a random number generator. It
//! is fed bytes and time and answers with frames, effects and deadlines; the
//! `redpoll-std` and `redpoll-smol` adapters carry those out.
//!
//! Modules, one per concern:
//!
//! - [`resp`]: RESP2/RESP3 frames, the incremental zero-copy [`resp::Decoder`]
//!   and the encoder for commands and frames.
//!
//! # Features
//!
//! - `std` (default): lets `bytes` use std. The crate itself is always
//!   `#![no_std]` and needs only `alloc` (its errors implement
//!   `core::error::Error`); CI proves it by linking the core into a `no_std`
//!   static library with its own panic handler and allocator.

#![no_std]
#![forbid(unsafe_code)]
#![warn(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

extern crate alloc;
#[cfg(feature = "tls")]
extern crate std;

pub mod client;
pub mod command;
pub mod conn;
mod error;
mod id;
mod io;
pub mod resp;
pub mod time;

pub use client::{Client, ClientConfig};
pub use error::{Error, HandshakeError, HandshakeErrorKind, HandshakeStep, TlsError, TlsErrorKind};
pub use id::{RequestId, SocketId};
pub use io::{Address, CloseReason, Effect, Event, IoError};
pub use time::{Duration, Instant, Timer};
