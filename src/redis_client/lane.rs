//! The settle lane: acks and result writes bound for one Redis server, queued in the order the
//! worker issued them and sent together inside the broker's next fetch script.
//!
//! With `acks_late`, Celery stores a task's result and then acks its message, and the ack frees
//! the prefetch slot the next fetch fills. When broker and result backend live on the same
//! Redis server, all three can be one script call: store the results, remove the acked
//! messages from `unacked`, pop the next batch. A batch of tasks then costs one round trip
//! instead of two. Order holds because writes and acks wait in one queue, a whole snapshot
//! goes in one script, and the script runs its writes before its acks: a result queued before
//! its message's ack is stored before that ack, or both fail together.
//!
//! The broker owns the lane (it sends it); a Redis result backend on the same server attaches
//! to it with a [`WriteTarget`]. Nothing here knows about tasks: a write is a key, a payload
//! and Celery's store rule (never overwrite a SUCCESS, `SETEX` + `PUBLISH`).

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{oneshot, Notify};

/// Most acks in one script call.
pub const MAX_ACKS: usize = 2048;

/// Most result writes in one script call.
pub const MAX_WRITES: usize = 512;

/// Celery's Redis result store rule as a Lua function, shared by the result backend's own
/// script and the broker's fetch script: for `n` keys starting at `KEYS[first_key]`, skip a
/// key whose stored meta already says SUCCESS (the marker within its first bytes), else write
/// the payload (`ARGV[first_payload + i - 1]`) with `SETEX` (plain `SET` when `exp` is 0) and
/// `PUBLISH` it on the key's name so waiting `get()`s wake at once.
pub const STORE_RESULTS_LUA: &str = r#"
local function store_results(first_key, n, exp, marker, within, first_payload)
  local head = within + #marker - 1
  local keys = {}
  for i = 1, n do keys[i] = KEYS[first_key + i - 1] end
  local current = redis.call('MGET', unpack(keys))
  for i = 1, n do
    local cur = current[i]
    if not (cur and string.find(string.sub(cur, 1, head), marker, 1, true)) then
      local payload = ARGV[first_payload + i - 1]
      if exp > 0 then
        redis.call('SETEX', keys[i], exp, payload)
      else
        redis.call('SET', keys[i], payload)
      end
      redis.call('PUBLISH', keys[i], payload)
    end
  end
end
"#;

/// Where an attached result backend writes, and its store rule's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteTarget {
    /// The backend's database number (the script `SELECT`s it for the writes).
    pub db: i64,
    /// `SETEX` seconds; 0 writes without expiry.
    pub expires: u64,
    /// The bytes that mark a stored SUCCESS meta.
    pub success_marker: Vec<u8>,
    /// The marker must start within this many bytes of the stored value.
    pub marker_within: usize,
}

/// One result to write before the acks queued after it.
#[derive(Debug)]
pub struct ResultWrite {
    /// The meta key.
    pub key: String,
    /// The encoded meta.
    pub payload: Vec<u8>,
    /// Told the outcome once the script has run (or failed).
    pub done: oneshot::Sender<Result<(), String>>,
}

#[derive(Debug, Default)]
struct Queue {
    writes: Vec<ResultWrite>,
    acks: Vec<String>,
}

/// A Redis broker's settle lane and the URL of its server, offered as a broker capability
/// (see [`crate::broker::factory::Capabilities`]): a Redis result backend on the same server
/// attaches to the lane.
#[derive(Debug, Clone)]
pub struct SharedLane {
    /// The broker URL (password included; never log it).
    pub server_url: String,
    /// The lane.
    pub lane: Arc<SettleLane>,
}

/// Acks and writes waiting for the next script call, shared by the worker (which queues), the
/// fetch loop (which carries them) and the settlement task (which sends what no fetch takes).
#[derive(Debug, Default)]
pub struct SettleLane {
    queue: Mutex<Queue>,
    wake: Notify,
    /// Held while a taken snapshot is on its way to Redis, so snapshots go out one at a time
    /// and a flush can wait for the last one.
    sending: tokio::sync::Mutex<()>,
    target: OnceLock<WriteTarget>,
}

/// A snapshot taken from the lane; settle it with [`Taken::sent`] or [`Taken::failed`].
#[derive(Debug, Default)]
pub struct Taken<'a> {
    /// Results to write first.
    pub writes: Vec<ResultWrite>,
    /// Delivery tags to ack after the writes.
    pub acks: Vec<String>,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Taken<'_> {
    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.acks.is_empty()
    }

    /// The script ran: every write is stored.
    pub fn sent(self) {
        for w in self.writes {
            let _ = w.done.send(Ok(()));
        }
    }

    /// The script did not run (or its reply was lost): writes and acks go back to the front
    /// of the lane, in their order, to be sent with the next call. A write's waiter hears
    /// only once it is stored, so a result is never dropped for a broken connection.
    pub fn failed(self, lane: &SettleLane) {
        if self.writes.is_empty() && self.acks.is_empty() {
            return;
        }
        let mut q = lane.lock();
        let mut writes = self.writes;
        writes.append(&mut q.writes);
        q.writes = writes;
        let mut acks = self.acks;
        acks.append(&mut q.acks);
        q.acks = acks;
    }
}

