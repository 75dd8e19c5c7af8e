//! The warm path: keep-alive connections into an instance are reused, and large payloads
//! stream through intact in both directions.

mod support;

use std::io::{Read, Write};

use serde_json::json;
use support::Server;

/// TCP sockets to or from `port` in the namespace of `pid`, except the listener: (state, count).
fn connections_on_port(pid: u32, port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            let involved = port_of(cols[1]) == Some(port) || port_of(cols[2]) == Some(port);
            if involved && cols[3] != "0A" {
                out.push(cols[3].to_owned());
            }
        }
    }
    out
}

#[test]
fn sequential_invocations_reuse_one_keep_alive_connection() {
    let server = Server::start();
    server.create_function(support::testfn_function("keepalive", json!({})));
    for i in 0..20 {
        assert_eq!(
            server
                .invoke("keepalive", format!("echo:{i}").as_bytes())
                .text(),
            i.to_string()
        );
    }
    let pid = server.instance_pids()[0];
    let sockets = connections_on_port(pid, 9000);
    // One established connection is two sockets in the namespace (both ends); a new
    // connection per request would leave closed ones behind in TIME_WAIT.
    assert_eq!(sockets, vec!["01", "01"], "sockets on :9000: {sockets:?}");
}

#[test]
fn large_payloads_stream_through_intact_both_ways() {
    let server = Server::start();
    server.create_function(support::testfn_function("bulk", json!({})));
    // Deterministic pseudo-random bytes (not a valid testfn command, so they are echoed).
    let mut state: u32 = 0x2545_f491;
    let payload: Vec<u8> = (0..20 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let r = server.invoke("bulk", &payload);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), payload.len());
    assert!(r.body == payload, "echoed body differs");

    let big = server.invoke("bulk", b"size:25000000");
    assert_eq!(big.status, 200);
    assert_eq!(big.body.len(), 25_000_000);
    assert!(big.body.iter().all(|b| *b == b'x'));
}

#[test]
fn chunked_payload_over_the_limit_is_entity_too_large() {
    let server = Server::start();
    server.create_function(support::testfn_function("chunks", json!({})));
    assert_eq!(server.invoke("chunks", b"echo:warm").status, 200);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    let head = "POST /2023-03-30/functions/chunks/invocations HTTP/1.1\r\nHost: x\r\n\
                Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'a'; 1024 * 1024];
    // 33 MB in 1 MB chunks; the server may stop reading once the limit is passed.
    for _ in 0..33 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if s.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 400"),
        "{}",
        &text[..text.len().min(300)]
    );
    assert!(text.contains("\"Code\":\"EntityTooLarge\""), "{text}");
    assert!(text.contains("33554432 bytes"), "{text}");
    // The instance was not blamed: it still serves.
    assert_eq!(server.invoke("chunks", b"echo:still").text(), "still");
}
