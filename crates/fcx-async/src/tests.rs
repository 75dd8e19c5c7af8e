//! Unit tests of the async layer on the recording fake backend, a real SQLite queue in a
//! temp dir, and tokio's clock (paused and moved by hand where waits are long): retries and
//! their backoff, throttling, expiry, functions gone, stop, destinations, de-duplication.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fcx_model::async_config::{AsyncConfig, Destination, DestinationConfig};
use fcx_model::{CreateFunctionInput, Function};
use fcx_runtime::fake::{FakeBackend, ManualClock, Reply};
use fcx_runtime::{BackendKind, CodeCache};
use fcx_scheduler::{Backends, Deployed, Scheduler, SchedulerConfig};
use fcx_store::queue::TaskRow;

use crate::{AsyncError, AsyncService, AsyncSettings};

/// The mapping the tests hand the service: tells its output apart from anything else.
fn error_text(e: &AsyncError) -> String {
    format!("Mapped: {e}")
}

struct Harness {
    svc: Arc<AsyncService>,
    /// Shared by the scheduler and the service, as in the server.
    metrics: Arc<fcx_metrics::Metrics>,
    sched: Arc<Scheduler>,
    fake: Arc<FakeBackend>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = FakeBackend::new(BackendKind::Process);
        let metrics: Arc<fcx_metrics::Metrics> = Default::default();
        let sched = Scheduler::new(
            Backends::new().with(Arc::clone(&fake) as Arc<dyn fcx_runtime::Backend>),
            CodeCache::new(dir.path().join("code")),
            SchedulerConfig {
                region: "cn-test".into(),
                account_id: "123".into(),
                start_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(300),
                freeze_after: None,
                max_instances: 100,
                sandboxes_per_function: 0,
                sandbox_limit: 0,
                metrics: Arc::clone(&metrics),
                error_code: |_| "TestError",
            },
            None,
        );
        let db = dir.path().join("fcx.db");
        fcx_store::SqliteStore::open(&db).expect("store");
        let queue = fcx_store::queue::Queue::open(&db).expect("queue");
        let svc = AsyncService::on_tokio_clock(
            Arc::new(queue),
            Arc::clone(&sched),
            AsyncSettings {
                workers: 4,
                retry_base: Duration::from_secs(1),
                region: "cn-test".into(),
                account_id: "123".into(),
                error_text,
                metrics: Arc::clone(&metrics),
            },
        );
        Harness {
            svc,
            metrics,
            sched,
            fake,
            dir,
        }
    }

    fn deploy(&self, name: &str) {
        let input: CreateFunctionInput = serde_json::from_value(serde_json::json!({
            "functionName": name,
            "runtime": "custom.debian10",
            "handler": "index.handler",
        }))
        .expect("input");
        let mut f = Function::from_create(input, "id".into(), "cn-test", "123", "now").unwrap();
        f.code_sha256 = format!("{:064}", 1);
        std::fs::create_dir_all(
            self.dir
                .path()
                .join("code")
                .join("100000")
                .join(&f.code_sha256),
        )
        .unwrap();
        self.sched.deploy(Deployed {
            function: f,
            version_id: None,
            code_zip: Some(PathBuf::from("/nonexistent/unused.zip")),
            run_as: Some(100_000),
        });
    }

    async fn enqueue(&self, function: &str, payload: &str, task_id: &str) -> String {
        self.svc
            .enqueue(
                function,
                "LATEST",
                payload.as_bytes().to_vec(),
                uuid::Uuid::new_v4().to_string(),
                Some(task_id.to_owned()),
                crate::Origin::default(),
            )
            .await
            .expect("enqueued")
            .request_id
    }

    fn row(&self, function: &str, task_id: &str) -> TaskRow {
        self.svc
            .queue
            .get(function, task_id)
            .expect("read")
            .expect("task exists")
    }

    /// Waits until the task's status is `status`, moving `clock` (when given) in steps of
    /// `step` meanwhile; bounded in steps, not in time.
    async fn wait_status(
        &self,
        clock: Option<&ManualClock>,
        step: Duration,
        function: &str,
        task_id: &str,
        status: &str,
    ) -> TaskRow {
        for _ in 0..5000 {
            let row = self.row(function, task_id);
            if row.status == status {
                return row;
            }
            match clock {
                Some(c) => {
                    c.advance(step).await;
                    c.let_io_run().await;
                }
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        panic!(
            "task {task_id} never reached {status}: {:?}",
            self.row(function, task_id)
        );
    }
}

fn fail_always(h: &Harness) {
    h.fake
        .script(|s| s.on_invoke(|_| Reply::status(500, "boom").header("x-fc-status", "500")));
}

#[tokio::test]
async fn a_succeeding_event_runs_once_and_is_recorded_succeeded() {
    let h = Harness::new();
    h.deploy("f");
    h.svc.start();
    h.enqueue("f", "hello", "t1").await;
    let row = h
        .wait_status(None, Duration::ZERO, "f", "t1", "Succeeded")
        .await;
    assert_eq!(row.attempts, 0);
    assert_eq!(row.return_payload.as_deref(), Some(&b"hello"[..]));
    let invokes = h.fake.recorder().requests("/invoke");
    assert_eq!(invokes.len(), 1);
    assert_eq!(&invokes[0].body[..], b"hello");
}

#[tokio::test]
async fn retries_back_off_exponentially_and_count_attempts_up_to_the_maximum() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy("f");
    fail_always(&h);
    h.svc.set_config(
        "f",
        Some(AsyncConfig {
            max_async_retry_attempts: Some(2),
            ..AsyncConfig::default()
        }),
    );
    h.svc.start();
    h.enqueue("f", "x", "t1").await;
    let row = h
        .wait_status(Some(&clock), Duration::from_millis(60), "f", "t1", "Failed")
        .await;
    assert_eq!(row.attempts, 3, "the first run and two retries");
    assert!(row
        .error
        .as_deref()
        .unwrap()
        .starts_with("UnhandledInvocationError: "));
    let at: Vec<_> = h
        .fake
        .recorder()
        .requests("/invoke")
        .iter()
        .map(|r| r.at)
        .collect();
    assert_eq!(at.len(), 3);
    // Backoff: base (1 s) x 2^(attempt-1), within the ±25 % jitter, on the paused clock.
    assert!(
        at[1] - at[0] >= Duration::from_millis(750),
        "{:?}",
        at[1] - at[0]
    );
    assert!(
        at[2] - at[1] >= Duration::from_millis(1500),
        "{:?}",
        at[2] - at[1]
    );
}

