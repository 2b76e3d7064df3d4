//! The Redis transport, in kombu's layout, so Python producers, Python workers and rcelery
//! share queues: JSON envelopes in lists (`LPUSH` in, `RPOP`/`BRPOP` out), priority
//! sub-lists, binding sets, and kombu's ack emulation (`unacked` hash + `unacked_index`).
//!
//! Where kombu needs several round trips per message, we use Lua scripts and pipelines: a
//! fetch takes a whole batch and records it as unacked atomically; acks are batched.

mod broadcast;
mod envelope;
mod error;
mod fetch;
mod keys;
mod lease;
mod open;
mod options;
mod publish;
mod restore;
mod scripts;
mod settle;
mod tail;
mod target;

pub use envelope::{
    mark_redelivered, parse as parse_envelope, priority_of, BadEnvelope, Envelope, EnvelopeError,
};
pub use keys::{binding_member, Keys, DEFAULT_PRIORITY_STEPS, SEP};
pub use open::open;
pub use options::{FanoutPrefix, RedisTransportOptions};
pub use publish::envelope as publish_envelope;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::Script;
use tokio::sync::{mpsc, oneshot, watch};

use super::failover::FailoverUrls;
use super::{
    Broker, BrokerError, ConnectionSettings, ConsumedQueues, Delivery, ExchangeSpec,
    PrefetchWindow, QueueSpec,
};
use crate::health::{Health, LinkKind};
use crate::protocol::{OutgoingMessage, RawMessage};
use crate::redis_client;
use crate::redis_client::lane::SettleLane;
use crate::redis_client::link::{Link, LinkOptions, RetryPolicy, DEFAULT_RESPONSE_TIMEOUT};
use crate::redis_client::spin::Spinner;

/// The loaded Lua scripts.
#[derive(Clone)]
pub(crate) struct Scripts {
    fetch: Script,
    restore: Script,
    release_mutex: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            fetch: Script::new(&scripts::fetch()),
            restore: Script::new(scripts::RESTORE),
            release_mutex: Script::new(scripts::RELEASE_MUTEX),
        }
    }

    pub(super) async fn load(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), redis::RedisError> {
        for s in [&self.fetch, &self.restore, &self.release_mutex] {
            s.prepare_invoke().load_async(conn).await?;
        }
        Ok(())
    }
}

/// A Redis broker connection.
pub struct RedisBroker {
    url: String,
    urls: Arc<FailoverUrls>,
    /// The URL when the broker is one plain server (see [`RedisBroker::single_url`]).
    single_url: Option<String>,
    link: Arc<Link>,
    blocking: Arc<Link>,
    keys: Keys,
    options: RedisTransportOptions,
    scripts: Scripts,
    settle: mpsc::UnboundedSender<settle::SettleOp>,
    lane: Arc<SettleLane>,
    call: settle::ScriptCall,
    stop: watch::Sender<bool>,
    /// The queues being consumed, bound again on every new connection.
    bound: Arc<Mutex<Vec<QueueSpec>>>,
    restorer: Arc<restore::Restorer>,
    fatal: Arc<OnceLock<String>>,
    /// Pub/Sub and list subscriptions (pidbox, events).
    broadcast: broadcast::Broadcast,
    /// Options for the blocking connection of each list subscription.
    blocking_options: LinkOptions,
    health: Arc<Health>,
}

impl RedisBroker {
    /// Connects with Celery's default connection settings and a health state of its own
    /// (tests, tools).
    pub async fn connect(
        url: &str,
        options: RedisTransportOptions,
    ) -> Result<RedisBroker, BrokerError> {
        Self::connect_with(
            url,
            options,
            ConnectionSettings::default(),
            Arc::new(Health::new()),
        )
        .await
    }

    /// Connects (retrying as `settings` allow when the server is not there yet), loads the
    /// scripts, and starts the settlement task. Outages are reported to `health`. `url` may
    /// be a `;`-separated fail-over list (round-robin) or a list of `sentinel://` URLs.
    pub async fn connect_with(
        url: &str,
        options: RedisTransportOptions,
        settings: ConnectionSettings,
        health: Arc<Health>,
    ) -> Result<RedisBroker, BrokerError> {
        let urls = FailoverUrls::parse(url, None).map_err(|e| BrokerError::Url {
            url: redis_client::mask_url_list(url),
            reason: e.to_string(),
        })?;
        Self::connect_to(Arc::new(urls), options, settings, health).await
    }

