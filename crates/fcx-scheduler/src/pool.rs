//! One deployed function version's instances and their concurrency slots.
//!
//! A request takes a free slot on the busiest live instance. Without one it either waits for
//! an instance already starting (when that start has a spare slot for it) or starts one
//! itself, so N simultaneous first requests start `ceil(N / instanceConcurrency)` instances.
//! The lock is a plain mutex never held across an `await`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fcx_runtime::{Backend, Instance};
use tokio::sync::Notify;
// tokio's clock (the real one outside tests), so tests can move it forward.
use tokio::time::Instant;

use crate::lifecycle::HookContext;
use crate::limits::{FunctionLimits, InstanceTicket};
use crate::Deployed;

/// An instance in a pool.
pub struct Slot {
    pub instance: Instance,
    /// The backend that started it, which stops, freezes and thaws it.
    pub backend: Arc<dyn Backend>,
    dead: AtomicBool,
    /// Set once `/pre-stop` was called (it is called at most once per instance).
    pub(crate) pre_stop_called: AtomicBool,
    /// Whether the instance's processes are frozen right now.
    pub(crate) frozen: AtomicBool,
    /// Serializes freezing (with its hook) and thawing of this instance.
    pub(crate) power: tokio::sync::Mutex<()>,
    /// Started to keep the function's minimum instance count.
    pub provisioned: bool,
    /// What lifecycle hook calls need (function, region, account).
    pub(crate) hooks: Arc<HookContext>,
    /// Peak memory in MB as last read from the instance's cgroup (0: unknown), refreshed
    /// by the maintenance loop so no request reads cgroup files.
    pub(crate) memory_peak_mb: AtomicU64,
    /// The instance's id as a header value (`x-fc-instance-id` to the instance and back to
    /// the client), made once: every request clones it instead of copying the id.
    pub id_header: Option<http::HeaderValue>,
    _ticket: InstanceTicket,
}

impl Slot {
    pub fn new(
        instance: Instance,
        backend: Arc<dyn Backend>,
        ticket: InstanceTicket,
        provisioned: bool,
        hooks: Arc<HookContext>,
    ) -> Slot {
        Slot {
            id_header: http::HeaderValue::from_str(&instance.id).ok(),
            instance,
            backend,
            dead: AtomicBool::new(false),
            pre_stop_called: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
            power: tokio::sync::Mutex::new(()),
            provisioned,
            hooks,
            memory_peak_mb: AtomicU64::new(0),
            _ticket: ticket,
        }
    }

    /// Reads the instance's memory peak from its backend (blocking: cgroup files).
    pub(crate) fn refresh_stats(&self) {
        if let Ok(Some(peak)) = self
            .backend
            .stats(&self.instance)
            .map(|s| s.memory_peak_bytes)
        {
            self.memory_peak_mb
                .store(peak.div_ceil(1024 * 1024), Ordering::Relaxed);
        }
    }

    /// The last peak read, in MB.
    pub fn memory_peak_mb(&self) -> Option<u64> {
        Some(self.memory_peak_mb.load(Ordering::Relaxed)).filter(|mb| *mb > 0)
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire) || self.instance.exited().is_some()
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }
}

struct Entry {
    slot: Arc<Slot>,
    inflight: u32,
    idle_since: Instant,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Cold starts under way.
    starting: u32,
    /// Requests waiting for a slot of an instance that is starting.
    waiting: u32,
}

/// The instances of one deployed function version.
pub struct Pool {
    pub deployed: Arc<Deployed>,
    pub limits: Arc<FunctionLimits>,
    /// Context headers shared by every call into this version's instances.
    pub context_headers: http::HeaderMap,
    /// The series this version's invocations are counted in.
    pub metrics: Arc<fcx_metrics::FunctionMetrics>,
    /// `X-Fc-Code-Checksum` of this version (`None` without a code package).
    pub code_checksum: Option<http::HeaderValue>,
    state: Mutex<State>,
    changed: Notify,
    retired: AtomicBool,
    /// Containers created ahead of demand (custom-container functions).
    pub sandboxes: crate::sandbox::Sandboxes,
}

/// A request's hold on one concurrency slot of an instance; released on drop.
pub struct Lease {
    pool: Arc<Pool>,
    pub slot: Arc<Slot>,
}

impl Lease {
    /// Takes the leased instance out of service (it broke or overran its timeout).
    pub fn discard(&self) {
        self.pool.discard(&self.slot);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(&self.slot);
    }
}

/// The right (and duty) to start one instance; cancels the start on drop.
pub struct StartPermit {
    pool: Arc<Pool>,
    done: bool,
}

