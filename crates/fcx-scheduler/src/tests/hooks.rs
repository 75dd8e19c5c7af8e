//! Lifecycle hooks: /initialize once per instance, /pre-stop exactly once, /pre-freeze, and
//! what their failures do.

use std::sync::Arc;

use fcx_runtime::fake::{Gate, Reply};

use super::*;
use crate::lifecycle::{self, HookOutcome};

fn with_hooks(name: &str) -> Function {
    let mut f = function(name);
    f.instance_lifecycle_config.initializer = Some(hook());
    f.instance_lifecycle_config.pre_stop = Some(hook());
    f.instance_lifecycle_config.pre_freeze = Some(hook());
    f
}

#[tokio::test]
async fn initialize_is_called_once_per_instance_before_its_first_invoke() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let a = h.invoke("f", "hold:0").await.unwrap();
    let b = h.invoke("f", "hold:0").await.unwrap();
    gate.open();
    read(a).await;
    read(b).await;
    for _ in 0..3 {
        read(h.invoke("f", "x").await.unwrap()).await;
    }
    let inits = h.rec().requests("/initialize");
    assert_eq!(inits.len(), 2, "two instances, one /initialize each");
    assert_ne!(inits[0].instance, inits[1].instance);
    assert_eq!(inits[0].header("x-fc-control-path"), Some("/initialize"));
    // Each instance's /initialize came before its first /invoke.
    let calls = h.rec().calls();
    for init in &inits {
        let pos = |path: &str| {
            calls.iter().position(
                |c| matches!(c, Call::Request(r) if r.instance == init.instance && r.path == path),
            )
        };
        assert!(pos("/initialize") < pos("/invoke"));
    }
}

#[tokio::test]
async fn a_failing_initializer_answers_initialization_error_and_discards_the_instance() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    h.fake
        .script(|s| s.initialize = Reply::status(500, "init broke"));
    let resp = h
        .invoke("f", "x")
        .await
        .expect("a function error, not a platform one");
    assert_eq!(
        resp.error_type,
        Some(fcx_protocol::headers::UNHANDLED_INVOCATION_ERROR)
    );
    let body = String::from_utf8_lossy(&read(resp).await).into_owned();
    assert!(body.contains("InitializationError"), "{body}");
    assert!(body.contains("init broke"), "{body}");
    assert!(h.rec().requests("/invoke").is_empty());
    // The next request gets a fresh instance (and a fresh /initialize).
    h.fake.script(|s| s.initialize = Reply::ok(""));
    read(h.invoke("f", "x").await.unwrap()).await;
    assert_eq!(h.rec().starts().len(), 2);
    assert_eq!(h.rec().requests("/initialize").len(), 2);
}

#[tokio::test]
async fn an_initializer_that_crashes_the_process_answers_process_exited() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    h.fake
        .script(|s| s.initialize = Reply::Crash(fcx_runtime::ExitReason::Signal(libc::SIGSEGV)));
    let e = h.invoke("f", "x").await.err().expect("platform error");
    assert!(
        matches!(
            e,
            SchedulerError::ProcessExited {
                exit: fcx_runtime::ExitReason::Signal(11),
                instance_id: None,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn pre_stop_is_called_exactly_once_however_often_the_instance_is_stopped() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    read(h.invoke("f", "x").await.unwrap()).await;
    let slot = h.pool("f").slots().remove(0);
    lifecycle::stop(Arc::clone(&slot), Duration::from_secs(1)).await;
    lifecycle::stop(Arc::clone(&slot), Duration::from_secs(1)).await;
    let pre_stops = h.rec().requests("/pre-stop");
    assert_eq!(pre_stops.len(), 1);
    assert_eq!(pre_stops[0].method, http::Method::GET);
    assert_eq!(pre_stops[0].instance, slot.instance.id);
    assert!(slot.instance.exited().is_some());
}

#[tokio::test]
async fn deleting_a_function_calls_pre_stop_on_its_idle_instances() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    read(h.invoke("f", "x").await.unwrap()).await;
    h.sched.remove("f");
    h.wait_requests("/pre-stop", 1).await;
    h.rec()
        .wait_until("the instance stopped", |c| {
            c.iter().any(|c| matches!(c, Call::Stop { .. }))
        })
        .await;
    assert!(matches!(
        h.invoke("f", "x").await,
        Err(SchedulerError::FunctionNotFound { .. })
    ));
}

#[tokio::test]
async fn pre_stop_is_skipped_for_an_instance_that_already_exited() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    read(h.invoke("f", "x").await.unwrap()).await;
    let slot = h.pool("f").slots().remove(0);
    slot.instance.kill();
    lifecycle::stop(slot, Duration::from_secs(1)).await;
    assert!(h.rec().requests("/pre-stop").is_empty());
}

#[tokio::test]
async fn pre_freeze_is_called_before_freezing_and_a_frozen_instance_is_thawed_to_serve() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    read(h.invoke("f", "x").await.unwrap()).await;
    let slot = h.pool("f").slots().remove(0);
    assert_eq!(lifecycle::freeze(&slot, || true).await, HookOutcome::Ok);
    assert!(slot.is_frozen());
    let calls = h.rec().calls();
    let pre_freeze = calls
        .iter()
        .position(|c| matches!(c, Call::Request(r) if r.path == "/pre-freeze"));
    let freeze = calls.iter().position(|c| matches!(c, Call::Freeze { .. }));
    assert!(pre_freeze.is_some() && pre_freeze < freeze, "{calls:#?}");
    // The next request thaws it first, then it serves.
    read(h.invoke("f", "y").await.unwrap()).await;
    assert!(!slot.is_frozen());
    let calls = h.rec().calls();
    let thaw = calls.iter().position(|c| matches!(c, Call::Thaw { .. }));
    let last_invoke = calls
        .iter()
        .rposition(|c| matches!(c, Call::Request(r) if r.path == "/invoke"));
    assert!(thaw.is_some() && thaw < last_invoke);
    assert_eq!(h.rec().starts().len(), 1);
}

#[tokio::test]
async fn a_pre_freeze_hook_answering_500_restarts_the_instance() {
    let h = Harness::with_config(SchedulerConfig {
        freeze_after: Some(Duration::ZERO),
        ..config()
    });
    h.deploy(with_hooks("f"));
    h.fake.script(|s| s.pre_freeze = Reply::status(500, "no"));
    let first = h.invoke("f", "x").await.unwrap().instance_id;
    h.sched.start_maintenance();
    h.wait_requests("/pre-freeze", 1).await;
    h.rec()
        .wait_until("the instance was killed", |c| {
            c.iter()
                .any(|c| matches!(c, Call::Kill { instance } if *instance == first))
        })
        .await;
    assert!(h.rec().count(|c| matches!(c, Call::Freeze { .. })) == 0);
    let next = h.invoke("f", "y").await.unwrap();
    assert_ne!(next.instance_id, first);
}

#[tokio::test]
async fn a_failing_pre_freeze_hook_that_is_not_500_leaves_the_instance_running_unfrozen() {
    let h = Harness::new();
    h.deploy(with_hooks("f"));
    h.fake.script(|s| s.pre_freeze = Reply::status(404, "no"));
    read(h.invoke("f", "x").await.unwrap()).await;
    let slot = h.pool("f").slots().remove(0);
    assert!(matches!(
        lifecycle::freeze(&slot, || true).await,
        HookOutcome::Failed(_)
    ));
    assert!(!slot.is_frozen());
    assert!(slot.instance.exited().is_none());
}
