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
