//! The Redis result backend, as Celery's `RedisBackend` writes it: `SETEX
//! celery-task-meta-<id> <result_expires> <meta>` and `PUBLISH` of the same bytes on the same
//! name (so a waiting `AsyncResult.get()` wakes at once), never overwriting a SUCCESS.
//!
//! Celery does GET, then SETEX + PUBLISH, per result: two round trips. We do the same steps
//! for a whole batch of results in one Lua script call: one round trip per batch, and the
//! SUCCESS check is atomic with the write.
//!
//! The connection heals (see [`Link`]): a result that cannot be written because the server
//! is gone is kept and written after the reconnect, never dropped. At most
//! `rcelery_result_buffer` results wait at once; see [`ResultBackend::wait_for_room`].

mod chords;

use std::time::Duration;

pub use chords::ChordSettings;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;

use redis::Script;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::meta::decode_stored;
use super::{BackendError, MetaEncoder, NativeChords, ResultBackend, ResultRecord};
use crate::codec::Serializer;
use crate::health::{Health, LinkKind};
use crate::redis_client;
use crate::redis_client::endpoint::{Endpoint, FixedEndpoint};
use crate::redis_client::lane::{ResultWrite, SettleLane, WriteTarget, STORE_RESULTS_LUA};
use crate::redis_client::link::{Link, LinkOptions, RetryPolicy};
use crate::redis_client::sentinel::{SentinelEndpoint, SentinelSetup};
use crate::value::Value;

/// Stores a batch of metas with Celery's rule (see [`STORE_RESULTS_LUA`]).
/// KEYS: meta keys. ARGV: expiry seconds (0: none), SUCCESS marker, the offset the marker must
/// start within, then one payload per key.
fn store_script() -> Script {
    Script::new(&format!(
        "{STORE_RESULTS_LUA}\nstore_results(1, #KEYS, tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), 4)\nreturn #KEYS\n"
    ))
}

/// Results at least this large make the connection be made anew after their write (see
/// [`Link::recycle`]).
const RECYCLE_AFTER: usize = 8 * 1024 * 1024;

/// Most batches being written at once.
const MAX_IN_FLIGHT: usize = 4;

/// Most results in one script call.
const MAX_BATCH: usize = 512;

struct Write {
    key: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), BackendError>>,
    /// Its place in the result buffer, freed once it is stored.
    _room: OwnedSemaphorePermit,
}

/// How the backend's connection behaves.
#[derive(Clone)]
pub struct BackendLinkSettings {
    /// Waits between retries (`result_backend_*_sleep_between_retries_ms`).
    pub retry: RetryPolicy,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a reply may take before the connection is made anew.
    pub response_timeout: Duration,
    /// Results that may wait at once for an unreachable server (`rcelery_result_buffer`).
    pub buffer: usize,
    /// Where outages are reported.
    pub health: Arc<Health>,
    /// TLS options from Celery's `redis_backend_use_ssl`: TLS on, the URL's own `ssl_*`
    /// options winning.
    pub use_ssl: Option<redis_client::url::TlsOptions>,
}

impl Default for BackendLinkSettings {
    fn default() -> Self {
        BackendLinkSettings {
            retry: RetryPolicy {
                base: Duration::from_millis(10),
                max_delay: Duration::from_secs(10),
                max_retries: None,
            },
            connect_timeout: Duration::from_secs(4),
            response_timeout: Duration::from_secs(30),
            buffer: 10_000,
            health: Arc::new(Health::new()),
            use_ssl: None,
        }
    }
}

/// Redis result backend.
pub struct RedisBackend {
    url: String,
    /// The database results are written to.
    db: i64,
    expires: u64,
    link: Arc<Link>,
    /// One permit per result that may wait for the server (`buffer` in all).
    room: Arc<Semaphore>,
    buffer: usize,
    encoder: MetaEncoder,
    prefix: String,
    tx: mpsc::Sender<Write>,
    marker: (Vec<u8>, usize),
    /// The broker's settle lane, when the broker is on the same server: results then ride
    /// with its acks and fetches instead of going through `tx`.
    lane: Option<Arc<SettleLane>>,
    /// How chord parts are kept and how long a dispatch claim lasts.
    chords: chords::ChordSettings,
    /// The dispatch claims this worker holds (group id → token), from the part that
    /// completed a chord until its cleanup.
    claims: chords::Claims,
}

impl RedisBackend {
    /// Connects with default link settings and starts the batching writer. `expires: None`
    /// stores without expiry.
    pub async fn connect(
        url: &str,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        global_keyprefix: &str,
    ) -> Result<RedisBackend, BackendError> {
        let backend = Self::new(
            url,
            encoder,
            expires,
            global_keyprefix,
            BackendLinkSettings::default(),
        )?;
        backend
            .link
            .connect(Some(0))
            .await
            .map_err(|e| BackendError::Store(e.to_string()))?;
        Ok(backend)
    }