impl StartPermit {
    /// Adds the started instance; the caller takes one slot of it unless `provisioned`.
    pub fn complete(mut self, slot: Slot) -> Option<Lease> {
        self.done = true;
        let provisioned = slot.provisioned;
        let slot = Arc::new(slot);
        {
            let mut st = self.pool.lock();
            st.starting -= 1;
            st.entries.push(Entry {
                slot: Arc::clone(&slot),
                inflight: u32::from(!provisioned),
                idle_since: Instant::now(),
            });
        }
        self.pool.changed.notify_waiters();
        (!provisioned).then(|| Lease {
            pool: Arc::clone(&self.pool),
            slot,
        })
    }
}

impl Drop for StartPermit {
    fn drop(&mut self) {
        if !self.done {
            self.pool.lock().starting -= 1;
            // Waiters counted on this start: let them re-decide (one will start instead).
            self.pool.changed.notify_waiters();
        }
    }
}

/// What [`Pool::acquire`] gives a request.
pub enum Acquired {
    Warm(Lease),
    Start(StartPermit),
}

impl Pool {
    pub fn new(
        deployed: Arc<Deployed>,
        limits: Arc<FunctionLimits>,
        context_headers: http::HeaderMap,
        metrics: Arc<fcx_metrics::FunctionMetrics>,
    ) -> Pool {
        let checksum = &deployed.function.code_checksum;
        Pool {
            code_checksum: (!checksum.is_empty())
                .then(|| http::HeaderValue::from_str(checksum).ok())
                .flatten(),
            deployed,
            limits,
            context_headers,
            metrics,
            state: Mutex::default(),
            changed: Notify::new(),
            retired: AtomicBool::new(false),
            sandboxes: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn concurrency(&self) -> u32 {
        self.deployed.function.instance_concurrency.max(1)
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// A slot on a warm instance, else a permit to start one, waiting (until `deadline`) for
    /// an instance being started when it has a slot to spare. `None` at the deadline.
    pub async fn acquire(self: &Arc<Self>, deadline: tokio::time::Instant) -> Option<Acquired> {
        let concurrency = self.concurrency();
        // Fast path (the warm case): a free slot, without registering as a waiter.
        {
            let mut st = self.lock();
            st.entries.retain(|e| !e.slot.is_dead());
            if let Some(lease) = self.take_slot(&mut st, concurrency) {
                return Some(Acquired::Warm(lease));
            }
        }
        let mut counted = false;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so a change between the look and the wait wakes us.
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if std::mem::take(&mut counted) {
                    st.waiting -= 1;
                }
                st.entries.retain(|e| !e.slot.is_dead());
                if let Some(lease) = self.take_slot(&mut st, concurrency) {
                    return Some(Acquired::Warm(lease));
                }
                // Each start in flight serves its starter plus `concurrency - 1` others.
                let spare = st.starting * (concurrency - 1);
                if st.waiting < spare {
                    st.waiting += 1;
                    counted = true;
                } else {
                    st.starting += 1;
                    return Some(Acquired::Start(StartPermit {
                        pool: Arc::clone(self),
                        done: false,
                    }));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.lock().waiting -= 1;
                return None;
            }
        }
    }

    /// Takes a slot on the busiest live instance that still has one.
    fn take_slot(self: &Arc<Self>, st: &mut State, concurrency: u32) -> Option<Lease> {
        let best = st
            .entries
            .iter_mut()
            .filter(|e| e.inflight < concurrency)
            .max_by_key(|e| e.inflight)?;
        best.inflight += 1;
        Some(Lease {
            pool: Arc::clone(self),
            slot: Arc::clone(&best.slot),
        })
    }

    /// A permit to start a provisioned instance (no request waits for it).
    pub fn start_provisioned(self: &Arc<Self>) -> StartPermit {
        self.lock().starting += 1;
        StartPermit {
            pool: Arc::clone(self),
            done: false,
        }
    }

    fn release(&self, slot: &Arc<Slot>) {
        let (stop, waiting) = {
            let mut st = self.lock();
            let waiting = st.waiting > 0;
            let Some(pos) = st.entries.iter().position(|e| Arc::ptr_eq(&e.slot, slot)) else {
                return;
            };
            let e = &mut st.entries[pos];
            e.inflight = e.inflight.saturating_sub(1);
            if e.inflight == 0 {
                e.idle_since = Instant::now();
            }
            let stop = e.inflight == 0 && (self.is_retired() || slot.is_dead());
            if stop {
                st.entries.remove(pos);
            }
            (stop, waiting)
        };
        // Only requests counted as waiting sleep on `changed`; skip the wake-up otherwise.
        if waiting {
            self.changed.notify_waiters();
        }
        if stop {
            crate::lifecycle::stop_in_background(Arc::clone(slot));
        }
    }

    /// Takes an instance out of service at once (crashed, timed out, failed its hook).
    pub fn discard(&self, slot: &Arc<Slot>) {
        slot.dead.store(true, Ordering::Release);
        slot.instance.kill();
        self.lock().entries.retain(|e| !Arc::ptr_eq(&e.slot, slot));
        self.changed.notify_waiters();
    }

    /// Removes an instance whose process ended on its own (no request noticed yet).
    pub fn forget_dead(&self) -> usize {
        let mut st = self.lock();
        let before = st.entries.len();
        st.entries.retain(|e| !e.slot.is_dead());
        before - st.entries.len()
    }

    /// No new requests: idle instances are returned for stopping now; busy ones stop when
    /// their last request ends.
    pub fn retire(&self) -> Vec<Arc<Slot>> {
        self.retired.store(true, Ordering::Release);
        self.sandboxes.clear();
        let mut st = self.lock();
        let (idle, busy): (Vec<Entry>, Vec<Entry>) =
            st.entries.drain(..).partition(|e| e.inflight == 0);
        st.entries = busy;
        drop(st);
        self.changed.notify_waiters();
        idle.into_iter().map(|e| e.slot).collect()
    }

    /// Every instance, busy or not (server shutdown).
    pub fn drain_all(&self) -> Vec<Arc<Slot>> {
        self.retired.store(true, Ordering::Release);
        self.sandboxes.clear();
        let slots = self.lock().entries.drain(..).map(|e| e.slot).collect();
        self.changed.notify_waiters();
        slots
    }

    /// Live instances plus starts under way.
    pub fn size(&self) -> u32 {
        let st = self.lock();
        st.entries.iter().filter(|e| !e.slot.is_dead()).count() as u32 + st.starting
    }

    /// Removes and returns instances idle for at least `idle`, keeping `keep` instances.
    pub fn take_idle(&self, idle: Duration, keep: u32) -> Vec<Arc<Slot>> {
        let mut st = self.lock();
        let now = Instant::now();
        let mut alive = st.entries.len() as u32 + st.starting;
        let mut out = Vec::new();
        // Oldest idle first, so the most recently used instances stay warm.
        st.entries.sort_by_key(|e| e.idle_since);
        st.entries.retain(|e| {
            let expired = e.inflight == 0 && now.duration_since(e.idle_since) >= idle;
            if expired && alive > keep {
                alive -= 1;
                out.push(Arc::clone(&e.slot));
                false
            } else {
                true
            }
        });
        out
    }

    /// Idle, unfrozen instances that have been idle for at least `after`.
    pub fn freeze_candidates(&self, after: Duration) -> Vec<Arc<Slot>> {
        let now = Instant::now();
        self.lock()
            .entries
            .iter()
            .filter(|e| {
                e.inflight == 0 && !e.slot.is_frozen() && now.duration_since(e.idle_since) >= after
            })
            .map(|e| Arc::clone(&e.slot))
            .collect()
    }

    /// Whether `slot` is still idle in this pool (re-checked before freezing it).
    pub fn is_idle(&self, slot: &Arc<Slot>) -> bool {
        self.lock()
            .entries
            .iter()
            .any(|e| Arc::ptr_eq(&e.slot, slot) && e.inflight == 0)
    }

    /// Every live instance (ListInstances).
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.lock()
            .entries
            .iter()
            .filter(|e| !e.slot.is_dead())
            .map(|e| Arc::clone(&e.slot))
            .collect()
    }

    /// Instances by state and slots in use, for the metrics (read at scrape time).
    pub fn census(&self) -> Census {
        let st = self.lock();
        let mut c = Census {
            starting: u64::from(st.starting),
            ..Census::default()
        };
        for e in st.entries.iter().filter(|e| !e.slot.is_dead()) {
            c.slots_in_use += u64::from(e.inflight);
            if e.slot.is_frozen() {
                c.frozen += 1;
            } else if e.inflight == 0 {
                c.idle += 1;
            } else {
                c.busy += 1;
            }
        }
        c.slot_capacity = (c.idle + c.busy + c.frozen) * u64::from(self.concurrency());
        c
    }
}

/// A pool's instances by state.
#[derive(Debug, Default, Clone, Copy)]
pub struct Census {
    pub starting: u64,
    pub idle: u64,
    pub busy: u64,
    pub frozen: u64,
    pub slots_in_use: u64,
    pub slot_capacity: u64,
}
