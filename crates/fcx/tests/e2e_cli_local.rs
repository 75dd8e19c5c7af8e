//! `fcx local invoke` (no server needed) and `fcx logs` (with the server's logs API).

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::procs::eventually;
use support::Server;

#[test]
fn local_invoke_runs_the_seed_express_folder_and_prints_its_output() {
    let dir = support::repo_root().join("examples/express-event");
    assert!(
        dir.join("node_modules/express").is_dir(),
        "examples/express-event/node_modules is missing: run `npm ci` there (scripts/setup.sh does)"
    );
    let out = Command::new(support::fcx_bin())
        .args(["local", "invoke", "--code"])
        .arg(&dir)
        .args([
            "--initializer",
            "--event",
            r#"{"k":1}"#,
            "--",
            "node",
            "server.js",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello FunctionCompute, event function\n"
    );
}

#[test]
fn local_invoke_runs_the_seed_python_folder_in_non_web_server_mode() {
    let out = Command::new(support::fcx_bin())
        .args(["local", "invoke", "--code"])
        .arg(support::repo_root().join("examples/python-event"))
        .args([
            "--non-web-server",
            "--event",
            "hi",
            "--",
            "python3",
            "main.py",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello serverless image\nFC event is: hi\n"
    );
}

#[test]
fn local_invoke_without_a_command_is_a_clear_error() {
    let out = Command::new(support::fcx_bin())
        .args(["local", "invoke", "--code", "."])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("after `--`"));
}

#[test]
fn logs_show_a_request_between_its_markers_and_follow_new_lines() {
    let server = Server::start();
    server.create_function(support::testfn_function("chatty", json!({})));
    let r = server.invoke("chatty", b"log:first line from the function");
    let rid = r.header("x-fc-request-id").unwrap().to_owned();
    server.invoke("chatty", b"log:second request");

    let fcx = |args: &[&str]| {
        Command::new(support::fcx_bin())
            .args(["--endpoint", &server.url("")])
            .args(args)
            .output()
            .unwrap()
    };
    let mut text = String::new();
    // The end marker reaches the file within the server's flush interval.
    let complete = eventually(Duration::from_secs(10), || {
        let out = fcx(&["logs", "chatty", "--request-id", &rid]);
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(&format!("FC Invoke End RequestId: {rid}"))
    });
    assert!(complete, "{text}");
    assert!(
        text.contains(&format!("FC Invoke Start RequestId: {rid}")),
        "{text}"
    );
    assert!(text.contains("first line from the function"), "{text}");
    assert!(
        !text.contains("second request"),
        "another request's lines leaked in:\n{text}"
    );

    // The API's token returns only what was written after it.
    let first = server
        .request("GET", "/2023-03-30/functions/chatty/logs", &[], b"")
        .json();
    assert!(first["lines"].as_array().unwrap().len() >= 4, "{first}");
    let token = first["nextToken"].as_str().unwrap().to_owned();
    server.invoke("chatty", b"log:third request");
    let mut newer = json!(null);
    assert!(eventually(Duration::from_secs(10), || {
        newer = server
            .request(
                "GET",
                &format!("/2023-03-30/functions/chatty/logs?since={token}"),
                &[],
                b"",
            )
            .json();
        newer["lines"].to_string().contains("FC Invoke End")
    }));
    let lines = newer["lines"].to_string();
    assert!(lines.contains("third request"), "{newer}");
    assert!(!lines.contains("first line"), "{newer}");

    let bad = server.request(
        "GET",
        "/2023-03-30/functions/chatty/logs?since=garbage",
        &[],
        b"",
    );
    assert_eq!(bad.status, 400);
    let nofn = server.request("GET", "/2023-03-30/functions/none/logs", &[], b"");
    assert_eq!(nofn.status, 404);
}

#[test]
fn readme_shows_the_current_help_of_every_command() {
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).unwrap();
    for cmd in [
        "",
        "server",
        "keys create",
        "store migrate",
        "doctor",
        "image",
        "image pull",
        "image import",
        "image ls",
        "image rm",
        "invoke",
        "ls",
        "get",
        "rm",
        "versions",
        "alias",
        "deploy",
        "logs",
        "triggers ls",
        "local invoke",
    ] {
        let out = Command::new(support::fcx_bin())
            .args(cmd.split_whitespace())
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            readme.contains(help.trim_end()),
            "README.md lacks the current `fcx {cmd} --help`; regenerate that section"
        );
    }
}
