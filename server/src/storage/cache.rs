//! Results computed from a project's cells, tagged with the project revision they reflect
//! (every stored batch of reports and every history push bumps it, in the same transaction), so
//! readers can bring them up to date from what changed since.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub(super) struct RevisionCache<K, V> {
    entries: Mutex<HashMap<K, (i64, Arc<V>)>>,
}

impl<K, V> Default for RevisionCache<K, V> {
    fn default() -> Self {
        RevisionCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V> RevisionCache<K, V> {
    const MAX_ENTRIES: usize = 256;

    /// The newest value computed, whatever its revision.
    pub(super) fn latest(&self, key: &K) -> Option<(i64, Arc<V>)> {
        let entries = self.entries.lock().expect("cache lock");
        entries.get(key).map(|(r, v)| (*r, v.clone()))
    }

    pub(super) fn put(&self, key: K, revision: i64, value: Arc<V>) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        // Never replace a newer value with an older one computed concurrently.
        if entries.get(&key).is_none_or(|(r, _)| *r <= revision) {
            entries.insert(key, (revision, value));
        }
    }
}
