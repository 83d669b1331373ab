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
//! - `std` (default): implements `std::error::Error` for the error types.
//!   Without it the crate is `#![no_std]` and needs only `alloc`.

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

pub mod resp;
