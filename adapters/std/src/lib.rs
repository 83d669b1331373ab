//! The blocking adapter of redpoll: drives [`redpoll_core`] over `std::net`.
//!
//! For now it only re-exports the core; the client lands with the connection machine.

pub use redpoll_core as core;
