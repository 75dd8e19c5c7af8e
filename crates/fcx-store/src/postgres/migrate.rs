//! `fcx store migrate`: moves a single node's data (the data dir's SQLite `fcx.db` and its code
//! packages) into a PostgreSQL database that nodes will share. Functions, their documents
//! (versions, aliases, triggers, scaling and async configs, counters), server metadata (the
//! account id), AccessKeys, custom domains, timers' last fires, instance uids and pending
//! async tasks are copied in one transaction, so a failure leaves the target as it was. The
//! source is only read. Sealed values (AccessKey secrets, domains' private keys, records'
//! secret fields) are copied sealed: the nodes use the source data dir's `secret.key`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{db, Pg};
use crate::StoreError;

/// What a migration copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Functions.
    pub functions: usize,
    /// Per-function documents (versions, aliases, triggers, configs, counters).
    pub documents: usize,
    /// Server-wide values (the account id, ...).
    pub meta: usize,
    /// AccessKeys (still sealed with the source data dir's `secret.key`).
    pub keys: usize,
    /// Async tasks not yet ended (`Enqueued`, `Retrying`, `Running`).
    pub pending_tasks: usize,
    /// Code packages (`<data dir>/code/*.zip`).
    pub code_packages: usize,
    /// Custom domains (private keys still sealed).
    pub custom_domains: usize,
    /// Timer triggers' last fires (a timer does not fire again for a tick already fired).
    pub timers: usize,
    /// Functions' instance uids (a function keeps its uid on the cluster).
    pub instance_uids: usize,
}

/// Async task statuses a migration moves: those still to run. A `Running` task of a stopped
/// node runs again, as it would have on that node's restart.
const PENDING: &str = "('Enqueued', 'Retrying', 'Running')";

/// Everything read from the SQLite store before the target is touched.
#[derive(Default)]
struct Source {
    functions: Vec<(String, String, String, String)>,
    documents: Vec<(String, String, String)>,
    meta: Vec<(String, String)>,
    keys: Vec<(String, Vec<u8>, String, String)>,
    tasks: Vec<Task>,
    code: Vec<(String, PathBuf)>,
    domains: Vec<(String, String, Option<Vec<u8>>)>,
    timers: Vec<(String, i64)>,
    uids: Vec<(String, i64)>,
}

struct Task {
    task_id: String,
    request_id: String,
    function: String,
    qualifier: String,
    payload: Vec<u8>,
    is_task: bool,
    status: String,
    attempts: i32,
    next_run_ms: i64,
    created_ms: i64,
    started_ms: Option<i64>,
    events: String,
    origin: Option<String>,
}

/// Copies the store of `data_dir` into the PostgreSQL database at `url` (migrated first). The
/// target must hold no functions yet: a migration never merges two nodes' data.
pub fn from_sqlite(data_dir: &Path, url: &str) -> Result<Migrated, StoreError> {
    let source = read_sqlite(data_dir)?;
    let pg = Pg::connect(url)?;
    let conn = std::sync::Arc::clone(&pg);
    pg.block(async move { write(&conn, source).await })
}

fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::database(format!("reading {}: {e}", path.display()))
}

