//! Observability against real parts: a real Prometheus scrapes fcx and answers queries for
//! the invocations the test made; promtool accepts fcx's exposition; concurrent requests on
//! one instance are told apart in its log; retention holds a chatty function's log
//! directory at its limit while `fcx logs --follow` keeps up across rotations; traceparent
//! makes the round trip through the instance and spans reach an OTLP collector stand-in; a
//! headless Chromium renders the status page, with and without signing in the browser.
//!
//! A `harness = false` target (see `fcx_testkit::skip`): on a host without Prometheus or
//! Chromium the tests that need them are reported `ignored (needs ...)`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_testkit::skip::{self, Needs};
use serde_json::json;
use support::procs::eventually;
use support::services::{self, Chromium, Collector, Service};
use support::{Options, Server};

fn main() -> std::process::ExitCode {
    let root = Needs::new().root();
    let prometheus = Needs::new()
        .root()
        .executable("/usr/bin/prometheus", "package prometheus")
        .executable("/usr/bin/promtool", "package prometheus");
    let chromium = Needs::new()
        .root()
        .executable("/usr/bin/chromium", "package chromium");
    skip::run(vec![
        skip::test(
            "prometheus_scrapes_the_invocation_count_and_a_latency_quantile",
            &prometheus,
            prometheus_scrapes_the_invocation_count_and_a_latency_quantile,
        ),
        skip::test(
            "concurrent_requests_on_one_instance_are_told_apart_by_request_id",
            &root,
            concurrent_requests_on_one_instance_are_told_apart_by_request_id,
        ),
        skip::test(
            "retention_caps_a_chatty_function_and_follow_crosses_rotations",
            &root,
            retention_caps_a_chatty_function_and_follow_crosses_rotations,
        ),
        skip::test(
            "fcx_logs_filters_by_time_request_and_instance_and_the_api_pages",
            &root,
            fcx_logs_filters_by_time_request_and_instance_and_the_api_pages,
        ),
        skip::test(
            "traceparent_round_trips_and_spans_reach_the_collector",
            &root,
            traceparent_round_trips_and_spans_reach_the_collector,
        ),
        skip::test(
            "with_log_format_json_every_server_log_line_is_a_json_object",
            &root,
            with_log_format_json_every_server_log_line_is_a_json_object,
        ),
        skip::test(
            "chromium_renders_the_status_page_with_a_function_and_its_invocations",
            &chromium,
            chromium_renders_the_status_page_with_a_function_and_its_invocations,
        ),
        skip::test(
            "with_signatures_the_page_signs_in_the_browser_and_metrics_need_the_metrics_listener",
            &chromium,
            with_signatures_the_page_signs_in_the_browser_and_metrics_need_the_metrics_listener,
        ),
    ])
}

fn metrics_server(auth: bool) -> Server {
    let mut options = if auth {
        Options::with_auth()
    } else {
        Options::default()
    };
    options
        .extra_args
        .extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
    Server::start_with(options)
}

