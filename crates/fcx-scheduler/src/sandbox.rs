//! Pre-created sandboxes: for each deployed web-server function whose backend makes them
//! (`Backend::prepare`; the OCI backend: namespace, egress, rootfs, cgroup, the runtime's
//! container, stopped just before the function's process starts), a few made ahead of
//! demand, so a cold start only starts the process. Refilled by the maintenance loop after use; bounded per function and
//! per server, so idle functions hold a fixed, small amount of memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_runtime::Sandbox;
use tokio::time::Instant;

use crate::pool::Pool;
use crate::{launch, Scheduler, SchedulerError};

/// How long a function whose sandbox could not be made (image missing, say) waits before
/// the next attempt: invocations report the error; the loop must not hammer the registry.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// One pool's ready sandboxes.
#[derive(Default)]
pub struct Sandboxes {
    ready: Mutex<Vec<Sandbox>>,
    filling: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
}

impl Sandboxes {
    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Sandbox>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready sandbox, if any.
    pub fn take(&self) -> Option<Sandbox> {
        let mut ready = self.ready();
        ready.retain(|s| !s.is_dead());
        ready.pop()
    }

    pub fn len(&self) -> usize {
        self.ready().len()
    }

    /// Ready sandboxes plus the one being made.
    pub fn held(&self) -> usize {
        self.len() + usize::from(self.filling.load(Ordering::Acquire))
    }

    /// Drops every sandbox (the function changed or is gone): they are removed.
    pub fn clear(&self) {
        let old: Vec<Sandbox> = self.ready().drain(..).collect();
        drop(old);
    }
}

/// Whether `pool`'s function runs from pre-created sandboxes: its backend makes them and it
/// runs in web-server mode.
fn wants_sandboxes(sched: &Scheduler, pool: &Pool) -> bool {
    // Snapshot-enabled functions start from restores, which make their own sandbox.
    let snapshots = sched.snapshots.get().is_some() && pool.deployed.function.snapshot_enabled();
    sched.config.sandboxes_per_function > 0
        && !snapshots
        && pool.deployed.function.web_server_mode()
        && !pool.is_retired()
        && sched
            .backends
            .for_function(&pool.deployed)
            .is_ok_and(|b| b.prepares_sandboxes())
}

/// Starts making a sandbox for `pool` when it has fewer than it should and the server
/// holds fewer than its limit (`server_total` so far); returns whether it did. Called by
/// the maintenance loop.
pub fn top_up(sched: &Arc<Scheduler>, pool: &Arc<Pool>, server_total: usize) -> bool {
    if !wants_sandboxes(sched, pool) {
        return false;
    }
    let s = &pool.sandboxes;
    if s.len() >= sched.config.sandboxes_per_function as usize
        || server_total >= sched.config.sandbox_limit as usize
        || s.filling.load(Ordering::Acquire)
    {
        return false;
    }
    let retry_at = *s.retry_at.lock().unwrap_or_else(|p| p.into_inner());
    if retry_at.is_some_and(|t| Instant::now() < t) {
        return false;
    }
    s.filling.store(true, Ordering::Release);
    let (sched, pool) = (Arc::clone(sched), Arc::clone(pool));
    tokio::spawn(async move {
        let made = make(&sched, &pool).await;
        let s = &pool.sandboxes;
        match made {
            Ok(sandbox) if !pool.is_retired() => s.ready().push(sandbox),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(
                    function = %pool.deployed.function.function_name,
                    error = %e,
                    "cannot pre-create a sandbox; cold starts make their own"
                );
                *s.retry_at.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Instant::now() + RETRY_AFTER);
            }
        }
        s.filling.store(false, Ordering::Release);
    });
    true
}

async fn make(sched: &Scheduler, pool: &Pool) -> Result<Sandbox, SchedulerError> {
    let (backend, spec) = launch::spec(sched, &pool.deployed).await?;
    Ok(backend.prepare(&spec).await?)
}
