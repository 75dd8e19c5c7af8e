//! Routes of the test function's HTTP server: `/initialize`, `/invoke`, `/pre-stop`,
//! `/pre-freeze`, and fcx's `/restore` extension.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::command::{self, Command};
use crate::http::Head;
use crate::response::{Body, Response};
use crate::{log_err, log_out};

/// How long a `barrier:` command waits for the other participants.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a `barrier:` command re-counts the directory.
const BARRIER_POLL: Duration = Duration::from_millis(10);

/// Settings read once from the environment at startup.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `FC_INSTANCE_ID` (empty if unset).
    pub instance_id: String,
    /// `TESTFN_RECORD`: file that lifecycle events are appended to.
    pub record: Option<PathBuf>,
    /// `TESTFN_INIT_FAIL`: `1` → `/initialize` answers 404, `crash` → exit(9).
    pub init_fail: Option<String>,
    /// `TESTFN_INIT_SLEEP_MS`: delay before handling `/initialize`.
    pub init_sleep_ms: Option<u64>,
    /// `TESTFN_INIT_ALLOC_MB`: state built by `/initialize` (that many MB of written
    /// memory, held for the process's life): what a snapshot has to carry.
    pub init_alloc_mb: Option<usize>,
    /// `TESTFN_BODIES`: file each `/invoke` appends `<x-fc-request-id> <body>` to.
    pub bodies: Option<PathBuf>,
}

/// The state `/initialize` built (`TESTFN_INIT_ALLOC_MB`).
static STATE: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

impl Config {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Config {
            instance_id: var("FC_INSTANCE_ID").unwrap_or_default(),
            record: std::env::var_os("TESTFN_RECORD")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            init_fail: var("TESTFN_INIT_FAIL"),
            init_sleep_ms: var("TESTFN_INIT_SLEEP_MS").and_then(|v| v.trim().parse().ok()),
            init_alloc_mb: var("TESTFN_INIT_ALLOC_MB").and_then(|v| v.trim().parse().ok()),
            bodies: std::env::var_os("TESTFN_BODIES")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Appends `<event> <instance id>` to the record file, if one is configured.
    fn record(&self, event: &str) {
        let Some(path) = &self.record else { return };
        let line = format!("{event} {}\n", self.instance_id);
        let result = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = result {
            log_err(&format!("testfn: cannot append to {}: {e}", path.display()));
        }
    }
}

impl Config {
    /// Appends `<request id> <body>` as one line to the bodies file, if one is configured.
    fn record_body(&self, request_id: &str, body: &[u8]) {
        let Some(path) = &self.bodies else { return };
        let mut line = format!("{request_id} ").into_bytes();
        line.extend_from_slice(body);
        line.push(b'\n');
        let result = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&line));
        if let Err(e) = result {
            log_err(&format!("testfn: cannot append to {}: {e}", path.display()));
        }
    }
}

/// What the connection loop must do after a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Response),
    /// Exit the whole process with this code, without responding.
    Exit(i32),
    /// Abort the whole process (SIGABRT), without responding.
    Abort,
    /// An HTTP-function request (`x-fc-control-path: /http-invoke`).
    Web(crate::web::Web),
}

/// Routes one request.
pub fn handle(cfg: &Config, head: &Head, body: &[u8]) -> Outcome {
    if head.header("x-fc-control-path") == Some("/http-invoke") {
        cfg.record("http-invoke");
        return Outcome::Web(crate::web::handle(head, body));
    }
    match (head.method.as_str(), head.path()) {
        ("POST", "/initialize") => initialize(cfg),
        ("POST", "/invoke") => {
            cfg.record("invoke");
            cfg.record_body(request_id(head), body);
            match invoke(cfg, head, body) {
                Outcome::Respond(resp) => {
                    Outcome::Respond(resp.with_header("x-testfn-instance", &cfg.instance_id))
                }
                other => other,
            }
        }
        ("GET", "/pre-stop") => {
            cfg.record("pre-stop");
            Outcome::Respond(Response::new(200, "ok"))
        }
        ("GET", "/pre-freeze") => {
            cfg.record("pre-freeze");
            Outcome::Respond(Response::new(200, "ok"))
        }
        // fcx's snapshot extension: called on an instance restored from a snapshot. The
        // record line carries the fresh id from the identity file, not the frozen env.
        ("POST", "/restore") => {
            let id = std::env::var_os("FCX_INSTANCE_ID_FILE")
                .and_then(|p| fs::read_to_string(p).ok())
                .unwrap_or_default();
            log_out(&format!("testfn: restore {}", id.trim()));
            cfg.record(&format!("restore {}", id.trim()));
            Outcome::Respond(Response::new(200, "restored"))
        }
        (method, _) => Outcome::Respond(Response::new(
            404,
            format!("testfn: no route for {method} {}", head.target),
        )),
    }
}