fn prometheus_scrapes_the_invocation_count_and_a_latency_quantile() {
    let server = metrics_server(false);
    let metrics = server.metrics_addr.expect("the metrics listener's address");
    let prom = Service::prometheus(metrics);
    server.create_function(support::testfn_function("scraped", json!({})));
    // Every invocation sleeps 600 ms: all of them fall in the (0.5 s, 1 s] bucket or, on a
    // slow moment, above it, never below.
    const N: u64 = 5;
    for _ in 0..N {
        let r = server.invoke("scraped", b"sleep:600");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let failed = server.invoke("scraped", b"fail");
    assert_eq!(
        failed.header("x-fc-error-type"),
        Some("UnhandledInvocationError")
    );

    let count = r#"fcx_invocations_total{function="scraped",qualifier="LATEST",outcome="success"}"#;
    let mut seen = None;
    let scraped = eventually(Duration::from_secs(30), || {
        seen = prom.query(count);
        seen == Some(N as f64)
    });
    assert!(
        scraped,
        "Prometheus answered {seen:?} for {count}: {}",
        prom.log()
    );
    let errors = r#"fcx_invocations_total{function="scraped",outcome="function_error",code="UnhandledInvocationError"}"#;
    assert!(
        eventually(Duration::from_secs(10), || prom.query(errors) == Some(1.0)),
        "{:?}",
        prom.query(errors)
    );
    let median =
        r#"histogram_quantile(0.5, fcx_instance_duration_seconds_bucket{function="scraped"})"#;
    let q = prom.query(median).expect("a quantile");
    // 5 of 6 observations are ≥ 0.6 s (the failure answers at once).
    assert!((0.5..=2.5).contains(&q), "median instance time {q} s");
    let cold = r#"fcx_cold_starts_total{function="scraped"}"#;
    assert_eq!(prom.query(cold), Some(1.0));

    // promtool lints the exposition Prometheus just scraped.
    let text = support::http::request(metrics, "GET", "/metrics", &[], b"").text();
    for series in [
        "fcx_instances{function=\"scraped\",qualifier=\"LATEST\",state=\"idle\"} 1",
        "fcx_concurrency_slots{function=\"scraped\",qualifier=\"LATEST\"} 1",
        "# TYPE fcx_cold_start_phase_duration_seconds histogram",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE fcx_async_queue_depth gauge",
        "# TYPE fcx_store_operation_duration_seconds histogram",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let mut promtool = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}"
    );
}

