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

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use std::sync::{Arc, LazyLock};

use redis::Script;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::meta::decode_stored;
use super::{
    BackendError, ChordPart, ChordProgress, MetaEncoder, NativeChords, ResultBackend, ResultRecord,
};
use crate::codec::Serializer;
use crate::health::{Health, LinkKind};
use crate::redis_client;
use crate::redis_client::lane::{ResultWrite, SettleLane, WriteTarget, STORE_RESULTS_LUA};
use crate::redis_client::link::{Link, LinkOptions, RetryPolicy};
use crate::value::Value;

/// Stores a batch of metas with Celery's rule (see [`STORE_RESULTS_LUA`]).
/// KEYS: meta keys. ARGV: expiry seconds (0: none), SUCCESS marker, the offset the marker must
/// start within, then one payload per key.
fn store_script() -> Script {
    Script::new(&format!(
        "{STORE_RESULTS_LUA}\nstore_results(1, #KEYS, tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), 4)\nreturn #KEYS\n"
    ))
}

/// Records a chord part and reports progress, atomically (Celery does the same steps in one
/// MULTI pipeline, then `ZRANGE`s when ready). Keys: `.j`, `.t`, `.s`, the group's taskset
/// meta; then the encoded part, its score, the expiry (0: none), and whether parts are kept in
/// Celery's ordered way (`result_chord_ordered`: a sorted set scored by group index) or in
/// completion order (a list).
/// Returns `{0}` no chord size, `{1}` pending, `{2, parts}` ready, `{3}` saved (complex) header.
const CHORD_PART_LUA: &str = r#"
local function chord_part(jkey, tkey, skey, gkey, part, score, exp, ordered)
  local ready
  if ordered then
    redis.call('ZADD', jkey, score, part)
    ready = redis.call('ZCOUNT', jkey, '-inf', '+inf')
  else
    redis.call('RPUSH', jkey, part)
    ready = redis.call('LLEN', jkey)
  end
  local diff = redis.call('GET', tkey)
  local size = redis.call('GET', skey)
  if exp > 0 then
    redis.call('EXPIRE', jkey, exp)
    redis.call('EXPIRE', tkey, exp)
    redis.call('EXPIRE', skey, exp)
  end
  if not size then return {0} end
  local total = tonumber(size) + tonumber(diff or '0')
  if ready ~= total then return {1} end
  if redis.call('EXISTS', gkey) == 1 then return {3} end
  if ordered then return {2, redis.call('ZRANGE', jkey, 0, -1)} end
  return {2, redis.call('LRANGE', jkey, 0, total)}
end
"#;

/// A chord part alone. KEYS: `.j`, `.t`, `.s`, taskset meta. ARGV: part, score, expiry,
/// `1`/`0` ordered.
static CHORD_PART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{CHORD_PART_LUA}\nreturn chord_part(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1')\n"
    ))
});