fn initialize(cfg: &Config) -> Outcome {
    if let Some(ms) = cfg.init_sleep_ms {
        thread::sleep(Duration::from_millis(ms));
    }
    log_out("testfn: initialize");
    cfg.record("initialize");
    if let Some(mb) = cfg.init_alloc_mb {
        // Every page written (memset, fast even unoptimized), each one marked with its
        // number, so all of it is real, distinct memory.
        let mut state = vec![1u8; mb << 20];
        for (i, page) in state.chunks_mut(4096).enumerate() {
            page[..8].copy_from_slice(&(i as u64).to_le_bytes());
        }
        *STATE.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }
    match cfg.init_fail.as_deref() {
        Some("1") => Outcome::Respond(Response::new(404, "init failed")),
        Some("crash") => Outcome::Exit(9),
        _ => Outcome::Respond(Response::new(200, "initialized")),
    }
}

fn invoke(cfg: &Config, head: &Head, body: &[u8]) -> Outcome {
    let resp = match command::parse(body) {
        Command::Echo(text) => Response::new(200, text),
        Command::Headers => {
            let mut headers: Vec<&(String, String)> = head.headers.iter().collect();
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            let text: String = headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
            Response::new(200, text)
        }
        Command::Env => {
            let mut vars: Vec<(String, String)> = std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect();
            vars.sort();
            let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            Response::new(200, text)
        }
        Command::Whoami => match whoami() {
            Some((uid, gid)) => Response::new(200, format!("uid={uid} gid={gid}")),
            None => Response::new(500, "testfn: cannot read /proc/self/status"),
        },
        Command::Crash => {
            log_err("testfn: crashing");
            return Outcome::Exit(7);
        }
        Command::Abort => return Outcome::Abort,
        Command::Sleep(ms) => {
            thread::sleep(Duration::from_millis(ms));
            Response::new(200, format!("slept {ms}"))
        }
        Command::Fail => Response::new(
            404,
            r#"{"errorMessage":"testfn failed on purpose","errorType":"TestError"}"#,
        )
        .with_header("x-fc-status", "404"),
        Command::Status(code) => Response::new(code, format!("status {code}")),
        Command::Log(text) => {
            log_out(text);
            Response::new(200, "logged")
        }
        Command::Barrier { dir, n } => barrier(cfg, Path::new(dir), n),
        Command::Hold { dir, ms } => hold(cfg, Path::new(dir), ms),
        Command::Chat { dir, n } => {
            let rid = request_id(head);
            log_out(&format!("{rid} before"));
            let answer = barrier(cfg, Path::new(dir), n);
            log_out(&format!("{rid} after"));
            answer
        }
        Command::Spew(lines) => {
            use std::io::Write;
            let line = format!("{}\n", "s".repeat(199));
            let mut out = std::io::stdout().lock();
            for _ in 0..lines {
                let _ = out.write_all(line.as_bytes());
            }
            let _ = out.flush();
            Response::new(200, format!("spewed {lines}"))
        }
        Command::Connect(addr) => Response::new(200, connect(addr)),
        Command::Tcp(addr) => Response::new(200, crate::probe::tcp(addr)),
        Command::Udp(addr) => Response::new(200, crate::probe::udp(addr)),
        Command::Source(addr) => Response::new(200, crate::probe::source(addr)),
        Command::Record(path) => record(path, request_id(head)),
        Command::Flaky { dir, n } => flaky(Path::new(dir), n, request_id(head)),
        Command::Read(path) => match std::fs::read(path) {
            Ok(bytes) => Response::new(200, bytes),
            Err(e) => Response::new(403, format!("cannot read {path}: {e}")),
        },
        Command::Size(n) => Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Repeat { byte: b'x', len: n },
        },
        Command::State => Response::new(200, state_summary().trim_start().to_owned()),
        Command::Alloc(mb) => Response::new(200, crate::isolation::allocate(mb)),
        Command::Pids => Response::new(200, crate::isolation::visible_pids()),
        Command::Probe(spec) => Response::new(200, crate::isolation::run(spec)),
        Command::Raw => Response::new(200, body),
    };
    Outcome::Respond(resp)
}

/// ` pages=<n> intact=<bool>` for the state `/initialize` built (empty without one).
fn state_summary() -> String {
    let state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if state.is_empty() {
        return String::new();
    }
    let intact = state.chunks(4096).enumerate().all(|(i, page)| {
        page.len() < 8 || page[..8] == (i as u64).to_le_bytes() && page[8..].iter().all(|b| *b == 1)
    });
    format!(" pages={} intact={intact}", state.len() / 4096)
}

fn request_id(head: &Head) -> &str {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-fc-request-id"))
        .map(|(_, v)| v.as_str())
        .unwrap_or("none")
}

/// Appends the request id as one line (one `write` with O_APPEND, so lines never interleave).
fn record(path: &str, request_id: &str) -> Response {
    use std::io::Write;
    let line = format!("{request_id}\n");
    let written = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    match written {
        Ok(()) => Response::new(200, format!("recorded {request_id}")),
        Err(e) => Response::new(500, format!("cannot record to {path}: {e}")),
    }
}

