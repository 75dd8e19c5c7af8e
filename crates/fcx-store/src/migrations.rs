//! Versioned schema migrations, applied in order; `PRAGMA user_version` records the last one.

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a released
/// entry: add a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: functions and server metadata.
    "CREATE TABLE functions (
        name TEXT PRIMARY KEY NOT NULL,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    );",
    // 2: per-function scaling documents (concurrency, provision-config, scaling-config).
    "CREATE TABLE function_configs (
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (name, kind)
    );",
    // 3: the durable async invocation queue; one row per invocation (= async task).
    "CREATE TABLE async_tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL UNIQUE,
        request_id TEXT NOT NULL,
        function TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        payload BLOB NOT NULL,
        is_task INTEGER NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_run_ms INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        started_ms INTEGER,
        ended_ms INTEGER,
        instance_id TEXT,
        error TEXT,
        return_payload BLOB,
        destination_status TEXT,
        events TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX async_tasks_ready ON async_tasks (status, next_run_ms);
    CREATE INDEX async_tasks_function ON async_tasks (function, created_ms);",
    // 4: AccessKeys for signed requests; secrets encrypted with <data dir>/secret.key.
    "CREATE TABLE access_keys (
        id TEXT PRIMARY KEY NOT NULL,
        secret_enc BLOB NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );",
    // 5: custom domains (the certificate's private key sealed apart from the document),
    // each timer trigger's last fire, and where an async invocation came from (a trigger,
    // an HTTP request to replay).
    "CREATE TABLE custom_domains (
        name TEXT PRIMARY KEY NOT NULL,
        doc TEXT NOT NULL,
        key_enc BLOB
    );
    CREATE TABLE timer_state (
        function TEXT NOT NULL,
        trigger TEXT NOT NULL,
        last_fire_ms INTEGER NOT NULL,
        PRIMARY KEY (function, trigger)
    );
    ALTER TABLE async_tasks ADD COLUMN origin TEXT;",
    // 6: each function's own instance uid (process backend), stable across restarts; kept
    // after a delete so a uid is never handed to a second function while the range lasts.
    "CREATE TABLE instance_uids (
        function TEXT PRIMARY KEY NOT NULL,
        uid INTEGER NOT NULL UNIQUE
    );",
];

pub fn apply(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    Ok(())
}
