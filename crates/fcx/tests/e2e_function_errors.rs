//! The errors users actually hit, each with FC's status, headers and message prefix.

mod support;

use serde_json::json;
use support::{Options, Server};

const NOT_STARTED_PREFIX: &str = "The CA's http server cannot be started:ContainerStartDuration:";

fn quick_start_server() -> Server {
    Server::start_with(Options {
        start_timeout_secs: 2,
        ..Options::default()
    })
}

fn assert_not_started(r: &support::Response) -> String {
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );
    assert!(r.header("x-fc-request-id").is_some());
    let body = r.json();
    assert_eq!(body["Code"], "FunctionNotStarted", "{body}");
    let message = body["Message"].as_str().unwrap().to_owned();
    assert!(message.starts_with(NOT_STARTED_PREFIX), "{message}");
    assert!(message.contains(". Ping CA failed due to: "), "{message}");
    assert!(message.contains(" Logs : "), "{message}");
    message
}

#[test]
fn server_that_never_listens_is_function_not_started() {
    let server = quick_start_server();
    server.create_function(support::testfn_function(
        "never",
        json!({"TESTFN_MODE": "never-listen"}),
    ));
    let message = assert_not_started(&server.invoke("never", b"echo:x"));
    assert!(message.contains("listens on no TCP port"), "{message}");
    assert!(
        message.contains("testfn: not listening"),
        "logs tail missing: {message}"
    );
}

#[test]
fn server_on_another_port_is_diagnosed_with_that_port() {
    let server = quick_start_server();
    server.create_function(support::testfn_function(
        "other-port",
        json!({"TESTFN_PORT": "8080"}),
    ));
    let message = assert_not_started(&server.invoke("other-port", b"echo:x"));
    assert!(
        message.contains("the process listens on 0.0.0.0:8080"),
        "{message}"
    );
    assert!(message.contains("port 9000"), "{message}");
}

#[test]
fn server_bound_to_loopback_only_counts_as_not_started() {
    let server = quick_start_server();
    server.create_function(support::testfn_function(
        "loopback",
        json!({"TESTFN_MODE": "listen-localhost"}),
    ));
    let message = assert_not_started(&server.invoke("loopback", b"echo:x"));
    assert!(message.contains("listens on 127.0.0.1:9000"), "{message}");
    assert!(message.contains("must bind 0.0.0.0:9000"), "{message}");
}

#[test]
fn process_exiting_before_listening_is_function_not_started_with_exit_code() {
    let server = quick_start_server();
    server.create_function(support::testfn_function(
        "exits",
        json!({"TESTFN_MODE": "exit", "TESTFN_EXIT_CODE": "42"}),
    ));
    let message = assert_not_started(&server.invoke("exits", b"echo:x"));
    assert!(
        message.contains("exited (exit code 42) before listening"),
        "{message}"
    );
    assert!(
        message.contains("testfn: exiting with code 42"),
        "{message}"
    );
}

#[test]
fn missing_start_command_is_function_not_started() {
    let server = quick_start_server();
    let mut f = support::testfn_function("nocmd", json!({}));
    f["customRuntimeConfig"]["command"] = json!(["./does-not-exist"]);
    server.create_function(f);
    let message = assert_not_started(&server.invoke("nocmd", b"echo:x"));
    assert!(
        message.contains("cannot start \"./does-not-exist\""),
        "{message}"
    );
}

#[test]
fn crash_mid_request_returns_502_and_replaces_instance() {
    let server = Server::start();
    server.create_function(support::testfn_function("crashy", json!({})));
    let first = server.invoke("crashy", b"echo:warm");
    assert_eq!(first.status, 200);
    let crashed = server.invoke("crashy", b"crash");
    assert_eq!(crashed.status, 502, "{}", crashed.text());
    assert_eq!(
        crashed.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );
    let body = crashed.json();
    assert_eq!(body["Code"], "ProcessExited");
    assert_eq!(
        body["Message"],
        "Process exited unexpectedly before completing request (exit code 7)"
    );
    assert!(
        body["Logs"].as_str().unwrap().contains("testfn: crashing"),
        "{body}"
    );

    let next = server.invoke("crashy", b"echo:again");
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(next.text(), "again");
    assert_ne!(
        next.header("x-fc-instance-id"),
        first.header("x-fc-instance-id")
    );
}

