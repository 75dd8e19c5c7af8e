//! Hostile clients against the real server: broken, malformed and stalled request bodies,
//! slow and idle connections (also silent or stalled TLS handshakes on the HTTPS listener),
//! oversized heads, missing Host, large management bodies, smuggling attempts and a flood of
//! idle connections. One server with short connection timeouts serves every case but the
//! flood (which has its own, at its connection limit). Every case is bounded in count and
//! time; none asserts a wall-clock duration (latencies are printed).

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use support::procs::eventually;
use support::raw::{self, head, invoke_path};
use support::{Options, Server};

/// The connection timeouts of the shared server (seconds): short, so cases end quickly.
const HEADER_TIMEOUT: u64 = 2;
const KEEPALIVE_TIMEOUT: u64 = 3;
const BODY_TIMEOUT: u64 = 2;
/// How long a case waits for the server to close a connection past its timeout: generous,
/// the machine is shared.
const CUT_WITHIN: Duration = Duration::from_secs(30);

fn shared_server() -> Server {
    Server::start_with(Options::with_args(&[
        "--header-timeout",
        &HEADER_TIMEOUT.to_string(),
        "--keepalive-timeout",
        &KEEPALIVE_TIMEOUT.to_string(),
        "--body-timeout",
        &BODY_TIMEOUT.to_string(),
        "--https-listen",
        "127.0.0.1:0",
    ]))
}

/// Bytes of valid chunked body sent before a fault, so the body is already streaming into
/// the instance when it breaks (more than the server reads before it takes a slot).
const STREAMED: usize = 256 * 1024;

/// `n` bytes of `a` as chunks of 64 KB.
fn chunks(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let len = left.min(64 * 1024);
        out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        out.resize(out.len() + len, b'a');
        out.extend_from_slice(b"\r\n");
        left -= len;
    }
    out
}

fn invoke_end_markers(server: &Server, name: &str) -> usize {
    let r = server.request(
        "GET",
        &format!("/2023-03-30/functions/{name}/logs?tail=10000"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["line"]
                .as_str()
                .unwrap_or("")
                .starts_with("FC Invoke End")
        })
        .count()
}