    /// A backend for `url` that connects on first use (and again after every outage), with
    /// the batching writer started. Fails only if the URL cannot be used.
    pub fn new(
        url: &str,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        global_keyprefix: &str,
        settings: BackendLinkSettings,
    ) -> Result<RedisBackend, BackendError> {
        let parsed = redis_client::RedisUrl::parse(url)
            .and_then(|u| u.with_use_ssl(settings.use_ssl.as_ref()))
            .map_err(|e| BackendError::Url(e.to_string()))?;
        let client = redis_client::client(&parsed).map_err(|e| BackendError::Url(e.to_string()))?;
        let endpoint = Arc::new(FixedEndpoint::new(client, parsed.to_string()));
        Ok(Self::with_endpoint(
            url,
            parsed.db,
            endpoint,
            encoder,
            expires,
            global_keyprefix,
            settings,
        ))
    }

    /// A backend for the master that Redis Sentinels name (Celery's `SentinelBackend`:
    /// `sentinel://h1:26379;sentinel://h2:26379` with
    /// `result_backend_transport_options.master_name`), connecting on first use.
    pub fn sentinel(
        url: &str,
        setup: SentinelSetup,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        global_keyprefix: &str,
        settings: BackendLinkSettings,
    ) -> Result<RedisBackend, BackendError> {
        let db = setup.master.db;
        let endpoint =
            Arc::new(SentinelEndpoint::new(setup).map_err(|e| BackendError::Url(e.to_string()))?);
        Ok(Self::with_endpoint(
            url,
            db,
            endpoint,
            encoder,
            expires,
            global_keyprefix,
            settings,
        ))
    }

    fn with_endpoint(
        url: &str,
        db: i64,
        endpoint: Arc<dyn Endpoint>,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        global_keyprefix: &str,
        settings: BackendLinkSettings,
    ) -> RedisBackend {
        let options = LinkOptions {
            kind: LinkKind::Backend,
            reports: true,
            connect_timeout: settings.connect_timeout,
            response_timeout: Some(settings.response_timeout),
            retry: settings.retry,
        };
        let link = Arc::new(Link::with_endpoint(
            endpoint,
            "result backend",
            options,
            settings.health,
        ));
        link.set_on_connect(Arc::new(|mut conn| {
            async move {
                store_script()
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .map(|_: String| ())
            }
            .boxed()
        }));
        let (tx, rx) = mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT);
        let marker = match encoder.serializer {
            Serializer::Json => (br#"{"status": "SUCCESS""#.to_vec(), 1),
            Serializer::Pickle => (b"\x8c\x07SUCCESS".to_vec(), 32),
        };
        let expires = expires.map_or(0, |d| d.as_secs().max(1));
        tokio::spawn(writer(Arc::clone(&link), rx, expires, marker.clone()));
        RedisBackend {
            url: url.to_owned(),
            db,
            expires,
            link,
            room: Arc::new(Semaphore::new(settings.buffer.max(1))),
            buffer: settings.buffer.max(1),
            encoder,
            prefix: key_prefix(global_keyprefix),
            tx,
            marker,
            lane: None,
            chords: chords::ChordSettings::default(),
            claims: chords::Claims::default(),
        }
    }

    /// How this backend keeps chord parts (`result_chord_ordered`; every worker of a chord,
    /// Python or Rust, must use the same) and how long its dispatch claims last (from
    /// `result_chord_join_timeout`, as Celery 5.7 derives them).
    pub fn set_chord_settings(&mut self, settings: chords::ChordSettings) {
        self.chords = settings;
    }

    /// Sends results through the broker's settle lane from now on. Only for a broker on the
    /// same Redis server (see [`redis_client::same_server`]); false if the lane already
    /// serves another backend.
    pub fn share_lane(&mut self, lane: Arc<SettleLane>) -> bool {
        let target = WriteTarget {
            db: self.db,
            expires: self.expires,
            success_marker: self.marker.0.clone(),
            marker_within: self.marker.1,
        };
        if !lane.attach(target) {
            return false;
        }
        self.lane = Some(lane);
        true
    }

    /// The URL as given (password included; never log it).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl RedisBackend {
    /// GETs a stored meta and decodes it; `None` if the key is absent.
    async fn get_decoded(&self, key: String) -> Result<Option<Value>, BackendError> {
        let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(&key)).await?;
        raw.as_deref().map(decode_stored).transpose()
    }

    /// Runs one command, reconnecting and retrying through outages.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackendError> {
        Ok(self
            .link
            .run(|mut c| async move { cmd.query_async(&mut c).await })
            .await?)
    }
}

impl From<redis::RedisError> for BackendError {
    fn from(e: redis::RedisError) -> Self {
        BackendError::Server(format!("redis: {e}"))
    }
}

impl From<crate::redis_client::link::LinkError> for BackendError {
    fn from(e: crate::redis_client::link::LinkError) -> Self {
        BackendError::Server(e.to_string())
    }
}

/// Celery appends `_` to a global key prefix that does not end in one of `:_-.`.
fn key_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with([':', '_', '-', '.']) {
        prefix.to_owned()
    } else {
        format!("{prefix}_")
    }
}

