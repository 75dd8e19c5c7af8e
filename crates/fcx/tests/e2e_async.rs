//! Asynchronous invocation: durable acceptance, retries, expiry, destinations, tasks, stop,
//! bad input, and the crash test (kill -9 mid-stream, nothing accepted is lost).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use support::procs::eventually;
use support::{Options, Server};

fn fast_retry_server() -> Server {
    Server::start_with(Options::with_args(&["--async-retry-base-ms", "50"]))
}

fn invoke_async(
    server: &Server,
    name: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> support::Response {
    let mut h = vec![("x-fc-invocation-type", "Async")];
    h.extend_from_slice(headers);
    server.invoke_with(name, &h, body.as_bytes())
}

fn task(server: &Server, name: &str, id: &str) -> Value {
    let r = server.request(
        "GET",
        &format!("/2023-03-30/functions/{name}/async-tasks/{id}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn wait_status(server: &Server, name: &str, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    let reached = eventually(Duration::from_secs(60), || {
        last = task(server, name, id);
        last["status"] == status
    });
    assert!(reached, "task {id} never reached {status}: {last}");
    last
}

fn put_config(server: &Server, name: &str, config: Value) {
    let r = server.put_json(
        &format!("/2023-03-30/functions/{name}/async-invoke-config"),
        &config,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn async_invocation_is_accepted_then_runs() {
    let server = Server::start();
    server.create_function(support::testfn_function("later", json!({})));
    let dir = support::scratch_dir("async-basic");
    let file = dir.path().join("ids");
    let r = invoke_async(&server, "later", &format!("record:{}", file.display()), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("x-fc-async-task-id"),
        None,
        "tasks are not enabled"
    );
    let rid = r.header("x-fc-request-id").unwrap().to_owned();
    assert!(eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&file)
            .map(|s| s.lines().any(|l| l == rid))
            .unwrap_or(false)
    }));
    let t = wait_status(&server, "later", &rid, "Succeeded");
    assert_eq!(t["requestId"], rid.as_str());
    assert_eq!(t["alreadyRetriedTimes"], 0);
    assert_eq!(t["returnPayload"], format!("recorded {rid}"));
}

#[test]
fn failing_twice_then_succeeding_ends_succeeded_with_two_retries() {
    let server = fast_retry_server();
    server.create_function(support::testfn_function("flaky", json!({})));
    put_config(
        &server,
        "flaky",
        json!({"maxAsyncRetryAttempts": 3, "asyncTask": true}),
    );
    let dir = support::scratch_dir("flaky");
    let r = invoke_async(
        &server,
        "flaky",
        &format!("flaky:{}:2", dir.path().display()),
        &[],
    );
    assert_eq!(r.status, 202);
    let id = r
        .header("x-fc-async-task-id")
        .expect("task id when asyncTask is on")
        .to_owned();
    let t = wait_status(&server, "flaky", &id, "Succeeded");
    assert_eq!(t["alreadyRetriedTimes"], 2, "{t}");
    let statuses: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "Retrying").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(statuses.first(), Some(&"Enqueued"));
    assert_eq!(statuses.last(), Some(&"Succeeded"));
}

#[test]
fn always_failing_ends_failed_and_reaches_on_failure_destination() {
    let server = fast_retry_server();
    server.create_function(support::testfn_function("doomed", json!({})));
    server.create_function(support::testfn_function("dlq", json!({})));
    let arn = server
        .request("GET", "/2023-03-30/functions/dlq", &[], b"")
        .json()["functionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    put_config(&server, "dlq", json!({"asyncTask": true}));
    put_config(
        &server,
        "doomed",
        json!({"maxAsyncRetryAttempts": 2, "asyncTask": true,
               "destinationConfig": {"onFailure": {"destination": arn}}}),
    );
    let r = invoke_async(&server, "doomed", "fail", &[]);
    let id = r.header("x-fc-async-task-id").unwrap().to_owned();
    let t = wait_status(&server, "doomed", &id, "Failed");
    assert_eq!(t["alreadyRetriedTimes"], 2, "{t}");
    assert!(
        t["taskErrorMessage"]
            .as_str()
            .unwrap()
            .starts_with("UnhandledInvocationError"),
        "{t}"
    );
    assert_eq!(t["destinationStatus"], "Succeeded");

    let mut record = Value::Null;
    assert!(eventually(Duration::from_secs(30), || {
        let list = server
            .request(
                "GET",
                "/2023-03-30/functions/dlq/async-tasks?includePayload=true",
                &[],
                b"",
            )
            .json();
        match list["tasks"].as_array().and_then(|a| a.first()) {
            Some(t) if t["status"] == "Succeeded" => {
                record = serde_json::from_str(t["taskPayload"].as_str().unwrap()).unwrap();
                true
            }
            _ => false,
        }
    }));
    assert_eq!(record["requestContext"]["requestId"], t["requestId"]);
    assert_eq!(
        record["requestContext"]["condition"],
        "UnhandledInvocationError"
    );
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["requestPayload"], "fail");
}

