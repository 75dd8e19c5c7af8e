//! Pre-created sandboxes through `Backend::prepare` and `Backend::start`.

use fcx_runtime::fake::{FakeBackend, ManualClock};

use super::maintenance::{start_loop, TICK};
use fcx_runtime::BackendKind;

use super::*;

fn sandboxed() -> Harness {
    Harness::with(
        FakeBackend::with_sandboxes(BackendKind::Process),
        SchedulerConfig {
            sandboxes_per_function: 1,
            sandbox_limit: 4,
            ..config()
        },
    )
}

fn prepared(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Prepare { .. }))
        .count()
}

#[tokio::test]
async fn a_cold_start_uses_a_pre_created_sandbox_and_the_loop_refills_it() {
    let clock = ManualClock::start();
    let h = sandboxed();
    h.deploy(function("f"));
    start_loop(&h, &clock).await;
    clock.advance(TICK).await;
    h.rec()
        .wait_until("a sandbox was prepared", |c| prepared(c) >= 1)
        .await;
    read(h.invoke("f", "x").await.unwrap()).await;
    assert!(h.rec().calls().iter().any(|c| matches!(
        c,
        Call::Start {
            from_sandbox: true,
            ..
        }
    )));
    clock.advance(TICK).await;
    h.rec()
        .wait_until("the sandbox was refilled", |c| prepared(c) >= 2)
        .await;
    // Never more than sandboxes_per_function at once.
    clock.advance_in_steps(Duration::from_secs(2), TICK).await;
    assert_eq!(prepared(&h.rec().calls()), 2);
}

#[tokio::test]
async fn a_broken_sandbox_falls_back_to_a_fresh_start() {
    let clock = ManualClock::start();
    let h = sandboxed();
    h.deploy(function("f"));
    h.fake.script(|s| s.start.break_sandboxes = true);
    start_loop(&h, &clock).await;
    clock.advance(TICK).await;
    h.rec()
        .wait_until("a sandbox was prepared", |c| prepared(c) >= 1)
        .await;
    let resp = h.invoke("f", "x").await.expect("started afresh");
    assert_eq!(read(resp).await, "x");
    let calls = h.rec().calls();
    assert!(calls.iter().any(|c| matches!(c, Call::StartFailed { .. })));
    assert!(calls.iter().any(|c| matches!(
        c,
        Call::Start {
            from_sandbox: false,
            ..
        }
    )));
}

#[tokio::test]
async fn a_backend_without_sandboxes_gets_none_prepared() {
    let clock = ManualClock::start();
    let h = Harness::with_config(SchedulerConfig {
        sandboxes_per_function: 1,
        sandbox_limit: 4,
        ..config()
    });
    h.deploy(function("f"));
    start_loop(&h, &clock).await;
    clock.advance_in_steps(Duration::from_secs(1), TICK).await;
    read(h.invoke("f", "x").await.unwrap()).await;
    assert_eq!(prepared(&h.rec().calls()), 0);
}
