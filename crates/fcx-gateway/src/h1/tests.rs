//! The client connection as a client sees it: raw bytes over loopback into `conn.rs`'s
//! connection (this loop first, hyper after a handover), the answers read back and parsed.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::conn::ConnLimits;

fn router() -> Router {
    Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/stream", get(|| async { Body::new(Paused::new()) }))
        .route(
            "/short",
            get(|| async {
                http::Response::builder()
                    .header("content-length", "10")
                    .body(Body::from("abc"))
                    .unwrap()
            }),
        )
        .route("/nothing", get(|| async { http::StatusCode::NO_CONTENT }))
        .route(
            "/wait",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                "waited"
            }),
        )
}

/// A body of no known size: "one", a pause, "two".
struct Paused {
    step: u8,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl Paused {
    fn new() -> Paused {
        Paused {
            step: 0,
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(20))),
        }
    }
}

impl http_body::Body for Paused {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.step {
            0 => {
                self.step = 1;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"one")))))
            }
            1 => match self.pause.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.step = 2;
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"two")))))
                }
                Poll::Pending => Poll::Pending,
            },
            _ => Poll::Ready(None),
        }
    }
}

fn limits() -> ConnLimits {
    ConnLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(5),
        max_connections: 8,
    }
}

/// A server on loopback with `router()`; the sender stops it.
async fn server() -> (std::net::SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let refused: crate::conn::Refused = std::sync::Arc::new(|_| {});
    tokio::spawn(crate::conn::serve(
        listener,
        crate::conn::Transport::Plain,
        router(),
        limits(),
        stop,
        refused,
    ));
    (addr, stop_tx)
}

/// One answer: its status line, headers (names lower-cased) and body.
struct Answer {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads bytes into `buf` until it holds `n` (false at the end of the stream).
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> bool {
    while buf.len() < n {
        let mut chunk = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_secs(120), s.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .unwrap_or(0);
        if got == 0 {
            return false;
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    true
}

/// Reads one answer off `s` (`buf` keeps what was read past it); none at the end.
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Answer> {
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let len = buf.len();
        if !fill(s, buf, len + 1).await {
            return None;
        }
    };
    let head = String::from_utf8(buf.drain(..head_len).collect()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let mut a = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(n) = a.header("content-length") {
        let n: usize = n.parse().unwrap();
        assert!(fill(s, buf, n).await, "a whole body of {n} bytes");
        a.body = buf.drain(..n).collect();
    } else if a.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                let len = buf.len();
                assert!(fill(s, buf, len + 1).await, "a whole chunked body");
            };
            let size_line = String::from_utf8(buf.drain(..line_end + 2).collect()).unwrap();
            let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
            assert!(fill(s, buf, size + 2).await);
            a.body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    Some(a)
}

async fn closed(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let len = buf.len();
    !fill(s, buf, len + 1).await
}

fn post_echo(body: &str) -> String {
    format!(
        "POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn pipelined_plain_requests_are_answered_in_order_on_one_connection() {
    let (addr, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let two = format!("{}{}", post_echo("first"), post_echo("second"));
    s.write_all(two.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for want in ["first", "second"] {
        let a = answer(&mut s, &mut buf).await.expect("an answer");
        assert_eq!(a.status, "HTTP/1.1 200 OK");
        assert_eq!(a.body, want.as_bytes());
        assert_eq!(a.header("content-length"), Some(&*want.len().to_string()));
        assert!(a.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(a.header("connection"), None);
    }
    // Still open for the next request.
    s.write_all(post_echo("third").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"third");
}

#[tokio::test]
async fn requests_this_loop_leaves_to_hyper_are_answered_and_the_connection_goes_on() {
    let (addr, _stop) = server().await;
    let mut buf = Vec::new();
    // A chunked upload, then a plain request on the same connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(post_echo("plain first").as_bytes())
        .await
        .unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"plain first");
    let chunked = "POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n\
                   3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    s.write_all(chunked.as_bytes()).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"abcde");
    s.write_all(post_echo("after").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"after");

    // A body that arrives after its head.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    s.write_all(b"late").await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"late");

    // HTTP/1.0, answered by hyper and closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.0\r\ncontent-length: 2\r\n\r\nok")
        .await
        .unwrap();
    let a = answer(&mut s, &mut buf).await.unwrap();
    assert!(a.status.ends_with(" 200 OK"), "{}", a.status);
    assert_eq!(a.body, b"ok");
    assert!(closed(&mut s, &mut buf).await);

    // A head hyper refuses.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: x\r\n\r\n")
        .await
        .unwrap();
    let a = answer(&mut s, &mut buf).await.unwrap();
    assert!(a.status.starts_with("HTTP/1.1 400"), "{}", a.status);
}

#[tokio::test]
async fn a_body_of_no_known_size_streams_chunked_and_no_body_means_no_framing() {
    let (addr, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let a = answer(&mut s, &mut buf).await.unwrap();
    assert_eq!(a.header("transfer-encoding"), Some("chunked"));
    assert_eq!(a.body, b"onetwo");
    s.write_all(b"GET /nothing HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let a = answer(&mut s, &mut buf).await.unwrap();
    assert_eq!(a.status, "HTTP/1.1 204 No Content");
    assert_eq!(a.header("content-length"), None);
    assert_eq!(a.header("transfer-encoding"), None);
    s.write_all(post_echo("still open").as_bytes())
        .await
        .unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"still open");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_closes_the_connection() {
    let (addr, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /short HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let len = buf.len();
        assert!(fill(&mut s, &mut buf, len + 1).await);
    };
    assert!(closed(&mut s, &mut buf).await, "closed after the cut body");
    assert_eq!(&buf[head_end..], b"abc");
}

#[tokio::test]
async fn a_missing_host_is_refused_and_the_connection_closed() {
    let (addr, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let a = answer(&mut s, &mut buf).await.unwrap();
    assert!(a.status.starts_with("HTTP/1.1 400"), "{}", a.status);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(String::from_utf8_lossy(&a.body).contains("Host"));
    assert!(closed(&mut s, &mut buf).await);
}

#[tokio::test(start_paused = true)]
async fn a_head_not_complete_within_the_header_timeout_is_cut() {
    let (addr, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = Vec::new();
    assert!(closed(&mut s, &mut buf).await);
    assert!(buf.is_empty(), "closed without an answer");
    assert!(started.elapsed() >= limits().header_timeout);
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (addr, _stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(post_echo("x").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(answer(&mut s, &mut buf).await.unwrap().body, b"x");
    let idle = tokio::time::Instant::now();
    assert!(closed(&mut s, &mut buf).await);
    assert!(idle.elapsed() >= limits().idle_timeout);
}

#[tokio::test]
async fn a_stop_lets_the_request_in_flight_finish_and_closes_after_it() {
    let (addr, stop) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /wait HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop.send(true).unwrap();
    let mut buf = Vec::new();
    let a = answer(&mut s, &mut buf).await.unwrap();
    assert_eq!(a.body, b"waited");
    assert_eq!(a.header("connection"), Some("close"));
    assert!(closed(&mut s, &mut buf).await);
}
