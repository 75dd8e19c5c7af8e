//! Thread-per-core serving (`fcx server --serve-threads N`): the API listener served by N
//! threads, each with its own event loop and listening socket (SO_REUSEPORT). One server
//! with two serving threads takes every case in turn: many client connections invoking one
//! function from cold, `--max-connections` as one total over the threads, and a SIGTERM
//! that drains the requests in flight on them; a second server checks `--serve-threads 1`.
//! Every load loop is bounded in count and time; nothing asserts a wall-clock duration.

mod support;

use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::procs::eventually;
use support::raw::{self, head, invoke_path};
use support::{Options, Server};

/// `--max-connections` of the shared server.
const MAX_CONNECTIONS: usize = 40;
/// Client connections of the load case (each its own keep-alive connection).
const CLIENTS: usize = 32;
/// Invocations per client connection.
const CALLS: usize = 10;

/// The server's threads named `name`, by tid.
fn threads_named(pid: u32, name: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| t.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

/// How often thread `tid` of `pid` has blocked (`voluntary_ctxt_switches`): a serving
/// thread blocks in its event loop after the connections it serves, and never otherwise.
fn blocked_count(pid: u32, tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An invocation of `name` with `payload` on a keep-alive connection.
fn invoke_request(name: &str, payload: &str) -> Vec<u8> {
    let mut r = head(
        "POST",
        &invoke_path(name),
        &[&format!("Content-Length: {}", payload.len())],
    )
    .into_bytes();
    r.extend_from_slice(payload.as_bytes());
    r
}

/// The serving threads of `server`, `fcx-serve-0` .. `fcx-serve-{n-1}`, each found once.
fn serving_threads(server: &Server, n: usize) -> Vec<u32> {
    let tids: Vec<u32> = (0..n)
        .map(|i| {
            let found = threads_named(server.pid(), &format!("fcx-serve-{i}"));
            assert_eq!(found.len(), 1, "threads named fcx-serve-{i}: {found:?}");
            found[0]
        })
        .collect();
    assert!(
        threads_named(server.pid(), &format!("fcx-serve-{n}")).is_empty(),
        "more than {n} serving threads"
    );
    tids
}

#[test]
fn two_serving_threads_share_the_load_the_cap_and_the_drain() {
    let server = Server::start_with(Options::with_args(&[
        "--serve-threads",
        "2",
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
    ]));
    let shards = serving_threads(&server, 2);
    let mut f = support::testfn_function("spread", json!({}));
    // A few instances start at once, from requests on both threads.
    f["instanceConcurrency"] = json!(8);
    server.create_function(f);

    many_connections_invoke_from_cold(&server, &shards);
    max_connections_is_one_total(&server);
    sigterm_drains_requests_on_every_thread(server);
}

/// Every call of many concurrent connections succeeds, the first ones (the cold starts
/// included) all at once, and both serving threads served some of them.
fn many_connections_invoke_from_cold(server: &Server, shards: &[u32]) {
    let before: Vec<u64> = shards
        .iter()
        .map(|&t| blocked_count(server.pid(), t))
        .collect();
    let start = std::sync::Barrier::new(CLIENTS);
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let start = &start;
                s.spawn(move || {
                    let mut conn = raw::connect(server.addr);
                    start.wait();
                    for i in 0..CALLS {
                        let payload = format!("echo:{c}-{i}");
                        let a =
                            raw::send_then_answer(&mut conn, &invoke_request("spread", &payload))
                                .unwrap_or_else(|| panic!("client {c}, call {i}: no answer"));
                        assert_eq!(a.status, 200, "client {c}, call {i}: {}", a.text());
                        assert_eq!(a.text(), format!("{c}-{i}"), "client {c}, call {i}");
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
    });
    // The kernel spreads connections over the two sockets by a hash of their addresses: 32
    // connections all on one thread would be a 1 in 2^31 draw.
    for (i, &tid) in shards.iter().enumerate() {
        let after = blocked_count(server.pid(), tid);
        assert!(
            after > before[i],
            "fcx-serve-{i} served none of {CLIENTS} connections (blocked {} -> {after} times)",
            before[i]
        );
    }
}

/// `--max-connections` counts the connections of both threads together: with the limit
/// held by open connections (spread over both), new ones are refused on either thread.
fn max_connections_is_one_total(server: &Server) {
    let list = head("GET", "/2023-03-30/functions", &[]);
    // Each held connection is answered once and stays open. A connection of the load case
    // not yet seen closed may still count: a held one refused meanwhile is retried.
    let mut held: Vec<TcpStream> = Vec::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            let mut conn = raw::connect(server.addr);
            match raw::send_then_answer(&mut conn, list.as_bytes()) {
                Some(a) if a.status == 200 => held.push(conn),
                Some(a) => assert_eq!(a.status, 503, "{}", a.text()),
                None => {}
            }
            held.len() == MAX_CONNECTIONS
        }),
        "only {} of {MAX_CONNECTIONS} connections were served",
        held.len()
    );
    // Per thread, 40 would leave room on each; together they are at the limit.
    for extra in 0..8 {
        let answers = raw::send_and_read(server.addr, list.as_bytes());
        let refused = answers
            .first()
            .unwrap_or_else(|| panic!("extra connection {extra}: no answer"));
        assert_eq!(
            refused.status,
            503,
            "extra connection {extra}: {}",
            refused.text()
        );
        assert_eq!(refused.json()["Code"], "TooManyConnections");
        assert!(
            refused
                .text()
                .contains(&format!("has {MAX_CONNECTIONS} client connections open")),
            "{}",
            refused.text()
        );
    }
    drop(held);
    assert!(
        eventually(Duration::from_secs(30), || {
            let r = raw::send_and_read(server.addr, list.as_bytes());
            r.first().is_some_and(|a| a.status == 200)
        }),
        "new connections were not served after the held ones closed"
    );
}

