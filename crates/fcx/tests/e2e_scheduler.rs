//! Scheduling with real instances: exact instance counts (requests are held on a barrier until
//! the whole burst has arrived, so counts are exact, not racy), throttling, idle reclaim with
//! pre-stop, provisioned instances, freezing, crashes under load and graceful shutdown.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::procs::eventually;
use support::{Options, Response, Server};

/// Sends `n` invocations of `body` at once and returns their responses.
fn burst(server: &Server, name: &str, n: usize, body: &str) -> Vec<Response> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| server.invoke(name, body.as_bytes())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn instance_ids(responses: &[Response]) -> BTreeSet<String> {
    responses
        .iter()
        .filter_map(|r| r.header("x-fc-instance-id").map(str::to_owned))
        .collect()
}

fn function_with(name: &str, env: serde_json::Value, concurrency: u32) -> serde_json::Value {
    let mut f = support::testfn_function(name, env);
    f["instanceConcurrency"] = json!(concurrency);
    f["timeout"] = json!(60);
    f
}

fn records(path: &std::path::Path, kind: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{kind} ")).map(str::to_owned))
        .collect()
}

#[test]
fn concurrency_one_with_ten_parallel_requests_starts_ten_instances() {
    let server = Server::start();
    server.create_function(function_with("c1", json!({}), 1));
    let barrier = support::scratch_dir("c1");
    let responses = burst(
        &server,
        "c1",
        10,
        &format!("barrier:{}:10", barrier.path().display()),
    );
    assert!(responses
        .iter()
        .all(|r| r.status == 200 && r.text().starts_with("released")));
    assert_eq!(instance_ids(&responses).len(), 10);
    assert_eq!(server.instance_ids("c1").len(), 10);
}

#[test]
fn concurrency_ten_with_ten_parallel_requests_starts_one_instance_initialized_once() {
    let server = Server::start();
    let record = support::scratch_dir("c10-record");
    let file = record.path().join("calls");
    let mut f = function_with("c10", json!({"TESTFN_RECORD": file.to_str().unwrap()}), 10);
    f["instanceLifecycleConfig"] = json!({"initializer": {"handler": "init", "timeout": 10}});
    server.create_function(f);
    let barrier = support::scratch_dir("c10");
    let responses = burst(
        &server,
        "c10",
        10,
        &format!("barrier:{}:10", barrier.path().display()),
    );
    assert!(
        responses.iter().all(|r| r.status == 200),
        "{:?}",
        responses.iter().map(Response::text).collect::<Vec<_>>()
    );
    assert_eq!(instance_ids(&responses).len(), 1);
    assert_eq!(server.instance_ids("c10").len(), 1);
    assert_eq!(records(&file, "initialize").len(), 1);
    assert_eq!(records(&file, "invoke").len(), 10);
}

#[test]
fn concurrent_cold_starts_are_deduplicated_to_ceil_n_over_concurrency() {
    let server = Server::start();
    let record = support::scratch_dir("c4-record");
    let file = record.path().join("calls");
    let mut f = function_with("c4", json!({"TESTFN_RECORD": file.to_str().unwrap()}), 4);
    f["instanceLifecycleConfig"] = json!({"initializer": {"handler": "init", "timeout": 10}});
    server.create_function(f);
    let barrier = support::scratch_dir("c4");
    let responses = burst(
        &server,
        "c4",
        10,
        &format!("barrier:{}:10", barrier.path().display()),
    );
    assert!(responses.iter().all(|r| r.status == 200));
    // ceil(10 / 4) = 3 instances, each initialized exactly once.
    assert_eq!(instance_ids(&responses).len(), 3);
    let inits = records(&file, "initialize");
    assert_eq!(inits.len(), 3, "{inits:?}");
    assert_eq!(inits.iter().collect::<BTreeSet<_>>().len(), 3);
}

