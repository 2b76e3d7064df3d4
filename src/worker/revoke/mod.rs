//! Revoked tasks (Celery's `worker.state.revoked` and `revoked_stamps`): the ids and stamped
//! headers revoked on this worker, checked when a message arrives, when its ETA comes and
//! right before it runs; requests held here (waiting for their ETA, a rate-limit token or a
//! slot) are woken at once by a revoke, and running ones are ended by a revoke with
//! `terminate=True`.
//!
//! Ending a running task: an async task's future is dropped (it stops at its next `.await`);
//! a blocking task's thread cannot be stopped safely, so it is left to finish in the
//! background, its result discarded and its slot taken until it returns (as at a hard time
//! limit). Either way the task is stored as REVOKED (`terminated`) and its message acked at
//! once.

pub mod command;
pub mod limited_set;
pub mod signal;
pub mod statedb;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;
use tokio::sync::watch;

use crate::protocol::TaskMessage;
use crate::value::Value;
use limited_set::{LimitedSet, REVOKES_MAX, REVOKE_EXPIRES};
use statedb::StateDbError;

/// What a revoke says about a request held or running here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not revoked.
    Live,
    /// Revoked: it must not start.
    Revoked,
    /// Revoked with `terminate=True` and this signal: it must not start, and it is ended if
    /// running.
    Terminated(i32),
}

/// Why a message was found revoked.
#[derive(Debug, Clone, PartialEq)]
pub enum RevokedBy {
    /// Its task id was revoked.
    Id,
    /// One of its stamped headers has a revoked value.
    Stamp {
        /// The header.
        header: String,
        /// The stamp.
        value: Value,
    },
}

/// A request held or running here, watched for revokes.
struct Watched {
    verdict: watch::Sender<Verdict>,
    holders: usize,
    /// It has started running (not only held).
    running: bool,
    stamps: Vec<(String, Value)>,
}

struct Inner {
    ids: LimitedSet,
    stamps: IndexMap<String, Vec<Value>>,
    watched: HashMap<String, Watched>,
}

/// The worker's revoked ids and stamps, and the requests that watch them.
pub struct Revocations {
    inner: Mutex<Inner>,
    statedb: Option<PathBuf>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("statedb", &self.statedb)
            .finish_non_exhaustive()
    }
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations::with_limits(REVOKES_MAX, REVOKE_EXPIRES, None)
    }
}

impl Revocations {
    fn with_limits(max: usize, expires: std::time::Duration, statedb: Option<PathBuf>) -> Self {
        Revocations {
            inner: Mutex::new(Inner {
                ids: LimitedSet::new(max, expires),
                stamps: IndexMap::new(),
                watched: HashMap::new(),
            }),
            statedb,
        }
    }

    /// The store, with the ids saved in `statedb` (`--statedb`) when given; they are saved
    /// there again after every revoke and by [`Revocations::save`].
    pub fn open(statedb: Option<PathBuf>) -> Result<Revocations, StateDbError> {
        let saved = match &statedb {
            Some(path) => statedb::load(path)?,
            None => Vec::new(),
        };
        let store = Revocations::with_limits(REVOKES_MAX, REVOKE_EXPIRES, statedb);
        if !saved.is_empty() {
            tracing::info!(
                count = saved.len(),
                "revoked task ids read from the state db"
            );
        }
        store.merge(saved);
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every change is one step).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The revoked ids, oldest first (what the `hello` (mingle) reply and the state db carry).
    pub fn ids(&self) -> Vec<String> {
        let mut inner = self.lock();
        inner.ids.purge(Instant::now());
        inner.ids.ids()
    }

    /// Adds ids revoked elsewhere (another worker's `hello`, the state db), stamped now, as
    /// Celery's `merge_revoked` does.
    pub fn merge(&self, ids: impl IntoIterator<Item = String>) {
        let now = Instant::now();
        let mut inner = self.lock();
        for id in ids {
            inner.ids.add(&id, now);
        }
    }

    /// Revokes `ids`; with `terminate` (a signal number) running ones are ended too. Requests
    /// held or running here are told at once. Returns the ids of those requests (what
    /// Celery's reply names as terminated).
    pub fn revoke(&self, ids: &[String], terminate: Option<i32>) -> Vec<String> {
        let verdict = terminate.map_or(Verdict::Revoked, Verdict::Terminated);
        let now = Instant::now();
        let found = {
            let mut inner = self.lock();
            let mut found = Vec::new();
            for id in ids {
                inner.ids.add(id, now);
                if let Some(w) = inner.watched.get(id) {
                    tell(w, verdict);
                    found.push(id.clone());
                }
            }
            found
        };
        self.save();
        found
    }

