//! The error of everything the client does: the command API's one error
//! type, shared with the smol adapter.

pub use redpoll_core::CommandError as Error;