impl SettleLane {
    /// Queues an ack.
    pub fn push_ack(&self, tag: String) {
        self.lock().acks.push(tag);
        self.wake.notify_one();
    }

    /// Queues a result write. Without an attached backend (see [`SettleLane::attach`]) the
    /// script would have nowhere to write it, so the write is refused at once.
    pub fn push_write(&self, write: ResultWrite) {
        if self.target().is_none() {
            let _ = write.done.send(Err(
                "no result backend is attached to the settle lane".to_owned()
            ));
            return;
        }
        self.lock().writes.push(write);
        self.wake.notify_one();
    }

    /// Attaches the result backend's target; false if another one is attached already.
    pub fn attach(&self, target: WriteTarget) -> bool {
        self.target.set(target).is_ok()
    }

    /// The attached backend's target, if any.
    pub fn target(&self) -> Option<&WriteTarget> {
        self.target.get()
    }

    /// Result writes queued and not yet sent.
    pub fn pending_writes(&self) -> usize {
        self.lock().writes.len()
    }

    /// Resolves when something was queued since the last wake.
    pub async fn queued(&self) {
        self.wake.notified().await;
    }

    /// Takes everything queued (up to the batch limits), oldest first, with the guard that
    /// keeps the next snapshot from overtaking this one on the wire.
    pub async fn take(&self) -> Taken<'_> {
        if self.lock().is_empty() {
            return Taken::default();
        }
        let guard = self.sending.lock().await;
        let mut q = self.lock();
        // Acks are only taken if every write queued before them is taken too: writes go
        // whole, acks up to the limit only when no write is left behind.
        let nw = q.writes.len().min(MAX_WRITES);
        let writes: Vec<ResultWrite> = q.writes.drain(..nw).collect();
        let acks = if q.writes.is_empty() {
            let na = q.acks.len().min(MAX_ACKS);
            q.acks.drain(..na).collect()
        } else {
            Vec::new()
        };
        drop(q);
        let guard = (!writes.is_empty() || !acks.is_empty()).then_some(guard);
        Taken {
            writes,
            acks,
            _guard: guard,
        }
    }

    /// Waits until the snapshot on its way to Redis (if any) has been answered.
    pub async fn wait_sent(&self) {
        drop(self.sending.lock().await);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.acks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str) -> (ResultWrite, oneshot::Receiver<Result<(), String>>) {
        let (done, rx) = oneshot::channel();
        (
            ResultWrite {
                key: key.into(),
                payload: b"{}".to_vec(),
                done,
            },
            rx,
        )
    }

    fn attached() -> SettleLane {
        let lane = SettleLane::default();
        assert!(lane.attach(WriteTarget {
            db: 1,
            expires: 0,
            success_marker: b"S".to_vec(),
            marker_within: 1
        }));
        lane
    }

    #[tokio::test]
    async fn a_write_without_an_attached_backend_is_refused() {
        let lane = SettleLane::default();
        let (w, rx) = write("k");
        lane.push_write(w);
        assert!(rx.await.unwrap().is_err());
        assert!(lane.take().await.is_empty());
    }

    #[tokio::test]
    async fn a_snapshot_holds_writes_before_acks_and_failure_keeps_both_in_order() {
        let lane = attached();
        let (w, mut rx) = write("k1");
        lane.push_write(w);
        lane.push_ack("t1".into());
        let taken = lane.take().await;
        assert_eq!(taken.writes.len(), 1);
        assert_eq!(taken.acks, vec!["t1".to_owned()]);
        let (w2, _rx2) = write("k2");
        lane.push_write(w2);
        lane.push_ack("t2".into());
        taken.failed(&lane);
        assert!(
            rx.try_recv().is_err(),
            "the waiter hears nothing until the write is stored"
        );
        let again = lane.take().await;
        let keys: Vec<&str> = again.writes.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, vec!["k1", "k2"]);
        assert_eq!(again.acks, vec!["t1".to_owned(), "t2".to_owned()]);
        again.sent();
        assert_eq!(rx.await.unwrap(), Ok(()));
        assert!(lane.take().await.is_empty());
    }

    #[tokio::test]
    async fn acks_wait_while_earlier_writes_do_not_fit() {
        let lane = attached();
        let mut rxs = Vec::new();
        for i in 0..MAX_WRITES + 1 {
            let (w, rx) = write(&format!("k{i}"));
            lane.push_write(w);
            rxs.push(rx);
        }
        lane.push_ack("t".into());
        let first = lane.take().await;
        assert_eq!(first.writes.len(), MAX_WRITES);
        assert!(
            first.acks.is_empty(),
            "an ack must not overtake a write queued before it"
        );
        first.sent();
        let second = lane.take().await;
        assert_eq!((second.writes.len(), second.acks.len()), (1, 1));
    }
}
