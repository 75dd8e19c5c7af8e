//! `fcx server` refuses unsafe or impossible configurations with a clear message.

mod support;

use std::process::Command;

#[test]
fn non_loopback_listen_is_refused_without_authentication() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(support::fcx_bin())
        .args([
            "server",
            "--auth",
            "none",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 with --auth none"),
        "{err}"
    );
    assert!(err.contains("--auth signature"), "{err}");
}

#[test]
fn insecure_listen_flag_is_gone() {
    let out = Command::new(support::fcx_bin())
        .args(["server", "--insecure-listen", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure-listen"), "{err}");
}

#[test]
fn unknown_instance_user_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(support::fcx_bin())
        .args([
            "server",
            "--auth",
            "none",
            "--listen",
            "127.0.0.1:0",
            "--instance-user",
            "no-such-user-fcx",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no user named 'no-such-user-fcx'"), "{err}");
}

#[test]
fn help_teaches_with_examples() {
    let out = Command::new(support::fcx_bin())
        .args(["server", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--start-timeout"), "{text}");
    assert!(text.contains("Examples:"), "{text}");
}
