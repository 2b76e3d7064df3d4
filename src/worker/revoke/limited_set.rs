//! A set of ids bounded in size and age, like Celery's `LimitedSet` for revoked ids.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Celery's `REVOKES_MAX` (env `CELERY_WORKER_REVOKES_MAX`): revoked ids kept at most.
pub const REVOKES_MAX: usize = 50_000;

/// Celery's `REVOKE_EXPIRES` (env `CELERY_WORKER_REVOKE_EXPIRES`): seconds a revoked id is
/// kept.
pub const REVOKE_EXPIRES: Duration = Duration::from_secs(10_800);

/// Ids in the order they were added, each forgotten `expires` after it was (last) added, the
/// oldest first when more than `max_len` are held.
#[derive(Debug)]
pub struct LimitedSet {
    max_len: usize,
    expires: Duration,
    /// id → (its latest addition's number, when it was added).
    added: HashMap<String, (u64, Instant)>,
    /// (addition number, id) in the order added; an entry whose number is not the id's
    /// latest is stale.
    order: VecDeque<(u64, String)>,
    /// The next addition's number.
    next: u64,
}

impl LimitedSet {
    /// An empty set holding at most `max_len` ids (0: no limit) for `expires` each.
    pub fn new(max_len: usize, expires: Duration) -> LimitedSet {
        LimitedSet {
            max_len,
            expires,
            added: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// Adds `id` (again), stamped now.
    pub fn add(&mut self, id: &str, now: Instant) {
        let n = self.next;
        self.next += 1;
        self.added.insert(id.to_owned(), (n, now));
        self.order.push_back((n, id.to_owned()));
        self.purge(now);
    }

    /// True while `id` is held and not expired.
    pub fn contains(&self, id: &str, now: Instant) -> bool {
        self.added
            .get(id)
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) < self.expires)
    }

    /// The ids held, oldest first.
    pub fn ids(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|(n, id)| self.added.get(id).is_some_and(|(m, _)| m == n))
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// How many ids are held.
    pub fn len(&self) -> usize {
        self.added.len()
    }

    /// True when no id is held.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
    }

    /// Forgets expired ids, then the oldest beyond `max_len`.
    pub fn purge(&mut self, now: Instant) {
        while let Some((n, id)) = self.order.front() {
            let Some((latest, t)) = self.added.get(id).copied() else {
                self.order.pop_front();
                continue;
            };
            let current = latest == *n;
            let expired = now.saturating_duration_since(t) >= self.expires;
            let over = self.max_len > 0 && self.added.len() > self.max_len;
            if !current {
                self.order.pop_front();
            } else if expired || over {
                self.added.remove(id);
                self.order.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_beyond_the_limit() {
        let mut s = LimitedSet::new(2, REVOKE_EXPIRES);
        let now = Instant::now();
        s.add("a", now);
        s.add("b", now);
        s.add("c", now);
        assert!(!s.contains("a", now));
        assert!(s.contains("b", now) && s.contains("c", now));
        assert_eq!(s.ids(), vec!["b", "c"]);
    }

    #[test]
    fn ids_expire() {
        let mut s = LimitedSet::new(10, Duration::from_secs(5));
        let t0 = Instant::now();
        s.add("a", t0);
        assert!(s.contains("a", t0 + Duration::from_secs(4)));
        assert!(!s.contains("a", t0 + Duration::from_secs(5)));
        s.purge(t0 + Duration::from_secs(6));
        assert!(s.is_empty());
    }

    #[test]
    fn adding_again_renews_an_id() {
        let mut s = LimitedSet::new(2, REVOKE_EXPIRES);
        let now = Instant::now();
        s.add("a", now);
        s.add("b", now);
        s.add("a", now);
        s.add("c", now);
        assert_eq!(s.ids(), vec!["a", "c"]);
        assert_eq!(s.len(), 2);
    }
}
