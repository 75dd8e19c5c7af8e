//! The test images really run: each is written as an OCI layout, unpacked, and started with
//! real crun (as root); web-server images are called over HTTP inside their own network
//! namespace, non-web-server images get their event in `FC_CUSTOM_CONTAINER_EVENT`.

#[path = "images/run.rs"]
mod run;

use fcx_image::build::Compression;
use fcx_testkit::images;
use run::{exists, unpack};
use std::io;
use std::path::Path;

const EXPRESS_REPLY: &str = "Hello FunctionCompute, event function\n";

#[test]
fn busybox_web_image_runs_posted_scripts() {
    let image = unpack(&images::busybox_web_image("export GREETING=hello").unwrap());
    eprintln!(
        "busybox web image: {} bytes of layer blobs",
        image.blob_bytes
    );
    assert!(exists(&image.rootfs, "/bin/sh") && exists(&image.rootfs, "/etc/passwd"));
    let server = image.serve(images::WEB_PORT);

    let r = server.invoke("echo hi");
    assert_eq!((r.status, r.text()), (200, "hi\n".to_string()));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(r.header("x-exit-code").as_deref(), Some("0"));

    // Stdout only is the body; stderr goes to the log; the exit status is a header.
    let r = server.invoke("echo out; echo oops >&2; exit 3");
    assert_eq!(
        (r.text().as_str(), r.header("x-exit-code").as_deref()),
        ("out\n", Some("3"))
    );

    // Startup script's exports, request variables and the busybox tools are there.
    let r = server.invoke("echo $GREETING $REQUEST_METHOD $REQUEST_PATH; id -u; ls /");
    let text = r.text();
    assert!(text.starts_with("hello POST /invoke\n0\n"), "{text}");
    assert!(text.lines().any(|l| l == "tmp"), "{text}");
    let r = server.invoke("ps");
    assert!(
        r.text().contains("fcx-serve") || r.text().contains("nc -ll"),
        "{}",
        r.text()
    );

    // A process left running in the background does not hold the response open.
    let r = server.invoke("sleep 600 & echo started");
    assert_eq!(r.text(), "started\n");

    // Headers reach the script; the FC initializer path is served too.
    let r = server.request(
        "POST",
        "/initialize",
        &["x-fc-request-id: rid-1"],
        b"grep -i x-fc-request-id \"$REQUEST_HEADERS\"",
    );
    assert_eq!(
        (r.status, r.text()),
        (200, "x-fc-request-id: rid-1\n".to_string())
    );
    assert_eq!(server.request("GET", "/nope", &[], b"").status, 404);

    // Many sequential requests, each on a fresh connection.
    for i in 0..30 {
        assert_eq!(server.invoke(&format!("echo {i}")).text(), format!("{i}\n"));
    }

    // Chunked request bodies and `Expect: 100-continue` (curl sends it for big bodies).
    let r = server.request(
        "POST",
        "/invoke",
        &["Transfer-Encoding: chunked"],
        b"echo chunked",
    );
    assert_eq!(r.text(), "chunked\n");
    let big = format!("cat <<'EOF' | wc -c\n{}\nEOF\n", "x".repeat(200_000));
    let r = server.request("POST", "/invoke", &["Expect: 100-continue"], big.as_bytes());
    assert_eq!(r.text().trim(), "200001");

    // Connections are served concurrently: the first request can only finish once the
    // second has run (a serial server would leave it to curl's timeout).
    std::thread::scope(|s| {
        let waiting =
            s.spawn(|| server.invoke("while [ ! -e /tmp/go ]; do sleep 0.05; done; echo waited"));
        assert_eq!(server.invoke("touch /tmp/go; echo go").text(), "go\n");
        assert_eq!(waiting.join().unwrap().text(), "waited\n");
    });

    assert!(
        server.log().contains("oops"),
        "stderr in the log: {}",
        server.log()
    );
}