#[test]
fn abort_mid_request_names_the_signal() {
    let server = Server::start();
    server.create_function(support::testfn_function("aborts", json!({})));
    let r = server.invoke("aborts", b"abort");
    assert_eq!(r.status, 502, "{}", r.text());
    let message = r.json()["Message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Process exited unexpectedly before completing request"),
        "{message}"
    );
    assert!(message.contains("signal 6 (SIGABRT)"), "{message}");
}

#[test]
fn timeout_is_a_function_error_and_the_instance_is_replaced() {
    let server = Server::start();
    let mut f = support::testfn_function("slow", json!({}));
    f["timeout"] = json!(1);
    server.create_function(f);
    let warm = server.invoke("slow", b"echo:x");
    assert_eq!(warm.status, 200);
    let r = server.invoke("slow", b"sleep:5000");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );
    let body = r.json();
    assert_eq!(body["errorType"], "FunctionTimeout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("Function time out after 1 seconds"),
        "{body}"
    );
    let next = server.invoke("slow", b"echo:y");
    assert_eq!(next.text(), "y");
    assert_ne!(
        next.header("x-fc-instance-id"),
        warm.header("x-fc-instance-id")
    );
}

#[test]
fn failed_initializer_is_an_error_and_its_instance_is_not_reused() {
    let server = Server::start();
    let record = support::scratch_dir("init");
    let record_file = record.path().join("calls");
    let mut f = support::testfn_function(
        "badinit",
        json!({"TESTFN_INIT_FAIL": "1", "TESTFN_RECORD": record_file.to_str().unwrap()}),
    );
    f["instanceLifecycleConfig"] = json!({"initializer": {"handler": "init", "timeout": 5}});
    server.create_function(f);
    for _ in 0..2 {
        let r = server.invoke("badinit", b"echo:x");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("x-fc-error-type"),
            Some("UnhandledInvocationError")
        );
        let body = r.json();
        assert_eq!(body["errorType"], "InitializationError");
        assert!(
            body["errorMessage"]
                .as_str()
                .unwrap()
                .contains("/initialize answered 404: init failed"),
            "{body}"
        );
    }
    let calls = std::fs::read_to_string(&record_file).unwrap();
    let inits: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("initialize "))
        .collect();
    assert_eq!(inits.len(), 2, "{calls}");
    assert_ne!(inits[0], inits[1], "a failed instance was reused: {calls}");
    assert!(
        !calls.contains("invoke "),
        "invoke reached a failed instance: {calls}"
    );
}

#[test]
fn initializer_runs_once_per_instance() {
    let server = Server::start();
    let record = support::scratch_dir("init-once");
    let record_file = record.path().join("calls");
    let mut f = support::testfn_function(
        "goodinit",
        json!({"TESTFN_RECORD": record_file.to_str().unwrap()}),
    );
    f["instanceLifecycleConfig"] = json!({"initializer": {"handler": "init", "timeout": 5}});
    server.create_function(f);
    for i in 0..3 {
        let r = server.invoke("goodinit", format!("echo:{i}").as_bytes());
        assert_eq!(r.text(), i.to_string());
    }
    let calls = std::fs::read_to_string(&record_file).unwrap();
    assert_eq!(
        calls
            .lines()
            .filter(|l| l.starts_with("initialize "))
            .count(),
        1,
        "{calls}"
    );
    assert_eq!(
        calls.lines().filter(|l| l.starts_with("invoke ")).count(),
        3,
        "{calls}"
    );
}

#[test]
fn x_fc_status_failure_maps_to_unhandled_invocation_error_with_server_body() {
    let server = Server::start();
    server.create_function(support::testfn_function("fails", json!({})));
    let r = server.invoke("fails", b"fail");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );
    assert_eq!(r.json()["errorMessage"], "testfn failed on purpose");
    // Without x-fc-status, a 5xx status is a failure and a 2xx a success.
    let r = server.invoke("fails", b"status:500");
    assert_eq!(
        r.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );
    assert_eq!(r.text(), "status 500");
    let r = server.invoke("fails", b"status:201");
    assert_eq!(r.header("x-fc-error-type"), None);
}