fn concurrent_requests_on_one_instance_are_told_apart_by_request_id() {
    let server = Server::start();
    let mut f = support::testfn_function("shared", json!({}));
    f["instanceConcurrency"] = json!(2);
    server.create_function(f);
    let barrier = support::scratch_dir("chat");
    let body = format!("chat:{}:2", barrier.path().display());
    let server = Arc::new(server);
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (server, body) = (Arc::clone(&server), body.clone());
            std::thread::spawn(move || server.invoke("shared", body.as_bytes()))
        })
        .collect();
    let answers: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    let ids: Vec<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            r.header("x-fc-request-id").unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        answers[0].header("x-fc-instance-id"),
        answers[1].header("x-fc-instance-id"),
        "both requests must share one instance"
    );
    for (mine, other) in [(&ids[0], &ids[1]), (&ids[1], &ids[0])] {
        let mut page = json!(null);
        let complete = eventually(Duration::from_secs(10), || {
            page = server
                .request(
                    "GET",
                    &format!("/2023-03-30/functions/shared/logs?requestId={mine}"),
                    &[],
                    b"",
                )
                .json();
            page.to_string().contains("FC Invoke End")
        });
        assert!(complete, "{page}");
        let lines: Vec<&str> = page["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap())
            .collect();
        assert!(
            lines.contains(&format!("{mine} before").as_str()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&format!("{mine} after").as_str()),
            "{lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains(other.as_str())),
            "{other}'s lines leaked into {mine}'s: {lines:?}"
        );
        assert!(page["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["requestId"] == mine.as_str() && l["timestamp"].is_string()));
    }
}

/// Bytes of the function's log directory on disk.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn retention_caps_a_chatty_function_and_follow_crosses_rotations() {
    // 1 MB per function; segments of a quarter of that.
    let server = Arc::new(Server::start_with(Options::with_args(&[
        "--log-retention-mb",
        "1",
        "--log-segment-mb",
        "1",
    ])));
    server.create_function(support::testfn_function("chatty", json!({})));
    assert_eq!(server.invoke("chatty", b"log:warm").status, 200);
    let dir = server.data_dir.path().join("logs/chatty");

    // `fcx logs --follow` runs from the start, through the rotations below.
    let mut follow = Command::new(support::fcx_bin())
        .args(["--endpoint", &server.url(""), "logs", "chatty", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    {
        let (out, seen) = (follow.stdout.take().unwrap(), Arc::clone(&seen));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let follow_sees = |needle: &str| {
        eventually(Duration::from_secs(15), || {
            seen.lock().unwrap().contains(needle)
        })
    };
    assert!(follow_sees("warm"), "{}", seen.lock().unwrap());

    // 12 × 4000 lines of 200 bytes: ~10 MB through a 1 MB limit, sampled as it runs.
    let spewer = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            for _ in 0..12 {
                assert_eq!(server.invoke("chatty", b"spew:4000").status, 200);
            }
        })
    };
    let mut largest = 0;
    while !spewer.is_finished() {
        largest = largest.max(dir_bytes(&dir));
        std::thread::sleep(Duration::from_millis(5));
    }
    spewer.join().unwrap();
    largest = largest.max(dir_bytes(&dir));
    assert!(
        largest <= 1024 * 1024,
        "the log directory reached {largest} bytes"
    );
    let segments = std::fs::read_dir(&dir).unwrap().count();
    assert!(segments >= 2, "expected rotated segments, found {segments}");

    // After the rotations, a new line still reaches the follower.
    assert_eq!(server.invoke("chatty", b"log:after-rotation").status, 200);
    assert!(
        follow_sees("after-rotation"),
        "follow missed the line after rotation"
    );
    support::procs::kill(follow.id());
    let _ = follow.wait();
}

/// `fcx logs NAME ARGS...` against `server`; its stdout.
fn fcx_logs(server: &Server, name: &str, args: &[&str]) -> String {
    let out = Command::new(support::fcx_bin())
        .args(["--endpoint", &server.url(""), "logs", name])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fcx logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn fcx_logs_filters_by_time_request_and_instance_and_the_api_pages() {
    let server = Arc::new(Server::start());
    server.create_function(support::testfn_function("filtered", json!({})));
    let early = server.invoke("filtered", b"log:early-line");
    assert_eq!(early.status, 200, "{}", early.text());
    let early_rid = early.header("x-fc-request-id").unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(50));
    let boundary = unix_ms();
    std::thread::sleep(Duration::from_millis(50));
    // Two calls that wait for each other: with instanceConcurrency 1, two instances.
    let barrier = support::scratch_dir("filtered");
    let body = format!("barrier:{}:2", barrier.path().display());
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (server, body) = (Arc::clone(&server), body.clone());
            std::thread::spawn(move || server.invoke("filtered", body.as_bytes()).status)
        })
        .collect();
    for c in calls {
        assert_eq!(c.join().unwrap(), 200);
    }
    let late = server.invoke("filtered", b"log:late-line");
    let late_rid = late.header("x-fc-request-id").unwrap().to_owned();
    let instances = server.instance_ids("filtered");
    assert_eq!(instances.len(), 2, "{instances:?}");

    let all = {
        let mut text = String::new();
        let complete = eventually(Duration::from_secs(10), || {
            text = fcx_logs(&server, "filtered", &["-t"]);
            text.contains(&format!("FC Invoke End RequestId: {late_rid}"))
        });
        assert!(complete, "{text}");
        text
    };
    // -t: time, instance, request id, text.
    let late_line = all
        .lines()
        .find(|l| l.ends_with(" late-line"))
        .unwrap_or_else(|| panic!("{all}"));
    let fields: Vec<&str> = late_line.split(' ').collect();
    assert!(
        fields[0].ends_with('Z') && fields[0].contains('T'),
        "{late_line}"
    );
    assert!(instances.iter().any(|i| i == fields[1]), "{late_line}");
    assert_eq!(fields[2], late_rid, "{late_line}");

    // Time range: Unix ms on one side, the RFC 3339 time -t printed on the other.
    let before = fcx_logs(&server, "filtered", &["--to", &boundary.to_string()]);
    assert!(
        before.contains("early-line") && !before.contains("late-line"),
        "{before}"
    );
    let after = fcx_logs(&server, "filtered", &["--from", &boundary.to_string()]);
    assert!(
        after.contains("late-line") && !after.contains("early-line"),
        "{after}"
    );
    let from_late = fcx_logs(&server, "filtered", &["--from", fields[0]]);
    assert!(from_late.contains("late-line"), "{from_late}");
    assert!(!from_late.contains("early-line"), "{from_late}");

    // One request: its markers and its line only.
    let one = fcx_logs(&server, "filtered", &["--request-id", &early_rid]);
    assert!(one.contains("early-line"), "{one}");
    assert!(
        one.contains(&format!("FC Invoke Start RequestId: {early_rid}")),
        "{one}"
    );
    assert!(
        !one.contains("late-line") && !one.contains(&late_rid),
        "{one}"
    );

    // One instance: every line is its own, and each instance has some.
    for instance in &instances {
        let mine = fcx_logs(&server, "filtered", &["--instance-id", instance]);
        assert!(!mine.is_empty(), "no lines of {instance}:\n{all}");
        assert!(
            mine.lines().all(|l| l.starts_with(&format!("{instance} "))),
            "{instance}:\n{mine}"
        );
    }

    // The API pages forward two lines at a time; the pages add up to one forward read.
    let path = "/2023-03-30/functions/filtered/logs";
    let whole = server
        .request("GET", &format!("{path}?from=0"), &[], b"")
        .json();
    let whole = whole["lines"].as_array().unwrap().clone();
    assert!(whole.len() >= 6, "{whole:?}");
    let mut paged = Vec::new();
    let mut page = server
        .request("GET", &format!("{path}?from=0&limit=2"), &[], b"")
        .json();
    for _ in 0..whole.len() {
        let lines = page["lines"].as_array().unwrap().clone();
        assert!(lines.len() <= 2, "{page}");
        if lines.is_empty() {
            break;
        }
        paged.extend(lines);
        let token = page["nextToken"].as_str().unwrap().to_owned();
        page = server
            .request("GET", &format!("{path}?since={token}&limit=2"), &[], b"")
            .json();
    }
    assert_eq!(paged, whole);
}