#[test]
fn busybox_web_image_startup_failure_exits() {
    let image = unpack(&images::busybox_web_image("echo starting; exit 7").unwrap());
    let out = image.run_to_exit(&[]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "starting\n");
}

#[test]
fn busybox_event_image_echoes_the_event() {
    let image = unpack(&images::busybox_event_image().unwrap());
    let out = image.run_to_exit(&[r#"FC_CUSTOM_CONTAINER_EVENT={"k":"v"}"#]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"k\":\"v\"}\n");
}

#[test]
fn express_image_answers_the_seed_reply() {
    let app = images::examples_dir().join("express-event");
    // Uncompressed layers: gzip of ~100 MB of node would only slow the test down.
    let builder = images::express_image(&app)
        .unwrap()
        .compression(Compression::None);
    let image = unpack(&builder);
    eprintln!(
        "express image: {} bytes of layer blobs (uncompressed)",
        image.blob_bytes
    );
    assert!(exists(&image.rootfs, "/lib64/ld-linux-x86-64.so.2"));
    assert!(
        !exists(&image.rootfs, "/bin/sh"),
        "nothing but node and its closure"
    );
    let server = image.serve(images::WEB_PORT);

    let init = server.request(
        "POST",
        "/initialize",
        &["Content-Type: application/octet-stream"],
        b"",
    );
    assert_eq!(
        (init.status, init.text()),
        (200, "Hello FunctionCompute, /initialize\n".to_string())
    );
    for body in [r#"{"a":1}"#, r#"{"b":2}"#] {
        let r = server.invoke(body);
        assert_eq!((r.status, r.text()), (200, EXPRESS_REPLY.to_string()));
    }
    assert!(
        server.log().contains("Running on http://0.0.0.0:9000"),
        "{}",
        server.log()
    );
}

#[test]
fn python_event_image_prints_the_seed_output() {
    let app = images::examples_dir().join("python-event");
    let image = unpack(&images::python_event_image(&app).unwrap());
    eprintln!(
        "python event image: {} bytes of layer blobs",
        image.blob_bytes
    );
    assert!(!exists(&image.rootfs, "/usr/lib/python3.11/test"));
    let out = image.run_to_exit(&[r#"FC_CUSTOM_CONTAINER_EVENT={"k":"v"}"#]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello serverless image\nFC event is: {\"k\":\"v\"}\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no warnings about prefixes"
    );

    // The sample reads the variable directly: without an event it fails (KeyError).
    let out = image.run_to_exit(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KeyError"),
        "{out:?}"
    );
}

#[test]
fn builders_are_deterministic() {
    let digest = |b: fcx_image::build::ImageBuilder| {
        let dir = tempfile::tempdir().unwrap();
        b.compression(Compression::None)
            .write_oci_layout(dir.path(), "t")
            .unwrap()
    };
    let app = images::examples_dir().join("python-event");
    assert_eq!(
        digest(images::busybox_web_image("").unwrap()),
        digest(images::busybox_web_image("").unwrap())
    );
    assert_ne!(
        digest(images::busybox_web_image("").unwrap()),
        digest(images::busybox_web_image("true").unwrap())
    );
    assert_eq!(
        digest(images::python_event_image(&app).unwrap()),
        digest(images::python_event_image(&app).unwrap())
    );
}

#[test]
fn missing_host_files_are_named() {
    let empty = tempfile::tempdir().unwrap();
    let err = images::express_image(empty.path()).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("server.js"), "{err}");

    std::fs::write(empty.path().join("server.js"), "").unwrap();
    let err = images::express_image(empty.path()).err().unwrap();
    assert!(err.to_string().contains("npm ci"), "{err}");

    let err = images::python_event_image(empty.path()).err().unwrap();
    assert!(err.to_string().contains("main.py"), "{err}");

    let err = images::closure(&[Path::new("/nonexistent/fcxt-bin")])
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent/fcxt-bin"), "{err}");
}