/// How a broken upload ends.
enum Fault {
    /// These bytes follow the valid part, then the client half-closes and reads the answer.
    Tail(&'static [u8]),
    /// The client stops midway through a Content-Length body and closes the connection.
    Abort,
    /// The client stops midway through a Content-Length body and keeps the connection open.
    Stall,
}

/// Finding 1 and the body timeout of finding 2: a client's broken, malformed or stalled
/// upload is answered 400 to that client, blamed on no function, and the instance (with the
/// request in flight on it) carries on.
fn broken_client_bodies_are_client_errors_and_keep_the_instance(server: &Server) {
    let mut f = support::testfn_function("shared", json!({}));
    f["instanceConcurrency"] = json!(2);
    f["timeout"] = json!(60);
    server.create_function(f);
    let warm = server.invoke("shared", b"echo:warm");
    assert_eq!(warm.status, 200, "{}", warm.text());
    let instance = warm.header("x-fc-instance-id").unwrap().to_owned();
    let cases: [(&str, Fault); 6] = [
        ("chunk size zz", Fault::Tail(b"zz\r\nhello\r\n0\r\n\r\n")),
        (
            "chunk without its CRLF",
            Fault::Tail(b"5\r\nhelloXX0\r\n\r\n"),
        ),
        (
            "negative chunk size",
            Fault::Tail(b"-5\r\nhello\r\n0\r\n\r\n"),
        ),
        ("body ends mid-chunk", Fault::Tail(b"100\r\nshort")),
        ("client aborts midway", Fault::Abort),
        ("client stalls midway", Fault::Stall),
    ];
    let mut ended = invoke_end_markers(server, "shared");
    for (what, fault) in cases {
        let barrier = support::scratch_dir("broken-body");
        let held = format!("barrier:{}:2", barrier.path().display());
        std::thread::scope(|s| {
            // A request in flight on the instance while another client breaks its upload.
            let in_flight = s.spawn(|| server.invoke("shared", held.as_bytes()));
            assert!(
                eventually(Duration::from_secs(20), || std::fs::read_dir(
                    barrier.path()
                )
                .unwrap()
                .count()
                    == 1),
                "{what}: the held request did not reach the instance"
            );
            match fault {
                Fault::Tail(tail) => {
                    let mut bytes = head(
                        "POST",
                        &invoke_path("shared"),
                        &["Transfer-Encoding: chunked"],
                    )
                    .into_bytes();
                    bytes.extend(chunks(STREAMED));
                    bytes.extend_from_slice(tail);
                    let answers = raw::send_and_read(server.addr, &bytes);
                    let answer = answers
                        .first()
                        .unwrap_or_else(|| panic!("{what}: no answer"));
                    assert_eq!(answer.status, 400, "{what}: {}", answer.text());
                    assert_eq!(answer.json()["Code"], "InvalidArgument", "{what}");
                    assert!(
                        answer.header("x-fc-error-type").is_none(),
                        "{what}: blamed on the function"
                    );
                }
                Fault::Abort => {
                    let mut s = raw::connect(server.addr);
                    let h = head(
                        "POST",
                        &invoke_path("shared"),
                        &[&format!("Content-Length: {}", 4 * STREAMED)],
                    );
                    s.write_all(h.as_bytes()).unwrap();
                    s.write_all(&vec![b'a'; STREAMED]).unwrap();
                    let _ = s.shutdown(Shutdown::Both);
                    drop(s);
                }
                Fault::Stall => {
                    let mut s = raw::connect(server.addr);
                    let h = head(
                        "POST",
                        &invoke_path("shared"),
                        &[&format!("Content-Length: {}", 4 * STREAMED)],
                    );
                    s.write_all(h.as_bytes()).unwrap();
                    s.write_all(&vec![b'a'; STREAMED]).unwrap();
                    let started = Instant::now();
                    let answer =
                        raw::read_answer(&mut s).unwrap_or_else(|| panic!("{what}: no answer"));
                    println!("stalled body answered after {:?}", started.elapsed());
                    assert_eq!(answer.status, 400, "{what}: {}", answer.text());
                    assert!(
                        answer.text().contains("--body-timeout"),
                        "{what}: {}",
                        answer.text()
                    );
                    assert!(answer.header("x-fc-error-type").is_none(), "{what}");
                }
            }
            // The broken request has ended (its end marker is in the log) before the next
            // one is sent, so that one finds the slot it left.
            assert!(
                eventually(Duration::from_secs(20), || invoke_end_markers(
                    server, "shared"
                ) > ended),
                "{what}: the broken request never ended"
            );
            let release = server.invoke("shared", held.as_bytes());
            let held = in_flight.join().unwrap();
            for (which, r) in [("held", &held), ("next", &release)] {
                assert_eq!(r.status, 200, "{what}: {which}: {}", r.text());
                assert_eq!(
                    r.text(),
                    format!("released {instance}"),
                    "{what}: {which} request ran elsewhere"
                );
            }
        });
        ended = invoke_end_markers(server, "shared");
        assert_eq!(
            server.instance_ids("shared"),
            vec![instance.clone()],
            "{what}: the instance was replaced"
        );
    }
    // The metrics count each broken upload as the client's error, none as fcx's.
    let metrics = server.request("GET", "/metrics", &[], b"").text();
    let count = |outcome: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(r#"fcx_invocations_total{function="shared""#))
            .filter(|l| l.contains(&format!(r#"outcome="{outcome}""#)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(count("client_error"), 6.0, "{metrics}");
    assert_eq!(count("platform_error"), 0.0, "{metrics}");
}

/// A named hostile case run against the shared server.
type Case = (&'static str, fn(&Server));

/// Every hostile case but the flood, in turn, on one server.
#[test]
fn hostile_clients() {
    let server = shared_server();
    server.create_function(support::testfn_function("plain", json!({})));
    let cases: &[Case] = &[
        (
            "broken client bodies",
            broken_client_bodies_are_client_errors_and_keep_the_instance,
        ),
        (
            "silent and idle connections",
            silent_and_idle_connections_are_closed,
        ),
        (
            "slowloris",
            slowloris_is_cut_while_a_normal_client_is_served,
        ),
        (
            "silent and stalled TLS handshakes",
            silent_and_stalled_tls_handshakes_are_closed,
        ),
        ("missing Host", missing_host_is_refused),
        ("long header line", one_long_header_line_is_refused),
        (
            "large management bodies",
            large_management_bodies_are_refused_unread,
        ),
        ("smuggling", smuggling_attempts_reach_no_second_request),
    ];
    for (name, case) in cases {
        let started = Instant::now();
        case(&server);
        println!("hostile case '{name}' passed in {:?}", started.elapsed());
    }
    println!(
        "hostile cases: {} groups, {} attempts",
        cases.len(),
        attempts()
    );
}

static ATTEMPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one hostile attempt (for the report the test prints).
fn attempt() {
    ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn attempts() -> usize {
    ATTEMPTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Finding 2: a connection that sends nothing, one that stops mid-head, and a keep-alive
/// connection left idle are each closed by the server.
fn silent_and_idle_connections_are_closed(server: &Server) {
    let mut silent = raw::connect(server.addr);
    let mut partial = raw::connect(server.addr);
    partial
        .write_all(b"GET /2023-03-30/functions HTTP/1.1\r\nHost: fcx\r\nX-Half: ")
        .unwrap();
    let mut idle = raw::connect(server.addr);
    let first = raw::send_then_answer(
        &mut idle,
        head("GET", "/2023-03-30/functions", &[]).as_bytes(),
    )
    .expect("an answer on the keep-alive connection");
    assert_eq!(first.status, 200, "{}", first.text());
    let started = Instant::now();
    for (what, s) in [
        ("silent", &mut silent),
        ("partial head", &mut partial),
        ("idle keep-alive", &mut idle),
    ] {
        attempt();
        assert!(
            raw::closed_within(s, CUT_WITHIN),
            "{what}: the connection stayed open"
        );
        println!("{what} connection closed after {:?}", started.elapsed());
    }
}

/// The HTTPS listener has the plain one's limits: a connection that sends no ClientHello,
/// and one that stops in the middle of it, are closed (the handshake has the header timeout).
fn silent_and_stalled_tls_handshakes_are_closed(server: &Server) {
    let https = server.https_addr.expect("--https-listen");
    let mut silent = raw::connect(https);
    let mut stalled = raw::connect(https);
    // A TLS record header announcing a 512-byte handshake message, then nothing more.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let started = Instant::now();
    for (what, s) in [
        ("silent", &mut silent),
        ("stalled ClientHello", &mut stalled),
    ] {
        attempt();
        assert!(
            raw::closed_within(s, CUT_WITHIN),
            "HTTPS {what}: the connection stayed open"
        );
        println!(
            "HTTPS {what} connection closed after {:?}",
            started.elapsed()
        );
    }
}

/// Finding 2: slowloris connections (a head dripped a byte at a time, never finished) are
/// cut at the header timeout while a normal client is served throughout.
fn slowloris_is_cut_while_a_normal_client_is_served(server: &Server) {
    const SLOW: usize = 200;
    let mut slow: Vec<TcpStream> = (0..SLOW).map(|_| raw::connect(server.addr)).collect();
    for s in &mut slow {
        s.write_all(b"POST /2023-03-30/functions/plain/invocations HTTP/1.1\r\nHost: fcx\r\n")
            .unwrap();
        s.set_nonblocking(true).unwrap();
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut open = SLOW;
    // Bounded: the loop ends when all are cut or at CUT_WITHIN.
    while open > 0 && started.elapsed() < CUT_WITHIN {
        // Drip one header byte on each slow connection; a cut one fails to write or reads EOF.
        open = 0;
        for s in &mut slow {
            if s.write_all(b"x").is_ok() && !read_eof(s) {
                open += 1;
            }
        }
        let t = Instant::now();
        let r = server.invoke("plain", b"echo:normal");
        latencies.push(t.elapsed());
        assert_eq!(r.status, 200, "the normal client was refused: {}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    attempt();
    assert_eq!(
        open, 0,
        "{open} of {SLOW} slowloris connections were never cut"
    );
    latencies.sort();
    println!(
        "slowloris: {SLOW} connections cut after {:?}; normal client {} requests, p50 {:?}, max {:?}",
        started.elapsed(),
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
}

/// Whether the server has closed `s` (non-blocking read: EOF or a reset).
fn read_eof(s: &mut TcpStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Finding 6: HTTP/1.1 without Host is 400 (HTTP/1.0 needs none).
fn missing_host_is_refused(server: &Server) {
    attempt();
    let answers = raw::send_and_read(server.addr, b"GET /2023-03-30/functions HTTP/1.1\r\n\r\n");
    let a = answers.first().expect("an answer");
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["Code"], "InvalidArgument");
    assert!(a.text().contains("Host"), "{}", a.text());
    attempt();
    let answers = raw::send_and_read(server.addr, b"GET /2023-03-30/functions HTTP/1.0\r\n\r\n");
    assert_eq!(answers.first().expect("an answer").status, 200);
}

/// Finding 6: one header line over 16 KB is 400 naming the header; one under passes.
fn one_long_header_line_is_refused(server: &Server) {
    let line_max = 16 * 1024;
    let fits = format!("X-Long: {}", "a".repeat(line_max - "x-long: ".len()));
    let over = format!("X-Long: {}", "a".repeat(line_max));
    let huge = format!("X-Long: {}", "a".repeat(500 * 1024));
    attempt();
    let ok = raw::send_and_read(
        server.addr,
        head("GET", "/2023-03-30/functions", &[&fits]).as_bytes(),
    );
    assert_eq!(ok.first().expect("an answer").status, 200);
    attempt();
    let refused = raw::send_and_read(
        server.addr,
        head("GET", "/2023-03-30/functions", &[&over]).as_bytes(),
    );
    let a = refused.first().expect("an answer");
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["Code"], "InvalidArgument");
    assert!(a.text().contains("x-long"), "{}", a.text());
    // 500 KB in one line is past the whole head's limit: refused before it is parsed.
    attempt();
    let refused = raw::send_and_read(
        server.addr,
        head("GET", "/2023-03-30/functions", &[&huge]).as_bytes(),
    );
    let status = refused.first().map(|a| a.status);
    assert!(
        matches!(status, Some(400 | 431)),
        "a 500 KB header line got {status:?}"
    );
}

/// Finding 6: a management body declaring more than its limit is refused before it is read
/// (the client sends only the head), and a chunked one is cut at the limit.
fn large_management_bodies_are_refused_unread(server: &Server) {
    attempt();
    let mut s = raw::connect(server.addr);
    let declared = head(
        "POST",
        "/2023-03-30/functions",
        &[
            "Content-Length: 209715200",
            "Content-Type: application/json",
        ],
    );
    let a = raw::send_then_answer(&mut s, declared.as_bytes()).expect("answered before the body");
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["Code"], "EntityTooLarge");
    attempt();
    let mut bytes = head(
        "POST",
        "/2023-03-30/functions/plain/aliases",
        &[
            "Transfer-Encoding: chunked",
            "Content-Type: application/json",
        ],
    )
    .into_bytes();
    bytes.extend(chunks(256 * 1024));
    bytes.extend_from_slice(b"0\r\n\r\n");
    let answers = raw::send_and_read(server.addr, &bytes);
    let a = answers.first().expect("an answer");
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["Code"], "EntityTooLarge");
}

/// Smuggling: each attempt hides a second request (GET of a function named `smuggled`) in
/// the first one's body; whatever the server answers, it never answers that one.
fn smuggling_attempts_reach_no_second_request(server: &Server) {
    let hidden = "GET /2023-03-30/functions/smuggled HTTP/1.1\r\nHost: fcx\r\n\r\n";
    let path = invoke_path("plain");
    let chunked_hiding = format!("0\r\n\r\n{hidden}");
    let variants: Vec<(&str, Vec<String>, String)> = vec![
        (
            "CL.TE",
            vec![
                "Content-Length: 5".into(),
                "Transfer-Encoding: chunked".into(),
            ],
            chunked_hiding.clone(),
        ),
        (
            "TE.CL",
            vec![
                "Transfer-Encoding: chunked".into(),
                format!("Content-Length: {}", 5),
            ],
            chunked_hiding.clone(),
        ),
        (
            "duplicate Content-Length",
            vec![
                "Content-Length: 0".into(),
                format!("Content-Length: {}", hidden.len()),
            ],
            hidden.to_owned(),
        ),
        (
            "TE with a space before the colon",
            vec![
                "Transfer-Encoding : chunked".into(),
                "Content-Length: 5".into(),
            ],
            chunked_hiding.clone(),
        ),
        (
            "TE xchunked",
            vec![
                "Transfer-Encoding: xchunked".into(),
                "Content-Length: 5".into(),
            ],
            chunked_hiding.clone(),
        ),
        (
            "TE chunked, identity",
            vec!["Transfer-Encoding: chunked, identity".into()],
            chunked_hiding.clone(),
        ),
        (
            "TE twice",
            vec![
                "Transfer-Encoding: chunked".into(),
                "Transfer-Encoding: identity".into(),
            ],
            chunked_hiding.clone(),
        ),
        (
            "Content-Length with a plus",
            vec!["Content-Length: +5".into()],
            format!("hello{hidden}"),
        ),
        (
            "Content-Length list",
            vec!["Content-Length: 5, 5".into()],
            format!("hello{hidden}"),
        ),
        (
            "obs-fold TE",
            vec![
                "X-Fold: a".into(),
                " Transfer-Encoding: chunked".into(),
                "Content-Length: 5".into(),
            ],
            chunked_hiding.clone(),
        ),
        (
            "bare LF line end",
            vec!["Content-Length: 5\nTransfer-Encoding: chunked".into()],
            chunked_hiding,
        ),
    ];
    for (what, headers, body) in variants {
        attempt();
        let lines: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut bytes = head("POST", &path, &lines).into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        let answers = raw::send_and_read(server.addr, &bytes);
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        println!("smuggling {what}: answers {statuses:?}");
        for a in &answers {
            assert!(
                !a.text().contains("smuggled"),
                "{what}: the hidden request was answered: {}",
                a.text()
            );
        }
        assert!(
            answers.len() <= 1,
            "{what}: {} answers to one request",
            answers.len()
        );
    }
}

/// Finding 2: 5,000 idle connections are held with bounded memory while a normal client is
/// served, and a connection past `--max-connections` is answered 503 TooManyConnections.
#[test]
fn idle_connection_flood_is_bounded() {
    const IDLE: usize = 5000;
    // Room for the idle ones and the normal client's connection, no more.
    let limit = IDLE + 1;
    let server = Server::start_with(Options::with_args(&[
        "--max-connections",
        &limit.to_string(),
        "--header-timeout",
        "300",
    ]));
    server.create_function(support::testfn_function("plain", json!({})));
    assert_eq!(server.invoke("plain", b"echo:warm").status, 200);
    let mut normal = raw::connect(server.addr);
    let invoke = {
        let mut h = head("POST", &invoke_path("plain"), &["Content-Length: 11"]).into_bytes();
        h.extend_from_slice(b"echo:normal");
        h
    };
    assert_eq!(
        raw::send_then_answer(&mut normal, &invoke)
            .expect("answer")
            .status,
        200
    );
    let fds_before = fd_count(server.pid());
    let rss_before = rss_kb(server.pid());
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| raw::connect(server.addr)).collect();
    assert!(
        eventually(Duration::from_secs(60), || fd_count(server.pid())
            >= fds_before + IDLE),
        "the server did not accept {IDLE} connections (it has {} fds)",
        fd_count(server.pid())
    );
    let rss_after = rss_kb(server.pid());
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 / IDLE as f64;
    println!(
        "idle flood: {IDLE} idle connections, server RSS {rss_before} KB -> {rss_after} KB \
         ({per_conn:.1} KB per connection)"
    );
    assert!(per_conn < 64.0, "{per_conn:.1} KB per idle connection");
    let t = Instant::now();
    let a = raw::send_then_answer(&mut normal, &invoke).expect("the normal client's answer");
    println!("normal client during the flood: {:?}", t.elapsed());
    assert_eq!(a.status, 200, "{}", a.text());
    let over = raw::send_and_read(
        server.addr,
        head("GET", "/2023-03-30/functions", &[]).as_bytes(),
    );
    let refused = over
        .first()
        .expect("a 503 for the connection past the limit");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["Code"], "TooManyConnections");
    assert!(
        refused.text().contains("--max-connections"),
        "{}",
        refused.text()
    );
    drop(idle);
    // Once the flood is gone, new connections are served again.
    assert!(
        eventually(Duration::from_secs(30), || {
            let r = raw::send_and_read(
                server.addr,
                head("GET", "/2023-03-30/functions", &[]).as_bytes(),
            );
            r.first().is_some_and(|a| a.status == 200)
        }),
        "the server did not serve new connections after the flood ended"
    );
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
