//! Snapshot starts (the `fcxSnapshot` extension): the first instance of a function that
//! opts in is dumped right after its first successful `/initialize`, before it serves; every
//! later cold start restores that snapshot through the backend instead of starting and
//! initializing again. Snapshots are keyed by function version, record and code/image, and
//! an update removes the old ones. Whatever goes wrong (no usable CRIU, a failed dump, a
//! failed restore) falls back to a normal cold start: the reason is counted and logged once
//! per function, and never reaches the caller.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_protocol::headers::control_path;
use fcx_runtime::snapshot::{Criu, SnapshotStore};
use fcx_runtime::{Backend, Instance, InstanceSpec};
use sha2::{Digest, Sha256};

use crate::pool::Pool;
use crate::{CallContext, Deployed};

/// Why an instance of a snapshot-enabled function started cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// No CRIU 4.2+ that passes `criu check` on this host.
    CriuUnavailable,
    /// The function's backend does not take snapshots.
    BackendUnsupported,
    /// CRIU could not dump the instance (the text says why).
    DumpFailed,
    /// The snapshot was larger than the whole budget.
    OverBudget,
    /// Restoring failed (e.g. a corrupted snapshot, which is then removed).
    RestoreFailed,
    /// The restored instance's `POST /restore` hook failed.
    RestoreHookFailed,
}

impl Fallback {
    /// Every reason, in counter order.
    pub const ALL: [Fallback; 6] = [
        Fallback::CriuUnavailable,
        Fallback::BackendUnsupported,
        Fallback::DumpFailed,
        Fallback::OverBudget,
        Fallback::RestoreFailed,
        Fallback::RestoreHookFailed,
    ];

    /// The reason's label (a metrics label later: `reason="restore_failed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::CriuUnavailable => "criu_unavailable",
            Fallback::BackendUnsupported => "backend_unsupported",
            Fallback::DumpFailed => "dump_failed",
            Fallback::OverBudget => "over_budget",
            Fallback::RestoreFailed => "restore_failed",
            Fallback::RestoreHookFailed => "restore_hook_failed",
        }
    }
}

/// Counters of snapshot starts, shaped for a metrics registry: plain atomics, one per event
/// and one per fallback reason.
#[derive(Debug, Default)]
pub struct SnapshotCounters {
    /// Snapshots taken.
    pub dumps: AtomicU64,
    /// Instances started from a snapshot.
    pub restores: AtomicU64,
    fallbacks: [AtomicU64; 6],
}

impl SnapshotCounters {
    /// How many cold starts fell back for `reason`.
    pub fn fallback(&self, reason: Fallback) -> u64 {
        self.fallbacks[reason as usize].load(Ordering::Relaxed)
    }

    /// Every fallback reason with its count.
    pub fn fallbacks(&self) -> Vec<(&'static str, u64)> {
        Fallback::ALL
            .iter()
            .map(|r| (r.as_str(), self.fallback(*r)))
            .collect()
    }
}

/// The server's snapshot state.
pub struct Snapshots {
    store: SnapshotStore,
    /// The usable CRIU, or why there is none.
    criu: Result<Arc<Criu>, String>,
    /// What happened so far.
    pub counters: SnapshotCounters,
    /// (function, reason) pairs already logged.
    logged: Mutex<HashSet<(String, Fallback)>>,
    /// Keys being dumped right now (one dump per key).
    dumping: Mutex<HashSet<String>>,
}

impl Snapshots {
    /// The state of a server with `store`, and its CRIU or why it has none.
    pub fn new(store: SnapshotStore, criu: Result<Arc<Criu>, String>) -> Snapshots {
        Snapshots {
            store,
            criu,
            counters: SnapshotCounters::default(),
            logged: Mutex::default(),
            dumping: Mutex::default(),
        }
    }

    /// The snapshot directory.
    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// Counts `reason` and logs it the first time it happens to `function`.
    fn fall_back(&self, function: &str, reason: Fallback, detail: &str) {
        self.counters.fallbacks[reason as usize].fetch_add(1, Ordering::Relaxed);
        let first = self
            .logged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((function.to_owned(), reason));
        if first {
            tracing::warn!(
                function,
                reason = reason.as_str(),
                detail,
                "snapshot start not possible; starting cold (logged once per function and reason)"
            );
        }
    }

    /// Removes the snapshots of `deployed`'s function version that its current record can
    /// no longer use (it was updated), and of a deleted function (`deployed`: `None`).
    pub fn invalidate(&self, name: &str, version: Option<&str>, keep: Option<&Deployed>) {
        let prefix = format!("{name}@{}-", version.unwrap_or("LATEST"));
        let keep = keep.map(record_prefix);
        self.store.remove_prefix(&prefix, keep.as_deref());
    }

