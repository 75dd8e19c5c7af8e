//! One function version's instances and their concurrency slots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fcx_runtime::Instance;

use crate::Deployed;

/// How long a stopping instance gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// An instance and how many requests it is serving.
pub struct Slot {
    pub instance: Instance,
    inflight: Mutex<u32>,
    dead: AtomicBool,
}

/// The instances of one deployed function version.
pub struct Pool {
    pub deployed: Arc<Deployed>,
    slots: Mutex<Vec<Arc<Slot>>>,
    retired: AtomicBool,
}

/// A request's hold on one concurrency slot of an instance; released on drop.
pub struct Lease {
    pool: Arc<Pool>,
    pub slot: Arc<Slot>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(&self.slot);
    }
}

impl Pool {
    pub fn new(deployed: Arc<Deployed>) -> Pool {
        Pool {
            deployed,
            slots: Mutex::default(),
            retired: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn concurrency(&self) -> u32 {
        self.deployed.function.instance_concurrency.max(1)
    }

    /// A free slot on a live instance, preferring the busiest so idle ones can be reclaimed.
    pub fn acquire_warm(self: &Arc<Self>) -> Option<Lease> {
        let limit = self.concurrency();
        let mut slots = self.lock();
        slots.retain(|s| !s.is_dead());
        let best = slots
            .iter()
            .filter_map(|s| {
                let n = *s.inflight.lock().unwrap_or_else(|p| p.into_inner());
                (n < limit).then_some((n, s))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, s)| Arc::clone(s))?;
        *best.inflight.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Some(Lease {
            pool: Arc::clone(self),
            slot: best,
        })
    }

    /// Adds a freshly started (and initialized) instance with one slot taken by the caller.
    pub fn add_started(self: &Arc<Self>, instance: Instance) -> Lease {
        let slot = Arc::new(Slot {
            instance,
            inflight: Mutex::new(1),
            dead: AtomicBool::new(false),
        });
        self.lock().push(Arc::clone(&slot));
        Lease {
            pool: Arc::clone(self),
            slot,
        }
    }

    fn release(&self, slot: &Arc<Slot>) {
        let left = {
            let mut n = slot.inflight.lock().unwrap_or_else(|p| p.into_inner());
            *n = n.saturating_sub(1);
            *n
        };
        if left == 0 && (self.retired.load(Ordering::Acquire) || slot.is_dead()) {
            self.lock().retain(|s| !Arc::ptr_eq(s, slot));
            stop_in_background(Arc::clone(slot));
        }
    }

    /// Takes an instance out of service at once (crashed, timed out, failed its initializer).
    pub fn discard(&self, slot: &Arc<Slot>) {
        slot.dead.store(true, Ordering::Release);
        slot.instance.kill();
        self.lock().retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// No new requests: idle instances stop now, busy ones when their requests finish.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let mut slots = self.lock();
        slots.retain(|s| {
            let idle = *s.inflight.lock().unwrap_or_else(|p| p.into_inner()) == 0;
            if idle {
                stop_in_background(Arc::clone(s));
            }
            !idle
        });
    }

    /// Stops every instance, busy or not, and waits for them.
    pub async fn stop_all(&self, grace: Duration) {
        let slots: Vec<Arc<Slot>> = self.lock().drain(..).collect();
        for s in slots {
            s.instance.stop(grace).await;
        }
    }
}

impl Slot {
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire) || self.instance.exited().is_some()
    }
}

fn stop_in_background(slot: Arc<Slot>) {
    tokio::spawn(async move { slot.instance.stop(STOP_GRACE).await });
}