#[tokio::test]
async fn throttled_runs_retry_without_consuming_attempts() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy("f");
    h.sched.set_reserved_concurrency("f", Some(0));
    h.svc.set_config(
        "f",
        Some(AsyncConfig {
            max_async_retry_attempts: Some(0),
            ..AsyncConfig::default()
        }),
    );
    h.svc.start();
    h.enqueue("f", "x", "t1").await;
    // Throttled a few times: still Retrying with no attempt used, though retries are 0.
    for _ in 0..3 {
        let row = h
            .wait_status(
                Some(&clock),
                Duration::from_millis(60),
                "f",
                "t1",
                "Retrying",
            )
            .await;
        assert_eq!(row.attempts, 0);
        clock.advance(Duration::from_millis(700)).await;
        clock.let_io_run().await;
    }
    let row = h.row("f", "t1");
    let details: Vec<String> = row
        .events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventDetail"].as_str().map(str::to_owned))
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("Mapped: Reserved concurrency")),
        "throttle text comes from the gateway's mapping: {details:?}"
    );
    h.sched.set_reserved_concurrency("f", None);
    let row = h
        .wait_status(
            Some(&clock),
            Duration::from_millis(60),
            "f",
            "t1",
            "Succeeded",
        )
        .await;
    assert_eq!(row.attempts, 0);
    assert_eq!(h.fake.recorder().requests("/invoke").len(), 1);
}

#[tokio::test]
async fn an_event_older_than_its_max_age_expires_without_running() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy("f");
    h.svc.set_config(
        "f",
        Some(AsyncConfig {
            max_async_event_age_in_seconds: Some(1),
            ..AsyncConfig::default()
        }),
    );
    h.enqueue("f", "x", "t1").await;
    clock.advance(Duration::from_secs(2)).await;
    h.svc.start();
    let row = h
        .wait_status(
            Some(&clock),
            Duration::from_millis(60),
            "f",
            "t1",
            "Expired",
        )
        .await;
    assert!(row.error.unwrap().contains("maxAsyncEventAgeInSeconds"));
    assert!(h.fake.recorder().requests("/invoke").is_empty());
}

