//! A real `docker-registry` (distribution v2, the Debian package) serving on a free
//! 127.0.0.1 port with its storage in a temporary directory, optionally behind htpasswd
//! basic auth. The process is killed by its PID and the storage removed on drop, also when
//! the test panics. It knows nothing of fcx-image, so fcx-image's tests can use it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = "/usr/bin/docker-registry";
/// How long the registry gets to answer `GET /v2/` after starting (bounded wait).
const READY_ATTEMPTS: u32 = 400;
const READY_INTERVAL: Duration = Duration::from_millis(25);

/// A running registry. Dropping it stops the process and deletes its storage.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    credentials: Option<(String, String)>,
}

impl TestRegistry {
    /// An anonymous registry (anyone may pull and push).
    pub fn start() -> TestRegistry {
        Self::launch(None)
    }

    /// A registry that requires HTTP basic auth as `user`/`pass` for every request.
    pub fn start_with_auth(user: &str, pass: &str) -> TestRegistry {
        Self::launch(Some((user.to_string(), pass.to_string())))
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The credentials the registry was started with.
    pub fn credentials(&self) -> Option<(String, String)> {
        self.credentials.clone()
    }

    /// Where the registry stores blobs (tests may corrupt them on purpose).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn launch(credentials: Option<(String, String)>) -> TestRegistry {
        if !Path::new(BINARY).exists() {
            panic!(
                "{BINARY} is missing: run scripts/setup.sh (it installs the Debian \
                 `docker-registry` package the registry tests need)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("fcx-test-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let auth = credentials
            .as_ref()
            .map(|(user, pass)| write_htpasswd(dir.path(), user, pass));
        // A port picked by binding :0 can be taken by someone else before the registry binds
        // it; a few attempts make that race harmless.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = write_config(dir.path(), port, auth.as_deref());
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new(BINARY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {BINARY}: {e}"));
            if wait_ready(&mut child, port) {
                return TestRegistry {
                    child,
                    port,
                    dir,
                    credentials,
                };
            }
            kill(&mut child);
            last_log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not come up; its log:\n{last_log}");
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        kill(&mut self.child);
        // The TempDir field removes the storage right after this.
    }
}

/// Polls `GET /v2/` until it answers (200, or 401 behind auth). False when the process
/// died or never answered within the bounded wait.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    for _ in 0..READY_ATTEMPTS {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Some(200 | 401) = get_v2_status(port) {
            return true;
        }
        std::thread::sleep(READY_INTERVAL);
    }
    false
}

/// Child::kill sends SIGKILL to this child's PID only; wait reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

fn write_htpasswd(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .unwrap_or_else(|e| panic!("run htpasswd (apache2-utils; run scripts/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("htpasswd");
    std::fs::write(&path, &out.stdout).expect("write htpasswd");
    path
}

fn write_config(dir: &Path, port: u16, htpasswd: Option<&Path>) -> PathBuf {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).expect("create registry storage");
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if let Some(path) = htpasswd {
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: fcx-test\n    path: {}\n",
            path.display()
        ));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).expect("write registry config");
    path
}

/// The status code of `GET /v2/`, or None when nothing answers yet.
fn get_v2_status(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .ok()?;
    let mut buf = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let line = std::str::from_utf8(&buf[..got]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_cleans_up() {
        let reg = TestRegistry::start();
        let port = reg.port;
        assert_eq!(get_v2_status(port), Some(200));
        let storage = reg.storage_dir();
        drop(reg);
        assert!(!storage.exists());
        assert_eq!(get_v2_status(port), None);
    }

    #[test]
    fn auth_registry_refuses_anonymous() {
        let reg = TestRegistry::start_with_auth("u", "p");
        assert_eq!(get_v2_status(reg.port), Some(401));
        assert_eq!(reg.credentials(), Some(("u".into(), "p".into())));
    }
}
