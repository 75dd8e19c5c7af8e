//! The private server of `fcx local invoke`: `fcx server --auth none` on a free loopback port
//! with a temporary data dir, stopped (and so its instances) and removed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, Context as _};

/// The private server; stopped (SIGTERM, then SIGKILL) and its data dir removed on drop.
pub struct LocalServer {
    child: Child,
    data_dir: PathBuf,
    pub endpoint: String,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // SIGTERM lets the server stop its instances and remove what it created.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Starts `fcx server` on 127.0.0.1:0 with a fresh data dir and waits for its address.
pub fn start_server() -> anyhow::Result<LocalServer> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let data_dir = std::env::temp_dir().join(format!("fcx-local-{}-{nanos}", std::process::id()));
    let exe = std::env::current_exe().context("locating the fcx binary")?;
    let mut child = Command::new(exe)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "none",
            "--data-dir",
        ])
        .arg(&data_dir)
        .env(
            "FCX_LOG",
            std::env::var("FCX_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a private fcx server")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no server stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let server = |child| LocalServer {
        child,
        data_dir: data_dir.clone(),
        endpoint: String::new(),
    };
    let Some(Ok(line)) = lines.next() else {
        drop(server(child));
        return Err(anyhow!(
            "the private fcx server did not start (local invoke needs root, like fcx server)"
        ));
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow!("unexpected server startup line: {line}"))?
        .to_owned();
    let mut s = server(child);
    s.endpoint = format!("http://{addr}");
    Ok(s)
}