#[tokio::test]
async fn a_task_of_a_function_that_is_gone_becomes_invalid() {
    let h = Harness::new();
    h.svc.start();
    h.enqueue("gone", "x", "t1").await;
    let row = h
        .wait_status(None, Duration::ZERO, "gone", "t1", "Invalid")
        .await;
    assert_eq!(
        row.error.as_deref(),
        Some("Mapped: function 'gone' does not exist")
    );
    assert_eq!(row.attempts, 0);
}

#[tokio::test]
async fn a_platform_error_is_a_failed_attempt_recorded_with_the_mapped_text() {
    let h = Harness::new();
    h.deploy("f");
    h.fake
        .script(|s| s.on_invoke(|_| Reply::Crash(fcx_runtime::ExitReason::Code(9))));
    h.svc.set_config(
        "f",
        Some(AsyncConfig {
            max_async_retry_attempts: Some(0),
            ..AsyncConfig::default()
        }),
    );
    h.svc.start();
    h.enqueue("f", "x", "t1").await;
    let row = h
        .wait_status(None, Duration::ZERO, "f", "t1", "Failed")
        .await;
    assert_eq!(row.attempts, 1);
    let error = row.error.unwrap();
    assert!(
        error.starts_with("Mapped: Process exited unexpectedly") && error.contains("exit code 9"),
        "{error}"
    );
}

#[tokio::test]
async fn stopping_a_running_task_cancels_it() {
    let h = Harness::new();
    h.deploy("f");
    h.fake.script(|s| s.on_invoke(|_| Reply::Hang));
    h.svc.start();
    h.enqueue("f", "x", "t1").await;
    h.fake
        .recorder()
        .wait_until("the run reached the instance", |c| {
            c.iter()
                .any(|c| matches!(c, fcx_runtime::fake::Call::Request(r) if r.path == "/invoke"))
        })
        .await;
    let status = h.svc.stop_task("f", "t1").await.unwrap();
    assert_eq!(status.as_deref(), Some("Stopping"));
    let row = h
        .wait_status(None, Duration::ZERO, "f", "t1", "Stopped")
        .await;
    assert_eq!(row.error.as_deref(), Some("stopped by user"));
}

#[tokio::test]
async fn a_failed_task_sends_its_record_to_the_on_failure_destination() {
    let h = Harness::new();
    h.deploy("f");
    h.deploy("dest");
    h.fake.script(|s| {
        s.on_invoke(|r| {
            if r.function == "f" {
                Reply::status(500, "bad").header("x-fc-status", "500")
            } else {
                Reply::ok("")
            }
        })
    });
    h.svc.set_config(
        "f",
        Some(AsyncConfig {
            max_async_retry_attempts: Some(0),
            destination_config: Some(DestinationConfig {
                on_success: None,
                on_failure: Some(Destination {
                    destination: "acs:fc:cn-test:123:functions/dest".into(),
                }),
            }),
            ..AsyncConfig::default()
        }),
    );
    h.svc.start();
    let rid = h.enqueue("f", "the event", "t1").await;
    let row = h
        .wait_status(None, Duration::ZERO, "f", "t1", "Failed")
        .await;
    assert_eq!(row.destination_status.as_deref(), Some("Succeeded"));
    h.fake
        .recorder()
        .wait_until("the destination ran", |c| {
            c.iter()
                .any(|c| matches!(c, fcx_runtime::fake::Call::Request(r) if r.function == "dest"))
        })
        .await;
    let record = h
        .fake
        .recorder()
        .requests("/invoke")
        .into_iter()
        .find(|r| r.function == "dest")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&record.body).unwrap();
    assert_eq!(v["requestContext"]["condition"], "UnhandledInvocationError");
    assert_eq!(v["requestContext"]["requestId"], rid.as_str());
    assert_eq!(v["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(v["requestPayload"], "the event");
    assert_eq!(v["responsePayload"], "bad");
}

#[tokio::test]
async fn a_succeeded_task_sends_its_response_to_the_on_success_destination() {
    let h = Harness::new();
    h.deploy("f");
    h.deploy("dest");
    h.svc.set_config(
        "f",
        Some(AsyncConfig {
            destination_config: Some(DestinationConfig {
                on_success: Some(Destination {
                    destination: "acs:fc:cn-test:123:functions/dest".into(),
                }),
                on_failure: None,
            }),
            ..AsyncConfig::default()
        }),
    );
    h.svc.start();
    h.enqueue("f", "echo me", "t1").await;
    h.wait_status(None, Duration::ZERO, "f", "t1", "Succeeded")
        .await;
    h.fake
        .recorder()
        .wait_until("the destination ran", |c| {
            c.iter()
                .any(|c| matches!(c, fcx_runtime::fake::Call::Request(r) if r.function == "dest"))
        })
        .await;
    let record = h
        .fake
        .recorder()
        .requests("/invoke")
        .into_iter()
        .find(|r| r.function == "dest")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&record.body).unwrap();
    assert_eq!(v["requestContext"]["condition"], "Success");
    assert_eq!(v["responsePayload"], "echo me");
}

