use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::Update;
use crate::endpoint::Endpoint;
use crate::error::WatchClosed;

/// A handle through which application code pushes endpoint updates to a balancer.
///
/// Created in a pair with its [`WatchUpdates`] stream by [`Watch::new`]. The handle is cheap to
/// clone and may be used from any thread; pushing never blocks (the channel is unbounded, and
/// the balancer's driver drains and coalesces everything waiting before it rebuilds once). The
/// stream ends when every handle has been dropped; the balancer then keeps the last set.
///
/// Use it to bridge a registry the crate does not know (a configuration service's callback, a
/// gossip membership list) into a balancer.
#[derive(Debug, Clone)]
pub struct Watch {
    tx: mpsc::UnboundedSender<Update>,
}

/// The stream half of a [`Watch`]; give it to a balancer as its discovery source.
#[derive(Debug)]
pub struct WatchUpdates {
    rx: mpsc::UnboundedReceiver<Update>,
}

impl Watch {
    /// A new handle and the stream its updates arrive on.
    pub fn new() -> (Watch, WatchUpdates) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Watch { tx }, WatchUpdates { rx })
    }

    /// Sends one update. Fails only when the stream half has been dropped.
    pub fn send(&self, update: Update) -> Result<(), WatchClosed> {
        self.tx.send(update).map_err(|_| WatchClosed(()))
    }

    /// Adds an endpoint, or replaces the metadata of the endpoint with the same address.
    pub fn insert(&self, endpoint: Endpoint) -> Result<(), WatchClosed> {
        self.send(Update::Insert(endpoint))
    }

    /// Removes the endpoint with this address.
    pub fn remove(&self, addr: SocketAddr) -> Result<(), WatchClosed> {
        self.send(Update::Remove(addr))
    }

    /// Replaces the whole set.
    pub fn reset(&self, endpoints: impl IntoIterator<Item = Endpoint>) -> Result<(), WatchClosed> {
        self.send(Update::Reset(endpoints.into_iter().collect()))
    }

    /// Whether the stream half has been dropped, so updates go nowhere.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Stream for WatchUpdates {
    type Item = Result<Update, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|u| u.map(Ok))
    }
}
