//! fcx serves the web (issue 11): HTTP triggers driven by a real HTTP client (reqwest) and a
//! real WebSocket client (tokio-tungstenite), a custom domain over HTTPS checked by a TLS
//! client that trusts only the test's CA and sends SNI, a page rendered by headless
//! Chromium, and a trigger created by the unmodified FC 3.0 Python SDK. One server
//! (`--auth signature`, `--https-listen`) serves every case; each case has functions of its
//! own, so cases run side by side.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use fcx_testkit::skip::{self, Needs};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::{zipper, Options, Response, Server};
use tokio_tungstenite::tungstenite::Message;

fn main() -> std::process::ExitCode {
    let none = Needs::new().root();
    let chromium = Needs::new().root().command(
        "chromium",
        "Debian package chromium (scripts/setup.sh installs it)",
    );
    let sdk = Needs::new().root().executable(
        &sdk_python().display().to_string(),
        "bash scripts/test.sh creates target/sdk-venv with the FC 3.0 Python SDK",
    );
    let code = skip::run(vec![
        skip::test(
            "methods_queries_and_bodies_pass_through_both_fixtures",
            &none,
            methods_queries_and_bodies,
        ),
        skip::test(
            "uploads_stream_in_and_server_sent_events_stream_out",
            &none,
            uploads_and_sse,
        ),
        skip::test(
            "limits_and_reserved_headers_follow_fc",
            &none,
            limits_and_reserved_headers,
        ),
        skip::test(
            "anonymous_signed_and_jwt_auth_and_405",
            &none,
            auth_and_methods,
        ),
        skip::test(
            "async_trigger_calls_are_queued_and_delivered",
            &none,
            async_calls,
        ),
        skip::test(
            "platform_errors_retries_and_function_statuses",
            &none,
            errors_and_retries,
        ),
        skip::test(
            "urls_without_an_http_trigger_explain_event_functions",
            &none,
            no_trigger,
        ),
        skip::test(
            "websocket_echo_and_close_from_either_side",
            &none,
            websocket,
        ),
        skip::test(
            "custom_domain_over_https_with_sni_routes_and_methods",
            &none,
            custom_domain,
        ),
        skip::test(
            "headless_chromium_renders_what_the_page_fetched",
            &chromium,
            browser,
        ),
        skip::test(
            "official_sdk_creates_an_http_trigger_whose_url_serves",
            &sdk,
            sdk_trigger,
        ),
        skip::test(
            "one_http_trigger_per_qualifier_and_disable_url_internet",
            &none,
            one_trigger_and_internet_url,
        ),
        skip::test("cli_lists_triggers_with_urls_and_deploys_them", &none, cli),
    ]);
    // Stops the shared server (statics are never dropped).
    drop(SHARED.lock().unwrap_or_else(|p| p.into_inner()).take());
    code
}

/// The server every case shares.
static SHARED: Mutex<Option<Arc<Server>>> = Mutex::new(None);

fn server() -> Arc<Server> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(shared.get_or_insert_with(|| {
        let mut options = Options::with_auth();
        options
            .extra_args
            .extend(["--https-listen".into(), "127.0.0.1:0".into()]);
        Arc::new(Server::start_with(options))
    }))
}

fn expect(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
}

/// CreateFunction (signed) of the test function; `extra` fields are merged in.
fn testfn(server: &Server, name: &str, extra: Value) {
    let mut body = support::testfn_function(name, json!({}));
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let text = body.to_string();
    let r = server.signed(
        "POST",
        "/2023-03-30/functions",
        &[("content-type", "application/json")],
        text.as_bytes(),
    );
    expect(&r, 200, "CreateFunction");
}

