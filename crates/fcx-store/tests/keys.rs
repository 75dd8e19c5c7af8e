//! Access keys against a real data dir: secrets survive reopening, are encrypted at rest with
//! the data-dir key, and do not decrypt with another key or on another row.

use std::os::unix::fs::PermissionsExt;

use fcx_store::{KeyStore, StoreError};

#[test]
fn keys_survive_reopening_and_list_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let keys = KeyStore::open(dir.path()).unwrap();
        assert!(keys.is_empty().unwrap());
        (keys.create("admin").unwrap(), keys.create("").unwrap())
    };
    assert!(a.id.starts_with("FCX") && a.id.len() == 24, "{}", a.id);
    assert_eq!(a.secret.len(), 30);
    assert_ne!(a.id, b.id);
    assert_ne!(a.secret, b.secret);

    let keys = KeyStore::open(dir.path()).unwrap();
    assert!(!keys.is_empty().unwrap());
    assert_eq!(keys.secret(&a.id).unwrap().as_deref(), Some(&*a.secret));
    assert_eq!(keys.secret(&b.id).unwrap().as_deref(), Some(&*b.secret));
    assert_eq!(keys.secret("FCXNOSUCHKEY").unwrap(), None);
    let listed = keys.list().unwrap();
    let mut ids: Vec<_> = listed.iter().map(|k| k.id.clone()).collect();
    ids.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(listed.iter().any(|k| k.description == "admin"));
    assert!(
        listed[0].created_at.ends_with('Z'),
        "{}",
        listed[0].created_at
    );
}

#[test]
fn secrets_are_encrypted_at_rest_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyStore::open(dir.path()).unwrap().create("").unwrap();
    let key_file = dir.path().join(fcx_store::keys::SECRET_KEY_FILE);
    let meta = std::fs::metadata(&key_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);

    let conn = rusqlite::Connection::open(dir.path().join("fcx.db")).unwrap();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT secret_enc FROM access_keys WHERE id = ?1",
            [&key.id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !stored
            .windows(key.secret.len())
            .any(|w| w == key.secret.as_bytes()),
        "the secret is stored in clear"
    );
}

#[test]
fn another_key_file_or_another_row_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let keys = KeyStore::open(dir.path()).unwrap();
        (keys.create("").unwrap(), keys.create("").unwrap())
    };
    // A secret copied onto another key's row is refused (the id is bound to the ciphertext).
    let conn = rusqlite::Connection::open(dir.path().join("fcx.db")).unwrap();
    conn.execute(
        "UPDATE access_keys SET secret_enc = (SELECT secret_enc FROM access_keys WHERE id = ?1)
         WHERE id = ?2",
        [&a.id, &b.id],
    )
    .unwrap();
    let keys = KeyStore::open(dir.path()).unwrap();
    assert!(matches!(keys.secret(&b.id), Err(StoreError::Corrupt(_))));
    drop(keys);

    let key_file = dir.path().join(fcx_store::keys::SECRET_KEY_FILE);
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let keys = KeyStore::open(dir.path()).unwrap();
    match keys.secret(&a.id) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("cannot be decrypted"), "{m}"),
        other => panic!("expected a decryption error, got {other:?}"),
    }
    std::fs::write(&key_file, b"short").unwrap();
    assert!(matches!(
        KeyStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}
