//! The schema in PostgreSQL's dialect: the SQLite store's migrations with PostgreSQL types,
//! and the tables only a shared store has. `fcx_migrations` records what ran; an
//! advisory lock makes nodes that start together migrate one after the other.

use super::{db, Pg};
use crate::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit a released
/// entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: functions and server metadata.
    "CREATE TABLE functions (
        name TEXT PRIMARY KEY,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 2: per-function documents (scaling, versions, aliases, triggers, counters).
    "CREATE TABLE function_configs (
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (name, kind)
    );",
    // 3: the durable async queue; `leased_by` names the node running a row.
    "CREATE TABLE async_tasks (
        seq BIGSERIAL PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        request_id TEXT NOT NULL,
        function TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        payload BYTEA NOT NULL,
        is_task BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_run_ms BIGINT NOT NULL,
        lease_until_ms BIGINT NOT NULL DEFAULT 0,
        leased_by TEXT,
        created_ms BIGINT NOT NULL,
        started_ms BIGINT,
        ended_ms BIGINT,
        instance_id TEXT,
        error TEXT,
        return_payload BYTEA,
        destination_status TEXT,
        events JSONB NOT NULL DEFAULT '[]'
    );
    CREATE INDEX async_tasks_runnable ON async_tasks (next_run_ms)
        WHERE status IN ('Enqueued', 'Retrying', 'Running');
    CREATE INDEX async_tasks_function ON async_tasks (function, seq);",
    // 4: AccessKeys; secrets encrypted with the nodes' common secret.key.
    "CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        secret_enc BYTEA NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );",
    // 5: code packages by SHA-256 (nodes share no file system).
    "CREATE TABLE code_packages (
        sha256 TEXT PRIMARY KEY,
        data BYTEA NOT NULL
    );",
    // 6: nodes with their heartbeats; leased shares of limits; timer ticks claimed once.
    "CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        heartbeat_ms BIGINT NOT NULL
    );
    CREATE TABLE limit_shares (
        scope TEXT NOT NULL,
        node TEXT NOT NULL,
        want INTEGER NOT NULL,
        share INTEGER NOT NULL,
        expires_ms BIGINT NOT NULL,
        PRIMARY KEY (scope, node)
    );
    CREATE TABLE timer_ticks (
        timer TEXT PRIMARY KEY,
        tick_ms BIGINT NOT NULL,
        node TEXT NOT NULL
    );",
    // 7: what the SQLite store's migrations 5 and 6 added: custom domains (private keys
    // sealed with the nodes' common secret.key), where an async task came from, and each
    // function's instance uid. Timer fires are the `timer_ticks` of 6 (one claim per tick
    // for the whole cluster), so SQLite's `timer_state` has no table here.
    "CREATE TABLE custom_domains (
        name TEXT PRIMARY KEY,
        doc TEXT NOT NULL,
        key_enc BYTEA
    );
    ALTER TABLE async_tasks ADD COLUMN origin TEXT;
    CREATE TABLE instance_uids (
        function TEXT PRIMARY KEY,
        uid BIGINT NOT NULL UNIQUE
    );",
    // 8: how many more instances each node can start, with its heartbeat (a node with no
    // capacity forwards a request to one that has some: `--forward`).
    "ALTER TABLE nodes ADD COLUMN free_instances INTEGER NOT NULL DEFAULT 0;",
    // 9: the signed requests' nonces, shared so a request replayed to another node is
    // refused (`nonces.rs`).
    "CREATE TABLE nonces (
        print BYTEA PRIMARY KEY,
        expires_s BIGINT NOT NULL
    );
    CREATE INDEX nonces_expiry ON nonces (expires_s);",
];

pub(super) async fn apply(pg: &Pg) -> Result<(), StoreError> {
    let mut conn = pg.conn().await?;
    let tx = conn
        .transaction()
        .await
        .map_err(db("starting the migration"))?;
    // Held until commit: a second node waits here, then finds the work done.
    tx.execute("SELECT pg_advisory_xact_lock(7346012)", &[])
        .await
        .map_err(db("locking the schema"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS fcx_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(db("creating fcx_migrations"))?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM fcx_migrations", &[])
        .await
        .map_err(db("reading the schema version"))?;
    let current = row.get::<_, i32>(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database's schema is version {current}, newer than this fcx knows ({}): \
             upgrade fcx",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql)
            .await
            .map_err(db(&format!("migration {}", i + 1)))?;
        tx.execute(
            "INSERT INTO fcx_migrations (version) VALUES ($1)",
            &[&((i + 1) as i32)],
        )
        .await
        .map_err(db("recording a migration"))?;
        tracing::info!(version = i + 1, "applied PostgreSQL store migration");
    }
    tx.commit().await.map_err(db("committing the migrations"))
}