/// CreateTrigger (signed): an HTTP trigger with `config`; returns the trigger's JSON.
fn http_trigger(server: &Server, function: &str, config: Value) -> Value {
    let body = json!({"triggerName": "web", "triggerType": "http",
                      "triggerConfig": config.to_string()})
    .to_string();
    let r = server.signed(
        "POST",
        &format!("/2023-03-30/functions/{function}/triggers"),
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    expect(&r, 200, "CreateTrigger");
    r.json()
}

fn host(function: &str) -> String {
    format!("{function}.localhost")
}

/// A client that reaches `host` at the server (as curl and browsers resolve *.localhost).
fn client(host: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .resolve(host, addr)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn url(host: &str, addr: SocketAddr, path: &str) -> String {
    format!("http://{host}:{}{path}", addr.port())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fnv1a(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    format!("{h:08x}")
}

/// The echo fixtures' `headers` as (name, value) pairs.
fn echoed_headers(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_ascii_lowercase(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn express_dir() -> PathBuf {
    let dir = support::repo_root().join("examples/express-http");
    assert!(
        dir.join("node_modules/express").is_dir(),
        "examples/express-http/node_modules is missing: run `bash scripts/setup.sh`"
    );
    dir
}

fn express(server: &Server, name: &str) {
    let body = json!({
        "functionName": name,
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "timeout": 30,
        "code": { "zipFile": zipper::base64(&zipper::zip_dir(&express_dir())) },
        "customRuntimeConfig": { "command": ["node", "server.js"], "port": 9000 },
    })
    .to_string();
    let r = server.signed(
        "POST",
        "/2023-03-30/functions",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    expect(&r, 200, "CreateFunction express");
}

fn methods_queries_and_bodies() {
    let server = server();
    testfn(&server, "echo-fn", json!({}));
    let t = http_trigger(&server, "echo-fn", json!({"authType": "anonymous"}));
    // The trigger answers with the URLs it is served at.
    let port = server.addr.port();
    assert_eq!(
        t["httpTrigger"]["urlInternet"],
        format!("http://echo-fn.localhost:{port}")
    );
    express(&server, "express-echo");
    http_trigger(&server, "express-echo", json!({"authType": "anonymous"}));
    let rt = runtime();
    for function in ["echo-fn", "express-echo"] {
        let h = host(function);
        let c = client(&h, server.addr);
        rt.block_on(async {
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
                let target = "/echo/a%20b/c?x=1&x=2&y=%E2%9C%93&empty=";
                let r = c
                    .request(method.parse().unwrap(), url(&h, server.addr, target))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{function} {method}");
                assert!(r.headers().get("x-fc-request-id").is_some());
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["method"], method, "{function}");
                // Path and query arrive exactly as sent: repeated keys, escapes.
                assert_eq!(v["target"], target, "{function} {method}");
                let headers = echoed_headers(&v);
                assert_eq!(header(&headers, "x-fc-control-path"), Some("/http-invoke"));
                assert_eq!(header(&headers, "x-fc-function-name"), Some(function));
                assert_eq!(
                    header(&headers, "host"),
                    Some(format!("{h}:{port}").as_str())
                );
                assert!(header(&headers, "x-fc-request-id").is_some());
            }
            // HEAD: the status and headers, no body.
            let r = c
                .head(url(&h, server.addr, "/echo/x"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{function} HEAD");
            assert!(r.bytes().await.unwrap().is_empty());
            // Binary bodies are passed through unchanged.
            let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
            let r = c
                .post(url(&h, server.addr, "/echo/bin"))
                .header("content-type", "application/x-fcx-test")
                .body(binary.clone())
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["bodyLength"], binary.len(), "{function}");
            assert_eq!(v["bodyFnv"], fnv1a(&binary), "{function}");
        });
    }
    // The fixture's /body returns the bytes themselves; the FC 2.0 path form works too.
    rt.block_on(async {
        let binary: Vec<u8> = (0..=255u8).rev().cycle().take(5_000).collect();
        let c = reqwest::Client::new();
        let path = format!("http://{}/2016-08-15/proxy/svc/echo-fn/body", server.addr);
        let r = c
            .put(&path)
            .header("content-type", "application/octet-stream")
            .body(binary.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().to_vec(), binary);
        let v: Value = c
            .get(format!(
                "http://{}/2016-08-15/proxy/svc/echo-fn/deep/path?q=1",
                server.addr
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["target"], "/deep/path?q=1");
        let headers = echoed_headers(&v);
        assert_eq!(
            header(&headers, "x-fc-base-path"),
            Some("/2016-08-15/proxy/svc/echo-fn")
        );
    });
}

fn uploads_and_sse() {
    let server = server();
    testfn(&server, "stream-fn", json!({"timeout": 60}));
    http_trigger(&server, "stream-fn", json!({"authType": "anonymous"}));
    let h = host("stream-fn");
    let c = client(&h, server.addr);
    let scratch = support::scratch_dir("sse");
    let gate = scratch.path().join("gate");
    runtime().block_on(async {
        // 30 MB in chunks of unknown total length (Transfer-Encoding: chunked).
        const MB: usize = 1024 * 1024;
        let chunk: Vec<u8> = (0..MB).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::with_capacity(30 * MB);
        for _ in 0..30 {
            expected.extend_from_slice(&chunk);
        }
        let parts: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..30).map(|_| Ok(chunk.clone())).collect();
        let r = c
            .post(url(&h, server.addr, "/echo/upload"))
            .header("content-type", "application/x-fcx-test")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                parts,
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["bodyLength"], 30 * MB);
        assert_eq!(v["bodyFnv"], fnv1a(&expected));
        // A declared length over 32 MB is refused before any of the body is read. A raw
        // socket sends only the head: a client writing the whole body could meet the
        // closed connection (EPIPE) before it reads the answer.
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut sock = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            let head = format!(
                "POST /echo/upload HTTP/1.1\r\nHost: {h}:{}\r\nContent-Length: {}\r\n\r\n",
                server.addr.port(),
                33 * MB
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(20), async {
                let mut buf = [0u8; 4096];
                // Until the JSON body is in, or the server closes.
                while !String::from_utf8_lossy(&answer).contains("RequestId") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            assert!(read.is_ok(), "the refusal comes without the body");
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with("HTTP/1.1 400"), "{text}");
            assert!(text.contains("EntityTooLarge"), "{text}");
        }

        // Server-sent events: the first event arrives while the function still runs (it
        // waits for the gate, which this test opens only after reading that event).
        let target = format!("/sse?gate={}", gate.display());
        let mut r = c.get(url(&h, server.addr, &target)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("data: first") {
            let next = tokio::time::timeout(Duration::from_secs(20), r.chunk()).await;
            let chunk = next.expect("the first event arrives before the function finishes");
            seen.extend_from_slice(&chunk.unwrap().expect("stream open"));
        }
        assert!(!String::from_utf8_lossy(&seen).contains("second"));
        std::fs::write(&gate, b"open").unwrap();
        while let Some(more) = r.chunk().await.unwrap() {
            seen.extend_from_slice(&more);
        }
        assert!(String::from_utf8_lossy(&seen).ends_with("data: second\n\n"));
    });
}

fn limits_and_reserved_headers() {
    let server = server();
    testfn(&server, "limits-fn", json!({}));
    http_trigger(&server, "limits-fn", json!({"authType": "anonymous"}));
    let h = host("limits-fn");
    let c = client(&h, server.addr);
    runtime().block_on(async {
        // Headers over 8 KB, path and query over 4 KB: 400 InvalidArgument naming the limit.
        let r = c
            .get(url(&h, server.addr, "/echo"))
            .header("x-big", "v".repeat(8 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["x-fc-error-type"], "FcCommonError");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Code"], "InvalidArgument");
        assert!(
            v["Message"]
                .as_str()
                .unwrap()
                .contains("more than the 8192 bytes"),
            "{v}"
        );
        let long = format!("/echo?q={}", "a".repeat(4 * 1024));
        let r = c.get(url(&h, server.addr, &long)).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["Message"]
                .as_str()
                .unwrap()
                .contains("more than the 4096 bytes"),
            "{v}"
        );
        // Just under both limits passes.
        let ok = format!("/echo?q={}", "a".repeat(3 * 1024));
        let r = c
            .get(url(&h, server.addr, &ok))
            .header("x-big", "v".repeat(6 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        // Client x-fc-*, connection and keep-alive headers are not forwarded.
        let r = c
            .get(url(&h, server.addr, "/echo"))
            .header("x-fc-function-name", "spoofed")
            .header("x-fc-anything", "spoofed")
            .header("keep-alive", "timeout=5")
            .header("x-custom", "kept")
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let headers = echoed_headers(&v);
        assert_eq!(header(&headers, "x-fc-function-name"), Some("limits-fn"));
        assert_eq!(header(&headers, "x-fc-anything"), None);
        assert_eq!(header(&headers, "keep-alive"), None);
        assert_eq!(header(&headers, "x-custom"), Some("kept"));

        // Reserved response headers the function sets are dropped; others stay.
        let r = c
            .get(url(&h, server.addr, "/reserved"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r.headers().clone();
        assert!(got.get("x-fc-secret").is_none());
        assert_ne!(
            got.get("server").map(|v| v.to_str().unwrap()),
            Some("testfn-evil")
        );
        assert_ne!(
            got.get("date").map(|v| v.to_str().unwrap()),
            Some("Mon, 01 Jan 1990 00:00:00 GMT")
        );
        assert!(got.get("keep-alive").is_none());
        assert_eq!(got["x-kept"], "yes");
        // No forced download (FC forces one only on its shared default domain).
        assert!(got.get("content-disposition").is_none());
        assert_eq!(r.text().await.unwrap(), "reserved");

        // An answer with more than 8 KB of headers is 502 BadResponse.
        let r = c
            .get(url(&h, server.addr, "/big-headers/10"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Code"], "BadResponse");
        // 7 KB is fine.
        let r = c
            .get(url(&h, server.addr, "/big-headers/7"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
}

/// An ES256 key pair: the private key (PKCS#8 DER) and the public JWKS.
fn jwt_keys(kid: &str) -> (Vec<u8>, Value) {
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    assert_eq!(raw.len(), 65, "uncompressed P-256 point");
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]),
        "y": b64(&raw[33..]), "alg": "ES256", "use": "sig", "kid": kid}]});
    (key.serialize_der(), jwks)
}

fn token(der: &[u8], kid: &str, exp_from_now: i64, claims: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = claims;
    claims["exp"] = json!(now + exp_from_now);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_ec_der(der);
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn auth_and_methods() {
    let server = server();
    let key = server.credentials.clone().expect("--auth signature");
    testfn(&server, "anon-fn", json!({}));
    http_trigger(
        &server,
        "anon-fn",
        json!({"authType": "anonymous", "methods": ["GET", "POST"]}),
    );
    testfn(&server, "signed-fn", json!({}));
    http_trigger(&server, "signed-fn", json!({"authType": "function"}));
    testfn(&server, "jwt-fn", json!({}));
    let (pem, jwks) = jwt_keys("k1");
    let (other_pem, _) = jwt_keys("k1");
    http_trigger(
        &server,
        "jwt-fn",
        json!({"authType": "jwt", "authConfig": {
            "jwks": jwks,
            "tokenLookup": "header:Authorization:Bearer,query:jwt",
            "claimPassBy": "header:sub:x-user,query:role:role",
            "whitelist": ["/public/*"],
        }}),
    );
    runtime().block_on(async {
        // anonymous: no signature needed although the server signs its API.
        let h = host("anon-fn");
        let c = client(&h, server.addr);
        let r = c.get(url(&h, server.addr, "/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // A method not in `methods`: 405 with Allow.
        let r = c
            .delete(url(&h, server.addr, "/echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET, POST");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Code"], "MethodNotAllowed");
        // The API itself still wants a signature.
        let api = reqwest::get(format!("http://{}/2023-03-30/functions", server.addr))
            .await
            .unwrap();
        assert_eq!(api.status(), 400, "MissingRequiredHeader Authorization");

        // function: the API's signature.
        let h = host("signed-fn");
        let c = client(&h, server.addr);
        let r = c.get(url(&h, server.addr, "/echo")).send().await.unwrap();
        assert_eq!(r.status(), 400, "unsigned");
        assert_eq!(
            r.json::<Value>().await.unwrap()["Code"],
            "MissingRequiredHeader"
        );
        let host_port = format!("{h}:{}", server.addr.port());
        let body = b"signed body";
        let mut req = c
            .post(url(&h, server.addr, "/echo/s?a=1"))
            .body(body.to_vec());
        for (n, v) in support::sign::headers(&key, &host_port, "POST", "/echo/s", Some("a=1"), body)
        {
            req = req.header(n, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["bodyLength"], body.len());
        let mut bad = c.post(url(&h, server.addr, "/echo/s")).body(body.to_vec());
        let wrong = support::Credentials {
            id: key.id.clone(),
            secret: "not-the-secret".into(),
        };
        for (n, v) in support::sign::headers(&wrong, &host_port, "POST", "/echo/s", None, body) {
            bad = bad.header(n, v);
        }
        let r = bad.send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.json::<Value>().await.unwrap()["Code"],
            "SignatureNotMatch"
        );

        // jwt: valid, expired, wrong key, missing; claims passed on; whitelisted paths open.
        let h = host("jwt-fn");
        let c = client(&h, server.addr);
        let good = token(&pem, "k1", 600, json!({"sub": "alice", "role": "admin"}));
        let r = c
            .get(url(&h, server.addr, "/echo/private?x=1"))
            .bearer_auth(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(header(&echoed_headers(&v), "x-user"), Some("alice"));
        assert_eq!(v["target"], "/echo/private?x=1&role=admin");
        let r = c
            .get(url(&h, server.addr, &format!("/echo/q?jwt={good}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token in the query");
        for (what, t) in [
            ("expired", token(&pem, "k1", -3600, json!({"sub": "alice"}))),
            (
                "wrong key",
                token(&other_pem, "k1", 600, json!({"sub": "mallory"})),
            ),
        ] {
            let r = c
                .get(url(&h, server.addr, "/echo/private"))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{what}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["Code"], "Unauthorized", "{what}");
            let m = v["Message"].as_str().unwrap();
            assert!(
                m.contains(if what == "expired" {
                    "expired"
                } else {
                    "signature"
                }),
                "{m}"
            );
        }
        let r = c
            .get(url(&h, server.addr, "/echo/private"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "no token");
        let r = c
            .get(url(&h, server.addr, "/public/page"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "whitelisted");
    });
}

fn async_calls() {
    let server = server();
    let scratch = support::scratch_dir("async-web");
    let record = scratch.path().join("calls");
    testfn(
        &server,
        "async-fn",
        json!({"environmentVariables": {"TESTFN_RECORD": record.display().to_string()}}),
    );
    http_trigger(&server, "async-fn", json!({"authType": "anonymous"}));
    let h = host("async-fn");
    let c = client(&h, server.addr);
    runtime().block_on(async {
        let r = c
            .post(url(&h, server.addr, "/echo/later?k=v"))
            .header("x-fc-invocation-type", "Async")
            .body("queued body")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert!(r.headers().get("x-fc-request-id").is_some());
        let big = c
            .post(url(&h, server.addr, "/echo"))
            .header("x-fc-invocation-type", "Async")
            .body(vec![b'x'; 129 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(big.status(), 400, "async bodies are limited to 128 KB");
    });
    // The worker delivers it as an HTTP request (the fixture records http-invoke calls).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        if text.contains("http-invoke") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued request never ran: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn errors_and_retries() {
    let server = server();
    testfn(&server, "fragile-fn", json!({"timeout": 2}));
    http_trigger(&server, "fragile-fn", json!({"authType": "anonymous"}));
    let h = host("fragile-fn");
    let c = client(&h, server.addr);
    runtime().block_on(async {
        // The function's own 4xx and 5xx pass through unchanged.
        for code in [404u16, 418, 500, 503] {
            let r = c
                .get(url(&h, server.addr, &format!("/status/{code}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), code);
            assert!(r.headers().get("x-fc-error-type").is_none());
            assert_eq!(r.text().await.unwrap(), format!("status {code}"));
        }
        // A dropped pooled connection: GET is sent again on a fresh one, POST gets 502.
        let arm = c
            .get(url(&h, server.addr, "/arm-drop"))
            .send()
            .await
            .unwrap();
        assert_eq!(arm.status(), 200);
        let r = c
            .get(url(&h, server.addr, "/echo/after-drop"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET retried: {}", r.text().await.unwrap());
        let arm = c
            .get(url(&h, server.addr, "/arm-drop"))
            .send()
            .await
            .unwrap();
        assert_eq!(arm.status(), 200);
        let r = c
            .post(url(&h, server.addr, "/echo/after-drop"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "POST is not retried");
        assert_eq!(r.json::<Value>().await.unwrap()["Code"], "BadResponse");
        // Timeout: FC's error with its status.
        let r = c
            .get(url(&h, server.addr, "/sleep/5000"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 504);
        assert_eq!(r.headers()["x-fc-error-type"], "UnhandledInvocationError");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Code"], "FunctionTimeout");
        assert!(v["Message"]
            .as_str()
            .unwrap()
            .starts_with("Function time out after 2 seconds"));
        // The process exits mid-request: 502 ProcessExited.
        let r = c.get(url(&h, server.addr, "/crash")).send().await.unwrap();
        assert_eq!(r.status(), 502);
        assert_eq!(r.headers()["x-fc-error-type"], "UnhandledInvocationError");
        assert_eq!(r.json::<Value>().await.unwrap()["Code"], "ProcessExited");
        // And the next call gets a fresh instance.
        let r = c.get(url(&h, server.addr, "/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    });
    // Every trigger call is logged with the trigger's name.
    let logs = server.signed(
        "GET",
        "/2023-03-30/functions/fragile-fn/logs?tail=2000",
        &[],
        b"",
    );
    expect(&logs, 200, "GetLogs");
    assert!(
        logs.text()
            .contains("fcx: trigger web: GET /echo/after-drop"),
        "{}",
        logs.text()
    );
}

fn no_trigger() {
    let server = server();
    testfn(&server, "event-only", json!({}));
    runtime().block_on(async {
        let h = host("event-only");
        let r = client(&h, server.addr)
            .get(url(&h, server.addr, "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.unwrap();
        let m = v["Message"].as_str().unwrap();
        assert!(
            m.contains("Event functions are invoked with the InvokeFunction API"),
            "{m}"
        );
        assert!(m.contains("add an HTTP trigger"), "{m}");
        let r = reqwest::get(format!(
            "http://{}/2016-08-15/proxy/s/event-only/",
            server.addr
        ))
        .await
        .unwrap();
        assert_eq!(r.status(), 404);
        assert!(r.json::<Value>().await.unwrap()["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("add an HTTP trigger"));
    });
}

/// FC's rules on the trigger itself: a second HTTP trigger for the same qualifier is refused
/// with the conflict error; `disableURLInternet` closes the host-based URL only.
fn one_trigger_and_internet_url() {
    let server = server();
    testfn(&server, "private-fn", json!({}));
    http_trigger(
        &server,
        "private-fn",
        json!({"authType": "anonymous", "disableURLInternet": true}),
    );
    let second = json!({"triggerName": "web2", "triggerType": "http",
                        "triggerConfig": json!({"authType": "anonymous"}).to_string()})
    .to_string();
    let r = server.signed(
        "POST",
        "/2023-03-30/functions/private-fn/triggers",
        &[("content-type", "application/json")],
        second.as_bytes(),
    );
    expect(&r, 409, "second HTTP trigger for LATEST");
    let v: Value = r.json();
    assert_eq!(v["Code"], "TriggerAlreadyExists", "{v}");
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("already has the HTTP trigger 'web' for qualifier 'LATEST'"),
        "{v}"
    );
    runtime().block_on(async {
        let h = host("private-fn");
        let r = client(&h, server.addr)
            .get(url(&h, server.addr, "/echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "host-based URL with disableURLInternet");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Code"], "AccessDenied", "{v}");
        assert!(v["Message"]
            .as_str()
            .unwrap()
            .contains("disableURLInternet"));
        let r = reqwest::get(format!(
            "http://{}/2016-08-15/proxy/s/private-fn/echo",
            server.addr
        ))
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "the path form still serves");
    });
}

fn websocket() {
    let server = server();
    testfn(&server, "ws-fn", json!({"timeout": 30}));
    let r = server.signed(
        "PUT",
        "/2023-03-30/functions/ws-fn/concurrency",
        &[],
        br#"{"reservedConcurrency": 1}"#,
    );
    expect(&r, 200, "PutConcurrency");
    http_trigger(&server, "ws-fn", json!({"authType": "anonymous"}));
    let h = host("ws-fn");
    let addr = server.addr;
    runtime().block_on(async {
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let uri = format!("ws://{h}:{}/ws", addr.port());
            let (ws, resp) = tokio_tungstenite::client_async(uri, tcp)
                .await
                .expect("handshake");
            assert_eq!(resp.status(), 101);
            ws
        };
        // Echo round trip.
        let mut ws = connect().await;
        ws.send(Message::text("hello")).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text("hello"));
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![0u8, 1, 2, 255])
        );
        // The session holds the function's only concurrency slot.
        let c = client(&h, addr);
        let busy = c.get(url(&h, addr, "/echo")).send().await.unwrap();
        assert_eq!(busy.status(), 429, "the open WebSocket holds the slot");
        // Closing from the client ends the function's side too.
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        wait_for(|| c.clone(), &h, addr).await;

        // Closing from the function ends the client's side.
        let mut ws = connect().await;
        ws.send(Message::text("close")).await.unwrap();
        let mut closed = false;
        while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the function's close reaches the client")
        {
            match msg {
                Ok(Message::Close(_)) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
            }
        }
        assert!(closed);
        wait_for(|| c.clone(), &h, addr).await;
    });
    let logs = server.signed(
        "GET",
        "/2023-03-30/functions/ws-fn/logs?tail=2000",
        &[],
        b"",
    );
    let text = logs.text();
    assert!(text.contains("testfn: websocket closed by peer"), "{text}");
    assert!(text.contains("testfn: websocket closing"), "{text}");
}

/// Waits until a plain request gets the function's slot again (the session ended).
async fn wait_for(client: impl Fn() -> reqwest::Client, h: &str, addr: SocketAddr) {
    for _ in 0..200 {
        let r = client().get(url(h, addr, "/echo")).send().await.unwrap();
        if r.status() == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the WebSocket session still holds the slot");
}

fn custom_domain() {
    let server = server();
    let https = server.https_addr.expect("--https-listen");
    testfn(&server, "site-fn", json!({}));
    testfn(&server, "api-fn", json!({}));
    // A test CA and a certificate for the domain, signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fcx test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let domain = "app.fcx-test.example";
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let body = json!({
        "domainName": domain,
        "protocol": "HTTP,HTTPS",
        "certConfig": {"certName": "test", "certificate": leaf.pem(), "privateKey": leaf_key.serialize_pem()},
        "routeConfig": {"routes": [
            {"path": "/*", "functionName": "site-fn"},
            {"path": "/api/*", "functionName": "api-fn", "methods": ["GET", "POST"]},
            {"path": "/api/exact", "functionName": "site-fn"},
        ]},
    })
    .to_string();
    let r = server.signed(
        "POST",
        "/2023-03-30/custom-domains",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    expect(&r, 200, "CreateCustomDomain");
    // The private key is never echoed.
    assert!(r.json()["certConfig"].get("privateKey").is_none());
    let got = server.signed(
        "GET",
        &format!("/2023-03-30/custom-domains/{domain}"),
        &[],
        b"",
    );
    expect(&got, 200, "GetCustomDomain");
    assert!(!got.text().contains("PRIVATE KEY"), "{}", got.text());
    let list = server.signed("GET", "/2023-03-30/custom-domains", &[], b"");
    assert!(!list.text().contains("PRIVATE KEY"));
    // Nor stored in the clear.
    let db = std::fs::read(server.data_dir.path().join("fcx.db")).unwrap_or_default();
    let wal = std::fs::read(server.data_dir.path().join("fcx.db-wal")).unwrap_or_default();
    let marker = leaf_key.serialize_pem();
    let secret_line = marker.lines().nth(1).unwrap().as_bytes().to_vec();
    for bytes in [&db, &wal] {
        assert!(!bytes
            .windows(secret_line.len())
            .any(|w| w == secret_line.as_slice()));
    }

    let ca_cert = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    runtime().block_on(async {
        // A client that trusts only the test CA, reaching the domain by name (SNI).
        let tls = reqwest::Client::builder()
            .tls_certs_only([ca_cert])
            .resolve(domain, https)
            .build()
            .unwrap();
        let at = |path: &str| format!("https://{domain}:{}{path}", https.port());
        let fn_of = |v: &Value| {
            header(&echoed_headers(v), "x-fc-function-name")
                .unwrap()
                .to_owned()
        };
        let v: Value = tls
            .get(at("/index.html"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(fn_of(&v), "site-fn");
        let v: Value = tls
            .get(at("/api/users?id=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(fn_of(&v), "api-fn");
        assert_eq!(v["target"], "/api/users?id=1");
        let v: Value = tls
            .get(at("/api/exact"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(fn_of(&v), "site-fn", "an exact route wins over a prefix");
        let r = tls.delete(at("/api/users")).send().await.unwrap();
        assert_eq!(r.status(), 405, "{:?}", r.headers());
        assert_eq!(r.headers()["allow"], "GET, POST");
        assert!(r.headers().get("content-disposition").is_none());
        // Plain HTTP serves the domain too (protocol HTTP,HTTPS).
        let plain = client(domain, server.addr);
        let v: Value = plain
            .get(url(domain, server.addr, "/x"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(fn_of(&v), "site-fn");
        // A client that does not trust the CA refuses the certificate.
        let untrusting = reqwest::Client::builder()
            .tls_certs_only(Vec::new())
            .resolve(domain, https)
            .build()
            .unwrap();
        assert!(untrusting.get(at("/")).send().await.is_err());
    });
}

fn browser() {
    let server = server();
    express(&server, "express-page");
    http_trigger(
        &server,
        "express-page",
        json!({"authType": "anonymous", "methods": ["GET"]}),
    );
    let profile = tempfile::tempdir().unwrap();
    let page = format!("http://express-page.localhost:{}/", server.addr.port());
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &page])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Hello from the Express function, fetched by the page"),
        "the page's script did not fetch from the function; DOM:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sdk_python() -> PathBuf {
    support::repo_root().join("target/sdk-venv/bin/python")
}

fn sdk_trigger() {
    let server = server();
    let key = server.credentials.clone().expect("--auth signature");
    let scratch = tempfile::tempdir().unwrap();
    let zip = scratch.path().join("testfn.zip");
    std::fs::write(&zip, zipper::testfn_zip()).unwrap();
    let out = std::process::Command::new(sdk_python())
        .arg(support::repo_root().join("tests/sdk/fc3_sdk_http_trigger.py"))
        .env("FCX_ENDPOINT", server.addr.to_string())
        .env("FCX_ACCESS_KEY_ID", &key.id)
        .env("FCX_ACCESS_KEY_SECRET", &key.secret)
        .env("FCX_TESTFN_ZIP", &zip)
        .output()
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url_internet = stdout
        .lines()
        .find_map(|l| l.strip_prefix("urlInternet: "))
        .expect("the script prints urlInternet")
        .trim()
        .to_owned();
    // Call the URL as given (resolving *.localhost to the server, as curl does).
    let parsed = reqwest::Url::parse(&url_internet).unwrap();
    let h = parsed.host_str().unwrap().to_owned();
    assert_eq!(parsed.port(), Some(server.addr.port()));
    runtime().block_on(async {
        let r = client(&h, server.addr)
            .get(format!("{url_internet}/echo/from-sdk"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["target"], "/echo/from-sdk");
    });
}

fn cli() {
    let server = server();
    let key = server.credentials.clone().expect("--auth signature");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::write(code.join("bootstrap"), zipper::testfn_bootstrap()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            code.join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    // An fc3 project with an HTTP and a timer trigger, as Serverless Devs writes them.
    std::fs::write(
        dir.path().join("s.yaml"),
        r#"edition: 3.0.0
name: web-app
resources:
  site:
    component: fc3
    props:
      region: cn-hangzhou
      functionName: cli-site
      runtime: custom.debian12
      handler: index.handler
      code: ./code
      customRuntimeConfig: { command: [./bootstrap], port: 9000 }
      triggers:
        - triggerName: http
          triggerType: http
          triggerConfig:
            authType: anonymous
            methods: [GET, POST]
        - triggerName: nightly
          triggerType: timer
          triggerConfig:
            cronExpression: "CRON_TZ=Asia/Shanghai 0 0 4 * * *"
            payload: '{"job":"cleanup"}'
            enable: true
"#,
    )
    .unwrap();
    let fcx = |args: &[&str]| {
        std::process::Command::new(support::fcx_bin())
            .args(["--endpoint", &format!("http://{}", server.addr)])
            .args(args)
            .env("FCX_ACCESS_KEY_ID", &key.id)
            .env("FCX_ACCESS_KEY_SECRET", &key.secret)
            .output()
            .unwrap()
    };
    let s_yaml = dir.path().join("s.yaml");
    let deployed = fcx(&["deploy", "-f", s_yaml.to_str().unwrap()]);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let ls = fcx(&["triggers", "ls", "cli-site"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let port = server.addr.port();
    assert!(
        text.contains(&format!("http://cli-site.localhost:{port}")),
        "{text}"
    );
    assert!(
        text.contains("nightly") && text.contains("CRON_TZ=Asia/Shanghai 0 0 4 * * *"),
        "{text}"
    );
    // The URL it prints serves the function.
    runtime().block_on(async {
        let h = host("cli-site");
        let r = client(&h, server.addr)
            .get(url(&h, server.addr, "/echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let json_out = fcx(&["triggers", "ls", "cli-site", "--output", "json"]);
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
}
