//! The SQLite store against a real database file.

use fcx_model::Function;
use fcx_store::{SqliteStore, Store, StoreError};

fn function(name: &str) -> Function {
    let body = serde_json::json!({
        "functionName": name, "runtime": "custom", "handler": "h",
        "code": {"zipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
    });
    let input = fcx_model::parse_create(body.to_string().as_bytes()).unwrap();
    Function::from_create(input, "id".into(), "local", "1", "2026-01-01T00:00:00Z").unwrap()
}

#[test]
fn functions_survive_reopening_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fcx.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_function(&function("a")).unwrap();
        store.set_meta("account_id", "42").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get_function("a").unwrap(), Some(function("a")));
    assert_eq!(store.meta("account_id").unwrap().as_deref(), Some("42"));
}

#[test]
fn duplicate_create_and_missing_update_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("fcx.db")).unwrap();
    store.create_function(&function("a")).unwrap();
    assert!(matches!(
        store.create_function(&function("a")),
        Err(StoreError::AlreadyExists(n)) if n == "a"
    ));
    assert!(matches!(
        store.update_function(&function("b")),
        Err(StoreError::NotFound(n)) if n == "b"
    ));
    assert!(store.delete_function("a").unwrap());
    assert!(!store.delete_function("a").unwrap());
}

#[test]
fn list_filters_by_prefix_literally_and_pages_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("fcx.db")).unwrap();
    for name in ["a_1", "ab1", "a_2", "b"] {
        store.create_function(&function(name)).unwrap();
    }
    let names = |v: Vec<Function>| v.into_iter().map(|f| f.function_name).collect::<Vec<_>>();
    // '_' is not a wildcard.
    assert_eq!(
        names(store.list_functions(Some("a_"), None, 10).unwrap()),
        ["a_1", "a_2"]
    );
    assert_eq!(
        names(store.list_functions(None, Some("a_2"), 2).unwrap()),
        ["ab1", "b"]
    );
    assert_eq!(names(store.list_functions(None, None, 1).unwrap()), ["a_1"]);
}

#[test]
fn a_database_failure_keeps_its_cause_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    // The parent directory does not exist, so SQLite cannot open the file.
    let err = match SqliteStore::open(&dir.path().join("missing/fcx.db")) {
        Err(e) => e,
        Ok(_) => panic!("opened a database in a directory that does not exist"),
    };
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    let cause = std::error::Error::source(&err).expect("the cause is kept as the source");
    assert_eq!(err.to_string(), format!("database error: {cause}"));
    assert!(cause.to_string().contains("unable to open"), "{cause}");
}

fn container_with_password(name: &str, password: &str) -> Function {
    let body = serde_json::json!({
        "functionName": name, "runtime": "custom-container", "handler": "h",
        "customContainerConfig": {"image": "registry.example/app:v1", "registryConfig": {
            "authConfig": {"userName": "u", "password": password}}},
    });
    let input = fcx_model::parse_create(body.to_string().as_bytes()).unwrap();
    Function::from_create(input, "id".into(), "local", "1", "2026-01-01T00:00:00Z").unwrap()
}

fn password(f: &Function) -> Option<String> {
    let auth = f
        .custom_container_config
        .as_ref()?
        .registry_config
        .as_ref()?;
    let p = auth.auth_config.as_ref()?.password.as_ref()?;
    p.expose().map(str::to_owned)
}

