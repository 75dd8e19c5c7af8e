//! Hostile clients against the real server: broken and malformed request bodies, slow and
//! idle connections, oversized heads, missing Host, smuggling attempts and connection floods.
//! Every case is bounded in count and time; none asserts a wall-clock duration.

mod support;

use std::net::Shutdown;
use std::io::Write;
use std::time::Duration;

use serde_json::json;
use support::procs::eventually;
use support::raw::{self, head, invoke_path};
use support::Server;

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
        .filter(|l| l["line"].as_str().unwrap_or("").starts_with("FC Invoke End"))
        .count()
}

/// How a broken upload ends.
enum Fault {
    /// These bytes follow the valid part, then the client half-closes and reads the answer.
    Tail(&'static [u8]),
    /// The client stops midway through a Content-Length body and closes the connection.
    Abort,
}

#[test]
fn broken_client_bodies_are_client_errors_and_keep_the_instance() {
    let server = Server::start();
    let mut f = support::testfn_function("shared", json!({}));
    f["instanceConcurrency"] = json!(2);
    f["timeout"] = json!(60);
    server.create_function(f);
    let warm = server.invoke("shared", b"echo:warm");
    assert_eq!(warm.status, 200, "{}", warm.text());
    let instance = warm.header("x-fc-instance-id").unwrap().to_owned();
    let cases: [(&str, Fault); 5] = [
        ("chunk size zz", Fault::Tail(b"zz\r\nhello\r\n0\r\n\r\n")),
        ("chunk without its CRLF", Fault::Tail(b"5\r\nhelloXX0\r\n\r\n")),
        ("negative chunk size", Fault::Tail(b"-5\r\nhello\r\n0\r\n\r\n")),
        ("body ends mid-chunk", Fault::Tail(b"100\r\nshort")),
        ("client aborts midway", Fault::Abort),
    ];
    let mut ended = invoke_end_markers(&server, "shared");
    for (what, fault) in cases {
        let barrier = support::scratch_dir("broken-body");
        let held = format!("barrier:{}:2", barrier.path().display());
        std::thread::scope(|s| {
            // A request in flight on the instance while another client breaks its upload.
            let in_flight = s.spawn(|| server.invoke("shared", held.as_bytes()));
            assert!(
                eventually(Duration::from_secs(20), || std::fs::read_dir(barrier.path())
                    .unwrap()
                    .count()
                    == 1),
                "{what}: the held request did not reach the instance"
            );
            match fault {
                Fault::Tail(tail) => {
                    let mut bytes =
                        head("POST", &invoke_path("shared"), &["Transfer-Encoding: chunked"])
                            .into_bytes();
                    bytes.extend(chunks(STREAMED));
                    bytes.extend_from_slice(tail);
                    let answers = raw::send_and_read(server.addr, &bytes);
                    let answer = answers.first().unwrap_or_else(|| panic!("{what}: no answer"));
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
            }
            // The broken request has ended (its end marker is in the log) before the next
            // one is sent, so that one finds the slot it left.
            assert!(
                eventually(Duration::from_secs(20), || invoke_end_markers(
                    &server, "shared"
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
        ended = invoke_end_markers(&server, "shared");
        assert_eq!(
            server.instance_ids("shared"),
            vec![instance.clone()],
            "{what}: the instance was replaced"
        );
    }
}