    /// Connects to the servers of `urls` (one plain Redis server, a fail-over list of them,
    /// or the `sentinel://` URLs of the sentinels that name the master); see
    /// [`RedisBroker::connect_with`].
    pub async fn connect_to(
        urls: Arc<FailoverUrls>,
        options: RedisTransportOptions,
        settings: ConnectionSettings,
        health: Arc<Health>,
    ) -> Result<RedisBroker, BrokerError> {
        let url = urls.urls().join(";");
        let bad_url = |reason: String| BrokerError::Url {
            url: redis_client::mask_url_list(&url),
            reason,
        };
        let resolved = target::resolve(Arc::clone(&urls), &options).map_err(bad_url)?;
        let parsed = resolved.first;
        // The transport options win over the URL's query, as kombu merges them.
        let connect_timeout = options
            .socket_connect_timeout
            .map(secs)
            .or(parsed.socket_connect_timeout)
            .or(parsed.socket_timeout)
            .unwrap_or(settings.timeout);
        let retry = RetryPolicy::broker(settings.max_retries);
        let retry = if settings.retry {
            retry
        } else {
            RetryPolicy {
                max_retries: Some(0),
                ..retry
            }
        };
        let response_timeout = options
            .socket_timeout
            .map(secs)
            .or(parsed.socket_timeout)
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT);
        let link = Arc::new(Link::with_endpoint(
            Arc::clone(&resolved.endpoint),
            "broker",
            LinkOptions {
                kind: LinkKind::Broker,
                reports: true,
                connect_timeout,
                response_timeout: Some(response_timeout),
                retry,
            },
            Arc::clone(&health),
        ));
        // BRPOP blocks for up to `brpop_timeout`: its reply may take that long, and more.
        let blocking_timeout = secs(options.brpop_timeout.max(0.0)) + response_timeout;
        let blocking_options = LinkOptions {
            kind: LinkKind::Broker,
            reports: false,
            connect_timeout,
            response_timeout: Some(blocking_timeout),
            retry,
        };
        let blocking = Arc::new(Link::with_endpoint(
            Arc::clone(&resolved.endpoint),
            "broker (blocking)",
            blocking_options.clone(),
            Arc::clone(&health),
        ));
        let scripts = Scripts::new();
        let bound: Arc<Mutex<Vec<QueueSpec>>> = Arc::default();
        let keys = keys_for(&options);
        let broadcast = broadcast::Broadcast {
            keys: keys.clone(),
            fanout_prefix: options.fanout_prefix.for_db(resolved.db),
            fanout_patterns: options.fanout_patterns,
            brpop_timeout: options.brpop_timeout,
            endpoint: Arc::clone(&resolved.endpoint),
            connect_timeout,
        };
        link.set_on_connect(on_connect(
            scripts.clone(),
            keys.clone(),
            Arc::clone(&bound),
        ));
        let startup = if settings.retry_on_startup {
            retry.max_retries
        } else {
            Some(0)
        };
        let (_, mut first) = link.connect(startup).await?;
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let lane = Arc::new(SettleLane::default());
        let call = settle::ScriptCall {
            keys: keys.clone(),
            scripts: scripts.clone(),
            db: resolved.db,
            counted_pop: server_version(&mut first).await >= (6, 2),
            batch_bytes: batch_budget(options.rcelery_max_message_bytes),
        };
        tokio::spawn(settle::run(
            Arc::clone(&link),
            call.clone(),
            Arc::clone(&lane),
            settle_rx,
        ));
        let (stop, _) = watch::channel(false);
        let restorer = Arc::new(restore::Restorer::new(
            keys.clone(),
            scripts.clone(),
            options.visibility_timeout,
            options.unacked_mutex_expire,
        ));
        Ok(RedisBroker {
            url,
            urls,
            single_url: resolved.single_url,
            link,
            blocking,
            keys,
            options,
            scripts,
            settle: settle_tx,
            lane,
            call,
            stop,
            bound,
            restorer,
            fatal: Arc::default(),
            broadcast,
            blocking_options,
            health,
        })
    }

    /// The lane this broker's acks travel in. A Redis result backend on the same server
    /// attaches to it, so results ride along with the acks and fetches (one round trip per
    /// batch instead of two); see [`crate::redis_client::lane`].
    pub fn settle_lane(&self) -> Arc<SettleLane> {
        Arc::clone(&self.lane)
    }

    /// The broker URL as given (password included; never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL when the broker is one plain Redis server, whose settle lane a result
    /// backend on the same server may share; `None` for a fail-over list or Sentinel, whose
    /// server may change under the backend (password included; never log it).
    pub fn single_url(&self) -> Option<&str> {
        self.single_url.as_deref()
    }

    async fn restore_visible_once(&self) {
        match self.restorer.restore_visible(&self.link).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                count = n,
                "restored {n} unacknowledged message(s) past the visibility timeout"
            ),
            Err(e) => tracing::warn!(error = %e, "could not restore unacknowledged messages"),
        }
    }
}

/// Seconds as a duration; negative or non-finite values count as zero.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO)
}

