//! The Redis transport, in kombu's layout, so Python producers, Python workers and rcelery
//! share queues: JSON envelopes in lists (`LPUSH` in, `RPOP`/`BRPOP` out), priority
//! sub-lists, binding sets, and kombu's ack emulation (`unacked` hash + `unacked_index`).
//!
//! Where kombu needs several round trips per message, we use Lua scripts and pipelines: a
//! fetch takes a whole batch and records it as unacked atomically; acks are batched.

mod envelope;
mod fetch;
mod keys;
mod publish;
mod restore;
mod scripts;
mod settle;

pub use envelope::{parse as parse_envelope, BadEnvelope, Envelope, EnvelopeError};
pub use keys::{binding_member, Keys, DEFAULT_PRIORITY_STEPS, SEP};
pub use publish::envelope as publish_envelope;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::Script;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Broker, BrokerError, Delivery, PrefetchWindow, QueueSpec};
use crate::protocol::OutgoingMessage;
use crate::redis_client;
use crate::redis_client::lane::SettleLane;
use crate::redis_client::spin::Spinner;

/// `broker_transport_options` understood by the Redis transport (kombu's names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisTransportOptions {
    /// Seconds a message may stay unacked before another worker restores it (3600).
    pub visibility_timeout: f64,
    /// Priority steps (`[0, 3, 6, 9]`).
    pub priority_steps: Vec<u8>,
    /// Prefix for every key (`global_keyprefix`, empty).
    pub global_keyprefix: String,
    /// Name of the unacked hash.
    pub unacked_key: String,
    /// Name of the unacked index.
    pub unacked_index_key: String,
    /// Name of the restore lock.
    pub unacked_mutex_key: String,
    /// Restore lock lifetime in seconds (300).
    pub unacked_mutex_expire: u64,
    /// Seconds a `BRPOP` waits before polling again (1).
    pub brpop_timeout: f64,
    /// rcelery's own (kombu ignores it): microseconds the fetch loop polls for a fetch
    /// reply before sleeping, so the core does not go idle for a reply due within
    /// microseconds (500; 0 never spins). See `redis_client::spin`.
    pub rcelery_fetch_spin_us: u64,
    /// rcelery's own (kombu ignores it): a message larger than this many bytes is never
    /// decoded; it is acked with an error logged and, when its task id can be read, a
    /// `kombu.exceptions.DecodeError` failure stored for it (64 MiB; 0 for no limit).
    pub rcelery_max_message_bytes: usize,
}

