//! Raw HTTP/1.1 over TCP for hostile-client tests: exact bytes out (malformed chunks,
//! smuggling attempts, partial heads and bodies), and what the server did in return (an
//! answer, a close, or nothing yet).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What the server answered on a raw connection.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to fcx");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Sends `bytes`, half-closes (the server sees end of input), and reads every answer until
/// the server closes.
pub fn send_and_read(addr: SocketAddr, bytes: &[u8]) -> Vec<Answer> {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    parse_all(&read_to_close(&mut s))
}

/// Sends `bytes` and reads one answer, leaving the connection open.
pub fn send_then_answer(s: &mut TcpStream, bytes: &[u8]) -> Option<Answer> {
    s.write_all(bytes).ok()?;
    read_answer(s)
}

/// Everything until the server closes (or resets) the connection.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return out,
        }
    }
}

/// Reads one answer (head and a Content-Length body).
pub fn read_answer(s: &mut TcpStream) -> Option<Answer> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some((answer, _)) = parse_one(&data) {
            return Some(answer);
        }
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Whether the server has closed the connection (EOF or reset) within `limit`; data it
/// sends first is read and dropped.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Every complete answer in `data`, in order.
pub fn parse_all(data: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut rest = data;
    while let Some((answer, used)) = parse_one(rest) {
        answers.push(answer);
        rest = &rest[used..];
    }
    answers
}

fn parse_one(data: &[u8]) -> Option<(Answer, usize)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if data.len() < end + len {
        return None;
    }
    let body = data[end..end + len].to_vec();
    Some((Answer { status, head, body }, end + len))
}

/// A request head for `path` with `extra` header lines (each without CRLF).
pub fn head(method: &str, path: &str, extra: &[&str]) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: fcx\r\n");
    for line in extra {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h
}

/// The InvokeFunction path of `name`.
pub fn invoke_path(name: &str) -> String {
    format!("/2023-03-30/functions/{name}/invocations")
}
