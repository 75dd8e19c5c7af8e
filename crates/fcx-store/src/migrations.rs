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
