//! Chords on the Redis backend with Celery 5.7's keys, so Python and rcelery workers share one
//! chord. For a chord whose group id is `<gid>` (all under `celery-taskset-meta-<gid>`):
//!
//! | key | what |
//! |---|---|
//! | `.j` | the finished parts, `[1, task_id, state, result]` (a sorted set by group index, or a list) |
//! | `.s` | the header's size, written before the parts are sent (`set_chord_size`) |
//! | `.t` | a correction to the size (older clients) |
//! | `.d` | the parts counted so far, `task_id:group_index`: a part that runs twice counts once |
//! | `.c` | the dispatch claim: a token while a worker sends the body, `done` after it was sent |
//!
//! The part that completes the chord takes the claim in the same script call that counts it;
//! before sending the body it extends the claim (or gives up if another worker holds it), and
//! after sending it deletes the counters and marks the chord `done`, so late copies of parts
//! neither recreate the chord nor send the body again. A chord that failed forgets its size.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::Script;

use super::RedisBackend;
use crate::backend::meta::decode_stored;
use crate::backend::{BackendError, ChordPart, ChordProgress, NativeChords, ResultRecord};
use crate::redis_client::lane::STORE_RESULTS_LUA;
use crate::value::Value;

/// How a backend keeps chord parts and claims dispatches.
#[derive(Debug, Clone, Copy)]
pub struct ChordSettings {
    /// `result_chord_ordered`: parts in a sorted set by group index (Celery's default) rather
    /// than a list in completion order.
    pub ordered: bool,
    /// `result_chord_join_timeout`: the claim lasts twice this (at least 5 s), as in Celery.
    pub join_timeout: Duration,
}

impl Default for ChordSettings {
    fn default() -> Self {
        ChordSettings {
            ordered: true,
            join_timeout: Duration::from_secs(3),
        }
    }
}

impl ChordSettings {
    /// Seconds the claim taken by the completing part lasts (Celery: `max(5, 2 × join
    /// timeout)`).
    fn claim_seconds(&self) -> u64 {
        ((self.join_timeout.as_secs_f64() * 2.0) as u64).max(5)
    }

    /// Seconds the claim is extended to while the body is published. Celery derives this from
    /// its publish retry policy (21 s with the defaults); rcelery's publishing retries through
    /// outages on its own, so the same default bound is used.
    fn publish_seconds(&self) -> u64 {
        self.claim_seconds().max(PUBLISH_CLAIM_SECONDS)
    }

    /// Seconds the `done` marker stays (Celery: `max(2 × claim, 300)`).
    fn done_seconds(&self) -> u64 {
        (self.claim_seconds() * 2).max(300)
    }
}

/// What Celery's default publish retry policy gives as the claim's extension.
const PUBLISH_CLAIM_SECONDS: u64 = 21;

/// The claims this worker holds, by group id.
#[derive(Debug, Default)]
pub struct Claims(Mutex<HashMap<String, String>>);

impl Claims {
    fn insert(&self, group: &str, token: String) {
        if let Ok(mut claims) = self.0.lock() {
            claims.insert(group.to_owned(), token);
        }
    }

    fn get(&self, group: &str) -> Option<String> {
        self.0.lock().ok()?.get(group).cloned()
    }

    fn take(&self, group: &str) -> Option<String> {
        self.0.lock().ok()?.remove(group)
    }
}

/// Counts a part once and, when it completes the chord, claims the dispatch. Keys: `.j`, `.t`,
/// `.s`, the taskset meta, `.d`, `.c`. Returns `{-1}` already sent, `{0}` no chord size, `{1}`
/// pending (or completed but claimed by another worker), `{2, parts}` ready and claimed,
/// `{3}` claimed and the header was saved as a `GroupResult`.
const CHORD_PART_LUA: &str = r#"
local function chord_part(k, tid, part, score, exp, gexp, ordered, claim_exp, token)
  local jkey, tkey, skey, gkey, dkey, ckey = k[1], k[2], k[3], k[4], k[5], k[6]
  if redis.call('GET', ckey) == 'done' then return {-1} end
  local member = tid .. ':' .. score
  if redis.call('SISMEMBER', dkey, member) == 0 then
    if ordered then
      redis.call('ZADD', jkey, score, part)
    else
      redis.call('RPUSH', jkey, part)
    end
    redis.call('SADD', dkey, member)
  end
  local ready
  if ordered then
    ready = redis.call('ZCOUNT', jkey, '-inf', '+inf')
  else
    ready = redis.call('LLEN', jkey)
  end
  if exp > 0 then
    for _, key in ipairs({jkey, tkey, skey, dkey}) do redis.call('EXPIRE', key, exp) end
    if gexp > 0 then redis.call('EXPIRE', gkey, gexp) end
  end
  local diff = redis.call('GET', tkey)
  local size = redis.call('GET', skey)
  if not size then return {0} end
  local total = tonumber(size) + tonumber(diff or '0')
  if ready ~= total then return {1} end
  if not redis.call('SET', ckey, token, 'NX', 'EX', claim_exp) then return {1} end
  if redis.call('EXISTS', gkey) == 1 then return {3} end
  if ordered then return {2, redis.call('ZRANGE', jkey, 0, -1)} end
  return {2, redis.call('LRANGE', jkey, 0, total)}
end
"#;

