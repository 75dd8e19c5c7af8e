//! The seed document's two samples, run verbatim as fcx functions.

mod support;

use serde_json::json;
use support::{zipper, Server};

#[test]
fn seed_express_sample_answers_invoke_after_initialize() {
    let dir = support::repo_root().join("examples/express-event");
    assert!(
        dir.join("node_modules/express").is_dir(),
        "examples/express-event/node_modules is missing: run `npm ci` there (`make test` does)"
    );
    let server = Server::start();
    server.create_function(json!({
        "functionName": "express-event",
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "timeout": 30,
        "code": { "zipFile": zipper::base64(&zipper::zip_dir(&dir)) },
        "customRuntimeConfig": { "command": ["node", "server.js"], "port": 9000 },
        "instanceLifecycleConfig": { "initializer": { "handler": "index.initializer", "timeout": 30 } },
    }));

    let r = server.invoke_with(
        "express-event",
        &[("x-fc-log-type", "Tail")],
        br#"{"key":"value"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Hello FunctionCompute, event function\n");
    assert_eq!(r.header("x-fc-error-type"), None);
    let rid = r.header("x-fc-request-id").expect("request id").to_owned();
    let log = String::from_utf8(base64_decode(
        r.header("x-fc-log-result").expect("log result"),
    ))
    .unwrap();
    // The initializer ran for this first request, then the handler logged the parsed body.
    assert!(
        log.contains(&format!("FC Initialize Start RequestId: {rid}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("FC Invoke Start RequestId: {rid}")),
        "{log}"
    );
    assert!(log.contains("{ key: 'value' }"), "{log}");
    assert!(
        log.contains(&format!("FC Invoke End RequestId: {rid}")),
        "{log}"
    );

    // Warm: same instance, no second initializer.
    let again = server.invoke_with("express-event", &[("x-fc-log-type", "Tail")], br#"{"n":2}"#);
    assert_eq!(again.text(), "Hello FunctionCompute, event function\n");
    assert_eq!(
        again.header("x-fc-instance-id"),
        r.header("x-fc-instance-id")
    );
    let log = String::from_utf8(base64_decode(again.header("x-fc-log-result").unwrap())).unwrap();
    assert!(!log.contains("FC Initialize Start"), "{log}");
}

#[test]
fn seed_python_sample_runs_in_non_web_server_mode() {
    let dir = support::repo_root().join("examples/python-event");
    let server = Server::start();
    server.create_function(json!({
        "functionName": "python-event",
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "timeout": 30,
        "code": { "zipFile": zipper::base64(&zipper::zip_dir(&dir)) },
        "customRuntimeConfig": { "command": ["python3", "main.py"], "webServerMode": false },
    }));
    let payload = r#"{"key":"value"}"#;
    let r = server.invoke("python-event", payload.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-fc-error-type"), None, "{}", r.text());
    assert_eq!(
        r.text(),
        format!("Hello serverless image\nFC event is: {payload}\n")
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}
