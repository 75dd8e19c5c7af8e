//! `fcx-testfn`: a small test function (std, and nix for the isolation probes) used by fcx's end-to-end tests as a real function
//! process. `TESTFN_MODE` selects its behaviour: an HTTP server speaking the FC custom-runtime
//! protocol (`serve`, `listen-localhost`), misbehaviours (`never-listen`, `exit`), or the
//! non-web-server mode (`event`). Routes and `/invoke` commands are listed in `handlers.rs` and
//! `command.rs`; HTTP-function routes (HTTP triggers, WebSocket) in `web.rs` and `ws.rs`.

mod command;
mod handlers;
mod http;
mod isolation;
mod probe;
mod response;
mod server;
mod web;
mod ws;

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process;
use std::thread;
use std::time::Duration;

use command::EventAction;

/// Port used when neither `TESTFN_PORT` nor `FC_CUSTOM_LISTEN_PORT` is set.
const DEFAULT_PORT: u16 = 9000;

/// Prints a line to stdout and flushes it; write errors (e.g. a closed pipe) are ignored.
pub(crate) fn log_out(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints a line to stderr and flushes it; write errors are ignored.
pub(crate) fn log_err(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// Flushes stdout and stderr before the process ends abruptly.
pub(crate) fn flush_all() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `TESTFN_PORT`, else `FC_CUSTOM_LISTEN_PORT`, else 9000.
fn listen_port() -> Result<u16, String> {
    for name in ["TESTFN_PORT", "FC_CUSTOM_LISTEN_PORT"] {
        if let Some(value) = env(name) {
            return value
                .trim()
                .parse()
                .map_err(|_| format!("testfn: invalid {name} {value:?}: expected a port number"));
        }
    }
    Ok(DEFAULT_PORT)
}

fn serve(ip: IpAddr) -> i32 {
    match listen_port() {
        Ok(port) => server::run(ip, port),
        Err(msg) => {
            log_err(&msg);
            2
        }
    }
}

fn event_mode() -> i32 {
    let event = std::env::var_os("FC_CUSTOM_CONTAINER_EVENT")
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    log_out(&format!("event: {event}"));
    match command::parse_event(&event) {
        EventAction::Exit(code) => code,
        EventAction::Signal => {
            flush_all();
            process::abort()
        }
        EventAction::Sleep(ms) => {
            thread::sleep(Duration::from_millis(ms));
            0
        }
        EventAction::Stdout(n) => {
            let chunk = [b'x'; 64 * 1024];
            let mut out = io::stdout().lock();
            let mut left = n;
            while left > 0 {
                let len = left.min(chunk.len() as u64) as usize;
                if out.write_all(&chunk[..len]).is_err() {
                    break;
                }
                left -= len as u64;
            }
            let _ = out.flush();
            0
        }
        EventAction::Done => 0,
    }
}

fn main() {
    let mode = env("TESTFN_MODE").unwrap_or_else(|| "serve".to_string());
    let code = match mode.as_str() {
        "serve" => serve(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "listen-localhost" => serve(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "never-listen" => {
            log_out("testfn: not listening");
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        }
        "exit" => {
            let code = env("TESTFN_EXIT_CODE")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(3);
            log_err(&format!("testfn: exiting with code {code}"));
            code
        }
        "event" => event_mode(),
        other => {
            log_err(&format!(
                "testfn: unknown TESTFN_MODE {other:?} (expected serve, listen-localhost, \
                 never-listen, exit or event)"
            ));
            2
        }
    };
    flush_all();
    process::exit(code);
}
