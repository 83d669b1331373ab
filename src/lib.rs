//! redpoll: a Redis / Valkey client built as a sans-IO core plus thin adapters.
//!
//! - [`core`] is `redpoll-core`, the `no_std` protocol core.
//! - `blocking` is `redpoll-std` (feature `std`), `smol` is `redpoll-smol` (feature `smol`).

pub use redpoll_core as core;
#[cfg(feature = "smol")]
pub use redpoll_smol as smol;
#[cfg(feature = "std")]
pub use redpoll_std as blocking;