fn traceparent_round_trips_and_spans_reach_the_collector() {
    let collector = Collector::start();
    let mut options = Options::with_args(&["--otlp-endpoint", &collector.endpoint()]);
    // Export within a fraction of a second instead of the default 5 s.
    options
        .extra_env
        .push(("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()));
    let server = Server::start_with(options);
    server.create_function(support::testfn_function("traced", json!({})));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let r = server.invoke_with(
        "traced",
        &[("traceparent", &traceparent), ("tracestate", "vendor=1")],
        b"headers",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The instance saw the same trace, with fcx's span as the parent.
    let seen = r.text();
    let forwarded = seen
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("the instance got no traceparent:\n{seen}"))
        .to_owned();
    assert!(seen.contains("tracestate: vendor=1"), "{seen}");
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts[1], trace_id, "{forwarded}");
    assert_ne!(parts[2], client_span, "fcx must add its own span");
    // And the client gets it back.
    assert_eq!(r.header("traceparent"), Some(forwarded.as_str()));
    // The FC headers of the call.
    let duration: u64 = r
        .header("x-fc-invocation-duration")
        .unwrap()
        .parse()
        .unwrap();
    assert!(duration < 10_000, "{duration}");
    assert!(r
        .header("x-fc-code-checksum")
        .is_some_and(|c| !c.is_empty()));

    // Without a traceparent fcx starts a trace of its own.
    let fresh = server.invoke("traced", b"echo:x");
    let own = fresh.header("traceparent").expect("a new trace").to_owned();
    assert!(!own.contains(trace_id), "{own}");

    let mut spans = Vec::new();
    let exported = eventually(Duration::from_secs(30), || {
        spans = collector.spans();
        spans
            .iter()
            .any(|s| s.trace_id == trace_id && s.name == "invoke")
    });
    assert!(exported, "no invoke span of the trace arrived: {spans:?}");
    let span = spans
        .iter()
        .find(|s| s.trace_id == trace_id && s.name == "invoke")
        .unwrap();
    assert_eq!(span.parent_span_id, client_span, "{span:?}");
    assert_eq!(
        span.span_id, parts[2],
        "the instance's parent is the exported span"
    );
    assert!(
        span.attributes
            .iter()
            .any(|(k, v)| k == "function" && v.contains("traced")),
        "{span:?}"
    );
}

fn with_log_format_json_every_server_log_line_is_a_json_object() {
    let data = tempfile::Builder::new()
        .prefix("fcx-e2e-json-")
        .tempdir()
        .unwrap();
    let mut child = Command::new(support::fcx_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--auth", "none"])
        .args([
            "--oci-runtime",
            "none",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data.path())
        .env("FCX_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut startup = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut startup)
        .unwrap();
    assert!(startup.starts_with("fcx server listening on"), "{startup}");
    support::procs::terminate(child.id(), Duration::from_secs(10));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    // The store's migrations and the --auth none warning at least.
    assert!(lines.len() >= 2, "{stderr}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        assert!(v["fields"].is_object(), "{v}");
    }
}

fn chromium_renders_the_status_page_with_a_function_and_its_invocations() {
    let server = Server::start();
    server.create_function(support::testfn_function("statuspage-fn", json!({})));
    let first = server.invoke("statuspage-fn", b"echo:one");
    let second = server.invoke("statuspage-fn", b"fail");
    let rid = first.header("x-fc-request-id").unwrap().to_owned();
    let failed = second.header("x-fc-request-id").unwrap().to_owned();
    for _ in 0..8 {
        server.invoke("statuspage-fn", b"sleep:20");
    }
    let chromium = Chromium::new();
    let url = server.url("/status");
    let dom = chromium.dump_dom(&url);
    for want in [
        "statuspage-fn",
        rid.as_str(),
        failed.as_str(),
        "function_error",
        "cold",
        "warm",
        "Running",
    ] {
        assert!(dom.contains(want), "{want} not on the page:\n{dom}");
    }
    assert!(dom.contains("<polyline"), "no latency sparkline:\n{dom}");
    let png = services::artifact("status-page.png");
    chromium.screenshot(&url, &png, 1280, 860);
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
    eprintln!("status page screenshot: {}", png.display());
}

fn with_signatures_the_page_signs_in_the_browser_and_metrics_need_the_metrics_listener() {
    let server = metrics_server(true);
    let key = server.credentials.clone().unwrap();
    // The API listener wants a signature for /metrics and the status data, not for the page.
    let unsigned = server.request("GET", "/metrics", &[], b"");
    assert!((400..500).contains(&unsigned.status), "{}", unsigned.status);
    let data = server.request("GET", "/status/data", &[], b"");
    assert!((400..500).contains(&data.status), "{}", data.status);
    let page = server.request("GET", "/status", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("ACS3-HMAC-SHA256"));
    // The metrics listener needs none.
    let metrics = server.metrics_addr.unwrap();
    let scraped = support::http::request(metrics, "GET", "/metrics", &[], b"");
    assert_eq!(scraped.status, 200);
    assert!(scraped
        .text()
        .contains("# TYPE process_resident_memory_bytes gauge"));

    let chromium = Chromium::new();
    // Without a key the page asks for one.
    let login = chromium.dump_dom(&server.url("/status"));
    assert!(
        login.contains("Sign in") && login.contains("region"),
        "{login}"
    );
    assert!(
        !login.contains("region local"),
        "rendered data without a key:\n{login}"
    );
    // With the key (in the fragment, which never reaches the server) it signs with WebCrypto.
    let url = format!(
        "{}#accessKeyId={}&accessKeySecret={}",
        server.url("/status"),
        key.id,
        key.secret
    );
    let dom = chromium.dump_dom(&url);
    assert!(dom.contains("region local"), "signed fetch failed:\n{dom}");
    chromium.screenshot(
        &url,
        &services::artifact("status-page-signed.png"),
        1280,
        600,
    );
}
