//! Real OCI images built from host files, for e2e tests and benchmarks: no Docker, no
//! network. Each function returns an [`ImageBuilder`] (write it as an OCI layout or
//! `docker save` archive, or push it to the test registry); the images are:
//!
//! - [`busybox_image`]: static busybox with every applet linked in `/bin`, plus a base.
//! - [`busybox_web_image`]: web-server mode; each `POST /invoke` body is a shell script run
//!   by `sh` inside the instance, its stdout the response body (see `images/busybox/`).
//! - [`busybox_event_image`]: non-web-server mode; echoes `FC_CUSTOM_CONTAINER_EVENT`.
//! - [`express_image`]: the seed's Express sample (host `node` + closure + the app).
//! - [`python_event_image`]: the seed's Python sample (host CPython 3.11, trimmed stdlib).
//!
//! Builders are deterministic (sorted entries, fixed mtimes in the builder) and fail with
//! an `io::Error` naming the host file that is missing.

mod closure;
mod python;

pub use closure::closure;
pub use python::{HOST_PYTHON, HOST_STDLIB};

use closure::named;
use fcx_image::build::{ImageBuilder, Layer};
use std::io;
use std::path::Path;
use std::process::Command;

/// Static busybox of the host (Debian's `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";
/// Node.js of the host (dynamically linked; its closure goes into the image).
pub const HOST_NODE: &str = "/usr/bin/node";
/// Where the sample apps live in their images, as in the FC samples' Dockerfiles.
pub const APP_DIR: &str = "/usr/src/app";
/// The port FC calls in web-server mode (`customContainerConfig.port` default).
pub const WEB_PORT: u16 = 9000;

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Applets the web server and the tests rely on: building fails early if the host's
/// busybox lacks one.
const REQUIRED_APPLETS: &[&str] = &[
    "sh", "httpd", "nc", "wget", "ps", "cat", "ls", "echo", "sleep", "id", "hostname", "mkdir",
    "rm", "dd", "head", "env", "kill", "true", "false", "printf", "grep", "sed", "seq", "mktemp",
    "stat",
];

const SERVE_SH: &str = include_str!("images/busybox/serve.sh");
const HANDLE_SH: &str = include_str!("images/busybox/handle.sh");

/// What every image has besides its program: `root` and `nobody` in `/etc/passwd` and
/// `/etc/group`, `/root`, a sticky world-writable `/tmp`, and mount points for the
/// runtime's `/proc`, `/sys` and `/dev` (so a read-only rootfs still works).
pub fn base_layer() -> Layer {
    Layer::new()
        .dir("/etc", 0o755)
        .file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )
        .file("/etc/group", "root:x:0:\nnobody:x:65534:\n", 0o644)
        .dir("/root", 0o700)
        .dir("/tmp", 0o1777)
        .dir("/proc", 0o555)
        .dir("/sys", 0o555)
        .dir("/dev", 0o755)
}

/// `/bin/busybox` and a `/bin/<applet> -> busybox` link for every applet it provides,
/// on top of [`base_layer`]. No entrypoint or command.
pub fn busybox_image() -> io::Result<ImageBuilder> {
    let busybox = Path::new(HOST_BUSYBOX);
    let applets = busybox_applets(busybox)?;
    if let Some(missing) = REQUIRED_APPLETS
        .iter()
        .find(|a| !applets.iter().any(|x| x == *a))
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{HOST_BUSYBOX} has no `{missing}` applet"),
        ));
    }
    let mut layer = Layer::new()
        .host_file("/bin/busybox", busybox)
        .map_err(|e| named(e, busybox))?;
    for applet in applets.iter().filter(|a| a.as_str() != "busybox") {
        layer = layer.symlink(&format!("/bin/{applet}"), "busybox");
    }
    Ok(ImageBuilder::new()
        .platform("linux/amd64")
        .env(PATH_ENV)
        .layer(base_layer())
        .layer(layer))
}

/// Web-server mode busybox function. `startup` is a shell script sourced once when the
/// instance starts, before the server listens on `0.0.0.0:$FC_SERVER_PORT` (default
/// 9000): empty for none; `sleep 3` for a slow start; `exit 1` for a crash; `export X=1`
/// for a variable every request sees.
///
/// Protocol (one request per connection, `Connection: close`): `POST /invoke` (also
/// `/initialize`, `/pre-stop`, `/pre-freeze`) runs the request body with `sh` and answers
/// `200` with the script's stdout as body and its exit status in `X-Exit-Code`; stderr
/// goes to the instance log. The script sees `REQUEST_METHOD`, `REQUEST_PATH` and
/// `REQUEST_HEADERS` (a file with the request's header lines). Other paths get `404`.
pub fn busybox_web_image(startup: &str) -> io::Result<ImageBuilder> {
    let server = Layer::new()
        .file("/bin/fcx-serve", SERVE_SH, 0o755)
        .file("/bin/fcx-handle", HANDLE_SH, 0o755)
        .file("/etc/fcx/startup.sh", startup, 0o644);
    Ok(busybox_image()?.layer(server).cmd(&["/bin/fcx-serve"]))
}

/// Non-web-server mode busybox function: `sh -c 'echo "$FC_CUSTOM_CONTAINER_EVENT"'`,
/// split as ENTRYPOINT `["/bin/sh", "-c"]` and CMD `[script]` so a function's `args`
/// can swap in another script.
pub fn busybox_event_image() -> io::Result<ImageBuilder> {
    Ok(busybox_image()?
        .entrypoint(&["/bin/sh", "-c"])
        .cmd(&["echo \"$FC_CUSTOM_CONTAINER_EVENT\""]))
}

