//! The scheduler's background loop: keeps minimum (provisioned) instances running, reclaims
//! idle instances, freezes idle ones when enabled, and forgets instances that died idle.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::lifecycle::{self, HookOutcome};
use crate::pool::Pool;
use crate::Scheduler;

/// How often the loop looks at every pool.
const TICK: Duration = Duration::from_millis(250);

pub async fn run(scheduler: Weak<Scheduler>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(sched) = scheduler.upgrade() else {
            return;
        };
        let pools: Vec<Arc<Pool>> = sched.pools().values().cloned().collect();
        let mut sandboxes: usize = pools.iter().map(|p| p.sandboxes.held()).sum();
        for pool in pools {
            if crate::sandbox::top_up(&sched, &pool, sandboxes) {
                sandboxes += 1;
            }
            for slot in pool.slots() {
                slot.refresh_stats();
            }
            pool.forget_dead();
            keep_minimum(&sched, &pool);
            reclaim_idle(&sched, &pool);
            freeze_idle(&sched, &pool);
        }
    }
}

fn keep_minimum(sched: &Arc<Scheduler>, pool: &Arc<Pool>) {
    // Provisioned and minimum instances are configured for LATEST.
    if pool.deployed.version_id.is_some() {
        return;
    }
    let min = pool.limits.min_instances.load(Ordering::Acquire);
    let missing = min.saturating_sub(pool.size());
    for _ in 0..missing {
        let permit = pool.start_provisioned();
        let (sched, pool) = (Arc::clone(sched), Arc::clone(pool));
        tokio::spawn(async move {
            if let Err(e) = crate::web::start_provisioned(&sched, &pool, permit).await {
                tracing::warn!(
                    function = %pool.deployed.function.function_name,
                    error = %e,
                    "cannot start a provisioned instance; retrying"
                );
            }
        });
    }
}

fn reclaim_idle(sched: &Scheduler, pool: &Pool) {
    let f = &pool.deployed.function;
    let idle = f
        .idle_timeout
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.into()))
        .unwrap_or(sched.config.idle_timeout);
    let keep = if pool.deployed.version_id.is_some() {
        0
    } else {
        pool.limits.min_instances.load(Ordering::Acquire)
    };
    for slot in pool.take_idle(idle, keep) {
        tracing::info!(function = %f.function_name, instance = %slot.instance.id, "reclaiming idle instance");
        lifecycle::stop_in_background(slot);
    }
}

fn freeze_idle(sched: &Scheduler, pool: &Arc<Pool>) {
    let Some(after) = sched.config.freeze_after else {
        return;
    };
    for slot in pool.freeze_candidates(after) {
        let pool = Arc::clone(pool);
        tokio::spawn(async move {
            let check = {
                let (pool, slot) = (Arc::clone(&pool), Arc::clone(&slot));
                move || pool.is_idle(&slot)
            };
            match lifecycle::freeze(&slot, check).await {
                HookOutcome::Ok => {}
                HookOutcome::Failed(e) => {
                    tracing::warn!(instance = %slot.instance.id, error = %e, "instance not frozen");
                }
                HookOutcome::Restart(e) => {
                    tracing::warn!(instance = %slot.instance.id, error = %e, "pre-freeze failed: restarting the instance");
                    pool.discard(&slot);
                }
            }
        });
    }
}
