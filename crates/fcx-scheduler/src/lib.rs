//! Runs invocations: per-function instance pools (concurrency slots, cold starts, the
//! initializer once per instance, crash and timeout replacement) and the mapping of what an
//! instance did into FC's answer. The gateway calls [`Scheduler::invoke`]; backends start
//! the instances.

mod context;
mod event;
mod pool;
mod web;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fcx_model::Function;
use fcx_protocol::FcError;
use fcx_runtime::{CodeCache, ProcessBackend};

use crate::pool::Pool;

/// A function as deployed: its resolved record and where its code package is.
#[derive(Debug)]
pub struct Deployed {
    pub function: Function,
    /// The stored zip of the code (`None` for image-based functions).
    pub code_zip: Option<PathBuf>,
}

/// Server-wide settings the scheduler needs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub region: String,
    pub account_id: String,
    /// How long a new instance has to start listening.
    pub start_timeout: Duration,
}

/// One invocation as the gateway hands it over.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub request_id: String,
    pub qualifier: String,
    pub payload: Bytes,
    /// Return the log tail (`x-fc-log-type: Tail`).
    pub tail_log: bool,
    /// FC 2.0 service name, passed on as `x-fc-service-name`.
    pub service_name: Option<String>,
}

/// The answer to an invocation that reached the function (it may still be a function error).
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    pub body: Bytes,
    pub content_type: Option<String>,
    pub instance_id: String,
    /// `Some(UnhandledInvocationError)` when the function failed.
    pub error_type: Option<&'static str>,
    /// The invocation's log tail (at most 4 KB), when asked for.
    pub log_tail: Option<Vec<u8>>,
}

/// Owns every function's instance pool.
pub struct Scheduler {
    backend: Arc<ProcessBackend>,
    code: Arc<CodeCache>,
    config: SchedulerConfig,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl Scheduler {
    pub fn new(backend: ProcessBackend, code: CodeCache, config: SchedulerConfig) -> Scheduler {
        Scheduler {
            backend: Arc::new(backend),
            code: Arc::new(code),
            config,
            pools: Mutex::default(),
        }
    }

    /// Makes `deployed` the version new invocations of its function use. Instances of the
    /// previous version finish their requests and stop.
    pub fn deploy(&self, deployed: Deployed) {
        let name = deployed.function.function_name.clone();
        let pool = Arc::new(Pool::new(Arc::new(deployed)));
        let old = self.lock().insert(name, pool);
        if let Some(old) = old {
            old.retire();
        }
    }

    /// Stops a deleted function's instances.
    pub fn remove(&self, name: &str) {
        if let Some(old) = self.lock().remove(name) {
            old.retire();
        }
    }

    /// Stops every instance (server shutdown).
    pub async fn shutdown(&self) {
        let pools: Vec<Arc<Pool>> = self.lock().drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.retire();
            pool.stop_all(Duration::from_secs(2)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pool>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one synchronous invocation of function `name`.
    pub async fn invoke(&self, name: &str, req: InvokeRequest) -> Result<InvokeResponse, FcError> {
        let pool = self
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| FcError::function_not_found(name))?;
        if pool.deployed.function.web_server_mode() {
            web::invoke(self, &pool, req).await
        } else {
            event::invoke(self, &pool, req).await
        }
    }
}