#[test]
fn non_web_server_failures_name_exit_code_signal_and_timeout() {
    let server = Server::start();
    let mut f = support::testfn_function("events", json!({"TESTFN_MODE": "event"}));
    f["customRuntimeConfig"]["webServerMode"] = json!(false);
    f["timeout"] = json!(1);
    server.create_function(f);

    let ok = server.invoke("events", b"hello");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-fc-error-type"), None);
    assert_eq!(ok.text(), "event: hello\n");

    let exit = server.invoke("events", b"exit:5");
    assert_eq!(
        exit.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );
    let body = exit.json();
    assert_eq!(
        body["errorMessage"],
        "Process exited with exit code 5 before completing request"
    );
    assert!(
        body["stackTrace"].to_string().contains("event: exit:5"),
        "{body}"
    );

    let sig = server.invoke("events", b"signal");
    assert!(sig.json()["errorMessage"]
        .as_str()
        .unwrap()
        .contains("signal 6 (SIGABRT)"));

    let slow = server.invoke("events", b"sleep:5000");
    assert_eq!(slow.json()["errorType"], "FunctionTimeout");
    assert!(slow.json()["errorMessage"]
        .as_str()
        .unwrap()
        .starts_with("Function time out after 1 seconds"));
}

#[test]
fn non_web_server_payloads_the_environment_cannot_hold_are_refused() {
    let server = Server::start();
    let mut f = support::testfn_function("events-limits", json!({"TESTFN_MODE": "event"}));
    f["customRuntimeConfig"]["webServerMode"] = json!(false);
    server.create_function(f);
    let nul = server.invoke("events-limits", b"a\0b");
    assert_eq!(nul.status, 400, "{}", nul.text());
    assert_eq!(nul.json()["Code"], "InvalidArgument");
    assert!(nul.json()["Message"].as_str().unwrap().contains("NUL"));

    let max = fcx_protocol_limit();
    let fits = server.invoke("events-limits", &vec![b'x'; max]);
    assert_eq!(fits.status, 200, "{}", fits.text());
    assert_eq!(fits.header("x-fc-error-type"), None, "{}", fits.text());
    let big = server.invoke("events-limits", &vec![b'x'; max + 1]);
    assert_eq!(big.status, 400);
    assert!(big.json()["Message"]
        .as_str()
        .unwrap()
        .contains(&max.to_string()));
}

/// The kernel's single-string limit (32 pages) minus `FC_CUSTOM_CONTAINER_EVENT=` and NUL.
fn fcx_protocol_limit() -> usize {
    32 * 4096 - "FC_CUSTOM_CONTAINER_EVENT=".len() - 1
}

#[test]
fn tail_log_holds_markers_and_the_request_output() {
    let server = Server::start();
    server.create_function(support::testfn_function("logger", json!({})));
    let r = server.invoke_with(
        "logger",
        &[("x-fc-log-type", "Tail")],
        b"log:a line from the function",
    );
    let rid = r.header("x-fc-request-id").unwrap().to_owned();
    use base64::Engine;
    let log = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-fc-log-result").unwrap())
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("FC Invoke Start RequestId: {rid}").as_str(),
            "a line from the function",
            format!("FC Invoke End RequestId: {rid}").as_str(),
        ],
        "{log}"
    );
    let none = server.invoke("logger", b"echo:x");
    assert_eq!(none.header("x-fc-log-result"), None);
}

/// Issue 13: 502 bodies carried a `Logs` field with earlier requests' lines, visible to any
/// caller. Now they carry the failing request's own lines only.
#[test]
fn error_bodies_carry_only_the_failing_requests_log_lines() {
    let server = Server::start();
    server.create_function(support::testfn_function("tattle", json!({})));
    let r = server.invoke("tattle", b"log:token-of-an-earlier-caller-1f2e");
    assert_eq!(r.status, 200, "{}", r.text());
    let crashed = server.invoke("tattle", b"crash");
    assert_eq!(crashed.status, 502, "{}", crashed.text());
    let logs = crashed.json()["Logs"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("Logs of the 502: {logs:?}");
    assert!(logs.contains("testfn: crashing"), "{logs}");
    assert!(
        !crashed.text().contains("token-of-an-earlier-caller-1f2e"),
        "an earlier request's line leaked: {}",
        crashed.text()
    );
}
