//! Admission limits: a function's reserved concurrency and the server-wide instance cap.
//! Both refuse at once (the gateway answers FC's 429 `ResourceExhausted`), never queue.
//! When nodes share a store, reserved concurrency and the cluster's instance cap
//! (`--cluster-max-instances`) hold cluster-wide: this node admits up to the share of each
//! the control plane leased for it ([`FunctionLimits::set_share`],
//! [`InstanceBudget::set_share`]), and reports what it could use (`demand`) for the next
//! lease.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::SchedulerError;

/// No reserved concurrency configured.
const UNLIMITED: u64 = u64::MAX;

/// Per-function limits, shared by every deployed version of the function.
#[derive(Debug)]
pub struct FunctionLimits {
    /// `reservedConcurrency` (or [`UNLIMITED`]).
    reserved: AtomicU64,
    /// This node's leased share of `reserved` when nodes share the limit (or [`UNLIMITED`]).
    share: AtomicU64,
    /// Requests of this function in flight (admitted, not yet answered).
    inflight: AtomicU32,
    /// Most requests in flight, and refusals, since the last [`FunctionLimits::demand`].
    peak: AtomicU32,
    refused: AtomicU32,
    /// Instances kept running: max(provision-config target, scaling-config minInstances).
    pub min_instances: AtomicU32,
}

impl Default for FunctionLimits {
    fn default() -> Self {
        FunctionLimits {
            reserved: AtomicU64::new(UNLIMITED),
            share: AtomicU64::new(UNLIMITED),
            inflight: AtomicU32::new(0),
            peak: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            min_instances: AtomicU32::new(0),
        }
    }
}

/// See [`FunctionLimits::demand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// `reservedConcurrency` (`None`: no limit, nothing to lease).
    pub reserved: Option<u32>,
    /// Requests this node could have run at once lately.
    pub want: u32,
    /// Requests running on this node now.
    pub inflight: u32,
    /// What this node may be holding by the time a new share is applied: what runs now, or
    /// the share in effect if larger (it still admits up to that share while the lease is
    /// under way), never more than the limit. Recorded with the share, so the recorded
    /// shares bound what runs even while a node's share shrinks.
    pub held: u32,
}

/// [`Demand::held`]: `inflight`, or the share in effect (capped at `limit`) if larger.
fn held(inflight: u32, share: u64, limit: u64) -> u32 {
    let effective = share.min(limit);
    let effective = if effective == UNLIMITED {
        0
    } else {
        effective.min(u64::from(u32::MAX)) as u32
    };
    inflight.max(effective)
}

/// A request's place within its function's reserved concurrency; released on drop.
pub struct Admission(Arc<FunctionLimits>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FunctionLimits {
    pub fn set_reserved(&self, reserved: Option<u32>) {
        let v = reserved.map(u64::from).unwrap_or(UNLIMITED);
        self.reserved.store(v, Ordering::Release);
    }

    /// This node's share of the reserved concurrency (`None`: the whole limit is this
    /// node's, as on a single node).
    pub fn set_share(&self, share: Option<u32>) {
        let v = share.map(u64::from).unwrap_or(UNLIMITED);
        self.share.store(v, Ordering::Release);
    }

    /// What this node could have used since the last call: the most requests in flight at
    /// once plus those refused, and the requests in flight now.
    pub fn demand(&self) -> Demand {
        let inflight = self.inflight.load(Ordering::Acquire);
        let peak = self.peak.swap(inflight, Ordering::AcqRel).max(inflight);
        let refused = self.refused.swap(0, Ordering::AcqRel);
        let reserved = self.reserved.load(Ordering::Acquire);
        Demand {
            reserved: match reserved {
                UNLIMITED => None,
                r => Some(r as u32),
            },
            want: peak.saturating_add(refused),
            inflight,
            held: held(inflight, self.share.load(Ordering::Acquire), reserved),
        }
    }

    /// Admits one request, or refuses it when the function's reserved concurrency (or this
    /// node's share of it) is in use.
    pub fn admit(self: &Arc<Self>, function: &str) -> Result<Admission, SchedulerError> {
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        let reserved = self.reserved.load(Ordering::Acquire);
        let limit = reserved.min(self.share.load(Ordering::Acquire));
        if u64::from(before) >= limit {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            if reserved != UNLIMITED {
                self.refused.fetch_add(1, Ordering::AcqRel);
            }
            return Err(SchedulerError::ReservedConcurrency {
                function: function.to_owned(),
                reserved,
                inflight: before,
            });
        }
        self.peak.fetch_max(before + 1, Ordering::AcqRel);
        Ok(Admission(Arc::clone(self)))
    }

    /// Requests of the function in flight now.
    #[cfg(test)]
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Acquire)
    }
}

