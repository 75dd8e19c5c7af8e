//! What the scheduler records into the metrics: outcomes with their codes, the cold start
//! once, a streamed answer only at its end, and the series of a deleted function gone.

use std::sync::atomic::Ordering;

use fcx_runtime::fake::{Gate, Reply};

use super::*;

fn series(h: &Harness, needle: &str) -> Option<f64> {
    let text = h.metrics.encode();
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn outcomes_latencies_and_the_cold_start_are_counted_per_version() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| {
        s.on_invoke(|r| match &r.body[..] {
            b"fail" => Reply::status(500, "boom").header("x-fc-status", "500"),
            _ => Reply::ok("fine"),
        })
    });
    for _ in 0..3 {
        read(h.invoke("f", "x").await.unwrap()).await;
    }
    let failed = h.invoke("f", "fail").await.unwrap();
    assert_eq!(
        failed.facts.function_error,
        Some("UnhandledInvocationError")
    );
    read(failed).await;
    let labels = r#"{function="f",qualifier="LATEST""#;
    assert_eq!(
        series(
            &h,
            &format!(r#"fcx_invocations_total{labels},outcome="success",code=""}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(
        series(
            &h,
            &format!(
                r#"fcx_invocations_total{labels},outcome="function_error",code="UnhandledInvocationError"}}"#
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        series(&h, &format!("fcx_cold_starts_total{labels}}}")),
        Some(1.0)
    );
    assert_eq!(
        series(
            &h,
            &format!("fcx_invocation_duration_seconds_count{labels}}}")
        ),
        Some(4.0)
    );
    assert_eq!(
        series(
            &h,
            &format!(r#"fcx_cold_start_phase_duration_seconds_count{labels},phase="create"}}"#)
        ),
        Some(1.0)
    );
    let recent = h.metrics.recent();
    assert_eq!(recent.len(), 4);
    assert!(
        recent.last().unwrap().cold_start,
        "the first call started the instance"
    );
    assert!(!recent[0].cold_start);
    assert_eq!(
        series(&h, &format!(r#"fcx_instances{labels},state="idle"}}"#)),
        Some(1.0)
    );

    h.sched.remove("f");
    assert!(!h.metrics.encode().contains(r#"function="f""#));
}

#[tokio::test]
async fn a_streamed_answer_is_counted_when_its_last_byte_is_sent() {
    let h = Harness::new();
    h.deploy(function("f"));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let success =
        r#"fcx_invocations_total{function="f",qualifier="LATEST",outcome="success",code=""}"#;
    let resp = h.invoke("f", "hold:0").await.unwrap();
    assert!(resp.facts.cold_start);
    assert_eq!(
        series(&h, success),
        Some(0.0),
        "counted before the body ended"
    );
    assert_eq!(
        series(
            &h,
            r#"fcx_concurrency_slots_in_use{function="f",qualifier="LATEST"}"#
        ),
        Some(1.0)
    );
    gate.open();
    read(resp).await;
    assert_eq!(series(&h, success), Some(1.0));
}

#[tokio::test]
async fn a_throttle_is_counted_with_its_limit() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.sched.set_reserved_concurrency("f", Some(1));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let busy = h.invoke("f", "hold:0").await.unwrap();
    assert!(h.invoke("f", "x").await.is_err());
    assert_eq!(
        series(
            &h,
            r#"fcx_throttles_total{function="f",qualifier="LATEST",limit="reservedConcurrency"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &h,
            r#"fcx_invocations_total{function="f",qualifier="LATEST",outcome="throttled",code="reservedConcurrency"}"#
        ),
        Some(1.0)
    );
    gate.open();
    read(busy).await;
}

#[tokio::test]
async fn a_refusal_at_the_cluster_instance_cap_is_counted_as_a_throttle() {
    let h = Harness::new();
    h.deploy(function("f"));
    // This node's share of `--cluster-max-instances 3` is 0: no instance may start here.
    h.sched.set_instance_share(Some(3), Some(0));
    let refused = h.invoke("f", "x").await.err().expect("refused");
    assert!(
        matches!(
            refused,
            SchedulerError::ClusterInstanceLimit { max: 3, share: 0 }
        ),
        "{refused:?}"
    );
    assert_eq!(
        series(
            &h,
            r#"fcx_throttles_total{function="f",qualifier="LATEST",limit="clusterMaxInstances"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &h,
            r#"fcx_invocations_total{function="f",qualifier="LATEST",outcome="throttled",code="clusterMaxInstances"}"#
        ),
        Some(1.0)
    );
    assert!(
        !h.metrics.encode().contains(r#"outcome="platform_error""#),
        "{}",
        h.metrics.encode()
    );
    assert_eq!(h.metrics.totals().throttles.load(Ordering::Relaxed), 1);
    assert_eq!(
        h.metrics.totals().platform_errors.load(Ordering::Relaxed),
        0
    );

    // The function's throttle series go with it.
    h.sched.remove("f");
    assert!(!h.metrics.encode().contains(r#"function="f""#));
}

/// A request body that fails as the gateway's does when the client aborts its upload.
struct AbortedUpload;

impl hyper::body::Body for AbortedUpload {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, body::BoxError>>> {
        let e = body::ClientBodyError("the client aborted its upload".into());
        std::task::Poll::Ready(Some(Err(Box::new(e))))
    }
}

#[tokio::test]
async fn a_broken_client_body_is_counted_as_a_client_error_not_a_platform_error() {
    use http_body_util::BodyExt;

    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| s.on_invoke(|_| Reply::ok("fine")));
    let req = InvokeRequest {
        payload: AbortedUpload.boxed_unsync(),
        ..request("")
    };
    let e = h.sched.invoke("f", req).await.err().expect("refused");
    assert!(matches!(e, SchedulerError::PayloadUnreadable(_)), "{e:?}");
    assert_eq!(
        series(
            &h,
            r#"fcx_invocations_total{function="f",qualifier="LATEST",outcome="client_error",code="TestError"}"#
        ),
        Some(1.0)
    );
    let text = h.metrics.encode();
    assert!(!text.contains(r#"outcome="platform_error""#), "{text}");
    assert_eq!(h.metrics.totals().client_errors.load(Ordering::Relaxed), 1);
    assert_eq!(
        h.metrics.totals().platform_errors.load(Ordering::Relaxed),
        0
    );
    assert_eq!(h.metrics.recent()[0].outcome, "client_error");
}

#[test]
fn errors_of_the_request_itself_are_client_errors_and_failures_of_fcx_are_not() {
    for e in [
        SchedulerError::PayloadUnreadable("aborted".into()),
        SchedulerError::PayloadTooLarge { limit: 10 },
        SchedulerError::EventHasNul,
        SchedulerError::EventTooLarge { len: 11, limit: 10 },
    ] {
        assert!(e.is_client_error(), "{e:?}");
        assert_eq!(e.limit_name(), None, "{e:?}");
    }
    for e in [
        SchedulerError::InstanceLimit { max: 1 },
        SchedulerError::ClusterInstanceLimit { max: 2, share: 1 },
        SchedulerError::Internal("broken invariant"),
        SchedulerError::FunctionNotFound {
            function: "f".into(),
        },
    ] {
        assert!(!e.is_client_error(), "{e:?}");
    }
}