/// Requests in flight on both threads when SIGTERM comes all finish; then the instances
/// the threads started are stopped.
fn sigterm_drains_requests_on_every_thread(server: Server) {
    const HELD: usize = 8;
    let barrier = support::scratch_dir("shards-drain");
    // Every held call waits for HELD + 1 files: the test's own file releases them.
    let held = format!("barrier:{}:{}", barrier.path().display(), HELD + 1);
    let run_dir = server.run_dir.clone();
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..HELD)
            .map(|_| {
                let held = held.as_str();
                s.spawn(move || {
                    let mut conn = raw::connect(server.addr);
                    raw::send_then_answer(&mut conn, &invoke_request("spread", held))
                })
            })
            .collect();
        assert!(
            eventually(Duration::from_secs(30), || std::fs::read_dir(
                barrier.path()
            )
            .map_or(0, |d| d.count())
                == HELD),
            "the held calls did not all reach the instance"
        );
        let pid = server.pid();
        let terminator = s.spawn(move || support::procs::terminate(pid, Duration::from_secs(30)));
        // The server stops accepting but lets the held requests finish.
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(barrier.path().join("release"), b"").unwrap();
        for (i, call) in calls.into_iter().enumerate() {
            let a = call
                .join()
                .expect("call thread")
                .unwrap_or_else(|| panic!("held call {i} was lost at shutdown"));
            assert_eq!(a.status, 200, "held call {i}: {}", a.text());
            assert!(
                a.text().starts_with("released"),
                "held call {i}: {}",
                a.text()
            );
        }
        terminator.join().unwrap();
    });
    assert!(
        eventually(Duration::from_secs(10), || support::procs::under(&run_dir)
            .is_empty()),
        "instances left running after the shutdown"
    );
    drop(server);
}

#[test]
fn one_serving_thread_serves_and_zero_is_refused() {
    let server = Server::start_with(Options::with_args(&["--serve-threads", "1"]));
    serving_threads(&server, 1);
    server.create_function(support::testfn_function("single", json!({})));
    for i in 0..3 {
        let r = server.invoke("single", format!("echo:{i}").as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), i.to_string());
    }
    let refused = std::process::Command::new(support::fcx_bin())
        .args(["server", "--serve-threads", "0", "--auth", "none"])
        .output()
        .expect("run fcx");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--serve-threads") && stderr.contains("1..=1024"),
        "{stderr}"
    );
}