/// The seed's Express sample (web-server mode, port 9000): host `node` and its library
/// closure, and `app_dir` (with `server.js` and an installed `node_modules`, i.e. after
/// `npm ci`) at [`APP_DIR`], the working directory; CMD `["node", "server.js"]`.
/// `POST /invoke` answers `Hello FunctionCompute, event function\n`.
pub fn express_image(app_dir: &Path) -> io::Result<ImageBuilder> {
    require(&app_dir.join("server.js"), "the Express sample's server")?;
    require(
        &app_dir.join("node_modules/express/package.json"),
        "express is not installed: run `npm ci` in the app directory",
    )?;
    let runtime = closure(&[Path::new(HOST_NODE)])?;
    let app = Layer::new()
        .host_dir(APP_DIR, app_dir)
        .map_err(|e| named(e, app_dir))?;
    Ok(ImageBuilder::new()
        .platform("linux/amd64")
        .env(PATH_ENV)
        .working_dir(APP_DIR)
        .cmd(&["node", "server.js"])
        .layer(base_layer())
        .layer(runtime)
        .layer(app))
}

/// The image of an fcx node (the Kubernetes DaemonSet's, `deploy/kubernetes/`): busybox for
/// a shell, the `fcx` binary at `/usr/local/bin/fcx` and the host's `crun` and `nft` with
/// their shared-library closures; ENTRYPOINT `fcx`. Code-package instances run from the
/// node's own files, so the image holds everything fcx itself runs.
pub fn fcx_node_image(fcx: &Path) -> io::Result<ImageBuilder> {
    let crun = Path::new("/usr/bin/crun");
    let nft = Path::new("/usr/sbin/nft");
    require(crun, "crun (package crun)")?;
    require(nft, "nft (package nftables)")?;
    let tools = closure(&[fcx, crun, nft])?;
    let fcx_layer = Layer::new()
        .dir("/usr/local/bin", 0o755)
        .host_file("/usr/local/bin/fcx", fcx)
        .map_err(|e| named(e, fcx))?
        .dir("/var/lib/fcx", 0o700)
        .dir("/run", 0o755);
    Ok(busybox_image()?
        .env(PATH_ENV)
        .entrypoint(&["/usr/local/bin/fcx"])
        .cmd(&["server", "--listen=0.0.0.0:9100"])
        .layer(tools)
        .layer(fcx_layer))
}

/// The seed's Python sample in non-web-server mode: CPython 3.11 from the host (see
/// [`HOST_PYTHON`]), `app_dir` (with `main.py`) at [`APP_DIR`], the working directory;
/// CMD `["python3", "main.py"]`. With `FC_CUSTOM_CONTAINER_EVENT={"k":"v"}` it prints
/// `Hello serverless image\nFC event is: {"k":"v"}\n`.
pub fn python_event_image(app_dir: &Path) -> io::Result<ImageBuilder> {
    require(&app_dir.join("main.py"), "the Python sample's main.py")?;
    let runtime = python::runtime_layer(Layer::new())?;
    let app = Layer::new()
        .host_dir(APP_DIR, app_dir)
        .map_err(|e| named(e, app_dir))?;
    Ok(ImageBuilder::new()
        .platform("linux/amd64")
        .env(PATH_ENV)
        // The image's stdlib has no bytecode caches and its rootfs may be read-only.
        .env("PYTHONDONTWRITEBYTECODE=1")
        .working_dir(APP_DIR)
        .cmd(&["python3", "main.py"])
        .layer(base_layer())
        .layer(runtime)
        .layer(app))
}

/// Where Debian installs Python packages (`apt-get install python3-sympy`, ...).
pub const HOST_DIST_PACKAGES: &str = "/usr/lib/python3/dist-packages";

/// A Python web app with Debian's packages `packages` (directories of
/// [`HOST_DIST_PACKAGES`], e.g. `sympy`, `flask`) beside the host's CPython: `app.py` from
/// `app_dir`, run as `python3 /app/app.py`. The benchmark's heavy-initializer app.
pub fn python_packages_image(app_dir: &Path, packages: &[&str]) -> io::Result<ImageBuilder> {
    require(&app_dir.join("app.py"), "the app's app.py")?;
    let mut layer = python::runtime_layer(Layer::new())?;
    for package in packages {
        let host = Path::new(HOST_DIST_PACKAGES).join(package);
        require(
            &host,
            &format!("Debian's Python package {package} (apt-get install python3-{package})"),
        )?;
        layer = layer
            .host_dir(&format!("{HOST_DIST_PACKAGES}/{package}"), &host)
            .map_err(|e| named(e, &host))?;
    }
    let app = Layer::new()
        .host_dir(APP_DIR, app_dir)
        .map_err(|e| named(e, app_dir))?;
    Ok(ImageBuilder::new()
        .platform("linux/amd64")
        .env(PATH_ENV)
        .env("PYTHONDONTWRITEBYTECODE=1")
        .working_dir(APP_DIR)
        .cmd(&["python3", "app.py"])
        .layer(base_layer())
        .layer(layer)
        .layer(app))
}

/// The repository's `examples/` directory (the seed's samples), found from this crate.
pub fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Applet names the busybox binary reports (`--list`), sorted.
fn busybox_applets(busybox: &Path) -> io::Result<Vec<String>> {
    std::fs::metadata(busybox).map_err(|e| named(e, busybox))?;
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| named(e, busybox))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} --list failed: {}",
            busybox.display(),
            out.status
        )));
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        // Only plain names become `/bin/<name>`; a `/` would escape the directory.
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    Ok(applets)
}

/// `path` must exist; the error says which file and what it is for.
fn require(path: &Path, what: &str) -> io::Result<()> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("{} ({what}): {e}", path.display())))
}