/// The part's own result stored first (Celery's rule, see [`STORE_RESULTS_LUA`]), then the
/// chord part: one round trip where Celery makes two. KEYS: as [`CHORD_PART`], then the meta
/// key. ARGV: as [`CHORD_PART`], then expiry, SUCCESS marker, the offset the marker must start
/// within, and the meta.
static STORE_AND_CHORD_PART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{STORE_RESULTS_LUA}\n{CHORD_PART_LUA}\nstore_results(5, 1, tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), 8)\nreturn chord_part(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1')\n"
    ))
});

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
    /// `result_chord_ordered`: chord parts in a sorted set by group index (Celery's default)
    /// rather than a list in completion order.
    chord_ordered: bool,
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
        let options = LinkOptions {
            kind: LinkKind::Backend,
            reports: true,
            connect_timeout: settings.connect_timeout,
            response_timeout: Some(settings.response_timeout),
            retry: settings.retry,
        };
        let link = Arc::new(Link::new(
            client,
            parsed.to_string(),
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
        Ok(RedisBackend {
            url: url.to_owned(),
            expires,
            link,
            room: Arc::new(Semaphore::new(settings.buffer.max(1))),
            buffer: settings.buffer.max(1),
            encoder,
            prefix: key_prefix(global_keyprefix),
            tx,
            marker,
            lane: None,
            chord_ordered: true,
        })
    }

    /// `result_backend_transport_options.result_chord_ordered` (true by default). Every
    /// worker of a chord, Python or Rust, must use the same setting: it decides the type of
    /// the `.j` key they all add to.
    pub fn set_chord_ordered(&mut self, ordered: bool) {
        self.chord_ordered = ordered;
    }

    /// Sends results through the broker's settle lane from now on. Only for a broker on the
    /// same Redis server (see [`redis_client::same_server`]); false if the lane already
    /// serves another backend.
    pub fn share_lane(&mut self, lane: Arc<SettleLane>) -> bool {
        let target = WriteTarget {
            db: redis_client::db_number(&self.url),
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
        redis_client::mask_password(&self.url)
    }
}

/// Celery's Redis chord counters (`.j`, `.t`, `.s`; see [`super::chord`]).
impl NativeChords for RedisBackend {
    fn chord_part_return(
        &self,
        part: ChordPart,
        record: Option<ResultRecord>,
    ) -> BoxFuture<'_, Result<ChordProgress, BackendError>> {
        async move {
            let group = format!("{}celery-taskset-meta-{}", self.prefix, part.group_id);
            let entry = Value::List(vec![
                Value::Int(1),
                Value::Str(part.task_id.clone()),
                Value::str(part.state.as_str()),
                part.result,
            ]);
            let encoded = self.encoder.serializer.encode(&entry);
            let score = part
                .group_index
                .map_or_else(|| "+inf".to_owned(), |i| i.to_string());
            let script: &Script = if record.is_some() {
                &STORE_AND_CHORD_PART
            } else {
                &CHORD_PART
            };
            let mut invocation = script.prepare_invoke();
            invocation
                .key(format!("{group}.j"))
                .key(format!("{group}.t"))
                .key(format!("{group}.s"))
                .key(&group)
                .arg(encoded)
                .arg(score)
                .arg(self.expires)
                .arg(if self.chord_ordered { "1" } else { "0" });
            if let Some(record) = &record {
                invocation
                    .key(format!(
                        "{}celery-task-meta-{}",
                        self.prefix, record.task_id
                    ))
                    .arg(self.expires)
                    .arg(&self.marker.0)
                    .arg(self.marker.1)
                    .arg(self.encoder.encode(record));
            }
            let invocation = &invocation;
            let reply: Vec<redis::Value> = self
                .link
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            let code = match reply.first() {
                Some(redis::Value::Int(c)) => *c,
                _ => return Err(BackendError::Decode("unexpected chord script reply".into())),
            };
            Ok(match code {
                0 => ChordProgress::NoSize,
                1 => ChordProgress::Pending,
                3 => ChordProgress::Complex,
                _ => {
                    let raw = match reply.into_iter().nth(1) {
                        Some(redis::Value::Array(items)) => items,
                        _ => Vec::new(),
                    };
                    let mut parts = Vec::with_capacity(raw.len());
                    for item in raw {
                        if let redis::Value::BulkString(bytes) = item {
                            parts.push(decode_stored(&bytes)?);
                        }
                    }
                    ChordProgress::Ready(parts)
                }
            })
        }
        .boxed()
    }

    fn set_chord_size<'a>(
        &'a self,
        group_id: &'a str,
        size: usize,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            // Celery's `RedisBackend.set`: SETEX (SET without expiry) and PUBLISH the value.
            let key = format!("{}celery-taskset-meta-{group_id}.s", self.prefix);
            let mut pipe = redis::pipe();
            if self.expires > 0 {
                pipe.cmd("SETEX")
                    .arg(&key)
                    .arg(self.expires)
                    .arg(size)
                    .ignore();
            } else {
                pipe.cmd("SET").arg(&key).arg(size).ignore();
            }
            pipe.cmd("PUBLISH").arg(&key).arg(size).ignore();
            let pipe = &pipe;
            self.link
                .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn chord_cleanup<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let group = format!("{}celery-taskset-meta-{group_id}", self.prefix);
            let mut del = redis::cmd("DEL");
            del.arg(format!("{group}.j"))
                .arg(format!("{group}.t"))
                .arg(format!("{group}.s"));
            self.query::<()>(&del).await
        }
        .boxed()
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
