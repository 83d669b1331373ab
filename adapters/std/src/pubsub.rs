//! [`Subscription`]: the messages of subscribed channels, in order.
//!
//! Subscriptions live on the shared connection (RESP3 pushes). The driver
//! queues each message for every subscription of its channel or pattern; a
//! channel is unsubscribed from when no subscription wants it any more.

use std::time::{Duration, Instant};

use bytes::Bytes;
use redpoll_core::cmd::{self, PushMessage, SubscriptionKind};

use crate::{Client, Error};

/// Messages of subscribed channels (or patterns, or shard channels), in
/// the order the server sent them. Iterating blocks until the next one.
/// Dropping it unsubscribes from the channels no other subscription of the
/// client wants.
#[derive(Debug)]
pub struct Subscription {
    client: Client,
    id: u64,
    kind: SubscriptionKind,
    names: Vec<Bytes>,
}

impl Subscription {
    pub(crate) fn start<C: AsRef<[u8]>>(
        client: &Client,
        kind: SubscriptionKind,
        names: impl IntoIterator<Item = C>,
    ) -> Result<Self, Error> {
        let names: Vec<Bytes> = names
            .into_iter()
            .map(|n| Bytes::copy_from_slice(n.as_ref()))
            .collect();
        // Registered before the command leaves: no message slips by.
        let id = client.shared.lock().subscribe(kind, names.clone());
        let subscription = Self {
            client: client.clone(),
            id,
            kind,
            names,
        };
        let names = &subscription.names;
        let cmd = match kind {
            SubscriptionKind::Channel => cmd::subscribe(names),
            SubscriptionKind::Pattern => cmd::psubscribe(names),
            SubscriptionKind::Shard => cmd::ssubscribe(names),
        };
        client.run(cmd)?;
        Ok(subscription)
    }

    /// The channels (or patterns) subscribed to.
    #[must_use]
    pub fn channels(&self) -> &[Bytes] {
        &self.names
    }

    /// The next message, waiting at most `timeout`; `None` when none came
    /// or the client was shut down.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<PushMessage> {
        self.wait(Some(Instant::now() + timeout))
    }

    fn wait(&self, until: Option<Instant>) -> Option<PushMessage> {
        let shared = &self.client.shared;
        let state = shared.lock();
        let (_state, message) = shared.wait(state, until, |state| {
            let shut_down = state.shut_down;
            let queue = &mut state
                .subscribers
                .iter_mut()
                .find(|s| s.id == self.id)?
                .queue;
            match queue.pop_front() {
                Some(message) => Some(Some(message)),
                None if shut_down => Some(None),
                None => None,
            }
        });
        message.flatten()
    }
}

impl Iterator for Subscription {
    type Item = PushMessage;

    /// The next message; `None` once the client is shut down.
    fn next(&mut self) -> Option<PushMessage> {
        self.wait(None)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let shared = &self.client.shared;
        let mut state = shared.lock();
        state.subscribers.retain(|s| s.id != self.id);
        if state.shut_down {
            return;
        }
        let kind = self.kind;
        let wanted = |name: &Bytes| {
            state
                .subscribers
                .iter()
                .any(|s| s.kind == kind && s.names.contains(name))
        };
        let unwanted: Vec<&Bytes> = self.names.iter().filter(|n| !wanted(n)).collect();
        if unwanted.is_empty() {
            return;
        }
        let cmd = match kind {
            SubscriptionKind::Channel => cmd::unsubscribe(unwanted),
            SubscriptionKind::Pattern => cmd::punsubscribe(unwanted),
            SubscriptionKind::Shard => cmd::sunsubscribe(unwanted),
        };
        // Nobody waits for the confirmation; its reply is dropped.
        state.send(None, &cmd, false);
        shared.settle(&mut state);
    }
}