    /// Removes every snapshot of a deleted function.
    pub fn remove_function(&self, name: &str) {
        self.store.remove_prefix(&format!("{name}@"), None);
    }
}

/// `<name>@<version>-<hash of the function record>-`: every snapshot of this exact record.
fn record_prefix(deployed: &Deployed) -> String {
    let f = &deployed.function;
    let record = serde_json::to_vec(f).unwrap_or_default();
    let hash = hex16(&record);
    format!(
        "{}@{}-{hash}-",
        f.function_name,
        deployed.version_id.as_deref().unwrap_or("LATEST")
    )
}

fn hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The snapshot key of an instance of `deployed` launched as `spec`: the record's prefix and
/// the code or image it runs (the unpacked code dir and the image rootfs are named by their
/// digests) and the uid it runs as (a restore keeps the dumped processes' uid, so a function
/// given another uid must not restore an older one's snapshot).
pub fn key(deployed: &Deployed, spec: &InstanceSpec) -> String {
    let code = format!("{}\0{:?}", spec.code_dir.display(), spec.run_as);
    format!("{}{}", record_prefix(deployed), hex16(code.as_bytes()))
}

/// What a cold start of a snapshot-enabled function does about snapshots.
pub struct Plan {
    snapshots: Arc<Snapshots>,
    key: String,
    function: String,
}

/// The plan for a cold start of `pool` on `backend`, or `None` when the function does not
/// opt in (or fcx could not help it: the reason is counted).
pub fn plan(
    snapshots: Option<&Arc<Snapshots>>,
    pool: &Pool,
    backend: &dyn Backend,
    spec: &InstanceSpec,
) -> Option<Plan> {
    let f = &pool.deployed.function;
    if !spec.snapshot {
        return None;
    }
    let snapshots = snapshots?;
    if let Err(why) = &snapshots.criu {
        snapshots.fall_back(&f.function_name, Fallback::CriuUnavailable, why);
        return None;
    }
    if !backend.snapshots() {
        snapshots.fall_back(
            &f.function_name,
            Fallback::BackendUnsupported,
            &format!("the {} backend takes no snapshots", backend.kind()),
        );
        return None;
    }
    Some(Plan {
        snapshots: Arc::clone(snapshots),
        key: key(&pool.deployed, spec),
        function: f.function_name.clone(),
    })
}

/// How long a restored instance's `POST /restore` may take.
const RESTORE_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

impl Plan {
    /// A restored instance, or `None` (no snapshot yet, or the restore failed: counted,
    /// and a snapshot that failed is removed so the next start dumps a fresh one).
    pub async fn restore(
        &self,
        pool: &Pool,
        backend: &dyn Backend,
        spec: &InstanceSpec,
    ) -> Option<Instance> {
        let snap = self.snapshots.store.get(&self.key)?;
        let restored = backend.restore(spec, &snap).await;
        drop(snap);
        let instance = match restored {
            Ok(instance) => instance,
            Err(e) => {
                self.snapshots.store.remove(&self.key);
                self.snapshots
                    .fall_back(&self.function, Fallback::RestoreFailed, &e.to_string());
                return None;
            }
        };
        if pool.deployed.function.restore_hook() {
            if let Err(why) = restore_hook(pool, &instance).await {
                instance.kill();
                self.snapshots
                    .fall_back(&self.function, Fallback::RestoreHookFailed, &why);
                return None;
            }
        }
        self.snapshots
            .counters
            .restores
            .fetch_add(1, Ordering::Relaxed);
        Some(instance)
    }

    /// Dumps `instance` (just initialized, not yet serving) unless a snapshot exists or
    /// another start is dumping one.
    pub async fn dump(&self, backend: &dyn Backend, instance: &Instance) {
        let store = &self.snapshots.store;
        if store.get(&self.key).is_some() {
            return;
        }
        if !self
            .snapshots
            .dumping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.key.clone())
        {
            return;
        }
        let result = self.dump_now(backend, instance).await;
        self.snapshots
            .dumping
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        match result {
            Ok(bytes) => {
                self.snapshots
                    .counters
                    .dumps
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(function = %self.function, snapshot = %self.key, bytes, "snapshot taken");
            }
            Err((reason, why)) => self.snapshots.fall_back(&self.function, reason, &why),
        }
    }

    async fn dump_now(
        &self,
        backend: &dyn Backend,
        instance: &Instance,
    ) -> Result<u64, (Fallback, String)> {
        let store = &self.snapshots.store;
        let pending = store
            .begin(&self.key)
            .map_err(|e| (Fallback::DumpFailed, e.to_string()))?;
        let meta = backend
            .snapshot(instance, &pending)
            .await
            .map_err(|e| (Fallback::DumpFailed, e.to_string()))?;
        store.publish(pending, &meta).map_err(|e| match e {
            fcx_runtime::snapshot::store::StoreError::OverBudget { .. } => {
                (Fallback::OverBudget, e.to_string())
            }
            other => (Fallback::DumpFailed, other.to_string()),
        })
    }
}

