//! `fcx image` end to end: the real `fcx` binary against a real `docker-registry` on
//! loopback and a temporary data dir. Pull (progress lines on stderr, digest on stdout),
//! ls (table and JSON), a second pull that finds the image unchanged, rm, import of an OCI
//! layout and of a `docker save` archive, registry auth and a missing tag.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fcx_image::build::ImageBuilder;
use fcx_image::RegistryOptions;
use fcx_testkit::images::busybox_event_image;
use fcx_testkit::registry::TestRegistry;
use serde_json::Value;

/// An `fcx image` run that has not finished by then is killed and fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(120);

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `fcx image <args> --data-dir <data>` with `stdin` piped in; output goes to files
/// (no pipe to fill up) and the wait is bounded.
fn fcx_image(data: &Path, args: &[&str], stdin: &str) -> Run {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fcx"))
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("FCX_REGISTRY_USERNAME")
        .env_remove("FCX_REGISTRY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("run fcx");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for fcx") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fcx image {args:?} still running after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        ok: status.success(),
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// Pushes `image` to `reference` and returns its manifest digest.
fn push(registry: &TestRegistry, reference: &str, image: &ImageBuilder) -> String {
    let opts = RegistryOptions {
        credentials: registry.credentials(),
        ..RegistryOptions::default()
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(image.push(reference, &opts))
        .unwrap_or_else(|e| panic!("pushing {reference}: {e}"))
}

fn ls_json(data: &Path) -> Vec<Value> {
    let run = fcx_image(data, &["ls", "--output", "json"], "");
    assert!(run.ok, "{run:?}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    v.as_array().cloned().unwrap_or_default()
}

#[test]
fn pull_shows_progress_lists_repulls_unchanged_and_removes() {
    let registry = TestRegistry::start();
    let reference = format!("{}/busybox-event:v1", registry.addr());
    let image = busybox_event_image().expect("busybox image");
    let digest = push(&registry, &reference, &image);
    let data = tempfile::tempdir().expect("data dir");

    let pull = fcx_image(data.path(), &["pull", &reference], "");
    assert!(pull.ok, "{pull:?}");
    assert_eq!(pull.stdout.trim(), digest, "{pull:?}");
    let short = &digest[..7 + 12];
    for line in [
        format!("pulling {reference}: 2 layers, "),
        "layer sha256:".to_string(),
        "unpacking sha256:".to_string(),
        format!("done {digest}"),
    ] {
        assert!(pull.stderr.contains(&line), "no {line:?} in {pull:?}");
    }
    assert!(
        pull.stderr
            .lines()
            .any(|l| l.starts_with("layer ") && l.contains(" done (")),
        "{pull:?}"
    );

    let ls = fcx_image(data.path(), &["ls"], "");
    assert!(ls.ok, "{ls:?}");
    let mut lines = ls.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        ["REFERENCE", "DIGEST", "SIZE", "AGE"]
            .iter()
            .all(|c| header.contains(c)),
        "{ls:?}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with(&reference) && row.contains(short), "{ls:?}");
    assert!(row.contains(" kB") || row.contains(" MB"), "{ls:?}");

    let listed = ls_json(data.path());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["digest"], digest.as_str());
    assert_eq!(listed[0]["references"], serde_json::json!([reference]));
    assert!(listed[0]["size"].as_u64().unwrap_or(0) > 0, "{listed:?}");

    // The tag is resolved again; the digest is unchanged, so nothing is downloaded.
    let again = fcx_image(data.path(), &["pull", &reference], "");
    assert!(again.ok, "{again:?}");
    assert_eq!(again.stdout.trim(), digest);
    assert!(
        again.stderr.contains("unchanged, already in the cache"),
        "{again:?}"
    );
    assert!(!again.stderr.contains("layer sha256:"), "{again:?}");

    let rm = fcx_image(data.path(), &["rm", &reference], "");
    assert!(rm.ok, "{rm:?}");
    assert!(
        rm.stdout.contains(&format!("deleted image {digest}")),
        "{rm:?}"
    );
    assert!(ls_json(data.path()).is_empty());

    let rm_again = fcx_image(data.path(), &["rm", &reference], "");
    assert_eq!(rm_again.code, Some(1), "{rm_again:?}");
    assert!(rm_again.stderr.contains("not in the cache"), "{rm_again:?}");

    let missing = format!("{}/busybox-event:nope", registry.addr());
    let pull_missing = fcx_image(data.path(), &["pull", &missing], "");
    assert_eq!(pull_missing.code, Some(1), "{pull_missing:?}");
    assert!(
        pull_missing.stderr.contains(&format!(
            "image {missing} not found in its registry: check the repository name and tag"
        )),
        "{pull_missing:?}"
    );
    assert!(pull_missing.stdout.is_empty(), "{pull_missing:?}");
}

#[test]
fn import_reads_an_oci_layout_and_a_docker_archive() {
    let image = busybox_event_image().expect("busybox image");
    let files = tempfile::tempdir().expect("temp dir");
    let layout = files.path().join("layout");
    let layout_name = "registry.example/demo/layout:v1";
    let layout_digest = image
        .write_oci_layout(&layout, layout_name)
        .expect("write layout");
    let archive = files.path().join("app.tar");
    let archive_digest = image
        .write_docker_archive(&archive, "demo/app:v2")
        .expect("write archive");
    let data = tempfile::tempdir().expect("data dir");

    let from_layout = fcx_image(data.path(), &["import", &layout.to_string_lossy()], "");
    assert!(from_layout.ok, "{from_layout:?}");
    assert_eq!(
        from_layout.stdout.trim(),
        format!("{layout_name} {layout_digest}"),
        "{from_layout:?}"
    );
    assert!(
        from_layout
            .stderr
            .contains(&format!("importing {layout_name}: 2 layers")),
        "{from_layout:?}"
    );

    let from_archive = fcx_image(data.path(), &["import", &archive.to_string_lossy()], "");
    assert!(from_archive.ok, "{from_archive:?}");
    assert_eq!(
        from_archive.stdout.trim(),
        format!("docker.io/demo/app:v2 {archive_digest}"),
        "{from_archive:?}"
    );

    let listed = ls_json(data.path());
    let digests: Vec<&str> = listed.iter().filter_map(|i| i["digest"].as_str()).collect();
    assert!(digests.contains(&layout_digest.as_str()), "{listed:?}");
    assert!(digests.contains(&archive_digest.as_str()), "{listed:?}");

    let again = fcx_image(data.path(), &["import", &archive.to_string_lossy()], "");
    assert!(again.ok, "{again:?}");
    assert!(
        again.stderr.contains("unchanged, already in the cache"),
        "{again:?}"
    );

    let not_an_image = fcx_image(data.path(), &["import", &data.path().to_string_lossy()], "");
    assert_eq!(not_an_image.code, Some(1), "{not_an_image:?}");
    assert!(
        not_an_image.stderr.starts_with("error: "),
        "{not_an_image:?}"
    );
}

#[test]
fn pull_from_a_private_registry_needs_its_account() {
    let registry = TestRegistry::start_with_auth("fcx", "s3cret");
    let reference = format!("{}/private/busybox:v1", registry.addr());
    let digest = push(
        &registry,
        &reference,
        &busybox_event_image().expect("image"),
    );
    let data = tempfile::tempdir().expect("data dir");

    let anonymous = fcx_image(data.path(), &["pull", &reference], "");
    assert_eq!(anonymous.code, Some(1), "{anonymous:?}");
    assert!(
        anonymous
            .stderr
            .contains(&format!("access to image {reference} denied")),
        "{anonymous:?}"
    );
    assert!(anonymous.stderr.contains("--username"), "{anonymous:?}");

    let wrong = fcx_image(
        data.path(),
        &[
            "pull",
            &reference,
            "--username",
            "fcx",
            "--password",
            "nope",
        ],
        "",
    );
    assert_eq!(wrong.code, Some(1), "{wrong:?}");
    assert!(wrong.stderr.contains("denied"), "{wrong:?}");

    let with_flags = fcx_image(
        data.path(),
        &[
            "pull",
            &reference,
            "--username",
            "fcx",
            "--password",
            "s3cret",
        ],
        "",
    );
    assert!(with_flags.ok, "{with_flags:?}");
    assert_eq!(with_flags.stdout.trim(), digest);

    let from_stdin = fcx_image(
        data.path(),
        &["pull", &reference, "--username", "fcx", "--password-stdin"],
        "s3cret\n",
    );
    assert!(from_stdin.ok, "{from_stdin:?}");
    assert_eq!(from_stdin.stdout.trim(), digest);
}
