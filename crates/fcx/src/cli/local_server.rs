//! `fcx local invoke`: one invocation of a code folder or an s.yaml project without a
//! running server (like `s local invoke`). It starts a private `fcx server --auth none` on a
//! free loopback port with a temporary data dir, deploys, invokes once through the same API,
//! and stops the server (and so its instances), so the invocation behaves exactly as served.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, Context as _};
use base64::Engine;
use serde_json::json;

use super::client::{self, Client, Config};
use super::deploy;

/// What to run.
pub struct LocalFunction<'a> {
    pub template: Option<&'a Path>,
    pub function: Option<&'a str>,
    pub code: Option<&'a Path>,
    pub command: &'a [String],
    pub port: u16,
    pub initializer: bool,
    pub non_web: bool,
}

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

/// Deploys `f` to the private server and returns the function name to invoke.
pub fn deploy_local(server: &LocalServer, f: &LocalFunction<'_>) -> anyhow::Result<String> {
    let client = Client::new(Config {
        endpoint: server.endpoint.clone(),
        credentials: None,
    })?;
    if let Some(template) = f.template {
        let results = deploy::apply(&client, template)?;
        let names: Vec<String> = results
            .iter()
            .filter_map(|r| r["functionName"].as_str().map(str::to_owned))
            .collect();
        return match f.function {
            Some(name) if names.iter().any(|n| n == name) => Ok(name.to_owned()),
            Some(name) => Err(anyhow!(
                "{} deploys no function named '{name}' (it has: {})",
                template.display(),
                names.join(", ")
            )),
            None if names.len() == 1 => Ok(names[0].clone()),
            None => Err(anyhow!(
                "{} deploys {} functions ({}): choose one with --function",
                template.display(),
                names.len(),
                names.join(", ")
            )),
        };
    }
    let dir = f.code.ok_or_else(|| {
        anyhow!("give a project file (-f s.yaml) or a code folder (--code DIR -- COMMAND...)")
    })?;
    let zip = deploy::zip_path(dir)?;
    let name = f.function.unwrap_or("local");
    let mut body = json!({
        "functionName": name,
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "timeout": 60,
        "code": {"zipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
        "customRuntimeConfig": {"command": f.command, "port": f.port, "webServerMode": !f.non_web},
    });
    if f.initializer {
        body["instanceLifecycleConfig"] =
            json!({"initializer": {"handler": "index.initializer", "timeout": 60}});
    }
    client.call(
        "POST",
        "CreateFunction",
        &format!("/{}/functions", client::API_VERSION),
        &[],
        &[("content-type", "application/json")],
        serde_json::to_vec(&body)?,
    )?;
    Ok(name.to_owned())
}
