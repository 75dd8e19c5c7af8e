//! The client against a scripted server on loopback: each test's server reads the request
//! bytes and answers with exact bytes, so framing edge cases are what the client sees.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Conn, SendError};
use crate::body::{full, Body};

/// A server that answers each accepted request with the next of `answers`, on one
/// connection, and reports the request bytes it read (up to the end of the head and the
/// `content-length` body, or the chunked body's last chunk).
async fn scripted(answers: Vec<&'static [u8]>) -> (Conn, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for answer in answers {
            seen.push(read_request(&mut s).await);
            s.write_all(answer).await.unwrap();
        }
        // Hold the connection open a little so the client sees no close mid-test.
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    (Conn::new(stream), server)
}

async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            return buf;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    if let Some(n) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        s.read_exact(&mut body).await.unwrap();
        buf.extend(body);
    } else if head.contains("transfer-encoding: chunked") {
        while !buf.ends_with(b"0\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            buf.push(byte[0]);
        }
    }
    buf
}

fn post(body: Body) -> http::Request<Body> {
    let mut req = http::Request::new(body);
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static("/invoke");
    req
}

/// Sends `req` and reads the whole answer: status, body, and whether the connection can
/// be reused.
async fn exchange(conn: &mut Conn, req: http::Request<Body>) -> (u16, Bytes, bool) {
    assert!(conn.ready().await, "the connection takes a request");
    let resp = match conn.send(req).await {
        Ok(r) => r,
        Err(SendError::Io(e)) => panic!("send failed: {e}"),
        Err(SendError::Closed) => panic!("send failed: closed"),
        Err(SendError::Body(e)) => panic!("send failed: body {e}"),
    };
    let mut body = Vec::new();
    while let Some(piece) = std::future::poll_fn(|cx| conn.poll_body(cx)).await {
        body.extend_from_slice(&piece.expect("body piece"));
    }
    (resp.status().as_u16(), Bytes::from(body), conn.finish())
}

#[tokio::test]
async fn a_length_answer_is_read_and_the_connection_reused() {
    let (mut conn, server) = scripted(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello",
        b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
    ])
    .await;
    let (status, body, reusable) = exchange(&mut conn, post(full("ping"))).await;
    assert_eq!((status, &body[..], reusable), (200, &b"hello"[..], true));
    let (status, body, reusable) = exchange(&mut conn, post(full("again"))).await;
    assert_eq!((status, &body[..], reusable), (201, &b""[..], true));
    let seen = server.await.unwrap();
    let first = String::from_utf8(seen[0].clone()).unwrap();
    assert!(first.starts_with("POST /invoke HTTP/1.1\r\n"), "{first}");
    assert!(first.contains("content-length: 4\r\n"), "{first}");
    assert!(first.ends_with("\r\n\r\nping"), "{first}");
}

#[tokio::test]
async fn a_chunked_answer_with_extensions_and_trailers_is_decoded() {
    let (mut conn, _server) = scripted(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n",
    ])
    .await;
    let (status, body, reusable) = exchange(&mut conn, post(full("x"))).await;
    assert_eq!(
        (status, &body[..], reusable),
        (200, &b"hello world"[..], true)
    );
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (mut conn, _server) = scripted(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ])
    .await;
    let (status, body, _) = exchange(&mut conn, post(full("x"))).await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
}

#[tokio::test]
async fn an_answer_without_length_ends_at_the_close_and_is_not_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            .await
            .unwrap();
    });
    let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
    let (status, body, reusable) = exchange(&mut conn, post(full("x"))).await;
    assert_eq!(
        (status, &body[..], reusable),
        (200, &b"until the end"[..], false)
    );
}

