//! Crashes, broken connections, timeouts and failed starts, and the instance replacement
//! that follows.

use fcx_runtime::fake::{ManualClock, Reply, StartFail};
use fcx_runtime::{ExitReason, StartError, StartFailure};

use super::*;

#[tokio::test]
async fn a_crash_mid_request_answers_process_exited_and_replaces_the_instance() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake
        .script(|s| s.on_invoke(|_| Reply::Crash(ExitReason::Code(7))));
    let e = h.invoke("f", "x").await.err().expect("crash");
    let SchedulerError::ProcessExited {
        exit, instance_id, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*exit, ExitReason::Code(7));
    let crashed = instance_id.clone().expect("the instance is named");
    assert!(e.to_string().contains("exit code 7"), "{e}");
    h.fake
        .script(|s| s.on_invoke(|r| Reply::ok(r.body.clone())));
    let next = h.invoke("f", "y").await.unwrap();
    assert_ne!(next.instance_id, crashed);
    assert_eq!(h.rec().starts().len(), 2);
}

#[tokio::test]
async fn an_out_of_memory_kill_is_told_apart_from_a_crash() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake
        .script(|s| s.on_invoke(|_| Reply::Crash(ExitReason::OutOfMemory(128))));
    let e = h.invoke("f", "x").await.err().expect("oom");
    assert!(matches!(
        e,
        SchedulerError::ProcessExited {
            exit: ExitReason::OutOfMemory(128),
            ..
        }
    ));
}

#[tokio::test]
async fn a_closed_connection_with_a_live_process_answers_connection_broken() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| s.on_invoke(|_| Reply::Close));
    let call = h.spawn_invoke("f", "x");
    h.wait_requests("/invoke", 1).await;
    // fcx waits (2 s) for the process to report an exit before calling it a bad response;
    // the clock moves in steps while the broken connection is noticed.
    for _ in 0..1000 {
        if call.is_finished() {
            break;
        }
        clock.advance(Duration::from_millis(500)).await;
        clock.let_io_run().await;
    }
    let e = call.await.unwrap().err().expect("broken");
    assert!(
        matches!(e, SchedulerError::ConnectionBroken { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("broke the connection"), "{e}");
    // The instance is replaced all the same.
    h.fake
        .script(|s| s.on_invoke(|r| Reply::ok(r.body.clone())));
    let next = h.invoke("f", "y").await.unwrap();
    assert_eq!(read(next).await, "y");
    assert_eq!(h.rec().starts().len(), 2);
}

#[tokio::test]
async fn a_request_past_the_function_timeout_answers_function_timeout_and_kills_the_instance() {
    let clock = ManualClock::start();
    let h = Harness::new();
    let mut f = function("f");
    f.timeout = 3;
    h.deploy(f);
    h.fake.script(|s| s.on_invoke(|_| Reply::Hang));
    let call = h.spawn_invoke("f", "x");
    h.wait_requests("/invoke", 1).await;
    clock.advance(Duration::from_secs(2)).await;
    assert!(!call.is_finished(), "not before the timeout");
    clock.advance(Duration::from_secs(2)).await;
    let resp = call.await.unwrap().expect("a function error");
    let id = resp.instance_id.clone();
    assert!(resp.error_type.is_some());
    let body = String::from_utf8_lossy(&read(resp).await).into_owned();
    assert!(body.contains("FunctionTimeout"), "{body}");
    assert!(h
        .rec()
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Kill { instance } if *instance == id)));
}

#[tokio::test]
async fn a_start_failure_is_answered_with_its_cause() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| {
        s.start.fail = Some(StartFail::NotStarted(
            "nothing listens on 0.0.0.0:9000".into(),
        ))
    });
    let e = h.invoke("f", "x").await.err().expect("not started");
    let SchedulerError::Start(StartError::NotStarted { cause, .. }) = &e else {
        panic!("{e:?}")
    };
    assert!(cause.contains("0.0.0.0:9000"));
    h.fake.script(|s| {
        s.start.fail = Some(StartFail::Failed(
            StartFailure::EntrypointNotFound,
            "no such command".into(),
        ))
    });
    let e = h.invoke("f", "x").await.err().expect("bad entrypoint");
    assert!(matches!(
        e,
        SchedulerError::Start(StartError::Failed {
            kind: StartFailure::EntrypointNotFound,
            ..
        })
    ));
}

#[tokio::test]
async fn a_request_waiting_on_a_failed_start_starts_one_itself() {
    let h = Harness::new();
    let mut f = function("f");
    f.instance_concurrency = 2;
    h.deploy(f);
    let gate = fcx_runtime::fake::Gate::new();
    h.fake.script(|s| {
        s.start.gate = Some(gate.clone());
        s.start.fail = Some(StartFail::NotStarted("down".into()));
    });
    let a = h.spawn_invoke("f", "a");
    let b = h.spawn_invoke("f", "b");
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    gate.open();
    assert!(a.await.unwrap().is_err());
    assert!(b.await.unwrap().is_err());
    // The waiter did not wait out the start timeout: it started (and failed) itself.
    assert_eq!(h.rec().count(|c| matches!(c, Call::StartFailed { .. })), 2);
}

#[tokio::test]
async fn non_web_server_runs_get_the_event_and_map_exits_to_function_errors() {
    let h = Harness::new();
    let mut f = function("ev");
    f.custom_runtime_config = Some(fcx_model::CustomRuntimeConfig {
        web_server_mode: false,
        ..serde_json::from_value(serde_json::json!({})).expect("defaults")
    });
    h.deploy(f);
    let resp = h.invoke("ev", "the event").await.unwrap();
    assert!(resp.error_type.is_none());
    assert_eq!(read(resp).await, "the event");
    h.fake.script(|s| {
        s.on_event(|_| fcx_runtime::fake::EventRun {
            exit: ExitReason::Code(2),
            stdout: Vec::new(),
            log: b"boom\n".to_vec(),
            delay: Duration::ZERO,
        })
    });
    let resp = h.invoke("ev", "again").await.unwrap();
    assert!(resp.error_type.is_some());
    let body = String::from_utf8_lossy(&read(resp).await).into_owned();
    assert!(
        body.contains("ProcessExitError") && body.contains("exit code 2"),
        "{body}"
    );
    let events: Vec<Vec<u8>> = h
        .rec()
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::RunEvent { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(events, [b"the event".to_vec(), b"again".to_vec()]);
    // An event the environment cannot carry is refused before anything runs.
    let e = h.invoke("ev", "a\0b").await.err().expect("refused");
    assert!(matches!(e, SchedulerError::EventHasNul));
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn instance_stats_come_from_the_backend() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| {
        s.stats = fcx_runtime::InstanceStats {
            memory_current_bytes: Some(10),
            memory_peak_bytes: Some(20),
            cpu_usage: Some(Duration::from_millis(3)),
        }
    });
    let id = h.invoke("f", "x").await.unwrap().instance_id;
    let stats = h.sched.instance_stats("f").unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].0, id);
    assert_eq!(stats[0].1.as_ref().unwrap().memory_peak_bytes, Some(20));
}
