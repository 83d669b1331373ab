//! The error of everything the client does: the command API's one error
//! type, shared with the std adapter.

pub use redpoll_core::CommandError as Error;
