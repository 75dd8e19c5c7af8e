//! Signed requests (`fcx server --auth signature`) against the real binary: the official FC 3.0
//! Python SDK (unmodified) is accepted, and wrong secrets, stale dates, tampered bodies,
//! missing headers, unknown keys and replayed nonces are refused with FC's codes.
//!
//! The requests below are signed by a small signer written here from the SDK's algorithm
//! (independent of fcx's own code); `official_python_sdk_is_accepted` proves the algorithm
//! against the SDK itself.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{Credentials, Options, Response, Server};

// ---- a client-side signer, as alibabacloud_tea_openapi.utils.Utils.get_authorization ----

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (the SDKs' `x-acs-date`).
fn iso8601(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn fresh_nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A request signed the way the FC 3.0 SDKs sign it. Fields are public so tests can break
/// one thing at a time after signing.
#[derive(Clone)]
struct Signed {
    method: String,
    /// Path and (encoded) query as sent.
    target: String,
    /// Headers sent (besides Host, Content-Length and Connection, which the harness adds).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct SignOptions<'a> {
    date: String,
    nonce: String,
    /// Headers to leave out entirely (neither signed nor sent).
    omit: &'a [&'a str],
}

impl Default for SignOptions<'_> {
    fn default() -> Self {
        SignOptions {
            date: iso8601(now_secs()),
            nonce: fresh_nonce(),
            omit: &[],
        }
    }
}

fn sign(
    server: &Server,
    key: &Credentials,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    opts: SignOptions,
) -> Signed {
    let host = server.addr.to_string();
    let mut headers: Vec<(String, String)> = vec![
        ("x-acs-action".into(), "fcx-e2e".into()),
        ("x-acs-version".into(), "2023-03-30".into()),
        ("x-acs-date".into(), opts.date),
        ("x-acs-signature-nonce".into(), opts.nonce),
        ("x-acs-content-sha256".into(), sha256_hex(body)),
        ("user-agent".into(), "fcx-e2e".into()),
    ];
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    for (n, v) in extra {
        headers.push((n.to_ascii_lowercase(), v.to_string()));
    }
    headers.retain(|(n, _)| !opts.omit.contains(&n.as_str()));
    // Canonical headers: every header sent, plus host, lowercased and sorted.
    let mut canon: Vec<(String, String)> = headers.clone();
    canon.push(("host".into(), host));
    canon.sort();
    let signed_names: Vec<&str> = canon.iter().map(|(n, _)| n.as_str()).collect();
    let canonical_headers: String = canon
        .iter()
        .map(|(n, v)| format!("{n}:{}\n", v.trim()))
        .collect();
    // `target`'s query holds plain values; on the wire they go form-encoded (space as '+',
    // as Python's urlencode sends them), in the canonical query RFC 3986-encoded.
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let wire_query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v).replace("%20", "+")))
        .collect::<Vec<_>>()
        .join("&");
    let mut params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let hashed_payload = headers
        .iter()
        .find(|(n, _)| n == "x-acs-content-sha256")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| sha256_hex(body));
    let canonical_request = format!(
        "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{}\n{hashed_payload}",
        signed_names.join(";")
    );
    let string_to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.secret.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    if !opts.omit.contains(&"authorization") {
        headers.push((
            "authorization".into(),
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={signature}",
                key.id,
                signed_names.join(";")
            ),
        ));
    }
    Signed {
        method: method.into(),
        target: if wire_query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{wire_query}")
        },
        headers,
        body: body.to_vec(),
    }
}

impl Signed {
    fn send(&self, server: &Server) -> Response {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        server.request(&self.method, &self.target, &headers, &self.body)
    }

    fn set(mut self, name: &str, value: &str) -> Signed {
        for (n, v) in &mut self.headers {
            if n == name {
                *v = value.into();
            }
        }
        self
    }
}

fn auth_server() -> (Server, Credentials) {
    let server = Server::start_with(Options::with_auth());
    let key = server.credentials.clone().expect("admin credentials");
    (server, key)
}

fn signed_get(server: &Server, key: &Credentials, target: &str) -> Response {
    sign(server, key, "GET", target, &[], b"", SignOptions::default()).send(server)
}

fn assert_fc_error(r: &Response, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["Code"], code, "{body}");
    assert!(body["RequestId"].is_string(), "{body}");
    body["Message"].as_str().unwrap_or_default().to_owned()
}

