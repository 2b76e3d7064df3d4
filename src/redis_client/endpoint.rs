//! Where a [`Link`](super::link::Link) connects: asked anew for every connection, so that a
//! link can follow a server that moves: one fixed server ([`FixedEndpoint`]), the master the
//! Redis Sentinels name ([`super::sentinel::SentinelEndpoint`]), or a broker's fail-over list
//! (implemented by the Redis transport over [`crate::broker::failover`]).

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{Client, RedisError};

use super::client::Timeouts;

/// A failed connection attempt.
#[derive(Debug)]
pub struct OpenError {
    /// Why.
    pub error: RedisError,
    /// True when the endpoint has another server to try at once (a fail-over list that has
    /// not gone round yet): the link does not wait before the next attempt.
    pub try_next_now: bool,
}

impl From<RedisError> for OpenError {
    fn from(error: RedisError) -> Self {
        OpenError {
            error,
            try_next_now: false,
        }
    }
}

/// A new connection and the [`Endpoint::stamp`] it was opened under.
pub type Opened = (MultiplexedConnection, u64);

/// A place to connect to.
pub trait Endpoint: Send + Sync + 'static {
    /// Opens a connection to the server the endpoint names now, within `timeouts`; returns
    /// it with the [`Endpoint::stamp`] it was opened under.
    fn open(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<Opened, OpenError>>;

    /// The server's URL with the password masked, for logs (changes when the endpoint moves).
    fn display(&self) -> String;

    /// Changes whenever the endpoint moves to another server: a connection opened under an
    /// older stamp reaches a server the others have left, and is made anew.
    fn stamp(&self) -> u64 {
        0
    }

    /// An established connection failed with `error` (already classed as a connection
    /// failure): an endpoint may move on at once (a fail-over list on `READONLY`).
    fn lost(&self, error: &RedisError) {
        let _ = error;
    }

    /// Opens a Pub/Sub connection (for `PSUBSCRIBE`) to the server the endpoint names now.
    fn open_pubsub(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<PubSub, OpenError>>;
}

/// `client`'s Pub/Sub connection, within the connect timeout of `timeouts`.
pub async fn pubsub_within(client: &Client, timeouts: Timeouts) -> Result<PubSub, RedisError> {
    let open = client.get_async_pubsub();
    match timeouts.connect {
        Some(limit) => match tokio::time::timeout(limit, open).await {
            Ok(opened) => opened,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "Pub/Sub connection timed out",
            ))),
        },
        None => open.await,
    }
}

/// One server, always the same.
pub struct FixedEndpoint {
    client: Client,
    display: String,
}

impl FixedEndpoint {
    /// The server of `client`; `display` is its password-free URL.
    pub fn new(client: Client, display: String) -> FixedEndpoint {
        FixedEndpoint { client, display }
    }
}

impl Endpoint for FixedEndpoint {
    fn open(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<Opened, OpenError>> {
        async move {
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&timeouts.config())
                .await?;
            Ok((conn, 0))
        }
        .boxed()
    }

    fn display(&self) -> String {
        self.display.clone()
    }

    fn open_pubsub(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<PubSub, OpenError>> {
        async move { Ok(pubsub_within(&self.client, timeouts).await?) }.boxed()
    }
}
