//! The client commands (`fcx deploy`, `invoke`, `ls`, ...) run as a user runs them: the real
//! `fcx` binary as a subprocess against a real server.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use support::{Options, Server};

/// Runs `fcx ARGS` against `server` (unsigned unless `args` say otherwise).
fn fcx(server: &Server, args: &[&str]) -> Output {
    Command::new(support::fcx_bin())
        .args(args)
        .env("FCX_ENDPOINT", format!("http://{}", server.addr))
        .env_remove("FCX_ACCESS_KEY_ID")
        .env_remove("FCX_ACCESS_KEY_SECRET")
        .env("FCX_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run fcx")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// A code dir holding the test function as `bootstrap`.
fn testfn_code_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let dest = dir.join("bootstrap");
    std::fs::copy(support::testfn_bin(), &dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn deploy_sample_s_yaml_then_invoke_the_express_function() {
    let express = support::repo_root().join("examples/express-event");
    assert!(
        express.join("node_modules/express").is_dir(),
        "examples/express-event/node_modules is missing: run scripts/setup.sh (or `npm ci` in examples/express-event)"
    );
    let server = Server::start();
    let s_yaml = support::repo_root().join("examples/sdeploy/s.yaml");
    let deployed = fcx(&server, &["deploy", "-f", s_yaml.to_str().unwrap()]);
    assert_eq!(deployed.status.code(), Some(0), "{}", describe(&deployed));
    let err = text(&deployed.stderr);
    assert!(err.contains("region cn-hangzhou ignored"), "{err}");

    let r = fcx(
        &server,
        &["invoke", "express-event", "--event", r#"{"k":1}"#, "--tail"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", describe(&r));
    assert_eq!(text(&r.stdout), "Hello FunctionCompute, event function\n");
    let log = text(&r.stderr);
    assert!(log.contains("FC Initialize Start RequestId: "), "{log}");
    assert!(log.contains("{ k: 1 }"), "{log}");

    // Deploying again updates the function in place.
    let again = fcx(&server, &["deploy", "-f", s_yaml.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(
        text(&again.stdout).contains("updated"),
        "{}",
        describe(&again)
    );

    // Versions and aliases.
    let p = fcx(&server, &["versions", "publish", "express-event"]);
    assert_eq!(p.status.code(), Some(0), "{}", describe(&p));
    let a = fcx(&server, &["alias", "set", "express-event", "prod", "1"]);
    assert_eq!(a.status.code(), Some(0), "{}", describe(&a));
    let r = fcx(
        &server,
        &[
            "invoke",
            "express-event",
            "--qualifier",
            "prod",
            "--event",
            "{}",
        ],
    );
    assert_eq!(r.status.code(), Some(0), "{}", describe(&r));
    assert_eq!(text(&r.stdout), "Hello FunctionCompute, event function\n");
    let ls = fcx(
        &server,
        &["alias", "ls", "express-event", "--output", "json"],
    );
    let aliases: Value = serde_json::from_slice(&ls.stdout).expect("alias ls json");
    assert_eq!(aliases[0]["aliasName"], "prod", "{aliases}");
}

#[test]
fn deploy_lists_unsupported_keys_and_substitutes_variables() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    testfn_code_dir(&dir.path().join("code"));
    std::fs::write(
        dir.path().join("s.yaml"),
        r#"
edition: 3.0.0
name: t
flavour: odd
vars:
  fn: from-vars
resources:
  f:
    component: fc3
    props:
      functionName: ${vars.fn}
      runtime: custom.debian12
      handler: index.handler
      code: ./code
      customRuntimeConfig: { command: [./bootstrap], port: 9000 }
      environmentVariables:
        GREETING: "${env(FCX_TEST_GREETING)}"
      fooBar: 1
      asyncInvokeConfig: { maxAsyncRetryAttempts: 1 }
      triggers:
        - triggerName: t1
          triggerType: http
          triggerConfig: { authType: anonymous, methods: [GET, POST] }
          colour: blue
  d:
    component: fc3-domain
    props: { domainName: example.com }
"#,
    )
    .unwrap();
    let out = Command::new(support::fcx_bin())
        .args(["deploy", "-f"])
        .arg(dir.path().join("s.yaml"))
        .env("FCX_ENDPOINT", format!("http://{}", server.addr))
        .env("FCX_TEST_GREETING", "hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = text(&out.stderr);
    for word in [
        "fooBar",
        "asyncInvokeConfig",
        "flavour",
        "colour",
        "fc3-domain",
    ] {
        assert!(err.contains(word), "warning should name {word}: {err}");
    }
    assert!(err.contains("warning:"), "{err}");
    let get = fcx(&server, &["get", "from-vars", "--output", "json"]);
    let f: Value = serde_json::from_slice(&get.stdout).expect("get json");
    assert_eq!(f["environmentVariables"]["GREETING"], "hi", "{f}");
    let r = fcx(&server, &["invoke", "from-vars", "--event", "echo:ok"]);
    assert_eq!(r.status.code(), Some(0), "{}", describe(&r));

    // ls --output json is JSON; rm removes.
    let ls = fcx(&server, &["ls", "--output", "json"]);
    let list: Value = serde_json::from_slice(&ls.stdout).expect("ls --output json parses");
    assert_eq!(list[0]["functionName"], "from-vars", "{list}");
    let rm = fcx(&server, &["rm", "from-vars"]);
    assert_eq!(rm.status.code(), Some(0), "{}", describe(&rm));
    let ls = fcx(&server, &["ls", "--output", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&ls.stdout).unwrap(),
        json!([])
    );

    // A missing env variable is an error, not an empty string.
    let out = Command::new(support::fcx_bin())
        .args(["deploy", "-f"])
        .arg(dir.path().join("s.yaml"))
        .env("FCX_ENDPOINT", format!("http://{}", server.addr))
        .env_remove("FCX_TEST_GREETING")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("FCX_TEST_GREETING"),
        "{}",
        describe(&out)
    );
}

#[test]
fn invoke_of_a_failing_function_exits_4() {
    let server = Server::start();
    let mut f = support::testfn_function("slow", json!({}));
    f["timeout"] = json!(1);
    server.create_function(f);
    let r = fcx(&server, &["invoke", "slow", "--event", "sleep:3000"]);
    assert_eq!(r.status.code(), Some(4), "{}", describe(&r));
    assert!(
        text(&r.stdout).contains("FunctionTimeout"),
        "{}",
        describe(&r)
    );

    let missing = fcx(&server, &["invoke", "nope", "--event", "{}"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    let err = text(&missing.stderr);
    assert!(err.starts_with("error: FunctionNotFound: "), "{err}");
    assert!(err.contains("(request "), "{err}");

    let usage = fcx(&server, &["invoke"]);
    assert_eq!(usage.status.code(), Some(2), "{}", describe(&usage));
}

#[test]
fn signed_requests_with_credentials_and_wrong_secret_exits_3() {
    let server = Server::start_with(Options::with_auth());
    let creds_file = server.data_dir.path().join("credentials");
    let creds = server.credentials.clone().expect("credentials");
    let dir = tempfile::tempdir().unwrap();
    testfn_code_dir(&dir.path().join("code"));
    let s_yaml = dir.path().join("s.yaml");
    std::fs::write(
        &s_yaml,
        r#"
edition: 3.0.0
resources:
  f:
    component: fc3
    props:
      functionName: signed
      runtime: custom.debian12
      handler: index.handler
      code: ./code
      customRuntimeConfig: { command: [./bootstrap], port: 9000 }
"#,
    )
    .unwrap();
    let d = fcx(
        &server,
        &[
            "--credentials",
            creds_file.to_str().unwrap(),
            "deploy",
            "-f",
            s_yaml.to_str().unwrap(),
        ],
    );
    assert_eq!(d.status.code(), Some(0), "{}", describe(&d));
    let ls = fcx(
        &server,
        &[
            "--credentials",
            creds_file.to_str().unwrap(),
            "ls",
            "--output",
            "json",
        ],
    );
    assert_eq!(ls.status.code(), Some(0), "{}", describe(&ls));
    let list: Value = serde_json::from_slice(&ls.stdout).expect("ls json");
    assert_eq!(list[0]["functionName"], "signed", "{list}");
    let r = fcx(
        &server,
        &[
            "invoke",
            "signed",
            "--event",
            "echo:signed",
            "--access-key-id",
            &creds.id,
            "--access-key-secret",
            &creds.secret,
        ],
    );
    assert_eq!(r.status.code(), Some(0), "{}", describe(&r));

    let wrong = fcx(
        &server,
        &[
            "ls",
            "--access-key-id",
            &creds.id,
            "--access-key-secret",
            "not-the-secret",
        ],
    );
    assert_eq!(wrong.status.code(), Some(3), "{}", describe(&wrong));
    assert!(
        text(&wrong.stderr).starts_with("error: "),
        "{}",
        describe(&wrong)
    );
    let unsigned = fcx(&server, &["ls"]);
    assert_eq!(unsigned.status.code(), Some(3), "{}", describe(&unsigned));
}

#[test]
fn invoke_reads_stdin_and_async_prints_the_request_id() {
    use std::io::Write;
    let server = Server::start();
    server.create_function(support::testfn_function("echo", json!({})));
    let mut child = Command::new(support::fcx_bin())
        .args(["invoke", "echo"])
        .env("FCX_ENDPOINT", format!("http://{}", server.addr))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo:from-stdin")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("from-stdin"),
        "{}",
        describe(&out)
    );

    let a = fcx(
        &server,
        &[
            "invoke", "echo", "--event", "echo:x", "--async", "--output", "json",
        ],
    );
    assert_eq!(a.status.code(), Some(0), "{}", describe(&a));
    let v: Value = serde_json::from_slice(&a.stdout).expect("async json");
    assert!(!v["requestId"].as_str().unwrap_or("").is_empty(), "{v}");

    // Aliases with an additional version weight.
    for _ in 0..2 {
        let p = fcx(&server, &["versions", "publish", "echo"]);
        assert_eq!(p.status.code(), Some(0), "{}", describe(&p));
    }
    let vs = fcx(&server, &["versions", "echo", "--output", "json"]);
    let versions: Value = serde_json::from_slice(&vs.stdout).expect("versions json");
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    let s = fcx(
        &server,
        &["alias", "set", "echo", "live", "1", "--weight", "2=0.2"],
    );
    assert_eq!(s.status.code(), Some(0), "{}", describe(&s));
    let ls = fcx(&server, &["alias", "ls", "echo", "--output", "json"]);
    let aliases: Value = serde_json::from_slice(&ls.stdout).expect("alias json");
    assert_eq!(
        aliases[0]["additionalVersionWeight"]["2"],
        json!(0.2),
        "{aliases}"
    );
    let s = fcx(&server, &["alias", "set", "echo", "live", "2"]);
    assert_eq!(s.status.code(), Some(0), "{}", describe(&s));
    let rm = fcx(&server, &["alias", "rm", "echo", "live"]);
    assert_eq!(rm.status.code(), Some(0), "{}", describe(&rm));
}
