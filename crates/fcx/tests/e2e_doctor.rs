//! `fcx doctor`, the real binary on this host: every check listed, exit 0 when the host is set
//! up (scripts/setup.sh), exit 1 naming the missing runtime and its install command otherwise.
//! The hybrid-cgroup check is covered by fcx-runtime's unit tests on sample mountinfo: the
//! real fix stays mounted here.

mod support;

use std::process::{Command, Output};

const CHECKS: [&str; 13] = [
    "root",
    "oci runtime",
    "cgroups",
    "cgroup controllers",
    "cgroup delegation",
    "locked memory",
    "overlayfs",
    "network namespaces",
    "pasta",
    "egress mode",
    "nftables",
    "veth",
    "ip forwarding",
];

/// Runs `fcx doctor ARGS` with its data dir in a fresh temp dir.
fn doctor(args: &[&str]) -> (Output, String) {
    let data = std::env::temp_dir().join(format!("fcx-doctor-{}", uuid::Uuid::new_v4()));
    let out = Command::new(support::fcx_bin())
        .arg("doctor")
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .env_remove("FCX_DATA_DIR")
        .env_remove("FCX_OCI_RUNTIME")
        .output()
        .expect("running fcx doctor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The data dir does not exist, so the overlay probe ran in its parent and made nothing.
    assert!(!data.exists(), "fcx doctor created {}", data.display());
    (out, text)
}

/// The status word of check `name` in doctor's output (`OK`, `WARN` or `FAIL`).
fn status_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let line = line.trim_start();
        let (status, rest) = line.split_once(' ')?;
        let rest = rest.trim_start();
        (rest.starts_with(name) && rest[name.len()..].starts_with("  ")).then_some(status)
    })
}

#[test]
fn doctor_passes_on_this_host_and_lists_every_check() {
    let (out, text) = doctor(&[]);
    for name in CHECKS {
        assert!(
            status_of(&text, name).is_some(),
            "`fcx doctor` does not list the {name} check:\n{text}"
        );
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "`fcx doctor` fails on this host; run `sudo scripts/setup.sh` (it installs crun and \
         passt and fixes hybrid cgroups), then `fcx doctor` again:\n{text}"
    );
    for name in CHECKS {
        assert_ne!(status_of(&text, name), Some("FAIL"), "{text}");
    }
    assert!(text.contains("All checks passed"), "{text}");
}

#[test]
fn doctor_names_a_missing_runtime_and_what_to_install() {
    let (out, text) = doctor(&["--runtime", "/nonexistent/rt"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(status_of(&text, "oci runtime"), Some("FAIL"), "{text}");
    assert!(text.contains("/nonexistent/rt not found"), "{text}");
    assert!(
        text.contains("fix: ") && text.contains("apt-get install -y crun"),
        "{text}"
    );
    assert!(text.contains("check failed"), "{text}");
}

#[test]
fn doctor_fix_reports_what_it_did_and_checks_again() {
    // On a host already fixed (or not hybrid) --fix has nothing to do and must say so.
    let (out, text) = doctor(&["--fix"]);
    assert!(text.contains("--fix: "), "{text}");
    for name in CHECKS {
        assert!(status_of(&text, name).is_some(), "{text}");
    }
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn doctor_help_has_an_example() {
    let out = Command::new(support::fcx_bin())
        .args(["doctor", "--help"])
        .output()
        .expect("running fcx doctor --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--runtime <RUNTIME>"), "{help}");
    assert!(help.contains("sudo fcx doctor --fix"), "{help}");
}
