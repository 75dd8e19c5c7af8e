//! Pulls against a real `docker-registry` on loopback (fcx-testkit's TestRegistry): push and
//! ensure, the cache serving later calls without unpacking, single flight, auth and error
//! kinds, and platform selection from indexes.

use fcx_image::{
    push_index, ImageBuilder, ImageError, ImageStore, Layer, Progress, RegistryOptions,
};
use fcx_testkit::registry::TestRegistry;
use std::sync::{Arc, Mutex};

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    (dir, store)
}

fn image(marker: &str) -> ImageBuilder {
    ImageBuilder::new()
        .cmd(&["/bin/app"])
        .layer(Layer::new().file("bin/app", marker, 0o755))
        .layer(Layer::new().file("etc/marker", marker, 0o644))
}

fn anon() -> RegistryOptions {
    RegistryOptions::default()
}

#[tokio::test]
async fn push_then_ensure_is_cached_and_never_unpacked_again() {
    let reg = TestRegistry::start();
    let reference = format!("{}/team/app:v1", reg.addr());
    let pushed = image("v1").push(&reference, &anon()).await.unwrap();

    let (_d, store) = store();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = move |p: &Progress| sink.lock().unwrap().push(p.clone());
    let img = store
        .ensure(&reference, &anon(), Some(&progress))
        .await
        .unwrap();
    assert_eq!(img.digest, pushed);
    assert_eq!(
        std::fs::read_to_string(img.rootfs.join("etc/marker")).unwrap(),
        "v1"
    );
    assert_eq!(img.config.cmd, vec!["/bin/app"]);
    assert_eq!(store.unpacks(), 1);
    {
        let ev = events.lock().unwrap();
        assert!(
            matches!(&ev[0], Progress::Resolved { layers: 2, digest, .. } if *digest == pushed)
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Progress::Unpacking { .. }))
                .count(),
            2
        );
        assert!(ev.iter().any(|e| matches!(e, Progress::Layer { done_bytes, total_bytes, .. } if done_bytes == total_bytes)));
    }

    // Registry gone: the cache must answer without network I/O, by tag and by digest.
    let by_digest = format!("{}/team/app@{pushed}", reg.addr());
    drop(reg);
    events.lock().unwrap().clear();
    let again = store
        .ensure(&reference, &anon(), Some(&progress))
        .await
        .unwrap();
    assert_eq!(again, img);
    assert_eq!(store.ensure(&by_digest, &anon(), None).await.unwrap(), img);
    assert_eq!(store.unpacks(), 1);
    assert_eq!(
        events.lock().unwrap()[0],
        Progress::Cached {
            digest: pushed.clone()
        }
    );
    // A second store on the same root (another fcx process) sees the cache too.
    let other = ImageStore::open(store.root()).unwrap();
    assert_eq!(other.ensure(&reference, &anon(), None).await.unwrap(), img);
    assert_eq!(other.unpacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensures_share_one_pull() {
    let reg = TestRegistry::start();
    let reference = format!("{}/team/app:v1", reg.addr());
    image("v1").push(&reference, &anon()).await.unwrap();
    let (_d, store) = store();
    let store = Arc::new(store);
    let resolved = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let call = || {
        let store = store.clone();
        let reference = reference.clone();
        let resolved = resolved.clone();
        tokio::spawn(async move {
            let progress = move |p: &Progress| {
                if matches!(p, Progress::Resolved { .. }) {
                    resolved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            };
            store.ensure(&reference, &anon(), Some(&progress)).await
        })
    };
    let (a, b, c, d) = tokio::join!(call(), call(), call(), call());
    let digests: Vec<String> = [a, b, c, d]
        .into_iter()
        .map(|r| r.unwrap().unwrap().digest)
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    // One registry resolution and one unpack for all four callers.
    assert_eq!(resolved.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(store.unpacks(), 1);
}

#[tokio::test]
async fn pull_re_resolves_the_tag_ensure_does_not() {
    let reg = TestRegistry::start();
    let reference = format!("{}/team/app:latest", reg.addr());
    let v1 = image("v1").push(&reference, &anon()).await.unwrap();
    let (_d, store) = store();
    assert_eq!(
        store
            .ensure(&reference, &anon(), None)
            .await
            .unwrap()
            .digest,
        v1
    );
    let v2 = image("v2").push(&reference, &anon()).await.unwrap();
    assert_eq!(
        store
            .ensure(&reference, &anon(), None)
            .await
            .unwrap()
            .digest,
        v1
    );
    let pulled = store.pull(&reference, &anon(), None).await.unwrap();
    assert_eq!(pulled.digest, v2);
    assert_eq!(
        std::fs::read_to_string(pulled.rootfs.join("etc/marker")).unwrap(),
        "v2"
    );
    assert_eq!(
        store
            .ensure(&reference, &anon(), None)
            .await
            .unwrap()
            .digest,
        v2
    );
    // Same digest again: resolved, not unpacked.
    store.pull(&reference, &anon(), None).await.unwrap();
    assert_eq!(store.unpacks(), 2);
    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
}

#[tokio::test]
async fn credentials_missing_wrong_and_right() {
    let reg = TestRegistry::start_with_auth("alice", "s3cret");
    let reference = format!("{}/private/app:v1", reg.addr());
    let good = RegistryOptions {
        credentials: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    };
    let bad = RegistryOptions {
        credentials: Some(("alice".into(), "nope".into())),
        ..Default::default()
    };
    assert!(matches!(
        image("p").push(&reference, &anon()).await,
        Err(ImageError::Unauthorized { .. })
    ));
    let pushed = image("p").push(&reference, &good).await.unwrap();
    let (_d, store) = store();
    for opts in [anon(), bad] {
        let err = store.ensure(&reference, &opts, None).await.unwrap_err();
        assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    }
    assert_eq!(
        store.ensure(&reference, &good, None).await.unwrap().digest,
        pushed
    );
}

#[tokio::test]
async fn a_cached_private_image_is_served_only_to_credentials_the_registry_accepts() {
    let reg = TestRegistry::start_with_auth("alice", "s3cret");
    let reference = format!("{}/private/cached:v1", reg.addr());
    let good = RegistryOptions {
        credentials: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    };
    let bad = RegistryOptions {
        credentials: Some(("alice".into(), "nope".into())),
        ..Default::default()
    };
    let pushed = image("c").push(&reference, &good).await.unwrap();
    let (dir, store) = store();
    assert_eq!(
        store.ensure(&reference, &good, None).await.unwrap().digest,
        pushed
    );
    // The image is in the cache now; other credentials still have to pass the registry,
    // in this process and after a restart (a fresh store on the same directory).
    for store in [store, ImageStore::open(dir.path().join("images")).unwrap()] {
        let unpacks = store.unpacks();
        for opts in [anon(), bad.clone()] {
            let err = store.ensure(&reference, &opts, None).await.unwrap_err();
            assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
        }
        assert_eq!(
            store.ensure(&reference, &good, None).await.unwrap().digest,
            pushed
        );
        assert_eq!(
            store.unpacks(),
            unpacks,
            "a cache hit is never unpacked again"
        );
    }

    // A name an import wrote has no registry behind it: served without asking, even when
    // the name's registry (this one) would refuse anonymous reads.
    let layout = tempfile::tempdir().unwrap();
    let imported_name = format!("{}/private/imported:v1", reg.addr());
    let digest = image("i")
        .write_oci_layout(layout.path(), &imported_name)
        .unwrap();
    let (_d2, store) = self::store();
    store.import(layout.path(), None).unwrap();
    assert_eq!(
        store
            .ensure(&imported_name, &anon(), None)
            .await
            .unwrap()
            .digest,
        digest
    );
}

#[tokio::test]
async fn unknown_tag_and_repository_are_not_found() {
    let reg = TestRegistry::start();
    image("x")
        .push(&format!("{}/team/app:v1", reg.addr()), &anon())
        .await
        .unwrap();
    let (_d, store) = store();
    for r in ["team/app:nope", "team/nothing:v1"] {
        let err = store
            .ensure(&format!("{}/{r}", reg.addr()), &anon(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }), "{r}: {err}");
    }
    let missing = format!("{}/team/app@sha256:{}", reg.addr(), "0".repeat(64));
    let err = store.ensure(&missing, &anon(), None).await.unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_d, store) = store();
    let err = store
        .ensure(&format!("127.0.0.1:{port}/a/b:c"), &anon(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn index_picks_amd64_and_arm64_only_is_unsupported() {
    let reg = TestRegistry::start();
    let amd = image("amd64");
    let arm = image("arm64").platform("linux/arm64/v8");
    let multi = format!("{}/team/multi:v1", reg.addr());
    push_index(&[&arm, &amd], &multi, &anon()).await.unwrap();
    let (_d, store) = store();
    let img = store.ensure(&multi, &anon(), None).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(img.rootfs.join("etc/marker")).unwrap(),
        "amd64"
    );
    assert_eq!(img.config.platform, "linux/amd64");

    let arm_only = format!("{}/team/armonly:v1", reg.addr());
    push_index(&[&arm], &arm_only, &anon()).await.unwrap();
    match store.ensure(&arm_only, &anon(), None).await.unwrap_err() {
        ImageError::UnsupportedPlatform { offered, .. } => assert_eq!(offered, "linux/arm64/v8"),
        e => panic!("{e}"),
    }
    // A plain manifest whose config says arm64.
    let arm_single = format!("{}/team/armsingle:v1", reg.addr());
    arm.push(&arm_single, &anon()).await.unwrap();
    assert!(matches!(
        store.ensure(&arm_single, &anon(), None).await,
        Err(ImageError::UnsupportedPlatform { .. })
    ));
    assert_eq!(store.unpacks(), 1);
}

#[tokio::test]
async fn docker_v2_media_types_pull() {
    let reg = TestRegistry::start();
    let reference = format!("{}/team/docker:v1", reg.addr());
    let img = image("docker").docker_media_types();
    let pushed = img.push(&reference, &anon()).await.unwrap();
    let (_d, store) = store();
    let got = store.ensure(&reference, &anon(), None).await.unwrap();
    assert_eq!(got.digest, pushed);
    assert_eq!(
        std::fs::read_to_string(got.rootfs.join("etc/marker")).unwrap(),
        "docker"
    );
}

#[test]
fn store_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<ImageStore>();
}