#[test]
fn events_older_than_max_age_expire_and_throttling_consumes_no_attempt() {
    let server = fast_retry_server();
    server.create_function(support::testfn_function("blocked", json!({})));
    // reservedConcurrency 0 throttles every run; throttled runs are retried without
    // consuming attempts, so only the age limit ends the event.
    let r = server.put_json(
        "/2023-03-30/functions/blocked/concurrency",
        &json!({"reservedConcurrency": 0}),
    );
    assert_eq!(r.status, 200);
    put_config(
        &server,
        "blocked",
        json!({"maxAsyncEventAgeInSeconds": 1, "maxAsyncRetryAttempts": 0, "asyncTask": true}),
    );
    let r = invoke_async(&server, "blocked", "echo:never", &[]);
    let id = r.header("x-fc-async-task-id").unwrap().to_owned();
    let t = wait_status(&server, "blocked", &id, "Expired");
    assert_eq!(t["alreadyRetriedTimes"], 0, "{t}");
    assert!(
        t["taskErrorMessage"]
            .as_str()
            .unwrap()
            .contains("maxAsyncEventAgeInSeconds"),
        "{t}"
    );
}

#[test]
fn stop_moves_a_running_task_to_stopped() {
    let server = Server::start();
    let mut f = support::testfn_function("long", json!({}));
    f["timeout"] = json!(60);
    server.create_function(f);
    put_config(&server, "long", json!({"asyncTask": true}));
    let r = invoke_async(
        &server,
        "long",
        "sleep:30000",
        &[("x-fc-async-task-id", "long_task-1")],
    );
    assert_eq!(r.header("x-fc-async-task-id"), Some("long_task-1"));
    wait_status(&server, "long", "long_task-1", "Running");
    let stop = server.request(
        "PUT",
        "/2023-03-30/functions/long/async-tasks/long_task-1/stop",
        &[],
        b"",
    );
    assert_eq!(stop.status, 200, "{}", stop.text());
    let t = wait_status(&server, "long", "long_task-1", "Stopped");
    assert!(t["endTime"].is_i64());
    // The cancelled request freed its slot: the function still serves.
    assert_eq!(server.invoke("long", b"echo:after").text(), "after");
}

