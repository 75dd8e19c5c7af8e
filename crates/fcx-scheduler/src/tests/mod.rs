//! Unit tests of the scheduler's logic on the recording fake backend
//! (`fcx_runtime::fake`): pools, limits, hooks, the maintenance loop, failures. They need no
//! root; the features themselves are proven by the end-to-end tests on real backends.

mod failures;
mod hooks;
mod limits;
mod maintenance;
mod metrics;
mod pool;
mod sandboxes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fcx_model::{CreateFunctionInput, Function, LifecycleHook};
use fcx_runtime::body;
use fcx_runtime::fake::{Call, FakeBackend, Gate, Received, Recorder, Reply};
use fcx_runtime::{BackendKind, CodeCache};

/// The instance uid test functions are deployed with (the fake backend runs no process).
const TEST_UID: u32 = 100_000;

use crate::{
    Backends, CallContext, Deployed, InvokeRequest, InvokeResponse, Scheduler, SchedulerConfig,
    SchedulerError,
};

/// A scheduler with the fake as its process backend, and a code dir for its functions.
pub struct Harness {
    pub sched: Arc<Scheduler>,
    pub fake: Arc<FakeBackend>,
    /// The scheduler's metrics.
    pub metrics: Arc<fcx_metrics::Metrics>,
    dir: tempfile::TempDir,
}

pub fn config() -> SchedulerConfig {
    SchedulerConfig {
        region: "cn-test".into(),
        account_id: "1234567890123456".into(),
        start_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(300),
        freeze_after: None,
        max_instances: 100,
        sandboxes_per_function: 0,
        sandbox_limit: 0,
        metrics: Default::default(),
        error_code: |_| "TestError",
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(FakeBackend::new(BackendKind::Process), config())
    }

    pub fn with_config(config: SchedulerConfig) -> Harness {
        Harness::with(FakeBackend::new(BackendKind::Process), config)
    }

    pub fn with(fake: Arc<FakeBackend>, config: SchedulerConfig) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let backends = Backends::new().with(Arc::clone(&fake) as Arc<dyn fcx_runtime::Backend>);
        let metrics = Arc::clone(&config.metrics);
        let sched = Scheduler::new(
            backends,
            CodeCache::new(dir.path().join("code")),
            config,
            None,
        );
        Harness {
            sched,
            fake,
            metrics,
            dir,
        }
    }

    pub fn rec(&self) -> &Recorder {
        self.fake.recorder()
    }

    /// Deploys `f` as LATEST, with its code "unpacked" already (an empty directory).
    pub fn deploy(&self, f: Function) {
        self.deploy_version(f, None);
    }

    pub fn deploy_version(&self, f: Function, version: Option<&str>) {
        let code = self
            .dir
            .path()
            .join("code")
            .join(TEST_UID.to_string())
            .join(&f.code_sha256);
        std::fs::create_dir_all(&code).expect("code dir");
        self.sched.deploy(Deployed {
            function: f,
            version_id: version.map(str::to_owned),
            code_zip: Some(PathBuf::from("/nonexistent/unused.zip")),
            run_as: Some(TEST_UID),
        });
    }

    pub async fn invoke(&self, name: &str, body: &str) -> Result<InvokeResponse, SchedulerError> {
        self.sched.invoke(name, request(body)).await
    }

    /// Invokes in a task of its own (for requests that must be in flight together).
    pub fn spawn_invoke(
        &self,
        name: &str,
        body: &str,
    ) -> tokio::task::JoinHandle<Result<InvokeResponse, SchedulerError>> {
        let (sched, name, req) = (Arc::clone(&self.sched), name.to_owned(), request(body));
        tokio::spawn(async move { sched.invoke(&name, req).await })
    }

    pub fn pool(&self, name: &str) -> Arc<crate::pool::Pool> {
        self.sched.pool(name).expect("deployed")
    }

    /// Waits until `n` requests reached `path` on the fake.
    pub async fn wait_requests(&self, path: &str, n: usize) {
        let what = format!("{n} requests reached {path}");
        self.rec()
            .wait_until(&what, |calls| count_requests(calls, path) >= n)
            .await;
    }
}

pub fn count_requests(calls: &[Call], path: &str) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Request(r) if r.path == path))
        .count()
}

pub fn count_starts(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Start { .. }))
        .count()
}

/// A web-server custom-runtime function with FC's defaults.
pub fn function(name: &str) -> Function {
    let input: CreateFunctionInput = serde_json::from_value(serde_json::json!({
        "functionName": name,
        "runtime": "custom.debian10",
        "handler": "index.handler",
    }))
    .expect("create input");
    let mut f = Function::from_create(input, "id".into(), "cn-test", "1", "now").expect("function");
    f.code_sha256 = format!("{:064}", 7);
    f
}

pub fn hook() -> LifecycleHook {
    LifecycleHook {
        handler: "hook".into(),
        timeout: 3,
        command: None,
    }
}

pub fn request(body: &str) -> InvokeRequest {
    InvokeRequest {
        context: CallContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            qualifier: "LATEST".into(),
            tail_log: false,
            service_name: None,
            started: std::time::Instant::now(),
            trace: None,
            trigger: None,
        },
        payload: body::full(Bytes::from(body.to_owned())),
    }
}

/// The whole answer.
pub async fn read(resp: InvokeResponse) -> Bytes {
    body::collect(resp.body).await.expect("answer body")
}

/// A responder holding every answer whose body is `hold:<n>` on gate `n` of `gates`.
pub fn holding(gates: &[Gate]) -> impl Fn(&Received) -> Reply + Send + Sync + 'static {
    let gates = gates.to_vec();
    move |r: &Received| {
        let text = String::from_utf8_lossy(&r.body).into_owned();
        match text
            .strip_prefix("hold:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Reply::ok(text.clone()).held_by(&gates[n]),
            None => Reply::ok(text),
        }
    }
}