fn read_sqlite(data_dir: &Path) -> Result<Source, StoreError> {
    let path = data_dir.join("fcx.db");
    if !path.is_file() {
        return Err(StoreError::database(format!(
            "{} does not exist: --from sqlite:PATH names the data dir of the node to move \
             (the --data-dir of its `fcx server`)",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite_error(&path))?;
    let e = sqlite_error(&path);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(&e)?;
    let known = crate::migrations::MIGRATIONS.len() as i64;
    if version != known {
        return Err(StoreError::database(format!(
            "{} is at schema version {version}, this fcx's is {known}: start that node once \
             with this fcx's `fcx server` (it migrates at start), stop it, then migrate",
            path.display()
        )));
    }
    let mut s = Source::default();
    let mut q = conn
        .prepare("SELECT name, doc, created_at, updated_at FROM functions ORDER BY name")
        .map_err(&e)?;
    s.functions = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT name, kind, doc FROM function_configs ORDER BY name, kind")
        .map_err(&e)?;
    s.documents = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT key, value FROM meta ORDER BY key")
        .map_err(&e)?;
    s.meta = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT id, secret_enc, description, created_at FROM access_keys ORDER BY id")
        .map_err(&e)?;
    s.keys = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let mut q = conn
        .prepare(&format!(
            "SELECT task_id, request_id, function, qualifier, payload, is_task, status,
                    attempts, next_run_ms, created_ms, started_ms, events, origin
             FROM async_tasks WHERE status IN {PENDING} ORDER BY seq"
        ))
        .map_err(&e)?;
    s.tasks = q
        .query_map([], |r| {
            Ok(Task {
                task_id: r.get(0)?,
                request_id: r.get(1)?,
                function: r.get(2)?,
                qualifier: r.get(3)?,
                payload: r.get(4)?,
                is_task: r.get::<_, i64>(5)? != 0,
                status: r.get(6)?,
                attempts: r.get(7)?,
                next_run_ms: r.get(8)?,
                created_ms: r.get(9)?,
                started_ms: r.get(10)?,
                events: r.get(11)?,
                origin: r.get(12)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT name, doc, key_enc FROM custom_domains ORDER BY name")
        .map_err(&e)?;
    s.domains = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    // The shared store's timer_ticks rows (`function/trigger`).
    let mut q = conn
        .prepare(
            "SELECT function || '/' || trigger, last_fire_ms FROM timer_state
             ORDER BY function, trigger",
        )
        .map_err(&e)?;
    s.timers = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let mut q = conn
        .prepare("SELECT function, uid FROM instance_uids ORDER BY function")
        .map_err(&e)?;
    s.uids = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(&e)?;
    let code_dir = data_dir.join("code");
    if code_dir.is_dir() {
        let entries = std::fs::read_dir(&code_dir).map_err(|err| {
            StoreError::database(format!("reading {}: {err}", code_dir.display()))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let sha = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".zip"))
                .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
            if let Some(sha) = sha {
                s.code.push((sha.to_owned(), path.clone()));
            }
        }
        s.code.sort();
    }
    Ok(s)
}

async fn write(pg: &Pg, s: Source) -> Result<Migrated, StoreError> {
    let mut c = pg.conn().await?;
    let tx = c
        .transaction()
        .await
        .map_err(db("starting the migration"))?;
    let present: i64 = tx
        .query_one("SELECT count(*) FROM functions", &[])
        .await
        .map_err(db("counting the target's functions"))?
        .get(0);
    if present > 0 {
        return Err(StoreError::database(format!(
            "the target database {} already holds {present} function(s): migrate into a new, \
             empty database (a migration never merges two nodes' data)",
            pg.shown()
        )));
    }
    for (name, doc, created, updated) in &s.functions {
        tx.execute(
            "INSERT INTO functions (name, doc, created_at, updated_at) VALUES ($1, $2, $3, $4)",
            &[name, doc, created, updated],
        )
        .await
        .map_err(db("copying a function"))?;
    }
    for (name, kind, doc) in &s.documents {
        tx.execute(
            "INSERT INTO function_configs (name, kind, doc) VALUES ($1, $2, $3)
             ON CONFLICT (name, kind) DO UPDATE SET doc = excluded.doc",
            &[name, kind, doc],
        )
        .await
        .map_err(db("copying a function document"))?;
    }
    // The node's values win over any a node already started on the target wrote (its
    // account id names the functions being moved).
    for (key, value) in &s.meta {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[key, value],
        )
        .await
        .map_err(db("copying server metadata"))?;
    }
    let mut keys = 0;
    for (id, secret, description, created) in &s.keys {
        keys += tx
            .execute(
                "INSERT INTO access_keys (id, secret_enc, description, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                &[id, secret, description, created],
            )
            .await
            .map_err(db("copying an AccessKey"))? as usize;
    }
    for t in &s.tasks {
        tx.execute(
            "INSERT INTO async_tasks (task_id, request_id, function, qualifier, payload,
                is_task, status, attempts, next_run_ms, created_ms, started_ms, events, origin)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb, $13)",
            &[
                &t.task_id,
                &t.request_id,
                &t.function,
                &t.qualifier,
                &t.payload,
                &t.is_task,
                &t.status,
                &t.attempts,
                &t.next_run_ms,
                &t.created_ms,
                &t.started_ms,
                &t.events,
                &t.origin,
            ],
        )
        .await
        .map_err(db("copying an async task"))?;
    }
    for (sha, path) in &s.code {
        let bytes = tokio::fs::read(path).await.map_err(|e| {
            StoreError::database(format!("reading the code package {}: {e}", path.display()))
        })?;
        tx.execute(
            "INSERT INTO code_packages (sha256, data) VALUES ($1, $2)
             ON CONFLICT (sha256) DO NOTHING",
            &[sha, &bytes],
        )
        .await
        .map_err(db("copying a code package"))?;
    }
    for (name, doc, key) in &s.domains {
        tx.execute(
            "INSERT INTO custom_domains (name, doc, key_enc) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, key_enc = excluded.key_enc",
            &[name, doc, key],
        )
        .await
        .map_err(db("copying a custom domain"))?;
    }
    for (timer, last) in &s.timers {
        tx.execute(
            "INSERT INTO timer_ticks (timer, tick_ms, node) VALUES ($1, $2, 'migrated')
             ON CONFLICT (timer) DO UPDATE SET tick_ms = excluded.tick_ms",
            &[timer, last],
        )
        .await
        .map_err(db("copying a timer's last fire"))?;
    }
    for (function, uid) in &s.uids {
        tx.execute(
            "INSERT INTO instance_uids (function, uid) VALUES ($1, $2)",
            &[function, uid],
        )
        .await
        .map_err(|e| {
            StoreError::database(format!(
                "copying the instance uid {uid} of function '{function}': {e} (a node started \
                 on the target already took it: migrate into a new, empty database)"
            ))
        })?;
    }
    tx.commit().await.map_err(db("committing the migration"))?;
    Ok(Migrated {
        functions: s.functions.len(),
        documents: s.documents.len(),
        meta: s.meta.len(),
        keys,
        pending_tasks: s.tasks.len(),
        code_packages: s.code.len(),
        custom_domains: s.domains.len(),
        timers: s.timers.len(),
        instance_uids: s.uids.len(),
    })
}
