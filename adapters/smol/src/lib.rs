//! The async adapter of redpoll: drives [`redpoll_core`] over `async-io`.
//!
//! For now it only re-exports the core; the client lands with the connection machine.

pub use redpoll_core as core;
