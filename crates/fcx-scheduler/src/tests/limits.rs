//! reservedConcurrency and the server's instance cap.

use fcx_runtime::fake::Gate;

use super::*;

#[tokio::test]
async fn reserved_concurrency_refuses_the_request_over_the_limit_with_the_limit_named() {
    let h = Harness::new();
    let mut f = function("f");
    f.instance_concurrency = 10;
    h.deploy(f);
    h.sched.set_reserved_concurrency("f", Some(2));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let a = h.invoke("f", "hold:0").await.unwrap();
    let b = h.invoke("f", "hold:0").await.unwrap();
    let refused = h.invoke("f", "x").await.err().expect("refused");
    assert!(refused.is_throttle());
    assert!(
        matches!(
            refused,
            SchedulerError::ReservedConcurrency {
                reserved: 2,
                inflight: 2,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("reservedConcurrency is 2"));
    // Refused requests never reached the instance.
    assert_eq!(h.rec().requests("/invoke").len(), 2);
    gate.open();
    read(a).await;
    read(b).await;
    assert!(h.invoke("f", "x").await.is_ok());
}

#[tokio::test]
async fn a_streaming_answer_counts_against_reserved_concurrency_until_its_last_byte() {
    let h = Harness::new();
    let mut f = function("f");
    f.instance_concurrency = 10;
    h.deploy(f);
    h.sched.set_reserved_concurrency("f", Some(1));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    // The answer's head is back; its body is still streaming.
    let streaming = h.invoke("f", "hold:0").await.unwrap();
    assert_eq!(h.pool("f").limits.inflight(), 1);
    let refused = h
        .invoke("f", "x")
        .await
        .err()
        .expect("refused while streaming");
    assert!(matches!(
        refused,
        SchedulerError::ReservedConcurrency { .. }
    ));
    gate.open();
    assert_eq!(read(streaming).await, "hold:0");
    assert_eq!(h.pool("f").limits.inflight(), 0);
    assert_eq!(read(h.invoke("f", "after").await.unwrap()).await, "after");
}

#[tokio::test]
async fn zero_reserved_concurrency_refuses_everything_until_cleared() {
    let h = Harness::new();
    h.deploy(function("f"));
    h.sched.set_reserved_concurrency("f", Some(0));
    assert!(h.invoke("f", "x").await.err().unwrap().is_throttle());
    assert_eq!(h.pool("f").limits.inflight(), 0, "a refusal holds no place");
    assert!(h.rec().starts().is_empty());
    h.sched.set_reserved_concurrency("f", None);
    assert!(h.invoke("f", "x").await.is_ok());
}

#[tokio::test]
async fn the_instance_cap_refuses_a_cold_start_with_max_instances_named() {
    let h = Harness::with_config(SchedulerConfig {
        max_instances: 1,
        ..config()
    });
    h.deploy(function("f"));
    let gate = Gate::new();
    h.fake
        .script(|s| s.on_invoke(holding(std::slice::from_ref(&gate))));
    let busy = h.invoke("f", "hold:0").await.unwrap();
    let refused = h.invoke("f", "x").await.err().expect("refused");
    assert!(
        matches!(refused, SchedulerError::InstanceLimit { max: 1 }),
        "{refused:?}"
    );
    assert!(refused.is_throttle());
    assert!(refused.to_string().contains("--max-instances"));
    assert_eq!(h.rec().starts().len(), 1);
    gate.open();
    read(busy).await;
    // The warm instance serves without a new start.
    assert!(h.invoke("f", "x").await.is_ok());
}

#[tokio::test]
async fn the_instance_cap_is_shared_by_every_function_and_returned_when_an_instance_goes() {
    let h = Harness::with_config(SchedulerConfig {
        max_instances: 1,
        ..config()
    });
    h.deploy(function("a"));
    h.deploy(function("b"));
    read(h.invoke("a", "x").await.unwrap()).await;
    let refused = h.invoke("b", "x").await.err().expect("cap reached");
    assert!(matches!(refused, SchedulerError::InstanceLimit { .. }));
    h.sched.remove("a");
    h.rec()
        .wait_until("a's instance stopped", |c| {
            c.iter().any(|c| matches!(c, Call::Stop { .. }))
        })
        .await;
    // The ticket goes back when the slot is dropped after its stop.
    let mut answered = None;
    for _ in 0..400 {
        match h.invoke("b", "x").await {
            Ok(r) => {
                answered = Some(r);
                break;
            }
            Err(e) => {
                assert!(e.is_throttle(), "{e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    assert!(answered.is_some(), "b started once a's instance was gone");
}