#[test]
fn reserved_concurrency_throttles_a_burst_at_once() {
    let server = Server::start();
    server.create_function(function_with("reserved", json!({}), 1));
    let r = server.put_json(
        "/2023-03-30/functions/reserved/concurrency",
        &json!({"reservedConcurrency": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reservedConcurrency"], 5);
    assert!(r.json()["functionArn"]
        .as_str()
        .unwrap()
        .ends_with("functions/reserved"));

    let barrier = support::scratch_dir("reserved");
    let responses = burst(
        &server,
        "reserved",
        100,
        &format!("barrier:{}:5", barrier.path().display()),
    );
    let ok: Vec<&Response> = responses.iter().filter(|r| r.status == 200).collect();
    let throttled: Vec<&Response> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        ok.len(),
        5,
        "statuses: {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(throttled.len(), 95);
    for r in &ok {
        assert!(r.text().starts_with("released"), "{}", r.text());
    }
    for r in &throttled {
        assert_eq!(r.header("retry-after"), Some("1"));
        let body = r.json();
        assert_eq!(body["Code"], "ResourceExhausted");
        assert!(
            body["Message"]
                .as_str()
                .unwrap()
                .contains("reservedConcurrency is 5"),
            "{body}"
        );
    }
    assert!(instance_ids(&responses).len() <= 5);
    assert!(server.instance_ids("reserved").len() <= 5);

    let got = server.request(
        "GET",
        "/2023-03-30/functions/reserved/concurrency",
        &[],
        b"",
    );
    assert_eq!(got.json()["reservedConcurrency"], 5);
    let del = server.request(
        "DELETE",
        "/2023-03-30/functions/reserved/concurrency",
        &[],
        b"",
    );
    assert_eq!(del.status, 204);
    assert_eq!(server.invoke("reserved", b"echo:free").text(), "free");
}

#[test]
fn server_instance_cap_throttles_cold_starts() {
    let server = Server::start_with(Options::with_args(&["--max-instances", "1"]));
    server.create_function(function_with("capped", json!({}), 1));
    let barrier = support::scratch_dir("capped");
    let held = format!("barrier:{}:2", barrier.path().display());
    std::thread::scope(|s| {
        let first = s.spawn(|| server.invoke("capped", held.as_bytes()));
        assert!(eventually(Duration::from_secs(20), || std::fs::read_dir(
            barrier.path()
        )
        .unwrap()
        .count()
            == 1));
        // The only instance is busy: a second request would need a second instance.
        let second = server.invoke("capped", b"echo:x");
        assert_eq!(second.status, 429, "{}", second.text());
        assert_eq!(second.json()["Code"], "ResourceExhausted");
        assert!(second.json()["Message"]
            .as_str()
            .unwrap()
            .contains("--max-instances"));
        std::fs::write(barrier.path().join("release"), b"").unwrap();
        assert_eq!(first.join().unwrap().status, 200);
    });
}

#[test]
fn idle_instances_are_reclaimed_after_pre_stop_called_once_each() {
    let server = Server::start_with(Options::with_args(&["--idle-timeout", "1"]));
    let record = support::scratch_dir("idle-record");
    let file = record.path().join("calls");
    let mut f = function_with("idle", json!({"TESTFN_RECORD": file.to_str().unwrap()}), 1);
    f["instanceLifecycleConfig"] = json!({"preStop": {"handler": "stop", "timeout": 5}});
    server.create_function(f);
    let barrier = support::scratch_dir("idle");
    let responses = burst(
        &server,
        "idle",
        2,
        &format!("barrier:{}:2", barrier.path().display()),
    );
    let ids = instance_ids(&responses);
    assert_eq!(ids.len(), 2);
    assert!(
        eventually(Duration::from_secs(30), || server
            .instance_ids("idle")
            .is_empty()
            && server.instance_pids().is_empty()),
        "idle instances not reclaimed: {:?}",
        server.instance_ids("idle")
    );
    let stops: BTreeSet<String> = records(&file, "pre-stop").into_iter().collect();
    assert_eq!(
        records(&file, "pre-stop").len(),
        2,
        "pre-stop must be called exactly once per instance"
    );
    assert_eq!(stops, ids);
}

#[test]
fn function_idle_timeout_wins_over_the_server_default() {
    let server = Server::start();
    let mut f = function_with("short-idle", json!({}), 1);
    f["idleTimeout"] = json!(1);
    server.create_function(f);
    assert_eq!(server.invoke("short-idle", b"echo:x").status, 200);
    assert!(eventually(Duration::from_secs(30), || server
        .instance_ids("short-idle")
        .is_empty()));
}

#[test]
fn provisioned_instances_start_without_traffic_and_come_back_when_killed() {
    let server = Server::start();
    server.create_function(function_with("prov", json!({}), 1));
    let r = server.put_json(
        "/2023-03-30/functions/prov/provision-config?qualifier=LATEST",
        &json!({"target": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], 2);
    assert!(eventually(Duration::from_secs(30), || server
        .instance_ids("prov")
        .len()
        == 2));
    let before = server.instance_ids("prov");

    let victim = server.instance_pids()[0];
    support::procs::kill(victim);
    assert!(
        eventually(Duration::from_secs(30), || {
            let now = server.instance_ids("prov");
            now.len() == 2 && now != before
        }),
        "a killed provisioned instance was not replaced"
    );
    let got = server
        .request(
            "GET",
            "/2023-03-30/functions/prov/provision-config",
            &[],
            b"",
        )
        .json();
    assert_eq!(got["target"], 2);
    assert_eq!(got["current"], 2);

    // Provisioned instances are kept even when idle, and serve requests.
    assert_eq!(server.invoke("prov", b"echo:warm").text(), "warm");
    let r = server.request(
        "DELETE",
        "/2023-03-30/functions/prov/provision-config",
        &[],
        b"",
    );
    assert_eq!(r.status, 204);
}

#[test]
fn scaling_config_min_instances_are_kept_and_survive_a_restart() {
    let mut server = Server::start();
    server.create_function(function_with("minimal", json!({}), 1));
    let r = server.put_json(
        "/2023-03-30/functions/minimal/scaling-config",
        &json!({"minInstances": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["minInstances"], 1);
    assert!(eventually(Duration::from_secs(30), || server
        .instance_ids("minimal")
        .len()
        == 1));
    server.crash_and_restart();
    assert!(eventually(Duration::from_secs(30), || server
        .instance_ids("minimal")
        .len()
        == 1));
    let got = server
        .request(
            "GET",
            "/2023-03-30/functions/minimal/scaling-config",
            &[],
            b"",
        )
        .json();
    assert_eq!(got["minInstances"], 1);
    assert_eq!(got["currentInstances"], 1);
}

#[test]
fn scaling_apis_validate_and_answer_fc_errors() {
    let server = Server::start();
    server.create_function(function_with("apis", json!({}), 1));
    for (path, body, field) in [
        ("concurrency", json!({}), "reservedConcurrency"),
        (
            "concurrency",
            json!({"reservedConcurrency": "x"}),
            "reservedConcurrency",
        ),
        ("provision-config", json!({"target": 100000}), "target"),
        (
            "scaling-config",
            json!({"minInstances": -1}),
            "minInstances",
        ),
        ("scaling-config", json!({"notAField": 1}), "notAField"),
    ] {
        let r = server.put_json(&format!("/2023-03-30/functions/apis/{path}"), &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        assert_eq!(r.json()["Code"], "InvalidArgument");
        assert!(
            r.json()["Message"].as_str().unwrap().contains(field),
            "{}",
            r.text()
        );
    }
    for path in [
        "concurrency",
        "provision-config",
        "scaling-config",
        "instances",
    ] {
        let r = server.request(
            "GET",
            &format!("/2023-03-30/functions/nope/{path}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["Code"], "FunctionNotFound");
    }
    let r = server.put_json(
        "/2023-03-30/functions/apis/provision-config?qualifier=prod",
        &json!({"target": 1}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn idle_instances_are_frozen_and_thawed_on_the_next_request() {
    let server = Server::start_with(Options::with_args(&["--freeze-idle-after", "1"]));
    let record = support::scratch_dir("freeze-record");
    let file = record.path().join("calls");
    let mut f = function_with("icy", json!({"TESTFN_RECORD": file.to_str().unwrap()}), 1);
    f["instanceLifecycleConfig"] = json!({"preFreeze": {"handler": "freeze", "timeout": 5}});
    server.create_function(f);
    let first = server.invoke("icy", b"echo:1");
    assert_eq!(first.status, 200);
    let frozen = || {
        let r = server.request("GET", "/2023-03-30/functions/icy/instances", &[], b"");
        r.json()["instances"][0]["status"] == "Frozen"
    };
    assert!(
        eventually(Duration::from_secs(30), frozen),
        "instance never frozen"
    );
    assert_eq!(records(&file, "pre-freeze").len(), 1);
    let second = server.invoke("icy", b"echo:2");
    assert_eq!(second.text(), "2");
    assert_eq!(
        second.header("x-fc-instance-id"),
        first.header("x-fc-instance-id")
    );
}

#[test]
fn killing_instances_under_load_gives_only_successes_or_documented_502s() {
    let server = Server::start();
    let mut f = function_with("victim", json!({}), 2);
    f["timeout"] = json!(10);
    server.create_function(f);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Response> = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            // Bounded: at most 40 rounds.
            for _ in 0..40 {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                if let Some(pid) = server.instance_pids().first() {
                    support::procs::kill(*pid);
                }
            }
        });
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let server = &server;
                s.spawn(move || {
                    (0..25)
                        .map(|i| {
                            server.invoke(
                                "victim",
                                format!("sleep:{}", 10 + (c * 25 + i) % 30).as_bytes(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results = clients
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Release);
        killer.join().unwrap();
        results
    });
    assert_eq!(results.len(), 100);
    let mut ok = 0;
    for r in &results {
        match r.status {
            200 => {
                assert!(r.text().starts_with("slept "), "{}", r.text());
                ok += 1;
            }
            502 => {
                let body = r.json();
                let code = body["Code"].as_str().unwrap();
                let message = body["Message"].as_str().unwrap();
                match code {
                    "ProcessExited" => assert!(
                        message
                            .starts_with("Process exited unexpectedly before completing request"),
                        "{message}"
                    ),
                    "FunctionNotStarted" => assert!(
                        message.starts_with("The CA's http server cannot be started"),
                        "{message}"
                    ),
                    other => panic!("unexpected 502 code {other}: {message}"),
                }
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert!(ok > 0, "no request succeeded");
    // The pool recovers. (A request racing the last kill may still get the 502.)
    assert!(
        eventually(Duration::from_secs(10), || server
            .invoke("victim", b"echo:alive")
            .text()
            == "alive"),
        "the pool did not recover after the kills"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_calls_pre_stop() {
    let server = Server::start();
    let record = support::scratch_dir("drain-record");
    let file = record.path().join("calls");
    let mut f = function_with("drain", json!({"TESTFN_RECORD": file.to_str().unwrap()}), 1);
    f["instanceLifecycleConfig"] = json!({"preStop": {"handler": "stop", "timeout": 5}});
    server.create_function(f);
    let barrier = support::scratch_dir("drain");
    let held = format!("barrier:{}:2", barrier.path().display());
    let run_dir = server.run_dir.clone();
    std::thread::scope(|s| {
        let inflight = s.spawn(|| server.invoke("drain", held.as_bytes()));
        assert!(eventually(Duration::from_secs(20), || std::fs::read_dir(
            barrier.path()
        )
        .unwrap()
        .count()
            == 1));
        let pid = server.pid();
        let terminator = s.spawn(move || support::procs::terminate(pid, Duration::from_secs(30)));
        // The server stops accepting but lets the held request finish.
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(barrier.path().join("release"), b"").unwrap();
        let r = inflight.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("released"));
        terminator.join().unwrap();
    });
    assert!(eventually(Duration::from_secs(10), || {
        support::procs::under(&run_dir).is_empty()
    }));
    assert_eq!(records(&file, "pre-stop").len(), 1);
    drop(server);
}
