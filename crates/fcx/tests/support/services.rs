//! Real services the observability tests run: Prometheus (Debian's `prometheus`) scraping a
//! server, a headless Chromium (Debian's `chromium`) rendering a page, and a stand-in OTLP/HTTP
//! collector that decodes what it is sent with `opentelemetry-proto`. Each runs on a free
//! loopback port from a temp dir and is stopped by its PID when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::procs::eventually;

/// A free loopback port (bound and released: the service binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child stopped by its PID on drop (SIGTERM, then SIGKILL).
pub struct Service {
    child: Child,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        // An exited child was reaped by `try_wait`: its PID may be another process's now.
        if matches!(self.child.try_wait(), Ok(None)) {
            super::procs::terminate(self.child.id(), Duration::from_secs(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Prometheus scraping `target` (host:port, path `/metrics`) every second.
    pub fn prometheus(target: SocketAddr) -> Service {
        let mut dir = tempfile::Builder::new()
            .prefix("fcx-e2e-prometheus-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: fcx\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // The free port is released before Prometheus binds it, so another process can take
        // it in between: a start that fails on the address is tried again on a new port.
        for _attempt in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let child = Command::new("/usr/bin/prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            let mut service = Service { child, dir, addr };
            let mut exited = false;
            let settled = eventually(Duration::from_secs(30), || {
                exited = matches!(service.child.try_wait(), Ok(Some(_)));
                exited
                    || super::http::try_request(addr, "GET", "/-/ready", &[], b"")
                        .map(|r| r.status == 200)
                        .unwrap_or(false)
            });
            if settled && !exited {
                return service;
            }
            let log = service.log();
            assert!(
                exited && log.contains("address already in use"),
                "prometheus did not become ready: {log}"
            );
            // Dropping the exited service would delete the dir: take it back first.
            dir = std::mem::replace(&mut service.dir, tempfile::tempdir().unwrap());
        }
        panic!("prometheus found no free port in 5 tries");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/query?query=...`: the first result's value, if any.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", percent(promql));
        let r = super::http::try_request(self.addr, "GET", &path, &[], b"").ok()?;
        let body: Value = serde_json::from_slice(&r.body).ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Headless Chromium: the page's DOM after its scripts ran, and a screenshot.
pub struct Chromium {
    profile: tempfile::TempDir,
}

impl Chromium {
    pub fn new() -> Chromium {
        Chromium {
            profile: tempfile::Builder::new()
                .prefix("fcx-e2e-chromium-")
                .tempdir()
                .unwrap(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("/usr/bin/chromium");
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // Virtual time runs until the page's fetches are answered and rendered.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()))
        .stdin(Stdio::null());
        c
    }

    /// The DOM of `url` once its scripts ran.
    pub fn dump_dom(&self, url: &str) -> String {
        let out = self
            .command()
            .args(["--dump-dom", url])
            .stderr(Stdio::null())
            .output()
            .expect("run chromium");
        assert!(out.status.success(), "chromium --dump-dom failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A PNG of `url` at `width`×`height`, written to `png`.
    pub fn screenshot(&self, url: &str, png: &Path, width: u32, height: u32) {
        let out = self
            .command()
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(url)
            .stderr(Stdio::null())
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium --screenshot failed: {out:?}"
        );
    }
}

/// One span the collector received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: Vec<(String, String)>,
}

/// A stand-in OTLP/HTTP collector: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, decoded and kept.
pub struct Collector {
    pub addr: SocketAddr,
    pub spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl Collector {
    pub fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        // Ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve_export(stream, &kept);
            }
        });
        Collector { addr, spans }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

fn serve_export(
    stream: std::net::TcpStream,
    spans: &Mutex<Vec<ReceivedSpan>>,
) -> std::io::Result<()> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let status = match ExportTraceServiceRequest::decode(body.as_slice()) {
            Ok(req) if request_line.starts_with("POST /v1/traces") => {
                let mut kept = spans.lock().unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            kept.push(ReceivedSpan {
                                name: s.name,
                                trace_id: hex(&s.trace_id),
                                span_id: hex(&s.span_id),
                                parent_span_id: hex(&s.parent_span_id),
                                attributes: s
                                    .attributes
                                    .iter()
                                    .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
                                    .collect(),
                            });
                        }
                    }
                }
                "200 OK"
            }
            _ => "400 Bad Request",
        };
        // An empty ExportTraceServiceResponse is a message of zero bytes.
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        )?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where tests leave files for a person to look at (`target/tmp/...`).
pub fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