/// The call of [`CHORD_PART_LUA`] on KEYS 1–6 and ARGV 1–8: task id, part, score, expiry,
/// group expiry, `1`/`0` ordered, claim seconds, claim token.
const CALL_CHORD_PART: &str = "return chord_part({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}, ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1', tonumber(ARGV[7]), ARGV[8])";

/// A chord part alone (its result ignored or stored elsewhere).
static CHORD_PART: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{CHORD_PART_LUA}\n{CALL_CHORD_PART}\n")));

/// The part's own result stored first (Celery's rule, see [`STORE_RESULTS_LUA`]), then the
/// chord part: one round trip where Celery makes two. KEYS: as [`CHORD_PART`], then the meta
/// key. ARGV: as [`CHORD_PART`], then expiry, SUCCESS marker, the offset the marker must start
/// within, and the meta.
static STORE_AND_CHORD_PART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{STORE_RESULTS_LUA}\n{CHORD_PART_LUA}\nstore_results(7, 1, tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11]), 12)\n{CALL_CHORD_PART}\n"
    ))
});

/// Extends the claim while this worker owns it, or takes it again if it expired while the
/// chord's data is still there. KEYS: `.c`, `.s`. ARGV: token, seconds.
static EXTEND_CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2])) end
if not owner and redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]), 'NX') then return 1 end
end
return 0
"#,
    )
});

/// Deletes the chord's counters and marks it `done`, if this worker still owns the claim.
/// KEYS: `.c`, `.j`, `.t`, `.s`, `.d`. ARGV: token, seconds the marker stays.
static CLEANUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local done = tonumber(ARGV[2])
if done and done > 0 then redis.call('SET', KEYS[1], 'done', 'EX', done) end
return 1
"#,
    )
});

impl RedisBackend {
    /// The chord's key stem, `celery-taskset-meta-<gid>` under the global prefix.
    fn chord_key(&self, group_id: &str) -> String {
        format!("{}celery-taskset-meta-{group_id}", self.prefix)
    }

    /// How long a saved `GroupResult` and header results are kept (Celery 5.7's
    /// `_chord_result_expires`; rcelery has no separate chord expiry, so `result_expires`).
    fn chord_result_expires(&self) -> u64 {
        self.expires
    }
}

impl NativeChords for RedisBackend {
    fn chord_part_return(
        &self,
        part: ChordPart,
        record: Option<ResultRecord>,
    ) -> BoxFuture<'_, Result<ChordProgress, BackendError>> {
        async move {
            let group = self.chord_key(&part.group_id);
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
            let token = uuid::Uuid::new_v4().simple().to_string();
            let script: &Script = if record.is_some() {
                &STORE_AND_CHORD_PART
            } else {
                &CHORD_PART
            };
            let mut invocation = script.prepare_invoke();
            for suffix in [".j", ".t", ".s", "", ".d", ".c"] {
                invocation.key(format!("{group}{suffix}"));
            }
            invocation
                .arg(&part.task_id)
                .arg(encoded)
                .arg(score)
                .arg(self.expires)
                .arg(self.chord_result_expires())
                .arg(if self.chords.ordered { "1" } else { "0" })
                .arg(self.chords.claim_seconds())
                .arg(&token);
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
                -1 => ChordProgress::Fired,
                0 => ChordProgress::NoSize,
                1 => ChordProgress::Pending,
                3 => {
                    self.claims.insert(&part.group_id, token);
                    ChordProgress::Complex
                }
                _ => {
                    self.claims.insert(&part.group_id, token);
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
            // Celery 5.7: a frozen chord applied again reuses its group id but is a new run,
            // so its claim (or `done` marker) goes first; then `SET .s size EX expires`.
            let group = self.chord_key(group_id);
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(format!("{group}.c")).ignore();
            let set = pipe.cmd("SET").arg(format!("{group}.s")).arg(size);
            if self.expires > 0 {
                set.arg("EX").arg(self.expires);
            }
            set.ignore();
            let pipe = &pipe;
            self.link
                .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn keep_dispatch_claim<'a>(
        &'a self,
        group_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        async move {
            let Some(token) = self.claims.get(group_id) else {
                return Ok(false);
            };
            let group = self.chord_key(group_id);
            let mut invocation = EXTEND_CLAIM.prepare_invoke();
            invocation
                .key(format!("{group}.c"))
                .key(format!("{group}.s"))
                .arg(token)
                .arg(self.chords.publish_seconds());
            let invocation = &invocation;
            let kept: i64 = self
                .link
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            if kept == 0 {
                self.claims.take(group_id);
            }
            Ok(kept != 0)
        }
        .boxed()
    }

    fn chord_cleanup<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let group = self.chord_key(group_id);
            let Some(token) = self.claims.take(group_id) else {
                return Ok(());
            };
            let mut invocation = CLEANUP.prepare_invoke();
            for suffix in [".c", ".j", ".t", ".s", ".d"] {
                invocation.key(format!("{group}{suffix}"));
            }
            invocation.arg(token).arg(self.chords.done_seconds());
            let invocation = &invocation;
            let cleaned: i64 = self
                .link
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            if cleaned == 0 {
                tracing::warn!(
                    "chord {group_id}: its dispatch claim was lost before cleanup; the chord's data is left to expire"
                );
            }
            Ok(())
        }
        .boxed()
    }

    fn chord_failed<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            self.claims.take(group_id);
            let skey = format!("{}.s", self.chord_key(group_id));
            self.query::<()>(redis::cmd("DEL").arg(skey)).await
        }
        .boxed()
    }
}
