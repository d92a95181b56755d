//! How a failing request tells its balancer's driver, without the request path holding a
//! reference to the driver.
//!
//! A response future reaches its endpoint's counters through a `'static` slot (see
//! `arena.rs`), not through an `Arc` to the balancer, so it has nothing to notify. Instead the
//! slot holds the number of its balancer's alarm, and the rare failure that completes a run of
//! consecutive failures looks the alarm up here: a lock on the failure path only, never on a
//! success.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

static ALARMS: Mutex<Option<HashMap<u64, Arc<Notify>>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

fn alarms() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Arc<Notify>>>> {
    // Each critical section is one insert, remove or lookup: always consistent.
    ALARMS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One balancer's alarm: rung by its endpoints' failures, awaited by its driver. Unregistered
/// when dropped.
#[derive(Debug)]
pub(crate) struct Alarm {
    id: u64,
    notify: Arc<Notify>,
}

impl Alarm {
    pub(crate) fn new() -> Self {
        let id = NEXT.fetch_add(1, Relaxed);
        let notify = Arc::new(Notify::new());
        alarms()
            .get_or_insert_with(HashMap::new)
            .insert(id, Arc::clone(&notify));
        Alarm { id, notify }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Waits until the alarm rings (at once if it rang since the last wait).
    pub(crate) async fn rung(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(map) = alarms().as_mut() {
            map.remove(&self.id);
        }
    }
}

/// Rings alarm `id`, if it still exists.
#[cold]
pub(super) fn ring(id: u64) {
    if id == 0 {
        return;
    }
    let notify = alarms().as_ref().and_then(|m| m.get(&id).cloned());
    if let Some(notify) = notify {
        notify.notify_one();
    }
}