/// The server-wide cap on running instances (`--max-instances`) and, when nodes share a
/// store, this node's leased share of the cluster's cap (`--cluster-max-instances`).
#[derive(Debug)]
pub struct InstanceBudget {
    max: u32,
    used: AtomicU32,
    /// The cluster-wide cap (or [`UNLIMITED`]: none).
    cluster: AtomicU64,
    /// This node's share of `cluster` (or [`UNLIMITED`]).
    share: AtomicU64,
    /// Most instances at once, and refusals by the share, since the last demand.
    peak: AtomicU32,
    refused: AtomicU32,
}

/// One instance's share of the budget; returned when the instance is gone.
#[derive(Debug)]
pub struct InstanceTicket(Arc<InstanceBudget>);

impl Drop for InstanceTicket {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InstanceBudget {
    pub fn new(max: u32) -> Arc<InstanceBudget> {
        Arc::new(InstanceBudget {
            max,
            used: AtomicU32::new(0),
            cluster: AtomicU64::new(UNLIMITED),
            share: AtomicU64::new(UNLIMITED),
            peak: AtomicU32::new(0),
            refused: AtomicU32::new(0),
        })
    }

    #[cfg(test)]
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// The cluster's instance cap and this node's share of it (`None`, `None`: no cluster
    /// cap, as on a single node).
    pub fn set_share(&self, cluster: Option<u32>, share: Option<u32>) {
        let v = |x: Option<u32>| x.map(u64::from).unwrap_or(UNLIMITED);
        self.cluster.store(v(cluster), Ordering::Release);
        self.share.store(v(share), Ordering::Release);
    }

    /// What this node could have used of the cluster's cap since the last call (`reserved`
    /// is the cluster cap; the want never exceeds `--max-instances`, which this node cannot
    /// pass anyway).
    pub fn demand(&self) -> Demand {
        let used = self.used.load(Ordering::Acquire);
        let peak = self.peak.swap(used, Ordering::AcqRel).max(used);
        let refused = self.refused.swap(0, Ordering::AcqRel);
        let cluster = self.cluster.load(Ordering::Acquire);
        Demand {
            reserved: match cluster {
                UNLIMITED => None,
                c => Some(c as u32),
            },
            want: peak.saturating_add(refused).min(self.max),
            inflight: used,
            held: held(used, self.share.load(Ordering::Acquire), cluster),
        }
    }

    /// How many more instances may start now (within `--max-instances` and this node's
    /// share of the cluster's cap).
    pub fn free(&self) -> u32 {
        let cap = u64::from(self.max).min(self.share.load(Ordering::Acquire)) as u32;
        cap.saturating_sub(self.used.load(Ordering::Acquire))
    }