/// A fetch's byte budget: the largest message allowed (64 MiB when there is no limit), so that
/// one batch never holds more than about one such message.
fn batch_budget(max_message_bytes: usize) -> usize {
    if max_message_bytes == 0 {
        64 * 1024 * 1024
    } else {
        max_message_bytes
    }
}

/// Key names from the transport options.
fn keys_for(options: &RedisTransportOptions) -> Keys {
    let mut steps = options.priority_steps.clone();
    steps.sort_unstable();
    steps.dedup();
    if steps.first() != Some(&0) {
        steps.insert(0, 0);
    }
    Keys::new(
        &options.global_keyprefix,
        steps,
        &options.unacked_key,
        &options.unacked_index_key,
        &options.unacked_mutex_key,
    )
}

/// What every new connection does first: load the scripts (a restarted server has lost
/// them) and record the bindings of the consumed queues (lost too, without persistence).
fn on_connect(
    scripts: Scripts,
    keys: Keys,
    bound: Arc<Mutex<Vec<QueueSpec>>>,
) -> redis_client::link::OnConnect {
    Arc::new(move |mut conn| {
        let scripts = scripts.clone();
        let queues = bound.lock().map(|q| q.clone()).unwrap_or_default();
        let keys = keys.clone();
        async move {
            scripts.load(&mut conn).await?;
            if let Some(pipe) = bind_pipeline(&keys, &queues) {
                pipe.query_async::<()>(&mut conn).await?;
            }
            Ok(())
        }
        .boxed()
    })
}

/// The bindings of `queues` as kombu's `queue_bind` records them, so Python producers that
/// publish through the exchange find them.
fn bind_pipeline(keys: &Keys, queues: &[QueueSpec]) -> Option<redis::Pipeline> {
    let mut pipe = redis::pipe();
    // kombu binds a queue only to a named exchange: a queue on the anonymous exchange (an
    // rpc reply queue) is reached by its name alone. `None`: nothing to bind.
    let named: Vec<&QueueSpec> = queues.iter().filter(|q| !q.exchange.is_empty()).collect();
    if named.is_empty() {
        return None;
    }
    for q in named {
        pipe.cmd("SADD")
            .arg(keys.binding_set(&q.exchange))
            .arg(binding_member(&q.routing_key, "", &q.name))
            .ignore();
    }
    Some(pipe)
}