// ---- the official SDK ----

fn sdk_python() -> PathBuf {
    let python = support::repo_root().join("target/sdk-venv/bin/python");
    assert!(
        python.exists(),
        "the official FC 3.0 Python SDK is not installed: {} is missing. Create it with \
         `bash scripts/test.sh` (it runs: python3 -m venv target/sdk-venv && \
         target/sdk-venv/bin/pip install alibabacloud-fc20230330)",
        python.display()
    );
    python
}

#[test]
fn official_python_sdk_is_accepted() {
    let python = sdk_python();
    let (server, key) = auth_server();
    let zip_dir = tempfile::tempdir().unwrap();
    let zip = zip_dir.path().join("testfn.zip");
    let bin = std::fs::read(support::testfn_bin()).unwrap();
    std::fs::write(
        &zip,
        support::zipper::zip_files(&[("bootstrap", &bin, 0o755)]),
    )
    .unwrap();
    let out = Command::new(python)
        .arg(support::repo_root().join("tests/sdk/fc3_sdk_signed.py"))
        .env("FCX_ENDPOINT", server.addr.to_string())
        .env("FCX_ACCESS_KEY_ID", &key.id)
        .env("FCX_ACCESS_KEY_SECRET", &key.secret)
        .env("FCX_TESTFN_ZIP", &zip)
        // The SDK honours proxy variables; the server is local.
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SDK OK"),
        "the official SDK script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // What the SDK did is really there.
    let r = signed_get(&server, &key, "/2023-03-30/functions/sdk-testfn");
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---- accepted ----

#[test]
fn signed_requests_reach_the_handlers_with_their_bodies() {
    let (server, key) = auth_server();
    let create = support::testfn_function("signed", json!({})).to_string();
    let r = sign(
        &server,
        &key,
        "POST",
        "/2023-03-30/functions",
        &[],
        create.as_bytes(),
        SignOptions::default(),
    )
    .send(&server);
    assert_eq!(r.status, 200, "{}", r.text());

    let r = sign(
        &server,
        &key,
        "POST",
        "/2023-03-30/functions/signed/invocations",
        &[("x-fc-log-type", "Tail")],
        b"echo:signed body",
        SignOptions::default(),
    )
    .send(&server);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "signed body");

    // A query whose values need encoding (space sent as '+', '*', '~', '/').
    let r = signed_get(
        &server,
        &key,
        "/2023-03-30/functions?prefix=sig n*~/&limit=5",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = signed_get(&server, &key, "/2023-03-30/functions?prefix=sig&limit=5");
    assert_eq!(r.json()["functions"][0]["functionName"], "signed");
}

/// The Node SDK sends bodies with `Transfer-Encoding: chunked`: the hash covers the body as
/// reassembled.
#[test]
fn chunked_signed_body_is_accepted() {
    let (server, key) = auth_server();
    let body = support::testfn_function("chunked", json!({})).to_string();
    let signed = sign(
        &server,
        &key,
        "POST",
        "/2023-03-30/functions",
        &[],
        body.as_bytes(),
        SignOptions::default(),
    );
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "POST /2023-03-30/functions HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n",
        server.addr
    );
    for (n, v) in &signed.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    for chunk in body.as_bytes().chunks(4096) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        s.write_all(chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let r = server.request("GET", "/2023-03-30/functions/chunked", &[], b"");
    assert_eq!(r.status, 400, "unsigned requests are refused: {}", r.text());
    let r = signed_get(&server, &key, "/2023-03-30/functions/chunked");
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---- refused ----

#[test]
fn wrong_secret_is_signature_not_match() {
    let (server, key) = auth_server();
    let wrong = Credentials {
        id: key.id.clone(),
        secret: format!("{}x", key.secret),
    };
    let r = signed_get(&server, &wrong, "/2023-03-30/functions");
    let message = assert_fc_error(&r, 403, "SignatureNotMatch");
    assert!(message.contains("signature"), "{message}");
    // fcx shows what it signed, so a client can compare.
    assert!(r.json()["StringToSign"]
        .as_str()
        .unwrap()
        .starts_with("ACS3-HMAC-SHA256\n"));
}

#[test]
fn date_twenty_minutes_old_is_signature_not_match() {
    let (server, key) = auth_server();
    let r = sign(
        &server,
        &key,
        "GET",
        "/2023-03-30/functions",
        &[],
        b"",
        SignOptions {
            date: iso8601(now_secs() - 20 * 60),
            ..SignOptions::default()
        },
    )
    .send(&server);
    let message = assert_fc_error(&r, 403, "SignatureNotMatch");
    assert!(message.contains("more than 15 minutes"), "{message}");
}

#[test]
fn tampered_body_is_signature_not_match() {
    let (server, key) = auth_server();
    let path = "/2023-03-30/functions";
    let signed = sign(
        &server,
        &key,
        "POST",
        path,
        &[],
        support::testfn_function("honest", json!({}))
            .to_string()
            .as_bytes(),
        SignOptions::default(),
    );
    let evil = support::testfn_function("evil", json!({})).to_string();

    // Another body under the signature (and content hash) of the first.
    let mut swapped = signed.clone();
    swapped.body = evil.clone().into_bytes();
    let message = assert_fc_error(&swapped.send(&server), 403, "SignatureNotMatch");
    assert!(message.contains("x-acs-content-sha256"), "{message}");

    // The content hash fixed up to match: the signature no longer does.
    let mut rehashed = signed
        .clone()
        .set("x-acs-content-sha256", &sha256_hex(evil.as_bytes()));
    rehashed.body = evil.into_bytes();
    assert_fc_error(&rehashed.send(&server), 403, "SignatureNotMatch");

    let r = signed_get(&server, &key, "/2023-03-30/functions/evil");
    assert_fc_error(&r, 404, "FunctionNotFound");
}

#[test]
fn missing_signing_headers_are_missing_required_header() {
    let (server, key) = auth_server();
    for (omit, name) in [
        ("x-acs-date", "x-acs-date"),
        ("x-acs-signature-nonce", "x-acs-signature-nonce"),
        ("x-acs-content-sha256", "x-acs-content-sha256"),
        ("authorization", "Authorization"),
    ] {
        let r = sign(
            &server,
            &key,
            "GET",
            "/2023-03-30/functions",
            &[],
            b"",
            SignOptions {
                omit: &[omit],
                ..SignOptions::default()
            },
        )
        .send(&server);
        let message = assert_fc_error(&r, 400, "MissingRequiredHeader");
        assert!(message.contains(name), "{omit}: {message}");
    }
    // Unknown paths and FC 2.0 paths are no way around it (FC 2.0 paths answer in their shape).
    let r = server.request("GET", "/no/such/path", &[], b"");
    assert_fc_error(&r, 400, "MissingRequiredHeader");
    let r = server.request(
        "POST",
        "/2016-08-15/services/s/functions/f/invocations",
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["ErrorCode"], "MissingRequiredHeader");
}

#[test]
fn unknown_key_id_is_invalid_access_key_id() {
    let (server, key) = auth_server();
    let stranger = Credentials {
        id: "FCXNOSUCHKEY".into(),
        secret: key.secret,
    };
    let r = signed_get(&server, &stranger, "/2023-03-30/functions");
    let message = assert_fc_error(&r, 403, "InvalidAccessKeyID");
    assert_eq!(message, "invalid access key ID 'FCXNOSUCHKEY'");
}

#[test]
fn replayed_nonce_is_refused() {
    let (server, key) = auth_server();
    let create = support::testfn_function("once", json!({})).to_string();
    let signed = sign(
        &server,
        &key,
        "POST",
        "/2023-03-30/functions",
        &[],
        create.as_bytes(),
        SignOptions::default(),
    );
    assert_eq!(signed.send(&server).status, 200);
    let message = assert_fc_error(&signed.send(&server), 403, "SignatureNotMatch");
    assert!(message.contains("already used"), "{message}");
    // The same nonce on another, correctly signed request is a replay too.
    let nonce = signed
        .headers
        .iter()
        .find(|(n, _)| n == "x-acs-signature-nonce")
        .unwrap()
        .1
        .clone();
    let r = sign(
        &server,
        &key,
        "GET",
        "/2023-03-30/functions",
        &[],
        b"",
        SignOptions {
            nonce,
            ..SignOptions::default()
        },
    )
    .send(&server);
    assert_fc_error(&r, 403, "SignatureNotMatch");
}

#[test]
fn unsigned_acs_headers_are_refused() {
    let (server, key) = auth_server();
    // Signed, then an x-acs-* header added that the signature does not cover.
    let mut signed = sign(
        &server,
        &key,
        "GET",
        "/2023-03-30/functions",
        &[],
        b"",
        SignOptions::default(),
    );
    signed
        .headers
        .push(("x-acs-security-token".into(), "added later".into()));
    let message = assert_fc_error(&signed.send(&server), 403, "SignatureNotMatch");
    assert!(
        message.contains("'x-acs-security-token' must be signed"),
        "{message}"
    );
}

// ---- keys and modes ----

#[test]
fn keys_cli_creates_keys_the_running_server_accepts() {
    let (server, admin) = auth_server();
    let credentials = server.data_dir.path().join("credentials");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&credentials).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let store = server.store_url().unwrap_or("sqlite").to_owned();
    let out = Command::new(support::fcx_bin())
        .args(["keys", "create", "--description", "ci", "--data-dir"])
        .arg(server.data_dir.path())
        .args(["--store", &store])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(created.path(), &out.stdout).unwrap();
    let new_key = Credentials::read(created.path());
    assert_ne!(new_key.id, admin.id);

    // No restart needed.
    let r = signed_get(&server, &new_key, "/2023-03-30/functions");
    assert_eq!(r.status, 200, "{}", r.text());

    let out = Command::new(support::fcx_bin())
        .args(["keys", "ls", "--data-dir"])
        .arg(server.data_dir.path())
        .args(["--store", &store])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&admin.id) && listed.contains(&new_key.id),
        "{listed}"
    );
    assert!(listed.contains("ci"), "{listed}");
    assert!(!listed.contains(&new_key.secret) && !listed.contains(&admin.secret));
}

