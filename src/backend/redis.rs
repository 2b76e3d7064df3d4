//! The Redis result backend, as Celery's `RedisBackend` writes it: `SETEX
//! celery-task-meta-<id> <result_expires> <meta>` and `PUBLISH` of the same bytes on the same
//! name (so a waiting `AsyncResult.get()` wakes at once), never overwriting a SUCCESS.
//!
//! Celery does GET, then SETEX + PUBLISH: two round trips per result. We do the same steps in
//! one Lua script, and send the results of many tasks in one pipeline.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::Script;
use tokio::sync::{mpsc, oneshot};

use super::{BackendError, MetaEncoder, ResultBackend, ResultRecord};
use crate::codec::Serializer;
use crate::redis_client;

/// Stores a batch of metas, skipping any key whose stored meta is already SUCCESS, and
/// publishes each stored one.
/// KEYS: meta keys. ARGV: expiry seconds (0: none), SUCCESS marker, last position the marker
/// may start at, then one payload per key.
const STORE: &str = r#"
local exp = tonumber(ARGV[1])
local marker = ARGV[2]
local head = tonumber(ARGV[3]) + #marker - 1
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if not (cur and string.find(string.sub(cur, 1, head), marker, 1, true)) then
    local payload = ARGV[3 + i]
    if exp > 0 then
      redis.call('SETEX', KEYS[i], exp, payload)
    else
      redis.call('SET', KEYS[i], payload)
    end
    redis.call('PUBLISH', KEYS[i], payload)
  end
end
return #KEYS
"#;

/// Most results in one pipeline.
const MAX_BATCH: usize = 512;

struct Write {
    key: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), BackendError>>,
}

/// Redis result backend.
pub struct RedisBackend {
    url: String,
    encoder: MetaEncoder,
    prefix: String,
    tx: mpsc::Sender<Write>,
}

impl RedisBackend {
    /// Connects and starts the batching writer. `expires: None` stores without expiry.
    pub async fn connect(
        url: &str,
        encoder: MetaEncoder,
        expires: Option<Duration>,
        global_keyprefix: &str,
    ) -> Result<RedisBackend, BackendError> {
        let mut conn = redis_client::connect(url, Some(Duration::from_secs(30))).await?;
        let script = Script::new(STORE);
        script.prepare_invoke().load_async(&mut conn).await?;
        let (tx, rx) = mpsc::channel(4096);
        let marker = match encoder.serializer {
            Serializer::Json => (br#"{"status": "SUCCESS""#.to_vec(), 1),
            Serializer::Pickle => (b"\x8c\x07SUCCESS".to_vec(), 32),
        };
        let expires = expires.map_or(0, |d| d.as_secs().max(1));
        tokio::spawn(writer(conn, script, rx, expires, marker));
        Ok(RedisBackend {
            url: url.to_owned(),
            encoder,
            prefix: key_prefix(global_keyprefix),
            tx,
        })
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
        async move {
            let payload = self.encoder.encode(&record);
            let key = format!("{}celery-task-meta-{}", self.prefix, record.task_id);
            let (done, wait) = oneshot::channel();
            self.tx.send(Write { key, payload, done }).await.map_err(|_| BackendError::Closed)?;
            wait.await.map_err(|_| BackendError::Closed)?
        }
        .boxed()
    }

    fn display_url(&self) -> String {
        redis_client::mask_password(&self.url)
    }
}

async fn writer(
    mut conn: MultiplexedConnection,
    script: Script,
    mut rx: mpsc::Receiver<Write>,
    expires: u64,
    marker: (Vec<u8>, usize),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let cmd = pipe.cmd("EVALSHA").arg(script.get_hash()).arg(batch.len());
        for w in &batch {
            cmd.arg(&w.key);
        }
        cmd.arg(expires).arg(&marker.0).arg(marker.1);
        for w in &batch {
            cmd.arg(&w.payload);
        }
        cmd.ignore();
        let mut result = pipe.query_async::<()>(&mut conn).await;
        if matches!(&result, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)) {
            // The server lost its script cache (restart): load it again and retry once.
            if script.prepare_invoke().load_async(&mut conn).await.is_ok() {
                result = pipe.query_async::<()>(&mut conn).await;
            }
        }
        let failed = result.err().map(|e| e.to_string());
        for w in batch.drain(..) {
            let outcome = match &failed {
                None => Ok(()),
                Some(msg) => Err(BackendError::Store(msg.clone())),
            };
            let _ = w.done.send(outcome);
        }
    }
}
