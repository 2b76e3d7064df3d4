//! Where the Redis broker connects: one server, a fail-over list of servers
//! (`redis://a;redis://b`, see [`crate::broker::failover`]), or the master that Redis
//! Sentinels name (`sentinel://h1:26379;sentinel://h2:26379` with the transport option
//! `master_name`, see [`crate::redis_client::sentinel`]). Every connection of one broker
//! shares one endpoint, so they move together.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::Client;

use super::options::RedisTransportOptions;
use crate::broker::failover::{family, FailoverUrls};
use crate::redis_client::client::Timeouts;
use crate::redis_client::endpoint::{Endpoint, OpenError, Opened};
use crate::redis_client::sentinel::{SentinelEndpoint, SentinelOptions, SentinelSetup};
use crate::redis_client::{self, RedisUrl};

/// What the broker needs to know about where it connects.
pub(super) struct Resolved {
    /// The endpoint all its connections share.
    pub endpoint: Arc<dyn Endpoint>,
    /// The settings of the first URL (timeouts; for Sentinel, the master's).
    pub first: RedisUrl,
    /// The database of the first URL.
    pub db: i64,
    /// The URL when it is one plain server (a Redis result backend on that server may share
    /// the broker's settle lane); `None` for a list or Sentinel, whose server may change.
    pub single_url: Option<String>,
}

/// Reads `urls` (one family: plain Redis or `sentinel://`) with the transport options.
/// Errors are password-free.
pub(super) fn resolve(
    urls: Arc<FailoverUrls>,
    options: &RedisTransportOptions,
) -> Result<Resolved, String> {
    let first_url = urls.url(urls.current()).to_owned();
    if family(&first_url) == "sentinel" {
        let setup = SentinelSetup::parse(
            urls.urls(),
            &SentinelOptions {
                master_name: options.master_name.clone(),
                min_other_sentinels: options.min_other_sentinels,
                sentinel_kwargs: options.sentinel_kwargs.clone(),
            },
            "broker_transport_options",
            options.use_ssl.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        let first = setup.master.clone();
        let endpoint = SentinelEndpoint::new(setup).map_err(|e| e.to_string())?;
        return Ok(Resolved {
            db: first.db,
            first,
            endpoint: Arc::new(endpoint),
            single_url: None,
        });
    }
    let mut clients = Vec::with_capacity(urls.len());
    let mut displays = Vec::with_capacity(urls.len());
    let mut parsed_first = None;
    for (i, url) in urls.urls().iter().enumerate() {
        let parsed = RedisUrl::parse(url)
            .and_then(|u| u.with_use_ssl(options.use_ssl.as_ref()))
            .map_err(|e| at(i, urls.len(), e.to_string()))?;
        clients.push(redis_client::client(&parsed).map_err(|e| at(i, urls.len(), e.to_string()))?);
        displays.push(parsed.to_string());
        parsed_first.get_or_insert(parsed);
    }
    let first = parsed_first.ok_or("no broker URL")?;
    let single_url = (urls.len() == 1).then(|| first_url.clone());
    Ok(Resolved {
        db: first.db,
        first,
        endpoint: Arc::new(ListEndpoint {
            urls,
            clients,
            displays,
        }),
        single_url,
    })
}

/// The error of URL `i` of `n` (its place named only when there is a list).
fn at(i: usize, n: usize, reason: String) -> String {
    if n == 1 {
        reason
    } else {
        format!("URL #{} of the fail-over list: {reason}", i + 1)
    }
}

/// A fail-over list of plain Redis servers (one server is a list of one).
struct ListEndpoint {
    urls: Arc<FailoverUrls>,
    clients: Vec<Client>,
    displays: Vec<String>,
}

impl Endpoint for ListEndpoint {
    fn open(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<Opened, OpenError>> {
        async move {
            let attempt = self.urls.current();
            let client = &self.clients[attempt.index.min(self.clients.len() - 1)];
            match client
                .get_multiplexed_async_connection_with_config(&timeouts.config())
                .await
            {
                Ok(conn) => {
                    self.urls.succeeded();
                    Ok((conn, attempt.stamp))
                }
                Err(error) => {
                    let next = self.urls.next_on_failure(attempt);
                    Err(OpenError {
                        error,
                        try_next_now: !next.round_failed,
                    })
                }
            }
        }
        .boxed()
    }

    fn display(&self) -> String {
        let at = self.urls.current().index;
        self.displays.get(at).cloned().unwrap_or_default()
    }

    fn stamp(&self) -> u64 {
        self.urls.stamp()
    }

    fn lost(&self, error: &redis::RedisError) {
        // A server that turned replica (`READONLY`) would take the reconnect but refuse
        // every write: go to the next URL instead.
        if error.code() == Some("READONLY") && self.urls.len() > 1 {
            self.urls.next_on_failure(self.urls.current());
        }
    }

    fn open_pubsub(
        &self,
        timeouts: Timeouts,
    ) -> BoxFuture<'_, Result<redis::aio::PubSub, OpenError>> {
        async move {
            let at = self.urls.current().index.min(self.clients.len() - 1);
            Ok(crate::redis_client::endpoint::pubsub_within(&self.clients[at], timeouts).await?)
        }
        .boxed()
    }
}
