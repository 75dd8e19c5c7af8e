//! Accept loop and per-connection keep-alive loop (one thread per connection).

use std::io::{BufReader, BufWriter};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::process;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::handlers::{self, Config, Outcome};
use crate::http::{self, BodyKind, HttpError};
use crate::response::{self, Response};
use crate::web::Web;
use crate::{flush_all, log_err, log_out};

/// Binds `ip:port`, prints the startup line and serves forever.
pub fn run(ip: IpAddr, port: u16) -> i32 {
    let listener = match TcpListener::bind((ip, port)) {
        Ok(l) => l,
        Err(e) => {
            log_err(&format!("testfn: cannot listen on {ip}:{port}: {e}"));
            return 1;
        }
    };
    match listener.local_addr() {
        Ok(addr) => log_out(&format!("testfn: listening on {addr}")),
        Err(_) => log_out(&format!("testfn: listening on {ip}:{port}")),
    }
    let cfg = Arc::new(Config::from_env());
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let cfg = Arc::clone(&cfg);
                let spawned = thread::Builder::new()
                    .name("testfn-conn".to_string())
                    .spawn(move || serve_connection(stream, &cfg));
                if let Err(e) = spawned {
                    log_err(&format!("testfn: cannot spawn connection thread: {e}"));
                }
            }
            Err(e) => {
                log_err(&format!("testfn: accept failed: {e}"));
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    0
}

fn error_response(e: &HttpError) -> Response {
    let status = match e {
        HttpError::TooLarge => 413,
        _ => 400,
    };
    Response::new(status, format!("testfn: bad request: {e}"))
}

/// Serves requests on one connection until the peer closes, asks to close, or sends garbage.
fn serve_connection(stream: TcpStream, cfg: &Config) {
    let _ = stream.set_nodelay(true);
    let write_half = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            log_err(&format!("testfn: cannot clone socket: {e}"));
            return;
        }
    };
    let mut reader = BufReader::new(stream);
    let mut writer = BufWriter::new(write_half);
    // Set by `/arm-drop`: the next request on this connection is closed unanswered.
    let mut drop_next = false;
    loop {
        let head = match http::read_head(&mut reader) {
            Ok(head) => head,
            Err(HttpError::Closed | HttpError::Io(_)) => return,
            Err(e) => {
                let _ = response::write_response(&mut writer, &error_response(&e), true, false);
                return;
            }
        };
        let result = head.body_kind().and_then(|kind| {
            if kind != BodyKind::Empty && head.expects_continue() {
                response::write_continue(&mut writer)?;
            }
            http::read_body(&mut reader, kind)
        });
        let body = match result {
            Ok(body) => body,
            Err(HttpError::Closed | HttpError::Io(_)) => return,
            Err(e) => {
                let _ = response::write_response(&mut writer, &error_response(&e), true, false);
                return;
            }
        };
        let close = !head.keep_alive();
        if drop_next {
            log_out("testfn: dropping the connection without an answer");
            return;
        }
        match handlers::handle(cfg, &head, &body) {
            Outcome::Respond(resp) => {
                let head_only = head.method == "HEAD";
                if response::write_response(&mut writer, &resp, close, head_only).is_err() || close
                {
                    return;
                }
            }
            Outcome::Exit(code) => {
                flush_all();
                process::exit(code);
            }
            Outcome::Abort => {
                flush_all();
                process::abort();
            }
            Outcome::Web(web) => match web {
                Web::Respond(resp) => {
                    let head_only = head.method == "HEAD";
                    if response::write_response(&mut writer, &resp, close, head_only).is_err()
                        || close
                    {
                        return;
                    }
                }
                Web::ArmDrop(resp) => {
                    drop_next = true;
                    if response::write_response(&mut writer, &resp, close, false).is_err() {
                        return;
                    }
                }
                Web::Sse { gate } => {
                    if sse(&mut writer, &gate).is_err() || close {
                        return;
                    }
                }
                Web::Upgrade { key } => {
                    crate::ws::serve(&mut reader, &mut writer, &key);
                    return;
                }
                Web::Exit(code) => {
                    flush_all();
                    process::exit(code);
                }
            },
        }
    }
}

/// A chunked event stream: one event, then a second once `gate` exists (at most 30 s), so a
/// client can tell whether the first arrived before the stream ended.
fn sse<W: std::io::Write>(w: &mut W, gate: &str) -> std::io::Result<()> {
    w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )?;
    let chunk = |w: &mut W, data: &[u8]| -> std::io::Result<()> {
        write!(w, "{:x}\r\n", data.len())?;
        w.write_all(data)?;
        w.write_all(b"\r\n")?;
        w.flush()
    };
    chunk(w, b"data: first\n\n")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !gate.is_empty() && !std::path::Path::new(gate).exists() {
        if std::time::Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    chunk(w, b"data: second\n\n")?;
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}