/// The server's `(major, minor)` version, `(0, 0)` if it cannot be read.
async fn server_version(conn: &mut MultiplexedConnection) -> (u32, u32) {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .unwrap_or_default();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("0.0");
    let mut parts = version.trim().split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

impl Broker for RedisBroker {
    fn consume(
        self: Arc<Self>,
        consumed: ConsumedQueues,
        window: PrefetchWindow,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<Delivery>, BrokerError>> {
        async move {
            let consumed_rx = consumed.watch();
            let queues = consumed_rx.borrow().clone();
            if let Ok(mut bound) = self.bound.lock() {
                bound.extend(queues.iter().cloned());
            }
            if let Some(pipe) = bind_pipeline(&self.keys, &queues) {
                self.link
                    .run(|mut c| {
                        let pipe = &pipe;
                        async move { pipe.query_async::<()>(&mut c).await }
                    })
                    .await?;
            }
            self.restore_visible_once().await;
            let (tx, rx) = mpsc::channel(1024);
            let fetcher = fetch::Fetcher {
                link: Arc::clone(&self.link),
                blocking: Arc::clone(&self.blocking),
                keys: self.keys.clone(),
                call: self.call.clone(),
                queues: queues.iter().map(|q| q.name.clone()).collect(),
                consumed: consumed_rx,
                bound: Arc::clone(&self.bound),
                window,
                tx,
                lane: Arc::clone(&self.lane),
                stop: self.stop.subscribe(),
                brpop_timeout: self.options.brpop_timeout,
                spinner: Spinner::new(Duration::from_micros(self.options.rcelery_fetch_spin_us)),
                fatal: Arc::clone(&self.fatal),
                max_message_bytes: self.options.rcelery_max_message_bytes,
            };
            tokio::spawn(fetcher.run());
            let this = Arc::clone(&self);
            let mut stop = self.stop.subscribe();
            let mut epochs = self.link.epochs();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(10)) => this.restore_visible_once().await,
                        // A new connection: a restarted server may hold a dead worker's
                        // messages (with AOF), and any mutex left by a timed-out call is
                        // released here too.
                        changed = epochs.changed() => {
                            if changed.is_err() { break; }
                            this.restore_visible_once().await;
                        }
                        _ = stop.changed() => break,
                    }
                }
            });
            Ok(rx)
        }
        .boxed()
    }

    fn stop_consuming(&self) {
        let _ = self.stop.send(true);
    }

    fn ack(&self, tag: &str) {
        if !tag.is_empty() {
            self.lane.push_ack(tag.to_owned());
        }
    }

    fn reject(&self, tag: &str, requeue: bool) {
        if tag.is_empty() {
            return;
        }
        if requeue {
            let _ = self.settle.send(settle::SettleOp::Requeue(tag.to_owned()));
        } else {
            self.lane.push_ack(tag.to_owned());
        }
    }

    fn restore(&self, tags: Vec<String>) -> BoxFuture<'_, Result<usize, BrokerError>> {
        async move {
            // Each restore pushes to the head of its list, so going newest-first leaves the
            // oldest message next in line, as it was.
            let tags: Vec<String> = tags.into_iter().rev().filter(|t| !t.is_empty()).collect();
            let restored = self
                .link
                .run(|mut c| {
                    let tags = &tags;
                    async move {
                        restore::restore_tags(&mut c, &self.keys, &self.scripts, tags, false).await
                    }
                })
                .await?;
            Ok(restored)
        }
        .boxed()
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        async move {
            let (tx, rx) = oneshot::channel();
            if self.settle.send(settle::SettleOp::Flush(tx)).is_ok() {
                let _ = rx.await;
            }
        }
        .boxed()
    }

    fn publish<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        async move {
            let payload = publish::envelope(message);
            let result = self
                .link
                .run(|mut c| {
                    let payload = &payload;
                    async move { publish::push(&mut c, &self.keys, message, payload).await }
                })
                .await;
            Ok(result?)
        }
        .boxed()
    }

    fn publish_to<'a>(
        &'a self,
        exchange: &'a ExchangeSpec,
        message: &'a OutgoingMessage,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        async move {
            let payload = publish::envelope(message);
            let b = &self.broadcast;
            if exchange.kind == "fanout" {
                let channel = b.publish_channel(&exchange.name, &message.routing_key);
                self.link
                    .run(|mut c| {
                        let (channel, payload) = (&channel, &payload);
                        async move {
                            redis::cmd("PUBLISH")
                                .arg(channel)
                                .arg(payload)
                                .query_async::<()>(&mut c)
                                .await
                        }
                    })
                    .await?;
                return Ok(());
            }
            let priority = message.properties.priority.unwrap_or(0);
            self.link
                .run(|mut c| {
                    let payload = &payload;
                    async move {
                        let queues = b.route(&mut c, exchange, &message.routing_key).await?;
                        if queues.is_empty() {
                            tracing::debug!(exchange = %exchange.name, routing_key = %message.routing_key, "no queue bound: message dropped");
                            return Ok(());
                        }
                        let mut pipe = redis::pipe();
                        for q in &queues {
                            pipe.cmd("LPUSH")
                                .arg(self.keys.queue_key(q, priority))
                                .arg(payload)
                                .ignore();
                        }
                        pipe.query_async::<()>(&mut c).await
                    }
                })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn subscribe(
        self: Arc<Self>,
        queue: QueueSpec,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<RawMessage>, BrokerError>> {
        async move {
            if queue.exchange_type == "fanout" {
                return Ok(broadcast::subscribe_fanout(
                    self.broadcast.clone(),
                    Arc::clone(&self.link),
                    queue,
                ));
            }
            let blocking = Link::with_endpoint(
                Arc::clone(&self.broadcast.endpoint),
                "broker (subscription)",
                self.blocking_options.clone(),
                Arc::clone(&self.health),
            );
            // Bound before this returns, so that a reply published right after finds it.
            self.link
                .run(|mut c| {
                    let (b, q) = (&self.broadcast, &queue);
                    async move { b.bind(&mut c, q).await }
                })
                .await?;
            Ok(broadcast::subscribe_list(
                self.broadcast.clone(),
                Arc::clone(&self.link),
                blocking,
                queue,
            ))
        }
        .boxed()
    }

    fn renew<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<(), BrokerError>> {
        async move { Ok(lease::renew(&self.link, &self.keys, tags).await?) }.boxed()
    }

    fn renew_interval(&self) -> Option<Duration> {
        Some(lease::interval(self.options.visibility_timeout))
    }

    fn epochs(&self) -> Option<watch::Receiver<u64>> {
        Some(self.link.epochs())
    }

    fn fatal_error(&self) -> Option<String> {
        self.fatal.get().cloned()
    }

    fn transport(&self) -> &'static str {
        "redis"
    }

    fn display_url(&self) -> String {
        if super::failover::family(&self.url) == "sentinel" {
            // The master in use, as the sentinels named it.
            return self.link.display_url();
        }
        let current = redis_client::mask_password(self.urls.url(self.urls.current()));
        if self.urls.len() > 1 {
            format!(
                "{current} (fail-over list of {}, {})",
                self.urls.len(),
                self.urls.strategy().as_str()
            )
        } else {
            current
        }
    }
}