#[test]
fn admin_key_is_created_once_and_survives_restarts() {
    let (mut server, key) = auth_server();
    let credentials = server.data_dir.path().join("credentials");
    let before = std::fs::read_to_string(&credentials).unwrap();
    server.crash_and_restart();
    assert_eq!(std::fs::read_to_string(&credentials).unwrap(), before);
    let r = signed_get(&server, &key, "/2023-03-30/functions");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn non_loopback_listen_is_allowed_with_signatures() {
    let server = Server::start_with(Options {
        listen: "0.0.0.0:0".into(),
        ..Options::with_auth()
    });
    assert!(server.addr.ip().is_unspecified(), "{}", server.addr);
    let r = server.request("GET", "/2023-03-30/functions", &[], b"");
    assert_fc_error(&r, 400, "MissingRequiredHeader");
}

/// Issue 13: the nonce cache was in memory only, so a signed DELETE replayed after a server
/// restart deleted the function again (204). The nonces now outlive the server: the replay
/// after a `kill -9` and restart on the same address is refused, and the function stays.
#[test]
fn signed_request_replayed_after_a_restart_is_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = Options::with_auth();
    options.listen = format!("127.0.0.1:{port}");
    let mut server = Server::start_with(options);
    let key = server.credentials.clone().expect("admin credentials");
    let create = support::testfn_function("victim", json!({})).to_string();
    let create_signed = |server: &Server| {
        sign(
            server,
            &key,
            "POST",
            "/2023-03-30/functions",
            &[],
            create.as_bytes(),
            SignOptions::default(),
        )
    };
    assert_eq!(create_signed(&server).send(&server).status, 200);
    let delete = sign(
        &server,
        &key,
        "DELETE",
        "/2023-03-30/functions/victim",
        &[],
        b"",
        SignOptions::default(),
    );
    assert_eq!(delete.send(&server).status, 204);
    assert_eq!(create_signed(&server).send(&server).status, 200);

    server.crash_and_restart();
    assert_eq!(server.addr.port(), port);
    let replay = delete.send(&server);
    println!(
        "DELETE replayed after a restart: {} {}",
        replay.status,
        replay.text()
    );
    let message = assert_fc_error(&replay, 403, "SignatureNotMatch");
    assert!(message.contains("already used"), "{message}");
    let r = signed_get(&server, &key, "/2023-03-30/functions/victim");
    assert_eq!(
        r.status,
        200,
        "the replay deleted the function: {}",
        r.text()
    );
}
