//! Running a built image with real crun, independently of fcx's runtime: write the OCI
//! layout, import it with fcx's `ImageStore` (its unpacker makes the rootfs), make a bundle from `crun spec` and the
//! image config, and run it — in the foreground (non-web-server mode) or detached in a
//! network namespace of its own with loopback up (web-server mode), reached with
//! `ip netns exec … curl`. Containers, namespaces and directories go away on drop.

use fcx_image::build::ImageBuilder;
use fcx_image::{ImageConfig, ImageStore};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Bounds so a broken image fails the test instead of hanging it (never asserted on).
const RUN_LIMIT: Duration = Duration::from_secs(120);
const READY_LIMIT: Duration = Duration::from_secs(60);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test process) uses: `fcxt-img-<pid>-<n>`.
pub fn unique_name() -> String {
    format!(
        "fcxt-img-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An image written as an OCI layout and imported into an fcx image store (so fcx's own
/// unpacker makes the rootfs), with its config.
pub struct Unpacked {
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub config: ImageConfig,
    /// Sum of the layer blobs as stored (compressed unless built uncompressed).
    pub blob_bytes: u64,
}

pub fn unpack(image: &ImageBuilder) -> Unpacked {
    let dir = tempfile::Builder::new()
        .prefix("fcxt-img-")
        .tempdir()
        .unwrap();
    let layout = dir.path().join("layout");
    let digest = image.write_oci_layout(&layout, "test").unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let blob_bytes = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    let mut imported = store.import(&layout, None).unwrap();
    assert_eq!(imported.len(), 1);
    let (_, image) = imported.remove(0);
    assert_eq!(image.digest, digest);
    std::fs::create_dir(dir.path().join("bundle")).unwrap();
    Unpacked {
        dir,
        rootfs: image.rootfs,
        config: image.config,
        blob_bytes,
    }
}

impl Unpacked {
    /// Writes `config.json` for the image's process (entrypoint + cmd, env + `extra_env`,
    /// working dir) with a writable rootfs, optionally joining netns `netns`.
    fn bundle(&self, extra_env: &[&str], netns: Option<&str>) -> PathBuf {
        let bundle = self.dir.path().join("bundle");
        let spec_file = bundle.join("config.json");
        let _ = std::fs::remove_file(&spec_file);
        run_ok(Command::new("crun").arg("spec").current_dir(&bundle));
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&spec_file).unwrap()).unwrap();
        let mut args = self.config.entrypoint.clone();
        args.extend(self.config.cmd.iter().cloned());
        let mut env = self.config.env.clone();
        env.extend(extra_env.iter().map(|e| e.to_string()));
        let cwd = match self.config.working_dir.as_str() {
            "" => "/",
            d => d,
        };
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        spec["process"]["env"] = json!(env);
        spec["process"]["cwd"] = json!(cwd);
        spec["root"] = json!({ "path": self.rootfs, "readonly": false });
        if let Some(ns) = netns {
            for n in spec["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "network" {
                    n["path"] = json!(format!("/var/run/netns/{ns}"));
                }
            }
        }
        std::fs::write(&spec_file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        bundle
    }

    /// Runs the image's process to completion (non-web-server mode) and returns its output.
    pub fn run_to_exit(&self, extra_env: &[&str]) -> Output {
        let bundle = self.bundle(extra_env, None);
        let container = Container { id: unique_name() };
        // Files, not pipes: a chatty process cannot block on a full pipe while we poll.
        let out_path = self.dir.path().join(format!("{}.out", container.id));
        let err_path = self.dir.path().join(format!("{}.err", container.id));
        let mut child = Command::new("crun")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&container.id)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = Command::new("crun")
                    .args(["kill", &container.id, "KILL"])
                    .status();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    /// Starts the image's process detached in a fresh netns with loopback up and waits
    /// until something accepts connections on `port`.
    pub fn serve(&self, port: u16) -> Server {
        let netns = Netns::new();
        let bundle = self.bundle(&[], Some(&netns.name));
        let log = self.dir.path().join(format!("{}.log", netns.name));
        let log_file = std::fs::File::create(&log).unwrap();
        let container = Container { id: unique_name() };
        run_ok(
            Command::new("crun")
                .args(["run", "--detach", "--bundle"])
                .arg(&bundle)
                .arg(&container.id)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file),
        );
        let server = Server {
            _container: container,
            netns,
            port,
            log,
        };
        server.wait_ready();
        server
    }
}

/// A detached container serving HTTP inside its own netns. Field order is drop order:
/// the container goes before its namespace.
pub struct Server {
    /// Held for its `Drop`.
    _container: Container,
    netns: Netns,
    port: u16,
    log: PathBuf,
}

/// An HTTP response as curl saw it.
pub struct Response {
    pub status: u16,
    /// Header lines, as sent.
    pub headers: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

impl Server {
    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            // A bare connect (bash's /dev/tcp), so readiness costs the server no request.
            let probe = Command::new("ip")
                .args(["netns", "exec", &self.netns.name, "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{}", self.port))
                .output()
                .unwrap();
            if probe.status.success() {
                return;
            }
            assert!(
                start.elapsed() < READY_LIMIT,
                "server never listened on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The container's stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `method path` with `body` (and extra `-H` headers) over a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Response {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.netns.name,
            "curl",
            "-sS",
            "-i",
            "--max-time",
            "30",
            "-X",
            method,
        ]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        let mut child = cmd
            .args(["--data-binary", "@-", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "curl {method} {url}: {}: {}\nserver log: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        parse_response(&out.stdout)
    }

    /// `POST /invoke` with `body`.
    pub fn invoke(&self, body: &str) -> Response {
        self.request(
            "POST",
            "/invoke",
            &["Content-Type: application/octet-stream"],
            body.as_bytes(),
        )
    }
}

/// Splits curl `-i` output; interim `100 Continue` responses are skipped.
fn parse_response(raw: &[u8]) -> Response {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("no header end in response");
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 4..];
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        if status != 100 {
            let headers = head
                .split_once("\r\n")
                .map(|x| x.1)
                .unwrap_or("")
                .replace("\r\n", "\n");
            return Response {
                status,
                headers,
                body: rest.to_vec(),
            };
        }
    }
}

/// A crun container id, deleted (forcibly, so a running one is killed) on drop.
struct Container {
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("crun")
            .args(["delete", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A named network namespace with loopback up, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        let ns = Netns {
            name: unique_name(),
        };
        run_ok(Command::new("ip").args(["netns", "add", &ns.name]));
        run_ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Checks a file exists in an unpacked rootfs (without following its last symlink).
pub fn exists(rootfs: &Path, path: &str) -> bool {
    std::fs::symlink_metadata(rootfs.join(path.trim_start_matches('/'))).is_ok()
}
