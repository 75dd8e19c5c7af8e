use std::time::Duration;

use super::*;

fn finished(outcome: Outcome, code: &'static str, ms: u64) -> Finished<'static> {
    Finished {
        request_id: "r-1",
        instance_id: "c-1",
        outcome,
        code,
        total: Duration::from_millis(ms),
        in_instance: Some(Duration::from_millis(ms)),
        cold_start: false,
    }
}

#[test]
fn a_deployed_version_exports_its_series_with_labels() {
    let m = Metrics::default();
    let f = m.function("hello", "LATEST");
    f.finished(&finished(Outcome::Success, "", 3));
    f.finished(&finished(Outcome::Success, "", 300));
    f.finished(&finished(Outcome::FunctionError, "FunctionTimeout", 5));
    f.finished(&finished(Outcome::Throttled, "reservedConcurrency", 0));
    f.cold_started(&[(Phase::Create, Duration::from_millis(2))]);
    let text = m.encode();
    for want in [
        "fcx_invocations_total{function=\"hello\",qualifier=\"LATEST\",outcome=\"success\",code=\"\"} 2",
        "fcx_invocations_total{function=\"hello\",qualifier=\"LATEST\",outcome=\"function_error\",code=\"FunctionTimeout\"} 1",
        "fcx_throttles_total{function=\"hello\",qualifier=\"LATEST\",limit=\"reservedConcurrency\"} 1",
        "fcx_invocation_duration_seconds_count{function=\"hello\",qualifier=\"LATEST\"} 3",
        "fcx_invocation_duration_seconds_bucket{function=\"hello\",qualifier=\"LATEST\",le=\"0.5\"} 3",
        "fcx_invocation_duration_seconds_bucket{function=\"hello\",qualifier=\"LATEST\",le=\"0.25\"} 2",
        "fcx_cold_starts_total{function=\"hello\",qualifier=\"LATEST\"} 1",
        "fcx_cold_start_phase_duration_seconds_count{function=\"hello\",qualifier=\"LATEST\",phase=\"create\"} 1",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    assert_eq!(m.recent().len(), 4);
    assert_eq!(
        m.totals()
            .success
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn the_same_version_shares_one_label_set_and_removal_frees_it() {
    let m = Metrics::new(2);
    let a = m.function("a", "LATEST");
    let again = m.function("a", "LATEST");
    assert!(Arc::ptr_eq(&a, &again));
    let b = m.function("b", "1");
    // Over the cap: the overflow set.
    let c = m.function("c", "LATEST");
    assert_eq!(&*c.labels.function, OVERFLOW);
    c.finished(&finished(Outcome::Success, "", 1));
    assert!(m
        .encode()
        .contains("fcx_invocations_total{function=\"_other\",qualifier=\"_other\",outcome=\"success\",code=\"\"} 1"));
    b.finished(&finished(Outcome::PlatformError, "ProcessExited", 1));
    m.remove_all_versions("b");
    let text = m.encode();
    assert!(!text.contains("function=\"b\""), "{text}");
    // The freed slot goes to the next version.
    assert_eq!(&*m.function("c", "LATEST").labels.function, "c");
}