#[tokio::test]
async fn a_repeated_task_id_is_enqueued_and_run_once() {
    let h = Harness::new();
    h.deploy("f");
    let first = h.enqueue("f", "x", "same").await;
    let second = h.enqueue("f", "x", "same").await;
    assert_eq!(first, second, "the duplicate gets the first request id");
    h.svc.start();
    h.wait_status(None, Duration::ZERO, "f", "same", "Succeeded")
        .await;
    // Give a second run every chance to show up (it must not).
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.fake.recorder().requests("/invoke").len(), 1);
}

/// The value of the first series whose line starts with `needle`.
fn series(h: &Harness, needle: &str) -> Option<f64> {
    h.metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn backlog_attempts_by_result_and_queue_wait_reach_the_metrics() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy("ok");
    h.deploy("bad");
    h.fake.script(|s| {
        s.on_invoke(|r| match &r.body[..] {
            b"fail" => Reply::status(500, "boom").header("x-fc-status", "500"),
            _ => Reply::ok("fine"),
        })
    });
    h.svc.set_config(
        "bad",
        Some(AsyncConfig {
            max_async_retry_attempts: Some(1),
            ..AsyncConfig::default()
        }),
    );
    // Queued before any worker runs: the backlog shows both, the oldest with its age.
    h.enqueue("ok", "x", "t-ok").await;
    h.enqueue("bad", "fail", "t-bad").await;
    assert_eq!(series(&h, "fcx_async_queue_depth "), Some(2.0));
    assert!(series(&h, "fcx_async_oldest_event_age_seconds ").is_some_and(|a| a >= 0.0));

    h.svc.start();
    h.wait_status(
        Some(&clock),
        Duration::from_millis(60),
        "ok",
        "t-ok",
        "Succeeded",
    )
    .await;
    h.wait_status(
        Some(&clock),
        Duration::from_millis(60),
        "bad",
        "t-bad",
        "Failed",
    )
    .await;
    let attempts = |f: &str, kind: &str| {
        series(
            &h,
            &format!(r#"fcx_async_attempts_total{{function="{f}",kind="{kind}"}}"#),
        )
    };
    assert_eq!(attempts("ok", "succeeded"), Some(1.0));
    assert_eq!(
        attempts("bad", "retrying"),
        Some(1.0),
        "the first run of two"
    );
    assert_eq!(attempts("bad", "failed"), Some(1.0));
    assert_eq!(attempts("bad", "succeeded"), None);
    // Each task's wait for its first attempt (a retry waits for its backoff, not the queue).
    assert_eq!(series(&h, "fcx_async_queue_wait_seconds_count"), Some(2.0));
    assert_eq!(series(&h, "fcx_async_queue_depth "), Some(0.0));
    // The async runs are invocations too.
    assert_eq!(
        series(
            &h,
            r#"fcx_invocations_total{function="bad",qualifier="LATEST",outcome="function_error",code="UnhandledInvocationError"}"#
        ),
        Some(2.0)
    );
}

/// An idle worker loop over the embedded queue does not poll: with nothing queued it waits
/// for the longest bound (an enqueue wakes it); with a task due later it waits until then.
#[tokio::test(start_paused = true)]
async fn an_idle_loop_waits_for_the_next_due_task_instead_of_polling() {
    let h = Harness::new();
    assert_eq!(
        crate::worker::idle_wait(&h.svc).await,
        crate::worker::IDLE_MAX
    );
    let due_in = 400;
    h.svc
        .queue
        .enqueue(fcx_store::queue::NewTask {
            task_id: "later".into(),
            request_id: "r-later".into(),
            function: "f".into(),
            qualifier: "LATEST".into(),
            payload: b"x".to_vec(),
            is_task: true,
            now_ms: h.svc.now_ms() + due_in,
            origin: None,
        })
        .await
        .expect("enqueued");
    let wait = crate::worker::idle_wait(&h.svc).await;
    assert_eq!(wait, Duration::from_millis(due_in as u64));
    assert!(wait > crate::worker::IDLE_POLL, "{wait:?}");
}
