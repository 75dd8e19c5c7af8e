//! The maintenance loop, on a clock the test moves: minimum instances kept (and restored
//! after a crash), idle instances reclaimed beyond the minimum.

use fcx_runtime::fake::{Gate, ManualClock, Reply};

use super::*;

/// One maintenance tick (250 ms), with slack: timers fire on whole milliseconds, rounded up.
pub const TICK: Duration = Duration::from_millis(260);

/// Starts the maintenance loop and lets it arm its first tick, which then fires at the next
/// [`ManualClock::advance`] (a timer due "now" fires only once the clock moves).
pub async fn start_loop(h: &Harness, clock: &ManualClock) {
    h.sched.start_maintenance();
    clock.advance(Duration::from_millis(1)).await;
}

fn live(h: &Harness, name: &str) -> usize {
    h.pool(name).slots().len()
}

#[tokio::test]
async fn minimum_instances_are_started_and_restored_after_a_crash() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| {
        s.on_invoke(|r| match &r.body[..] {
            b"crash" => Reply::Crash(fcx_runtime::ExitReason::Code(1)),
            other => Reply::ok(other.to_vec()),
        })
    });
    h.sched.set_min_instances("f", 2);
    start_loop(&h, &clock).await;
    clock.advance(TICK).await;
    h.rec()
        .wait_until("two provisioned starts", |c| count_starts(c) >= 2)
        .await;
    assert_eq!(live(&h, "f"), 2);
    // One instance crashes under a request; the next tick starts a replacement.
    assert!(matches!(
        h.invoke("f", "crash").await,
        Err(SchedulerError::ProcessExited { .. })
    ));
    assert_eq!(live(&h, "f"), 1);
    clock.advance(TICK).await;
    h.rec()
        .wait_until("a replacement start", |c| count_starts(c) >= 3)
        .await;
    assert_eq!(live(&h, "f"), 2);
    // No tick starts more than the minimum.
    clock.advance_in_steps(TICK * 4, TICK).await;
    assert_eq!(h.rec().starts().len(), 3);
}

#[tokio::test]
async fn idle_instances_are_reclaimed_but_the_minimum_is_kept() {
    let clock = ManualClock::start();
    let h = Harness::new();
    let mut f = function("f");
    f.instance_lifecycle_config.pre_stop = Some(hook());
    h.deploy(f);
    h.sched.set_min_instances("f", 1);
    start_loop(&h, &clock).await;
    clock.advance(TICK).await;
    h.rec()
        .wait_until("the provisioned start", |c| count_starts(c) >= 1)
        .await;
    // Two requests at once: the provisioned instance and a second one serve them.
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let a = h.invoke("f", "hold:0").await.unwrap();
    let b = h.invoke("f", "hold:0").await.unwrap();
    assert_ne!(a.instance_id, b.instance_id);
    gate.open();
    read(a).await;
    read(b).await;
    assert_eq!(live(&h, "f"), 2);
    // Not yet idle for the idle timeout (300 s): nothing is reclaimed.
    clock
        .advance_in_steps(Duration::from_secs(290), Duration::from_secs(10))
        .await;
    assert_eq!(live(&h, "f"), 2);
    assert!(h.rec().requests("/pre-stop").is_empty());
    clock
        .advance_in_steps(Duration::from_secs(20), Duration::from_secs(10))
        .await;
    h.wait_requests("/pre-stop", 1).await;
    h.rec()
        .wait_until("one instance stopped", |c| {
            c.iter().any(|c| matches!(c, Call::Stop { .. }))
        })
        .await;
    assert_eq!(live(&h, "f"), 1, "the minimum stays");
    clock
        .advance_in_steps(Duration::from_secs(600), Duration::from_secs(10))
        .await;
    assert_eq!(live(&h, "f"), 1);
    assert_eq!(h.rec().requests("/pre-stop").len(), 1);
}

#[tokio::test]
async fn a_function_idle_timeout_wins_over_the_server_default() {
    let clock = ManualClock::start();
    let h = Harness::new();
    let mut f = function("f");
    f.idle_timeout = Some(5);
    h.deploy(f);
    read(h.invoke("f", "x").await.unwrap()).await;
    start_loop(&h, &clock).await;
    clock.advance_in_steps(Duration::from_secs(6), TICK).await;
    h.rec()
        .wait_until("the idle instance stopped", |c| {
            c.iter().any(|c| matches!(c, Call::Stop { .. }))
        })
        .await;
    assert_eq!(live(&h, "f"), 0);
}

#[tokio::test]
async fn a_provisioned_start_that_fails_is_retried_by_a_later_tick() {
    let clock = ManualClock::start();
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| {
        s.start.fail = Some(fcx_runtime::fake::StartFail::NotStarted("not yet".into()))
    });
    h.sched.set_min_instances("f", 1);
    start_loop(&h, &clock).await;
    clock.advance(TICK).await;
    h.rec()
        .wait_until("a failed start", |c| {
            c.iter().any(|c| matches!(c, Call::StartFailed { .. }))
        })
        .await;
    h.fake.script(|s| s.start.fail = None);
    // The failed start holds its permit 2 s, so the loop does not hammer the backend.
    clock.advance_in_steps(Duration::from_secs(3), TICK).await;
    h.rec()
        .wait_until("a successful start", |c| count_starts(c) >= 1)
        .await;
    assert_eq!(live(&h, "f"), 1);
    assert_eq!(
        h.rec().count(|c| matches!(c, Call::StartFailed { .. })),
        1,
        "no retry while the failed permit was held"
    );
}