    /// Revokes every task whose stamped header `header` holds one of `values` (Celery's
    /// `revoke_by_stamped_headers`); with `terminate`, running ones are ended. Returns, per
    /// header, the stamps of the requests held or running here that matched.
    pub fn revoke_stamps(
        &self,
        headers: &[(String, Vec<Value>)],
        terminate: Option<i32>,
    ) -> IndexMap<String, Vec<Value>> {
        let verdict = terminate.map_or(Verdict::Revoked, Verdict::Terminated);
        let mut inner = self.lock();
        for (header, values) in headers {
            let known = inner.stamps.entry(header.clone()).or_default();
            known.extend(values.iter().cloned());
        }
        let mut matched: IndexMap<String, Vec<Value>> = IndexMap::new();
        for w in inner.watched.values() {
            let mut hit = false;
            for (header, values) in headers {
                for (name, stamp) in &w.stamps {
                    if name == header && values.contains(stamp) {
                        let seen = matched.entry(header.clone()).or_default();
                        if !seen.contains(stamp) {
                            seen.push(stamp.clone());
                        }
                        hit = true;
                    }
                }
            }
            if hit {
                tell(w, verdict);
            }
        }
        matched
    }

    /// Whether `m` is revoked, by its id or by one of its stamped headers.
    pub fn check(&self, m: &TaskMessage) -> Option<RevokedBy> {
        let inner = self.lock();
        if inner.ids.contains(&m.id, Instant::now()) {
            return Some(RevokedBy::Id);
        }
        if inner.stamps.is_empty() {
            return None;
        }
        stamps_of(m).into_iter().find_map(|(header, value)| {
            let revoked = inner.stamps.get(&header)?;
            revoked
                .contains(&value)
                .then_some(RevokedBy::Stamp { header, value })
        })
    }

    /// Watches `m` for revokes while it is held or running here (until the watch is dropped).
    pub fn watch(self: &Arc<Self>, m: &TaskMessage) -> Watch {
        let mut inner = self.lock();
        let entry = inner
            .watched
            .entry(m.id.clone())
            .or_insert_with(|| Watched {
                verdict: watch::Sender::new(Verdict::Live),
                holders: 0,
                running: false,
                stamps: stamps_of(m),
            });
        entry.holders += 1;
        Watch {
            store: Arc::clone(self),
            id: m.id.clone(),
            verdict: entry.verdict.subscribe(),
        }
    }

    /// Those of `ids` running here now.
    pub fn running(&self, ids: &[String]) -> Vec<String> {
        let inner = self.lock();
        ids.iter()
            .filter(|id| inner.watched.get(*id).is_some_and(|w| w.running))
            .cloned()
            .collect()
    }

    /// Saves the revoked ids to the state db, if there is one; a failure is logged.
    pub fn save(&self) {
        let Some(path) = &self.statedb else { return };
        if let Err(e) = statedb::save(path, self.ids()) {
            tracing::error!(error = %e, "could not save the revoked task ids to the state db");
        }
    }
}

/// Tells a watched request `verdict`; a later plain revoke does not undo a terminate.
fn tell(w: &Watched, verdict: Verdict) {
    w.verdict.send_if_modified(|v| {
        if matches!(v, Verdict::Terminated(_)) && verdict == Verdict::Revoked {
            return false;
        }
        *v = verdict;
        true
    });
}

/// The stamps a message carries (Celery's `Request.stamps`): for each name in its
/// `stamped_headers`, the value in its `stamps` header, one entry per value when it is a
/// list.
fn stamps_of(m: &TaskMessage) -> Vec<(String, Value)> {
    let Some(Value::List(names) | Value::Tuple(names)) = m.headers.get("stamped_headers") else {
        return Vec::new();
    };
    let Some(Value::Dict(given)) = m.headers.get("stamps") else {
        return Vec::new();
    };
    let mut stamps = Vec::new();
    for name in names.iter().filter_map(Value::as_str) {
        match given.get(name) {
            None | Some(Value::None) => {}
            Some(Value::List(values) | Value::Tuple(values)) => {
                stamps.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
            }
            Some(value) => stamps.push((name.to_owned(), value.clone())),
        }
    }
    stamps
}

/// A request's watch on the revokes, held while it is held or running here.
pub struct Watch {
    store: Arc<Revocations>,
    id: String,
    verdict: watch::Receiver<Verdict>,
}

impl Watch {
    /// Marks the request as running (it has its slot and starts).
    pub fn started(&self) {
        let mut inner = self.store.lock();
        if let Some(w) = inner.watched.get_mut(&self.id) {
            w.running = true;
        }
    }

    /// What revokes say now.
    pub fn verdict(&self) -> Verdict {
        *self.verdict.borrow()
    }

    /// Resolves once the request is revoked (never, if it is not).
    pub async fn revoked(&mut self) -> Verdict {
        let seen = match self.verdict.wait_for(|v| *v != Verdict::Live).await {
            Ok(v) => Some(*v),
            Err(_) => None,
        };
        match seen {
            Some(v) => v,
            None => std::future::pending().await,
        }
    }

    /// Resolves with the signal once the request is revoked with `terminate=True`.
    pub async fn terminated(&mut self) -> i32 {
        let seen = match self
            .verdict
            .wait_for(|v| matches!(v, Verdict::Terminated(_)))
            .await
        {
            Ok(v) => Some(*v),
            Err(_) => None,
        };
        match seen {
            Some(Verdict::Terminated(signum)) => signum,
            Some(_) => libc::SIGTERM,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut inner = self.store.lock();
        if let Some(w) = inner.watched.get_mut(&self.id) {
            w.holders = w.holders.saturating_sub(1);
            if w.holders == 0 {
                inner.watched.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
