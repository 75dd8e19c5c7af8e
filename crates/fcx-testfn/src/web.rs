//! HTTP-function routes (requests with `x-fc-control-path: /http-invoke`): what the e2e
//! tests of HTTP triggers and custom domains drive.
//!
//! - any path: a JSON echo of the method, target (path and query as received), headers,
//!   body length and FNV-1a 32 of the body
//! - `/body`: the body back, with the request's content type
//! - `/status/<code>`: that status
//! - `/reserved`: an answer setting the headers FC reserves (and one it keeps)
//! - `/big-headers/<n>`: `n` headers of 1000 bytes
//! - `/sse?gate=<file>`: an event stream: one event, then (once `<file>` exists) a second
//! - `/ws`: a WebSocket echo (`ws.rs`)
//! - `/arm-drop`: the next request on this connection is closed unanswered
//! - `/crash`: the process exits mid-request
//! - `/sleep/<ms>`: answers after a while

use crate::http::Head;
use crate::response::Response;

/// What the connection loop does with a web request.
#[derive(Debug)]
pub enum Web {
    Respond(Response),
    /// Stream server-sent events, the second after `gate` exists.
    Sse {
        gate: String,
    },
    /// Switch to WebSocket with this `Sec-WebSocket-Key`.
    Upgrade {
        key: String,
    },
    /// Answer, then close the next request on this connection without an answer.
    ArmDrop(Response),
    Exit(i32),
}

/// FNV-1a, 32 bits: a body's fingerprint the tests compute too.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// A JSON string literal.
fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn handle(head: &Head, body: &[u8]) -> Web {
    let path = head.path();
    if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse().ok()) {
        return Web::Respond(Response::new(code, format!("status {code}")));
    }
    if let Some(ms) = path.strip_prefix("/sleep/").and_then(|c| c.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return Web::Respond(Response::new(200, format!("slept {ms}")));
    }
    if let Some(n) = path
        .strip_prefix("/big-headers/")
        .and_then(|c| c.parse::<usize>().ok())
    {
        let mut r = Response::new(200, "big");
        for i in 0..n {
            r = r.with_header(&format!("x-big-{i}"), &"h".repeat(1000));
        }
        return Web::Respond(r);
    }
    match path {
        "/body" => {
            let mut r = Response::new(200, body.to_vec());
            if let Some(ct) = head.header("content-type") {
                r = r.with_header("content-type", ct);
            }
            Web::Respond(r)
        }
        "/reserved" => Web::Respond(
            Response::new(200, "reserved")
                .with_header("x-fc-secret", "from the function")
                .with_header("server", "testfn-evil")
                .with_header("date", "Mon, 01 Jan 1990 00:00:00 GMT")
                .with_header("keep-alive", "timeout=1")
                .with_header("x-kept", "yes"),
        ),
        "/sse" => Web::Sse {
            gate: query_param(&head.target, "gate").unwrap_or("").to_owned(),
        },
        "/ws" => match head.header("sec-websocket-key") {
            Some(key) => Web::Upgrade {
                key: key.to_owned(),
            },
            None => Web::Respond(Response::new(
                400,
                "testfn: /ws needs a WebSocket handshake",
            )),
        },
        "/arm-drop" => Web::ArmDrop(Response::new(200, "armed")),
        "/crash" => {
            crate::log_err("testfn: crashing mid-request");
            Web::Exit(7)
        }
        _ => Web::Respond(echo(head, body)),
    }
}

fn echo(head: &Head, body: &[u8]) -> Response {
    let headers: Vec<String> = head
        .headers
        .iter()
        .map(|(n, v)| format!("[{},{}]", json(n), json(v)))
        .collect();
    let text = format!(
        "{{\"method\":{},\"target\":{},\"headers\":[{}],\"bodyLength\":{},\"bodyFnv\":\"{:08x}\"}}",
        json(&head.method),
        json(&head.target),
        headers.join(","),
        body.len(),
        fnv1a(body)
    );
    Response::new(200, text).with_header("content-type", "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
