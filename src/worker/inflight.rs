//! The delivery tags this worker holds unsettled, in delivery order: at shutdown, each one
//! still here is given back to the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Unsettled delivery tags.
#[derive(Debug, Default)]
pub struct Inflight {
    seq: AtomicU64,
    tags: Mutex<HashMap<String, u64>>,
}

impl Inflight {
    /// Records a tag as held. Returns false if it is held already: the broker delivered
    /// again a message this worker has not settled (a restore raced a renewal), and the
    /// second copy must not run.
    pub fn insert(&self, tag: &str) -> bool {
        if tag.is_empty() {
            return true;
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let Ok(mut tags) = self.tags.lock() else {
            return true;
        };
        match tags.entry(tag.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(n);
                true
            }
        }
    }

    /// Every tag held now, in no particular order.
    pub fn tags(&self) -> Vec<String> {
        self.tags
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Records a tag as settled.
    pub fn remove(&self, tag: &str) {
        if let Ok(mut tags) = self.tags.lock() {
            tags.remove(tag);
        }
    }

    /// How many tags are held.
    pub fn len(&self) -> usize {
        self.tags.lock().map_or(0, |tags| tags.len())
    }

    /// Takes every tag still held, oldest delivery first.
    pub fn drain(&self) -> Vec<String> {
        let Ok(mut tags) = self.tags.lock() else {
            return Vec::new();
        };
        let mut all: Vec<(String, u64)> = tags.drain().collect();
        all.sort_unstable_by_key(|(_, n)| *n);
        all.into_iter().map(|(t, _)| t).collect()
    }
}
