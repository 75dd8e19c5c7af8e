//! The store as the control plane uses it: every call is timed into
//! `fcx_store_operation_duration_seconds{kind="<operation>"}` (handles taken once, at start).

use std::sync::Arc;
use std::time::Instant;

use fcx_metrics::{AtomicHistogram, Metrics};
use fcx_model::Function;
use fcx_store::{Store, StoreError, StoredDomain};

/// A [`Store`] whose operations are timed.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    timers: [AtomicHistogram; OPERATIONS.len()],
}

const OPERATIONS: [&str; 25] = [
    "create_function",
    "get_function",
    "list_functions",
    "update_function",
    "delete_function",
    "function_config",
    "put_function_config",
    "delete_function_config",
    "function_configs",
    "function_configs_of",
    "meta",
    "set_meta",
    "create_custom_domain",
    "update_custom_domain",
    "get_custom_domain",
    "list_custom_domains",
    "delete_custom_domain",
    "timer_last_fire",
    "claim_timer_fire",
    "delete_timer_state",
    "instance_uid",
    "init_meta",
    "next_counter",
    "put_code",
    "get_code",
];

impl TimedStore {
    pub fn new(inner: Arc<dyn Store>, metrics: &Metrics) -> TimedStore {
        TimedStore {
            inner,
            timers: OPERATIONS.map(|op| metrics.store_operation(op)),
        }
    }

    fn timed<T>(&self, op: usize, f: impl FnOnce(&dyn Store) -> T) -> T {
        let t = Instant::now();
        let out = f(self.inner.as_ref());
        self.timers[op].observe(t.elapsed());
        out
    }
}

impl Store for TimedStore {
    fn create_function(&self, f: &Function) -> Result<(), StoreError> {
        self.timed(0, |s| s.create_function(f))
    }
    fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        self.timed(1, |s| s.get_function(name))
    }
    fn list_functions(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Function>, StoreError> {
        self.timed(2, |s| s.list_functions(prefix, start_after, limit))
    }
    fn update_function(&self, f: &Function) -> Result<(), StoreError> {
        self.timed(3, |s| s.update_function(f))
    }
    fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        self.timed(4, |s| s.delete_function(name))
    }
    fn function_config(&self, name: &str, kind: &str) -> Result<Option<String>, StoreError> {
        self.timed(5, |s| s.function_config(name, kind))
    }
    fn put_function_config(&self, name: &str, kind: &str, doc: &str) -> Result<(), StoreError> {
        self.timed(6, |s| s.put_function_config(name, kind, doc))
    }
    fn delete_function_config(&self, name: &str, kind: &str) -> Result<bool, StoreError> {
        self.timed(7, |s| s.delete_function_config(name, kind))
    }
    fn function_configs(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.timed(8, |s| s.function_configs(kind))
    }
    fn function_configs_of(
        &self,
        name: &str,
        kind_prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.timed(9, |s| s.function_configs_of(name, kind_prefix))
    }
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.timed(10, |s| s.meta(key))
    }
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.timed(11, |s| s.set_meta(key, value))
    }
    // The shared store's own operations (rare, not on the request path): passed on untimed,
    // so PostgreSQL's implementations are used, not the trait's single-node defaults.
    fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.inner.init_meta(key, value)
    }
    fn next_counter(&self, name: &str, kind: &str) -> Result<u64, StoreError> {
        self.inner.next_counter(name, kind)
    }
    fn put_code(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put_code(sha256, bytes)
    }
    fn get_code(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_code(sha256)
    }
    fn create_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError> {
        self.timed(12, |s| s.create_custom_domain(d))
    }
    fn update_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError> {
        self.timed(13, |s| s.update_custom_domain(d))
    }
    fn get_custom_domain(&self, name: &str) -> Result<Option<StoredDomain>, StoreError> {
        self.timed(14, |s| s.get_custom_domain(name))
    }
    fn list_custom_domains(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredDomain>, StoreError> {
        self.timed(15, |s| s.list_custom_domains(prefix, start_after, limit))
    }
    fn delete_custom_domain(&self, name: &str) -> Result<bool, StoreError> {
        self.timed(16, |s| s.delete_custom_domain(name))
    }
    fn timer_last_fire(&self, function: &str, trigger: &str) -> Result<Option<i64>, StoreError> {
        self.timed(17, |s| s.timer_last_fire(function, trigger))
    }
    fn claim_timer_fire(
        &self,
        function: &str,
        trigger: &str,
        fire_ms: i64,
    ) -> Result<bool, StoreError> {
        self.timed(18, |s| s.claim_timer_fire(function, trigger, fire_ms))
    }
    fn delete_timer_state(&self, function: &str, trigger: &str) -> Result<(), StoreError> {
        self.timed(19, |s| s.delete_timer_state(function, trigger))
    }
    fn instance_uid(&self, name: &str, first: u32, last: u32) -> Result<u32, StoreError> {
        self.timed(20, |s| s.instance_uid(name, first, last))
    }
    // In memory: not a store operation worth a series.
    fn cipher(&self) -> &dyn fcx_model::SecretCipher {
        self.inner.cipher()
    }
}
