//! The pool: warm reuse, busiest free slot, release, discard, de-duplicated cold starts.

use fcx_runtime::fake::{Gate, Reply};

use super::*;

#[tokio::test]
async fn a_warm_request_reuses_the_started_instance() {
    let h = Harness::new();
    h.deploy(function("f"));
    for body in ["one", "two", "three"] {
        let resp = h.invoke("f", body).await.unwrap();
        assert_eq!(read(resp).await, body);
    }
    let invokes = h.rec().requests("/invoke");
    assert_eq!(h.rec().starts().len(), 1);
    assert_eq!(invokes.len(), 3);
    assert!(invokes.iter().all(|r| r.instance == invokes[0].instance));
}

#[tokio::test]
async fn n_simultaneous_first_requests_start_ceil_n_over_concurrency_instances() {
    let h = Harness::new();
    let mut f = function("f");
    f.instance_concurrency = 4;
    h.deploy(f);
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let tasks: Vec<_> = (0..10).map(|_| h.spawn_invoke("f", "hold:0")).collect();
    // Every answer is held, so all ten requests hold a slot at once.
    h.wait_requests("/invoke", 10).await;
    assert_eq!(h.rec().starts().len(), 3, "ceil(10 / 4) instances");
    gate.open();
    for t in tasks {
        read(t.await.unwrap().unwrap()).await;
    }
    assert_eq!(h.rec().starts().len(), 3);
}

#[tokio::test]
async fn requests_wait_for_a_slow_start_that_has_slots_for_them() {
    let h = Harness::new();
    let mut f = function("f");
    f.instance_concurrency = 3;
    h.deploy(f);
    let start = Gate::new();
    h.fake.script(|s| s.start.gate = Some(start.clone()));
    let tasks: Vec<_> = (0..3).map(|_| h.spawn_invoke("f", "x")).collect();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    start.open();
    for t in tasks {
        assert_eq!(read(t.await.unwrap().unwrap()).await, "x");
    }
    assert_eq!(h.rec().starts().len(), 1);
}

#[tokio::test]
async fn a_request_takes_the_busiest_instance_with_a_free_slot() {
    let h = Harness::new();
    let mut f = function("f");
    f.instance_concurrency = 3;
    h.deploy(f);
    let gates: Vec<Gate> = (0..5).map(|_| Gate::new()).collect();
    h.fake.script(|s| s.on_invoke(holding(&gates)));
    // Four held requests: three on the first instance, one on a second.
    let mut answers = Vec::new();
    for n in 0..4 {
        answers.push(h.invoke("f", &format!("hold:{n}")).await.unwrap());
    }
    let ids: Vec<String> = answers.iter().map(|a| a.instance_id.clone()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
    assert_ne!(ids[0], ids[3]);
    // One slot frees on the first: it is still the busiest with room (2 in flight vs 1).
    gates[0].open();
    read(answers.remove(0)).await;
    let next = h.invoke("f", "hold:4").await.unwrap();
    assert_eq!(next.instance_id, ids[0]);
    gates.iter().for_each(Gate::open);
    read(next).await;
    for a in answers {
        read(a).await;
    }
    assert_eq!(h.rec().starts().len(), 2);
}

#[tokio::test]
async fn a_busy_single_slot_instance_makes_the_next_request_start_another() {
    let h = Harness::new();
    h.deploy(function("f"));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let first = h.invoke("f", "hold:0").await.unwrap();
    let second = h.invoke("f", "free").await.unwrap();
    assert_ne!(first.instance_id, second.instance_id);
    assert_eq!(read(second).await, "free");
    gate.open();
    read(first).await;
    // Both slots are free again: no third start.
    read(h.invoke("f", "again").await.unwrap()).await;
    assert_eq!(h.rec().starts().len(), 2);
}

#[tokio::test]
async fn dropping_an_unread_answer_releases_its_slot() {
    let h = Harness::new();
    h.deploy(function("f"));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let held = h.invoke("f", "hold:0").await.unwrap();
    let first = held.instance_id.clone();
    drop(held);
    let next = h.invoke("f", "x").await.unwrap();
    assert_eq!(next.instance_id, first);
    assert_eq!(h.rec().starts().len(), 1);
    gate.open();
}

#[tokio::test]
async fn a_discarded_instance_is_never_leased_again() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.fake.script(|s| {
        s.on_invoke(|r| match &r.body[..] {
            b"crash" => Reply::Crash(fcx_runtime::ExitReason::Code(3)),
            other => Reply::ok(other.to_vec()),
        })
    });
    let first = h.invoke("f", "ok").await.unwrap().instance_id;
    assert!(h.invoke("f", "crash").await.is_err());
    for _ in 0..3 {
        let resp = h.invoke("f", "ok").await.unwrap();
        assert_ne!(resp.instance_id, first);
        read(resp).await;
    }
    assert_eq!(h.rec().starts().len(), 2);
    let on_first = h
        .rec()
        .requests("/invoke")
        .iter()
        .filter(|r| r.instance == first)
        .count();
    assert_eq!(
        on_first, 2,
        "the crashed instance got nothing after its crash"
    );
}

#[tokio::test]
async fn an_instance_that_died_idle_is_replaced_on_the_next_request() {
    let h = Harness::new();
    h.deploy(function("f"));
    let first = h.invoke("f", "a").await.unwrap();
    let first_id = first.instance_id.clone();
    read(first).await;
    h.pool("f").slots()[0].instance.kill();
    let next = h.invoke("f", "b").await.unwrap();
    assert_ne!(next.instance_id, first_id);
    assert_eq!(read(next).await, "b");
}

#[tokio::test]
async fn invoke_requests_carry_the_fc_context_headers() {
    let h = Harness::new();
    h.deploy(function("ctx"));
    let req = request("payload");
    let rid = req.context.request_id.clone();
    read(h.sched.invoke("ctx", req).await.unwrap()).await;
    let got = &h.rec().requests("/invoke")[0];
    assert_eq!(got.header("x-fc-request-id"), Some(rid.as_str()));
    assert_eq!(got.header("x-fc-function-name"), Some("ctx"));
    assert_eq!(got.header("x-fc-control-path"), Some("/invoke"));
    assert_eq!(got.header("x-fc-region"), Some("cn-test"));
    assert_eq!(got.method, http::Method::POST);
}

#[tokio::test]
async fn versions_run_in_pools_of_their_own() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.deploy_version(function("f"), Some("1"));
    let latest = h.invoke("f", "a").await.unwrap().instance_id;
    let v1 = h
        .sched
        .invoke_version("f", Some("1"), request("b"))
        .await
        .unwrap();
    assert_ne!(v1.instance_id, latest);
    let got = h.rec().requests("/invoke");
    assert_eq!(got[1].header("x-fc-version-id"), Some("1"));
    let missing = h.sched.invoke_version("f", Some("9"), request("c")).await;
    assert!(matches!(
        missing,
        Err(SchedulerError::VersionNotFound { ref version, .. }) if version == "9"
    ));
    let gone = h.invoke("nope", "x").await;
    assert!(matches!(gone, Err(SchedulerError::FunctionNotFound { .. })));
}
