//! Progress of writes. The report writer and history pushes register each write while it runs,
//! so a health check can tell a writer that is busy from one that has stopped making progress
//! (a wedged transaction, a runaway computation), which otherwise looks exactly like an idle one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    running: Mutex<HashMap<u64, Instant>>,
}

/// A write in progress; it ends when dropped.
pub struct Writing {
    inner: Arc<Inner>,
    id: u64,
}

impl Watchdog {
    /// Registers a write until the returned guard is dropped.
    pub fn writing(&self) -> Writing {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner
            .running
            .lock()
            .expect("watchdog lock")
            .insert(id, Instant::now());
        Writing {
            inner: self.inner.clone(),
            id,
        }
    }

    /// How long the oldest write still running has been at it.
    pub fn oldest_write(&self) -> Option<Duration> {
        let running = self.inner.running.lock().expect("watchdog lock");
        running.values().min().map(Instant::elapsed)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Ok(mut running) = self.inner.running.lock() {
            running.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_oldest_write_until_it_ends() {
        let w = Watchdog::default();
        assert!(w.oldest_write().is_none());
        let first = w.writing();
        std::thread::sleep(Duration::from_millis(20));
        let _second = w.writing();
        assert!(w.oldest_write().unwrap() >= Duration::from_millis(20));
        drop(first);
        assert!(w.oldest_write().unwrap() < Duration::from_millis(20));
    }
}