impl ResultBackend for RedisBackend {
    fn store(&self, record: ResultRecord) -> BoxFuture<'_, Result<(), BackendError>> {
        if let Some(lane) = &self.lane {
            // Queued now, before the future is polled: that is what lets the worker ack at
            // once (see `orders_writes_before_acks`).
            let payload = self.encoder.encode(&record);
            let key = format!("{}celery-task-meta-{}", self.prefix, record.task_id);
            let (done, wait) = oneshot::channel();
            lane.push_write(ResultWrite { key, payload, done });
            return async move {
                match wait.await {
                    Ok(outcome) => outcome.map_err(BackendError::Store),
                    Err(_) => Err(BackendError::Closed),
                }
            }
            .boxed();
        }
        async move {
            let room = Arc::clone(&self.room)
                .acquire_owned()
                .await
                .map_err(|_| BackendError::Closed)?;
            let payload = self.encoder.encode(&record);
            let key = format!("{}celery-task-meta-{}", self.prefix, record.task_id);
            let (done, wait) = oneshot::channel();
            self.tx
                .send(Write {
                    key,
                    payload,
                    done,
                    _room: room,
                })
                .await
                .map_err(|_| BackendError::Closed)?;
            wait.await.map_err(|_| BackendError::Closed)?
        }
        .boxed()
    }

    fn get_meta<'a>(
        &'a self,
        task_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::value::Value>, BackendError>> {
        self.get_decoded(format!("{}celery-task-meta-{task_id}", self.prefix))
            .boxed()
    }

    fn get_many_meta<'a>(
        &'a self,
        task_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<crate::value::Value>>, BackendError>> {
        async move {
            if task_ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut cmd = redis::cmd("MGET");
            for id in task_ids {
                cmd.arg(format!("{}celery-task-meta-{id}", self.prefix));
            }
            let raw: Vec<Option<Vec<u8>>> = self.query(&cmd).await?;
            raw.iter()
                .map(|r| r.as_deref().map(decode_stored).transpose())
                .collect()
        }
        .boxed()
    }

    fn restore_group<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::value::Value>, BackendError>> {
        async move {
            let meta = self
                .get_decoded(format!("{}celery-taskset-meta-{group_id}", self.prefix))
                .await?;
            Ok(meta
                .as_ref()
                .and_then(Value::as_dict)
                .and_then(|d| d.get("result"))
                .cloned())
        }
        .boxed()
    }

    fn native_chords(&self) -> Option<&dyn NativeChords> {
        Some(self)
    }

    fn orders_writes_before_acks(&self) -> bool {
        self.lane.is_some()
    }

    fn pending_results(&self) -> usize {
        match &self.lane {
            Some(lane) => lane.pending_writes(),
            None => self.buffer.saturating_sub(self.room.available_permits()),
        }
    }

    fn wait_for_room(&self) -> BoxFuture<'_, ()> {
        async move {
            if self.lane.is_none() {
                // One free place is enough: each of the few requests waiting here takes one.
                let _ = self.room.acquire().await;
            }
        }
        .boxed()
    }

    fn display_url(&self) -> String {
        redis_client::mask_url_list(&self.url)
    }
}

async fn writer(
    link: Arc<Link>,
    mut rx: mpsc::Receiver<Write>,
    expires: u64,
    marker: (Vec<u8>, usize),
) {
    let script = store_script();
    let marker = Arc::new(marker);
    // Several batches in flight at once on the multiplexed connection: a result never waits
    // for an earlier batch's round trip.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let link = Arc::clone(&link);
        let script = script.clone();
        let marker = Arc::clone(&marker);
        tokio::spawn(async move {
            // Retried through outages until stored; only a refusal that retrying cannot cure
            // (a wrong key type, say) fails the batch.
            let outcome = link
                .run(|mut c| {
                    let (script, batch, marker) = (&script, &batch, &marker);
                    async move { write_batch(&mut c, script, batch, expires, marker).await }
                })
                .await;
            if batch.iter().any(|w| w.payload.len() >= RECYCLE_AFTER) {
                // A fresh connection gives back the buffer this write grew.
                link.recycle();
            }
            let failed = outcome.err().map(|e| e.to_string());
            for w in batch {
                let outcome = match &failed {
                    None => Ok(()),
                    Some(msg) => Err(BackendError::Store(msg.clone())),
                };
                let _ = w.done.send(outcome);
            }
            drop(permit);
        });
    }
}

async fn write_batch(
    conn: &mut MultiplexedConnection,
    script: &Script,
    batch: &[Write],
    expires: u64,
    marker: &(Vec<u8>, usize),
) -> Result<(), redis::RedisError> {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(batch.len());
    for w in batch {
        cmd.arg(&w.key);
    }
    cmd.arg(expires).arg(&marker.0).arg(marker.1);
    for w in batch {
        cmd.arg(&w.payload);
    }
    match cmd.query_async::<()>(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            // The server lost its script cache (a restart): load it again and retry once.
            script.prepare_invoke().load_async(conn).await?;
            cmd.query_async::<()>(conn).await
        }
        other => other,
    }
}