#[test]
fn caller_given_task_ids_are_honoured_and_deduplicated() {
    let server = Server::start();
    server.create_function(support::testfn_function("dedup", json!({})));
    let dir = support::scratch_dir("dedup");
    let file = dir.path().join("ids");
    let body = format!("record:{}", file.display());
    let a = invoke_async(&server, "dedup", &body, &[("x-fc-async-task-id", "_same")]);
    let b = invoke_async(&server, "dedup", &body, &[("x-fc-async-task-id", "_same")]);
    assert_eq!(a.status, 202);
    assert_eq!(b.status, 202);
    assert_eq!(a.header("x-fc-async-task-id"), Some("_same"));
    assert_eq!(a.header("x-fc-request-id"), b.header("x-fc-request-id"));
    wait_status(&server, "dedup", "_same", "Succeeded");
    let list = server
        .request("GET", "/2023-03-30/functions/dedup/async-tasks", &[], b"")
        .json();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn async_tasks_list_filters_and_pages() {
    let server = Server::start();
    server.create_function(support::testfn_function("many", json!({})));
    put_config(&server, "many", json!({"asyncTask": true}));
    for i in 0..5 {
        let id = format!("job-{i}");
        assert_eq!(
            invoke_async(&server, "many", "echo:x", &[("x-fc-async-task-id", &id)]).status,
            202
        );
    }
    assert_eq!(
        invoke_async(
            &server,
            "many",
            "echo:x",
            &[("x-fc-async-task-id", "other")]
        )
        .status,
        202
    );
    for i in 0..5 {
        wait_status(&server, "many", &format!("job-{i}"), "Succeeded");
    }
    let page = server
        .request(
            "GET",
            "/2023-03-30/functions/many/async-tasks?prefix=job-&limit=3&sortOrderByTime=asc",
            &[],
            b"",
        )
        .json();
    let ids: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["job-0", "job-1", "job-2"]);
    let token = page["nextToken"].as_str().unwrap();
    let page2 = server
        .request("GET", &format!("/2023-03-30/functions/many/async-tasks?prefix=job-&limit=3&sortOrderByTime=asc&nextToken={token}"), &[], b"")
        .json();
    let ids: Vec<&str> = page2["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["job-3", "job-4"]);
    assert!(page2.get("nextToken").is_none());
    let ok = server
        .request(
            "GET",
            "/2023-03-30/functions/many/async-tasks?status=Succeeded&limit=100",
            &[],
            b"",
        )
        .json();
    assert!(ok["tasks"].as_array().unwrap().len() >= 5);
}

#[test]
fn bad_async_input_gets_4xx_naming_the_field() {
    let server = Server::start();
    server.create_function(support::testfn_function("strict", json!({})));
    let big = vec![b'x'; 128 * 1024 + 1];
    let r = server.invoke_with("strict", &[("x-fc-invocation-type", "Async")], &big);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Code"], "EntityTooLarge");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("131072 bytes"));

    let r = invoke_async(&server, "nobody-home", "x", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["Code"], "FunctionNotFound");

    let r = invoke_async(
        &server,
        "strict",
        "x",
        &[("x-fc-async-task-id", "9starts-with-digit")],
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("x-fc-async-task-id"));

    let r = server.invoke_with("strict", &[("x-fc-invocation-type", "Later")], b"x");
    assert_eq!(r.status, 400);
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("x-fc-invocation-type"));

    for (body, field) in [
        (
            json!({"maxAsyncRetryAttempts": 100}),
            "maxAsyncRetryAttempts",
        ),
        (
            json!({"maxAsyncEventAgeInSeconds": 0}),
            "maxAsyncEventAgeInSeconds",
        ),
        (
            json!({"destinationConfig": {"onFailure": {"destination": "ftp://x"}}}),
            "destinationConfig.onFailure.destination",
        ),
        (json!({"asyncTask": "yes"}), "asyncTask"),
    ] {
        let r = server.put_json("/2023-03-30/functions/strict/async-invoke-config", &body);
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.json()["Message"].as_str().unwrap().contains(field),
            "{}",
            r.text()
        );
    }
    let r = server.request(
        "GET",
        "/2023-03-30/functions/strict/async-tasks/no_such_task",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = server.request(
        "GET",
        "/2023-03-30/functions/strict/async-tasks/bad%20id",
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
    let r = server.request(
        "PUT",
        "/2023-03-30/functions/strict/async-tasks/no_such_task/stop",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = server.request(
        "GET",
        "/2023-03-30/functions/strict/async-tasks?status=Sleeping",
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
    let r = server.request(
        "GET",
        "/2023-03-30/functions/strict/async-tasks?limit=0",
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
}

/// A small deterministic RNG (xorshift64*), so a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

#[test]
fn kill_9_mid_stream_loses_no_accepted_invocation() {
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 500;
    const KILLS: usize = 5;
    let seed: u64 = std::env::var("FCX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f0c5);
    println!("crash test seed: {seed} (replay with FCX_CRASH_SEED={seed})");
    let mut rng = Rng(seed.max(1));

    let server = Server::start();
    let mut f = support::testfn_function("sink", json!({}));
    f["instanceConcurrency"] = json!(20);
    server.create_function(f);
    let dir = support::scratch_dir("crash");
    let file = dir.path().join("ids");
    let body = format!("record:{}", file.display());

    let addr: Arc<RwLock<SocketAddr>> = Arc::new(RwLock::new(server.addr));
    let server = Arc::new(Mutex::new(server));
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Set when the killer thread panics (a restart failed): the clients stop instead of
    // retrying a server that is gone, so the test fails with the killer's panic at once.
    let killer_failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            let (addr, accepted, body, done, killer_failed) = (
                Arc::clone(&addr),
                Arc::clone(&accepted),
                &body,
                &done,
                &killer_failed,
            );
            s.spawn(move || {
                for _ in 0..PER_CLIENT {
                    // Bounded: a request whose server is down is tried again for up to ~10 s.
                    for _attempt in 0..1000 {
                        if killer_failed.load(std::sync::atomic::Ordering::Acquire) {
                            return;
                        }
                        let target = *addr.read().unwrap();
                        let r = support::http::try_request(
                            target,
                            "POST",
                            "/2023-03-30/functions/sink/invocations",
                            &[("x-fc-invocation-type", "Async")],
                            body.as_bytes(),
                        );
                        match r {
                            Ok(r) if r.status == 202 => {
                                accepted
                                    .lock()
                                    .unwrap()
                                    .push(r.header("x-fc-request-id").unwrap().to_owned());
                                break;
                            }
                            Ok(r) => panic!("unexpected answer {}: {}", r.status, r.text()),
                            // Refused or cut by a kill: not accepted, send it again.
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Release);
            });
        }
        // Kill moments: after a seeded-random number of accepted invocations, so every kill
        // lands mid-stream whatever the machine's speed.
        let total = (CLIENTS * PER_CLIENT) as u64;
        let mut moments: Vec<usize> = (0..KILLS)
            .map(|_| rng.between(total / 20, total * 9 / 10) as usize)
            .collect();
        moments.sort_unstable();
        let (server, addr, accepted) = (
            Arc::clone(&server),
            Arc::clone(&addr),
            Arc::clone(&accepted),
        );
        let killer_failed = &killer_failed;
        s.spawn(move || {
            /// Raises `killer_failed` when the killer unwinds.
            struct OnPanic<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for OnPanic<'_> {
                fn drop(&mut self) {
                    if std::thread::panicking() {
                        self.0.store(true, std::sync::atomic::Ordering::Release);
                    }
                }
            }
            let _raise = OnPanic(killer_failed);
            for (k, moment) in moments.into_iter().enumerate() {
                // Bounded wait (~60 s) for the stream to reach the moment.
                for _ in 0..6000 {
                    if accepted.lock().unwrap().len() >= moment {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let mut srv = server.lock().unwrap();
                srv.crash_and_restart();
                *addr.write().unwrap() = srv.addr;
                println!(
                    "kill {}: after {} accepted invocations",
                    k + 1,
                    accepted.lock().unwrap().len()
                );
            }
        });
    });
    assert_eq!(done.load(std::sync::atomic::Ordering::Acquire), CLIENTS);
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), CLIENTS * PER_CLIENT);
    let wanted: BTreeSet<&str> = accepted.iter().map(String::as_str).collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let all_ran = eventually(Duration::from_secs(90), || {
        counts.clear();
        for line in std::fs::read_to_string(&file).unwrap_or_default().lines() {
            *counts.entry(line.to_owned()).or_default() += 1;
        }
        wanted.iter().all(|id| counts.contains_key(*id))
    });
    let missing: Vec<&&str> = wanted
        .iter()
        .filter(|id| !counts.contains_key(**id))
        .collect();
    assert!(
        all_ran,
        "{} accepted invocations never ran (seed {seed}): {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "crash test: {} accepted, all ran at least once, {duplicates} duplicate runs, {KILLS} kills (seed {seed})",
        accepted.len()
    );
}

/// A loopback HTTP receiver that answers 200 and hands over each request body (bounded).
fn http_receiver() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16).flatten() {
            let mut reader = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len.min(1 << 20)];
            let _ = reader.read_exact(&mut body);
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(body).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

#[test]
fn success_records_reach_an_http_destination() {
    let server = Server::start();
    server.create_function(support::testfn_function("notify", json!({})));
    let (addr, bodies) = http_receiver();
    put_config(
        &server,
        "notify",
        json!({"asyncTask": true,
               "destinationConfig": {"onSuccess": {"destination": format!("http://{addr}/hook")}}}),
    );
    let r = invoke_async(&server, "notify", "echo:done", &[]);
    let id = r.header("x-fc-async-task-id").unwrap().to_owned();
    let t = wait_status(&server, "notify", &id, "Succeeded");
    assert_eq!(t["destinationStatus"], "Succeeded", "{t}");
    let body = bodies
        .recv_timeout(Duration::from_secs(30))
        .expect("destination record");
    let record: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(record["requestContext"]["requestId"], t["requestId"]);
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(record["requestPayload"], "echo:done");
    assert_eq!(record["responsePayload"], "done");
}