fn stored_doc(path: &std::path::Path, name: &str) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT doc FROM functions WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Issue 13: registry passwords were stored in plain text; they are sealed with the data
/// dir's key, and a record written in plain text before is sealed when the store opens.
#[test]
fn secrets_are_sealed_at_rest_and_old_plaintext_records_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fcx.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_function(&container_with_password("new", "pw-new-1234"))
        .unwrap();
    let doc = stored_doc(&path, "new");
    assert!(!doc.contains("pw-new-1234"), "{doc}");
    assert!(doc.contains("fcx-sealed:v1:"), "{doc}");
    assert_eq!(
        password(&store.get_function("new").unwrap().unwrap()).as_deref(),
        Some("pw-new-1234")
    );
    // A record as an older fcx wrote it: the password in plain text.
    let mut old = serde_json::from_str::<serde_json::Value>(&doc).unwrap();
    old["functionName"] = "old".into();
    old["customContainerConfig"]["registryConfig"]["authConfig"]["password"] = "pw-old-5678".into();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO functions (name, doc, created_at, updated_at) VALUES ('old', ?1, '', '')",
            [old.to_string()],
        )
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let doc = stored_doc(&path, "old");
    assert!(!doc.contains("pw-old-5678"), "not migrated: {doc}");
    assert_eq!(
        password(&store.get_function("old").unwrap().unwrap()).as_deref(),
        Some("pw-old-5678")
    );
    // Sealed for one function, a value does not open as another's.
    let moved = stored_doc(&path, "new").replace("\"new\"", "\"moved\"");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO functions (name, doc, created_at, updated_at) VALUES ('moved', ?1, '', '')",
            [moved],
        )
        .unwrap();
    assert!(matches!(
        store.get_function("moved"),
        Err(StoreError::Corrupt(m)) if m.contains("cannot be decrypted")
    ));
}

fn domain(name: &str, key: Option<&str>) -> fcx_store::StoredDomain {
    fcx_store::StoredDomain {
        name: name.into(),
        doc: format!("{{\"domainName\":\"{name}\"}}"),
        private_key: key.map(str::to_owned),
    }
}

#[test]
fn custom_domain_keys_are_sealed_at_rest_and_kept_on_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fcx.db");
    let key = "-----BEGIN PRIVATE KEY-----\nsecret-material\n-----END PRIVATE KEY-----\n";
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .create_custom_domain(&domain("a.example", Some(key)))
            .unwrap();
        assert!(matches!(
            store.create_custom_domain(&domain("a.example", None)),
            Err(StoreError::AlreadyExists(_))
        ));
        store
            .create_custom_domain(&domain("b.example", None))
            .unwrap();
        // An update without a key keeps the stored one.
        let mut d = domain("a.example", None);
        d.doc = "{\"v\":2}".into();
        store.update_custom_domain(&d).unwrap();
        assert!(matches!(
            store.update_custom_domain(&domain("c.example", None)),
            Err(StoreError::NotFound(_))
        ));
    }
    // The database file never holds the key in the clear.
    let raw = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("fcx.db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(!bytes.windows(15).any(|w| w == b"secret-material"));
    }
    let store = SqliteStore::open(&path).unwrap();
    let a = store.get_custom_domain("a.example").unwrap().unwrap();
    assert_eq!(
        (a.doc.as_str(), a.private_key.as_deref()),
        ("{\"v\":2}", Some(key))
    );
    let names: Vec<String> = store
        .list_custom_domains(Some("a"), None, 10)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["a.example"]);
    assert_eq!(
        store
            .list_custom_domains(None, Some("a.example"), 10)
            .unwrap()
            .len(),
        1
    );
    assert!(store.delete_custom_domain("a.example").unwrap());
    assert!(store.get_custom_domain("a.example").unwrap().is_none());
}

#[test]
fn a_timer_tick_is_claimed_once_and_only_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("fcx.db")).unwrap();
    assert_eq!(store.timer_last_fire("f", "t").unwrap(), None);
    assert!(store.claim_timer_fire("f", "t", 1000).unwrap());
    assert!(
        !store.claim_timer_fire("f", "t", 1000).unwrap(),
        "the same tick twice"
    );
    assert!(
        !store.claim_timer_fire("f", "t", 900).unwrap(),
        "an older tick"
    );
    assert!(store.claim_timer_fire("f", "t", 2000).unwrap());
    assert_eq!(store.timer_last_fire("f", "t").unwrap(), Some(2000));
    store.delete_timer_state("f", "t").unwrap();
    assert_eq!(store.timer_last_fire("f", "t").unwrap(), None);
    store.create_function(&function("f")).unwrap();
    store.claim_timer_fire("f", "t", 5).unwrap();
    store.delete_function("f").unwrap();
    assert_eq!(store.timer_last_fire("f", "t").unwrap(), None);
}
