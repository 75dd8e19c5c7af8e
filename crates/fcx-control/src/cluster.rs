//! This node among the nodes sharing one PostgreSQL store: its heartbeat and advertised
//! address (`nodes` table), the listener that applies what other nodes announce, the periodic
//! re-read, its part of each function's minimum instances (spread over the live nodes, so the
//! count holds cluster-wide and comes back when a node dies), and its leased shares of
//! reserved concurrency and of the cluster's instance cap (renewed every second, no write per
//! request). Only the control plane uses it; the single-node path never builds one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use fcx_scheduler::Scheduler;
use fcx_store::postgres::cluster::{Cluster, Heard, NodeRow};
use fcx_store::StoreError;

use crate::ControlPlane;

/// How often the heartbeat, the node list and the limit shares are renewed.
pub const TICK: Duration = Duration::from_secs(1);
/// A node whose heartbeat is older than this is taken for dead (its instances and shares are
/// taken over by the others).
pub const NODE_FRESH_MS: i64 = 4_000;
/// A limit share lasts this long unless renewed. A lapsed share of a node still live (see
/// [`NODE_FRESH_MS`]) counts for nothing, but its want keeps its fair part of the split, so a
/// node late renewing gets its room back (`Cluster::lease_share`).
pub const SHARE_TTL_MS: i64 = 3_000;
/// The `limit_shares` scope of the cluster's instance cap (no function name has a '*').
pub const INSTANCES_SCOPE: &str = "*instances";

/// What [`ClusterNode`] is told at start.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Where other nodes (and operators) reach this node's API.
    pub advertise: String,
    /// Everything is re-read this often (the safety net of LISTEN/NOTIFY).
    pub sync_interval: Duration,
    /// Most instances all nodes together run (`--cluster-max-instances`; `None`: no cap
    /// beyond each node's `--max-instances`).
    pub max_instances: Option<u32>,
    /// Whether a request this node has no capacity for is forwarded to another node.
    pub forward: bool,
    /// The key the nodes authenticate their requests to each other with.
    pub node_key: [u8; 32],
}

pub(crate) struct ClusterNode {
    cluster: Cluster,
    pub(crate) settings: ClusterSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Live nodes at the last tick, in id order.
    live: Vec<NodeRow>,
    /// Cluster-wide minimum instances per function.
    min_targets: HashMap<String, u32>,
    /// When each function's share was last granted (it expires [`SHARE_TTL_MS`] after).
    granted_at: HashMap<String, Instant>,
    /// When a re-read last succeeded.
    synced_at: Option<Instant>,
}

/// This node's part of `total` when it is `index` of `n` live nodes (in id order): an even
/// split, the remainder to the first nodes. Not live (or alone): all of it.
pub fn part_of(total: u32, index: Option<usize>, n: usize) -> u32 {
    match index {
        Some(i) if n > 0 => total / n as u32 + u32::from((i as u32) < total % n as u32),
        _ => total,
    }
}

impl ClusterNode {
    pub(crate) fn new(cluster: Cluster, settings: ClusterSettings) -> ClusterNode {
        ClusterNode {
            cluster,
            settings,
            state: Mutex::default(),
        }
    }