impl Default for RedisTransportOptions {
    fn default() -> Self {
        RedisTransportOptions {
            visibility_timeout: 3600.0,
            priority_steps: DEFAULT_PRIORITY_STEPS.to_vec(),
            global_keyprefix: String::new(),
            unacked_key: "unacked".into(),
            unacked_index_key: "unacked_index".into(),
            unacked_mutex_key: "unacked_mutex".into(),
            unacked_mutex_expire: 300,
            brpop_timeout: 1.0,
            rcelery_fetch_spin_us: 500,
            rcelery_max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

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

    pub(super) async fn load(&self, conn: &mut MultiplexedConnection) -> Result<(), redis::RedisError> {
        for s in [&self.fetch, &self.restore, &self.release_mutex] {
            s.prepare_invoke().load_async(conn).await?;
        }
        Ok(())
    }
}

/// A Redis broker connection.
pub struct RedisBroker {
    url: String,
    conn: MultiplexedConnection,
    keys: Keys,
    options: RedisTransportOptions,
    scripts: Scripts,
    settle: mpsc::UnboundedSender<settle::SettleOp>,
    lane: Arc<SettleLane>,
    call: settle::ScriptCall,
    stop: watch::Sender<bool>,
}

impl RedisBroker {
    /// Connects, loads the scripts, and starts the settlement task.
    pub async fn connect(url: &str, options: RedisTransportOptions) -> Result<RedisBroker, BrokerError> {
        let conn = redis_client::connect(url, Some(Duration::from_secs(30))).await?;
        let mut load_conn = conn.clone();
        let scripts = Scripts::new();
        scripts.load(&mut load_conn).await?;
        let mut steps = options.priority_steps.clone();
        steps.sort_unstable();
        steps.dedup();
        if steps.first() != Some(&0) {
            steps.insert(0, 0);
        }
        let keys = Keys::new(
            &options.global_keyprefix,
            steps,
            &options.unacked_key,
            &options.unacked_index_key,
            &options.unacked_mutex_key,
        );
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let lane = Arc::new(SettleLane::default());
        let call = settle::ScriptCall {
            keys: keys.clone(),
            scripts: scripts.clone(),
            db: redis_client::db_number(url),
            counted_pop: server_version(&mut load_conn).await >= (6, 2),
        };
        tokio::spawn(settle::run(conn.clone(), call.clone(), Arc::clone(&lane), settle_rx));
        let (stop, _) = watch::channel(false);
        Ok(RedisBroker {
            url: url.to_owned(),
            conn,
            keys,
            options,
            scripts,
            settle: settle_tx,
            lane,
            call,
            stop,
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

    /// Records the queues' bindings like kombu's `queue_bind`, so Python producers that
    /// publish through the exchange find them.
    async fn bind(&self, queues: &[QueueSpec]) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for q in queues {
            let pattern = "";
            pipe.cmd("SADD")
                .arg(self.keys.binding_set(&q.exchange))
                .arg(binding_member(&q.routing_key, pattern, &q.name))
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn restore_visible_once(&self) {
        let mut conn = self.conn.clone();
        match restore::restore_visible(
            &mut conn,
            &self.keys,
            &self.scripts,
            self.options.visibility_timeout,
            self.options.unacked_mutex_expire,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "restored {n} unacknowledged message(s) past the visibility timeout"),
            Err(e) => tracing::warn!(error = %e, "could not restore unacknowledged messages"),
        }
    }
}

/// The server's `(major, minor)` version, `(0, 0)` if it cannot be read.
async fn server_version(conn: &mut MultiplexedConnection) -> (u32, u32) {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await.unwrap_or_default();
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("0.0");
    let mut parts = version.trim().split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

impl Broker for RedisBroker {
    fn consume(
        self: Arc<Self>,
        queues: Vec<QueueSpec>,
        window: PrefetchWindow,
    ) -> BoxFuture<'static, Result<mpsc::Receiver<Delivery>, BrokerError>> {
        async move {
            self.bind(&queues).await?;
            self.restore_visible_once().await;
            let blocking = redis_client::connect(&self.url, None).await?;
            let (tx, rx) = mpsc::channel(1024);
            let fetcher = fetch::Fetcher {
                conn: self.conn.clone(),
                blocking,
                keys: self.keys.clone(),
                call: self.call.clone(),
                queues: queues.iter().map(|q| q.name.clone()).collect(),
                window,
                tx,
                lane: Arc::clone(&self.lane),
                stop: self.stop.subscribe(),
                brpop_timeout: self.options.brpop_timeout,
                spinner: Spinner::new(Duration::from_micros(self.options.rcelery_fetch_spin_us)),
                max_message_bytes: self.options.rcelery_max_message_bytes,
            };
            tokio::spawn(fetcher.run());
            let this = Arc::clone(&self);
            let mut stop = self.stop.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(10)) => this.restore_visible_once().await,
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
            let mut conn = self.conn.clone();
            restore::restore_tags(&mut conn, &self.keys, &self.scripts, &tags, false).await
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

    fn publish<'a>(&'a self, message: &'a OutgoingMessage) -> BoxFuture<'a, Result<(), BrokerError>> {
        async move {
            let mut conn = self.conn.clone();
            publish::publish(&mut conn, &self.keys, message).await
        }
        .boxed()
    }

    fn transport(&self) -> &'static str {
        "redis"
    }

    fn display_url(&self) -> String {
        redis_client::mask_password(&self.url)
    }
}