    pub fn take(self: &Arc<Self>) -> Result<InstanceTicket, SchedulerError> {
        let before = self.used.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return Err(SchedulerError::InstanceLimit { max: self.max });
        }
        let share = self.share.load(Ordering::Acquire);
        if u64::from(before) >= share {
            self.used.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::AcqRel);
            return Err(SchedulerError::ClusterInstanceLimit {
                max: self
                    .cluster
                    .load(Ordering::Acquire)
                    .min(u64::from(u32::MAX)) as u32,
                share: share as u32,
            });
        }
        self.peak.fetch_max(before + 1, Ordering::AcqRel);
        Ok(InstanceTicket(Arc::clone(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_concurrency_admits_up_to_the_limit() {
        let l = Arc::new(FunctionLimits::default());
        l.set_reserved(Some(2));
        let a = l.admit("f").unwrap();
        let _b = l.admit("f").unwrap();
        let e = l.admit("f").err().unwrap();
        assert!(e.is_throttle(), "{e}");
        assert!(
            matches!(e, SchedulerError::ReservedConcurrency { reserved: 2, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("reservedConcurrency is 2"), "{e}");
        drop(a);
        assert!(l.admit("f").is_ok());
    }

    #[test]
    fn zero_reserved_concurrency_refuses_everything() {
        let l = Arc::new(FunctionLimits::default());
        l.set_reserved(Some(0));
        assert!(l.admit("f").is_err());
        l.set_reserved(None);
        assert!(l.admit("f").is_ok());
    }

    #[test]
    fn a_leased_share_caps_admission_and_demand_counts_refusals() {
        let l = Arc::new(FunctionLimits::default());
        l.set_reserved(Some(4));
        l.set_share(Some(1));
        let a = l.admit("f").unwrap();
        assert!(l.admit("f").is_err());
        assert!(l.admit("f").is_err());
        assert_eq!(
            l.demand(),
            Demand {
                reserved: Some(4),
                want: 3,
                inflight: 1,
                held: 1,
            }
        );
        // Counted since the last call only.
        assert_eq!(l.demand().want, 1);
        drop(a);
        l.set_share(Some(0));
        assert!(l.admit("f").is_err(), "a share of 0 admits nothing");
        l.set_share(None);
        let _all: Vec<_> = (0..4).map(|_| l.admit("f").unwrap()).collect();
        assert!(
            l.admit("f").is_err(),
            "without a share the reserved limit holds"
        );
    }

    #[test]
    fn instance_budget_is_returned_on_drop() {
        let b = InstanceBudget::new(1);
        let t = b.take().unwrap();
        assert!(b.take().is_err());
        drop(t);
        assert_eq!(b.used(), 0);
        assert!(b.take().is_ok());
    }

    #[test]
    fn a_share_of_the_cluster_cap_bounds_instances_and_is_held_while_leasing() {
        let b = InstanceBudget::new(10);
        b.set_share(Some(6), Some(2));
        let t1 = b.take().unwrap();
        let _t2 = b.take().unwrap();
        let e = b.take().unwrap_err();
        assert!(e.is_throttle(), "{e}");
        assert!(
            matches!(e, SchedulerError::ClusterInstanceLimit { max: 6, share: 2 }),
            "{e:?}"
        );
        assert!(e.to_string().contains("--cluster-max-instances 6"), "{e}");
        // The 429's LimitName and the metrics' limit label.
        assert_eq!(e.limit_name(), Some("clusterMaxInstances"));
        // Held: the share in effect (2), since this node may still fill it while leasing.
        assert_eq!(
            b.demand(),
            Demand {
                reserved: Some(6),
                want: 3,
                inflight: 2,
                held: 2
            }
        );
        drop(t1);
        b.set_share(Some(6), Some(0));
        assert!(b.take().is_err(), "a share of 0 starts nothing");
        // The want never passes --max-instances; without a cluster cap nothing is leased.
        for _ in 0..20 {
            let _ = b.take();
        }
        assert_eq!(b.demand().want, 10);
        b.set_share(None, None);
        assert_eq!(b.demand().reserved, None);
        let _more: Vec<_> = (0..9).map(|_| b.take().unwrap()).collect();
        assert!(matches!(
            b.take().unwrap_err(),
            SchedulerError::InstanceLimit { max: 10 }
        ));
    }
}