    /// The other live nodes at the last tick (at most [`TICK`] old), in id order.
    pub(crate) fn peers(&self) -> Vec<NodeRow> {
        let state = self.state();
        state
            .live
            .iter()
            .filter(|n| n.id != self.node_id())
            .cloned()
            .collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn node_id(&self) -> &str {
        self.cluster.node_id()
    }

    pub(crate) fn publish(&self, payload: &str) -> Result<(), StoreError> {
        self.cluster.publish(payload)
    }

    /// Records the cluster-wide minimum of `function` and returns this node's part of it.
    pub(crate) fn min_part(&self, function: &str, total: u32) -> u32 {
        let mut state = self.state();
        if total == 0 {
            state.min_targets.remove(function);
        } else {
            state.min_targets.insert(function.to_owned(), total);
        }
        let index = state.live.iter().position(|n| n.id == self.node_id());
        part_of(total, index, state.live.len())
    }

    /// Leases a share of `function`'s reserved concurrency now (a limit was just set), so
    /// this node does not admit past it before the next tick. Blocking.
    pub(crate) fn lease_now(&self, scheduler: &Scheduler, function: &str, reserved: Option<u32>) {
        let Some(limit) = reserved else {
            scheduler.set_limit_share(function, None);
            self.state().granted_at.remove(function);
            let scope = function.to_owned();
            let _ = self.cluster.pg().block({
                let cluster = Cluster::new(self.cluster.pg().clone(), self.node_id());
                async move { cluster.return_share(&scope).await }
            });
            return;
        };
        // Nothing admitted until the grant is known.
        scheduler.set_limit_share(function, Some(0));
        let scope = function.to_owned();
        let cluster = Cluster::new(self.cluster.pg().clone(), self.node_id());
        let granted = self.cluster.pg().block(async move {
            cluster
                .lease_share(&scope, limit, limit, 0, SHARE_TTL_MS, NODE_FRESH_MS)
                .await
        });
        self.granted(scheduler, function, granted);
    }

    /// Leases this node's first share of the cluster's instance cap (at start, before
    /// anything runs; until a share is granted no instance starts). Blocking.
    pub(crate) fn lease_instances_now(&self, scheduler: &Scheduler) {
        let Some(cap) = self.settings.max_instances else {
            return;
        };
        scheduler.set_instance_share(Some(cap), Some(0));
        let cluster = Cluster::new(self.cluster.pg().clone(), self.node_id());
        let granted = self.cluster.pg().block(async move {
            cluster
                .lease_share(INSTANCES_SCOPE, cap, 1, 0, SHARE_TTL_MS, NODE_FRESH_MS)
                .await
        });
        self.granted(scheduler, INSTANCES_SCOPE, granted);
    }

    /// Applies a lease's outcome to `scope` (a function, or [`INSTANCES_SCOPE`]).
    fn granted(&self, scheduler: &Scheduler, scope: &str, granted: Result<u32, StoreError>) {
        let set = |share: u32| {
            if scope == INSTANCES_SCOPE {
                scheduler.set_instance_share(self.settings.max_instances, Some(share));
            } else {
                scheduler.set_limit_share(scope, Some(share));
            }
        };
        match granted {
            Ok(share) => {
                set(share);
                self.state()
                    .granted_at
                    .insert(scope.to_owned(), Instant::now());
            }
            Err(e) => {
                let expired = self.state().granted_at.get(scope).map_or(true, |t| {
                    t.elapsed() >= Duration::from_millis(SHARE_TTL_MS as u64 - 500)
                });
                tracing::warn!(scope, error = %e, expired, "cannot renew a limit share");
                if expired {
                    // The database may already give it to others: admit nothing more.
                    set(0);
                }
            }
        }
    }

    /// Whether the last re-read is older than `3 × --sync-interval` + a tick (the node cannot
    /// know what the store holds: it refuses invocations rather than serve stale functions).
    /// Seconds since the last re-read when that is too long ago.
    pub(crate) fn stale_for(&self) -> Option<u64> {
        let limit = self.settings.sync_interval * 3 + TICK;
        let since = self.state().synced_at?.elapsed();
        (since > limit).then_some(since.as_secs())
    }

    pub(crate) fn mark_synced(&self) {
        self.state().synced_at = Some(Instant::now());
    }
}

impl ControlPlane {
    /// Starts the node's background work on a shared store: the listener, the heartbeat and
    /// share renewals, and the periodic re-read.
    pub(crate) fn start_cluster(self: &Arc<Self>) {
        let Some(cluster) = &self.cluster else { return };
        cluster.mark_synced();
        let weak = Arc::downgrade(self);
        let rt = tokio::runtime::Handle::current();
        cluster
            .cluster
            .listen(Duration::from_secs(1), move |heard| {
                let Some(control) = weak.upgrade() else {
                    return;
                };
                // Store reads block: off the listener's task, in order.
                rt.spawn_blocking(move || match heard {
                    Heard::Change(payload) => {
                        if let Err(e) = control.apply_heard(&payload) {
                            tracing::warn!(error = %e, "cannot apply an announced change");
                        }
                    }
                    Heard::Connected => {
                        tracing::info!("listening for changes of other nodes");
                        control.resync_now();
                    }
                    Heard::Lost(e) => {
                        tracing::warn!("change notifications lost (re-reading when back): {e}")
                    }
                });
            });
        tokio::spawn(tick_loop(Arc::downgrade(self)));
        tokio::spawn(resync_loop(
            Arc::downgrade(self),
            cluster.settings.sync_interval,
        ));
    }

