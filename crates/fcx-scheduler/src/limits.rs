//! Admission limits: a function's reserved concurrency and the server-wide instance cap.
//! Both refuse at once (the gateway answers FC's 429 `ResourceExhausted`), never queue.
//! When nodes share a store, reserved concurrency holds cluster-wide: this node admits up to
//! the share of it the control plane leased for it ([`FunctionLimits::set_share`]), and
//! reports what it could use ([`FunctionLimits::demand`]) for the next lease.

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
        Demand {
            reserved: match self.reserved.load(Ordering::Acquire) {
                UNLIMITED => None,
                r => Some(r as u32),
            },
            want: peak.saturating_add(refused),
            inflight,
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

/// The server-wide cap on running instances (`--max-instances`).
#[derive(Debug)]
pub struct InstanceBudget {
    max: u32,
    used: AtomicU32,
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
        })
    }

    #[cfg(test)]
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// How many more instances may start now.
    pub fn free(&self) -> u32 {
        self.max.saturating_sub(self.used.load(Ordering::Acquire))
    }

    pub fn take(self: &Arc<Self>) -> Result<InstanceTicket, SchedulerError> {
        let before = self.used.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return Err(SchedulerError::InstanceLimit { max: self.max });
        }
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
                inflight: 1
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
}