/// `POST /restore` on a restored instance: an fcx extension (like SnapStart's after-restore
/// hook) to reseed RNGs and reopen connections. Any 2xx is success.
async fn restore_hook(pool: &Pool, instance: &Instance) -> Result<(), String> {
    let ctx = CallContext::internal();
    let mut request = http::Request::new(fcx_runtime::body::empty());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(control_path::RESTORE);
    *request.headers_mut() = crate::context::headers(
        &pool.context_headers,
        &ctx,
        control_path::RESTORE,
        &instance.id,
    );
    match tokio::time::timeout(RESTORE_HOOK_TIMEOUT, instance.call_collect(request)).await {
        Err(_) => Err(format!(
            "POST /restore did not answer within {RESTORE_HOOK_TIMEOUT:?}"
        )),
        Ok(Err(e)) => Err(format!("POST /restore failed: {e}")),
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!(
            "POST /restore answered {}: {}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
                .chars()
                .take(256)
                .collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshots(dir: &std::path::Path) -> Snapshots {
        let store = SnapshotStore::open(dir, 1 << 20).unwrap();
        Snapshots::new(store, Err("criu is not installed".into()))
    }

    #[test]
    fn fallbacks_are_counted_every_time_and_logged_once_per_function_and_reason() {
        let d = tempfile::tempdir().unwrap();
        let s = snapshots(d.path());
        s.fall_back("f", Fallback::RestoreFailed, "bad image");
        s.fall_back("f", Fallback::RestoreFailed, "bad image");
        s.fall_back("g", Fallback::RestoreFailed, "bad image");
        s.fall_back("f", Fallback::DumpFailed, "no");
        assert_eq!(s.counters.fallback(Fallback::RestoreFailed), 3);
        assert_eq!(s.counters.fallback(Fallback::DumpFailed), 1);
        assert_eq!(s.logged.lock().unwrap().len(), 3);
        let labels: Vec<&str> = s.counters.fallbacks().iter().map(|(l, _)| *l).collect();
        assert!(labels.contains(&"restore_failed") && labels.contains(&"criu_unavailable"));
    }

    #[test]
    fn keys_change_with_the_record_and_the_code() {
        let deployed = |timeout: u32| {
            let body = serde_json::json!({
                "functionName": "f", "runtime": "custom.debian12", "handler": "h",
                "timeout": timeout, "code": { "zipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==" },
            });
            let input = fcx_model::parse_create(body.to_string().as_bytes()).unwrap();
            let f = fcx_model::Function::from_create(input, "id".into(), "r", "1", "t").unwrap();
            Deployed {
                function: f,
                version_id: None,
                code_zip: None,
                run_as: Some(100_000),
            }
        };
        let spec_as = |code: &str, uid: u32| InstanceSpec {
            function_name: "f".into(),
            code_dir: code.into(),
            command: vec![],
            env: vec![],
            port: 9000,
            start_timeout: Duration::from_secs(1),
            internet_access: false,
            container: None,
            snapshot: true,
            memory_mb: 128,
            disk_mb: 512,
            run_as: Some(uid),
        };
        let spec = |code: &str| spec_as(code, 100_000);
        let a = key(&deployed(3), &spec("/code/a"));
        assert!(a.starts_with("f@LATEST-"), "{a}");
        assert_eq!(a, key(&deployed(3), &spec("/code/a")));
        assert_ne!(a, key(&deployed(4), &spec("/code/a")), "a changed record");
        assert_ne!(
            a,
            key(&deployed(3), &spec("/code/b")),
            "other code or image"
        );
        assert_ne!(
            a,
            key(&deployed(3), &spec_as("/code/a", 100_001)),
            "another uid"
        );
        assert!(key(&deployed(3), &spec("/code/b")).starts_with(&record_prefix(&deployed(3))));
    }
}
