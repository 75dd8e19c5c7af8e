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

/// `--instance-uids` replaced `--instance-user` (issue 13): a range must be well formed and
/// hold no user of the host.
#[test]
fn bad_instance_uid_ranges_are_refused() {
    for (range, expected) in [
        ("100-50", "must be ascending"),
        ("lots", "is not a uid range"),
        ("0-10", "exclude root"),
        ("1-100", "holds uid"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let out = Command::new(support::fcx_bin())
            .args(["server", "--auth", "none", "--listen", "127.0.0.1:0"])
            .args(["--instance-uids", range])
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{range} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{range}: {err}");
    }
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
