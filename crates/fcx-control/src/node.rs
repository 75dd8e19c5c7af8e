//! What this node runs, as the control plane sees it: the scheduler's pools and limits and
//! the async service's per-function configs. The control plane changes it only in `sync`
//! and `load`, from what the store holds; unit tests put a recording fake in its place.

use std::sync::Arc;

use fcx_async::AsyncService;
use fcx_model::async_config::AsyncConfig;
use fcx_scheduler::{Deployed, InstanceInfo, Scheduler};

use crate::SchedulerError;

pub(crate) trait Node: Send + Sync {
    /// Serves `deployed` (LATEST or a version) from now on; the previous pool retires.
    fn deploy(&self, deployed: Deployed);
    /// Stops a deleted function: its pools, limits and async config.
    fn remove_function(&self, function: &str);
    /// Stops a deleted version's pool.
    fn remove_version(&self, function: &str, version: &str);
    /// Reserved concurrency (`None`: no limit) and instances kept running.
    fn set_limits(&self, function: &str, reserved: Option<u32>, min_instances: u32);
    fn set_async_config(&self, function: &str, config: Option<AsyncConfig>);
    /// Whether the function is deployed (the invoke path asks: no store read).
    fn has_function(&self, function: &str) -> bool;
    fn instances(&self, function: &str) -> Result<Vec<InstanceInfo>, SchedulerError>;
}

/// The real node: the scheduler and the async service.
pub(crate) struct Live {
    pub scheduler: Arc<Scheduler>,
    pub asyncs: Arc<AsyncService>,
}

impl Node for Live {
    fn deploy(&self, deployed: Deployed) {
        self.scheduler.deploy(deployed);
    }

    fn remove_function(&self, function: &str) {
        self.scheduler.remove(function);
        self.asyncs.set_config(function, None);
    }

    fn remove_version(&self, function: &str, version: &str) {
        self.scheduler.remove_version(function, version);
    }

    fn set_limits(&self, function: &str, reserved: Option<u32>, min_instances: u32) {
        self.scheduler.set_reserved_concurrency(function, reserved);
        self.scheduler.set_min_instances(function, min_instances);
    }

    fn set_async_config(&self, function: &str, config: Option<AsyncConfig>) {
        self.asyncs.set_config(function, config);
    }

    fn has_function(&self, function: &str) -> bool {
        self.scheduler.has_function(function)
    }

    fn instances(&self, function: &str) -> Result<Vec<InstanceInfo>, SchedulerError> {
        self.scheduler.list_instances(function)
    }
}