#[tokio::test]
async fn connection_close_and_http10_answers_are_not_reused() {
    let (mut conn, _server) = scripted(vec![
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\na",
    ])
    .await;
    let (_, _, reusable) = exchange(&mut conn, post(full("x"))).await;
    assert!(!reusable);
    let (mut conn, _server) =
        scripted(vec![b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\na"]).await;
    let (_, _, reusable) = exchange(&mut conn, post(full("x"))).await;
    assert!(!reusable, "HTTP/1.0 without keep-alive");
    let (mut conn, _server) = scripted(vec![
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\na",
    ])
    .await;
    let (_, _, reusable) = exchange(&mut conn, post(full("x"))).await;
    assert!(reusable, "HTTP/1.0 with keep-alive");
}

#[tokio::test]
async fn a_body_of_unknown_length_goes_out_chunked() {
    let (mut conn, server) = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let body = frames(vec![
        Ok(Bytes::from_static(b"ab")),
        Ok(Bytes::from_static(b"cde")),
    ]);
    let (status, _, reusable) = exchange(&mut conn, post(body)).await;
    assert_eq!((status, reusable), (200, true));
    let seen = String::from_utf8(server.await.unwrap().remove(0)).unwrap();
    assert!(seen.contains("transfer-encoding: chunked\r\n"), "{seen}");
    assert!(
        seen.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{seen}"
    );
}

#[tokio::test]
async fn bad_answers_fail_the_call() {
    for answer in [
        &b"not http at all\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ] {
        let (mut conn, _server) = scripted(vec![answer]).await;
        assert!(conn.ready().await);
        match conn.send(post(full("x"))).await {
            Err(SendError::Io(_)) => {}
            Ok(r) => panic!(
                "{:?} answered {}",
                String::from_utf8_lossy(answer),
                r.status()
            ),
            Err(_) => panic!("{:?}: not an I/O error", String::from_utf8_lossy(answer)),
        }
        assert!(conn.is_closed());
    }
}

#[tokio::test]
async fn a_close_before_answering_and_a_cut_body_are_told_apart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_request(&mut s).await;
        drop(s);
        let (mut s, _) = listener.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
            .await
            .unwrap();
    });
    let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
    assert!(matches!(
        conn.send(post(full("x"))).await,
        Err(SendError::Closed)
    ));
    let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
    conn.send(post(full("x"))).await.ok().expect("head");
    let mut got = Vec::new();
    let err = loop {
        match std::future::poll_fn(|cx| conn.poll_body(cx)).await {
            Some(Ok(piece)) => got.extend_from_slice(&piece),
            Some(Err(e)) => break e,
            None => panic!("a cut body must not end cleanly"),
        }
    };
    assert_eq!(got, b"short");
    assert!(
        err.to_string()
            .contains("before its answer's body was complete"),
        "{err}"
    );
    assert!(!conn.finish());
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_not_ready() {
    let (mut conn, server) = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let (_, _, reusable) = exchange(&mut conn, post(full("x"))).await;
    assert!(reusable);
    server.await.unwrap(); // the server task ends and drops its side
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !conn.ready().await,
        "a closed idle connection is not reused"
    );
}

#[tokio::test]
async fn a_failing_request_body_fails_the_call_with_its_error() {
    let (mut conn, _server) = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let failure: crate::body::BoxError =
        Box::new(crate::body::ClientBodyError("client went away".into()));
    let body = frames(vec![Err(failure)]);
    match conn.send(post(body)).await {
        Err(SendError::Body(e)) => {
            assert!(crate::body::client_body_error(e.as_ref()).is_some(), "{e}")
        }
        _ => panic!("the body's error is the call's"),
    }
    assert!(conn.is_closed());
}

/// A body of unknown length yielding `items` in turn.
fn frames(items: Vec<Result<Bytes, crate::body::BoxError>>) -> Body {
    struct Frames(std::collections::VecDeque<Result<Bytes, crate::body::BoxError>>);
    impl hyper::body::Body for Frames {
        type Data = Bytes;
        type Error = crate::body::BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|r| r.map(hyper::body::Frame::data)))
        }
    }
    Frames(items.into()).boxed_unsync()
}