    fn resync_now(&self) {
        match self.resync() {
            Ok(()) => {
                if let Some(c) = &self.cluster {
                    c.mark_synced();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot re-read the store"),
        }
    }

    /// Stops heartbeating and returns this node's shares (a clean stop).
    pub(crate) async fn leave_cluster(&self) {
        if let Some(cluster) = &self.cluster {
            if let Err(e) = cluster.cluster.leave().await {
                tracing::warn!(error = %e, "cannot remove this node from the nodes table");
            }
        }
    }

    /// Whether invocations must be refused because this node lost the store for longer
    /// than the documented bound.
    pub(crate) fn out_of_sync(&self) -> Option<u64> {
        self.cluster.as_ref().and_then(|c| c.stale_for())
    }
}

async fn resync_loop(control: Weak<ControlPlane>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(control) = control.upgrade() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || control.resync_now()).await;
    }
}

/// Every [`TICK`]: heartbeat, the live nodes (re-spreading minimum instances when they
/// change), and the limit shares renewed with this node's demand.
async fn tick_loop(control: Weak<ControlPlane>) {
    loop {
        let Some(cp) = control.upgrade() else { return };
        let Some(node) = cp.cluster.as_ref() else {
            return;
        };
        let free = cp.scheduler.free_instances();
        if let Err(e) = node.cluster.heartbeat(&node.settings.advertise, free).await {
            tracing::warn!(error = %e, "cannot record this node's heartbeat");
        }
        match node.cluster.live_nodes(NODE_FRESH_MS).await {
            Ok(live) => {
                let ids = |l: &[NodeRow]| l.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
                let changed = ids(&node.state().live) != ids(&live);
                let targets: Vec<String> = {
                    let mut state = node.state();
                    state.live = live.clone();
                    state.min_targets.keys().cloned().collect()
                };
                if changed {
                    tracing::info!(nodes = ?ids(&live), "live nodes changed");
                    let cp2 = Arc::clone(&cp);
                    let _ = tokio::task::spawn_blocking(move || {
                        for name in targets {
                            if let Err(e) = cp2.apply_limits(&name) {
                                tracing::warn!(function = %name, error = %e, "cannot re-spread minimum instances");
                            }
                        }
                    })
                    .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the nodes"),
        }
        let mut demands = cp.scheduler.limit_demands();
        if node.settings.max_instances.is_some() {
            demands.push((INSTANCES_SCOPE.to_owned(), cp.scheduler.instance_demand()));
        }
        for (name, demand) in demands {
            let Some(limit) = demand.reserved else {
                continue;
            };
            // A little headroom, so a node that was idle can take its first request.
            let want = demand.want.saturating_add(1).min(limit);
            // Recorded: what it may hold until the new share applies (`Demand::held`).
            let granted = node
                .cluster
                .lease_share(&name, limit, want, demand.held, SHARE_TTL_MS, NODE_FRESH_MS)
                .await;
            node.granted(&cp.scheduler, &name, granted);
        }
        drop(cp);
        tokio::time::sleep(TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::part_of;

    #[test]
    fn minimum_instances_are_spread_and_add_up() {
        for total in 0..10 {
            for n in 1..5 {
                let parts: Vec<u32> = (0..n).map(|i| part_of(total, Some(i), n)).collect();
                assert_eq!(
                    parts.iter().sum::<u32>(),
                    total,
                    "{total} over {n}: {parts:?}"
                );
                assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
            }
        }
        assert_eq!(
            part_of(3, None, 0),
            3,
            "before the first heartbeat: all of it"
        );
    }
}