/// Fails the first `n` attempts of a request id, then succeeds.
fn flaky(dir: &Path, n: usize, request_id: &str) -> Response {
    let counter = dir.join(request_id);
    let seen = fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if let Err(e) = fs::write(&counter, (seen + 1).to_string()) {
        return Response::new(
            500,
            format!("cannot count attempts in {}: {e}", counter.display()),
        );
    }
    if seen < n {
        Response::new(404, format!("flaky failure {} of {n}", seen + 1))
            .with_header("x-fc-status", "404")
    } else {
        Response::new(200, format!("succeeded after {seen} failures"))
    }
}

/// `(uid, gid)`: the first value of the `Uid:` and `Gid:` lines of /proc/self/status.
fn whoami() -> Option<(String, String)> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let first = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    Some((first("Uid:")?, first("Gid:")?))
}

fn hold(cfg: &Config, dir: &Path, ms: u64) -> Response {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
    let marker = dir.join(format!("{}-{}-{seq}", cfg.instance_id, std::process::id()));
    if let Err(e) = fs::File::create(&marker) {
        return Response::new(
            500,
            format!("testfn: cannot create {}: {e}", marker.display()),
        );
    }
    let count = fs::read_dir(dir).map_or(0, |entries| entries.count());
    std::thread::sleep(Duration::from_millis(ms));
    let _ = fs::remove_file(&marker);
    Response::new(200, format!("holding {count}"))
}

fn barrier(cfg: &Config, dir: &Path, n: usize) -> Response {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
    let marker = dir.join(format!("{}-{nanos}-{seq}", cfg.instance_id));
    if let Err(e) = fs::File::create(&marker) {
        return Response::new(
            500,
            format!("testfn: cannot create {}: {e}", marker.display()),
        );
    }
    let deadline = Instant::now() + BARRIER_TIMEOUT;
    loop {
        let count = fs::read_dir(dir).map_or(0, |entries| entries.count());
        if count >= n {
            return Response::new(
                200,
                format!("released {}{}", cfg.instance_id, state_summary()),
            );
        }
        if Instant::now() >= deadline {
            return Response::new(200, "barrier timeout");
        }
        thread::sleep(BARRIER_POLL);
    }
}

/// Tries a TCP connection with a short timeout, for isolation tests.
fn connect(addr: &str) -> String {
    use std::net::ToSocketAddrs;
    let target = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) => return format!("error: {addr} resolves to nothing"),
        Err(e) => return format!("error: {e}"),
    };
    match std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(2)) {
        Ok(_) => "connected".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Version;

    fn req(method: &str, target: &str) -> Head {
        Head {
            method: method.to_string(),
            target: target.to_string(),
            version: Version::Http11,
            headers: vec![
                ("x-b".to_string(), "2".to_string()),
                ("x-a".to_string(), "1".to_string()),
            ],
        }
    }

    fn respond(outcome: Outcome) -> Response {
        match outcome {
            Outcome::Respond(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn cfg() -> Config {
        Config {
            instance_id: "i-1".to_string(),
            ..Config::default()
        }
    }

    #[test]
    fn invoke_echo_and_headers_carry_instance_header() {
        let r = respond(handle(&cfg(), &req("POST", "/invoke"), b"echo:hi\n"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, Body::Bytes(b"hi".to_vec()));
        assert!(r
            .headers
            .contains(&("x-testfn-instance".to_string(), "i-1".to_string())));
        let r = respond(handle(&cfg(), &req("POST", "/invoke"), b"headers"));
        assert_eq!(r.body, Body::Bytes(b"x-a: 1\nx-b: 2\n".to_vec()));
    }

    #[test]
    fn invoke_echoes_unknown_binary_bodies_unchanged() {
        let body = b"\x00\xffraw\n\n";
        let r = respond(handle(&cfg(), &req("POST", "/invoke"), body));
        assert_eq!(r.body, Body::Bytes(body.to_vec()));
    }

    #[test]
    fn crash_and_abort_do_not_respond() {
        assert!(matches!(
            handle(&cfg(), &req("POST", "/invoke"), b"crash"),
            Outcome::Exit(7)
        ));
        assert!(matches!(
            handle(&cfg(), &req("POST", "/invoke"), b"abort"),
            Outcome::Abort
        ));
    }

    #[test]
    fn unknown_route_is_404() {
        let r = respond(handle(&cfg(), &req("GET", "/invoke"), b""));
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            Body::Bytes(b"testfn: no route for GET /invoke".to_vec())
        );
    }

    #[test]
    fn initialize_failure_modes() {
        let mut c = cfg();
        c.init_fail = Some("1".to_string());
        let r = respond(handle(&c, &req("POST", "/initialize"), b""));
        assert_eq!(
            (r.status, r.body),
            (404, Body::Bytes(b"init failed".to_vec()))
        );
        c.init_fail = Some("crash".to_string());
        assert!(matches!(
            handle(&c, &req("POST", "/initialize"), b""),
            Outcome::Exit(9)
        ));
    }
}
