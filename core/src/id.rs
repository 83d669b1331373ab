//! Handles the core allocates: small `Copy` values, never references.

use core::fmt;

/// A socket the core asked the adapter to open. Never reused by one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketId(pub(crate) u64);

/// A request, from the call that sends it to its one [`Event::Response`].
///
/// [`Event::Response`]: crate::Event::Response
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

/// A dedicated connection handed to one user, from [`Client::lease`] to
/// [`Client::release`].
///
/// [`Client::lease`]: crate::Client::lease
/// [`Client::release`]: crate::Client::release
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub(crate) u64);

impl SocketId {
    /// The number behind the handle, for logs and maps.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl RequestId {
    /// The number behind the handle, for logs and maps.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket#{}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}
