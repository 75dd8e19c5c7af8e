//! The durable async invocation queue: the [`TaskQueue`] trait the async service uses, and its
//! SQLite implementation ([`Queue`]). One writer thread owns the write connection and commits
//! whatever requests have piled up in one transaction (group commit), so many concurrent
//! enqueues share one fsync; every caller gets its answer only after the commit. Reads (task
//! queries) use their own connection (WAL lets them run beside the writer). The PostgreSQL
//! queue (`postgres::PgQueue`) implements the same trait for nodes that share a database.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::sqlite::Db;
use crate::StoreError;

/// Most writes committed in one transaction.
const BATCH_MAX: usize = 512;
/// The writer connection's page cache, in KiB (negative `cache_size` means KiB).
const WRITER_CACHE_KIB: i64 = -32 * 1024;
/// WAL pages (4 KiB) after which a commit checkpoints (SQLite's default is 1000).
const CHECKPOINT_PAGES: i64 = 4000;

/// An invocation to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Caller-given (`x-fc-async-task-id`) or made by fcx; unique across the queue.
    pub task_id: String,
    /// The request id of the enqueueing call, reused by every attempt.
    pub request_id: String,
    /// The function to invoke.
    pub function: String,
    /// The resolved version (`LATEST` or an id), so a retry runs what the first attempt ran.
    pub qualifier: String,
    /// The event, as received.
    pub payload: Vec<u8>,
    /// Whether the caller asked for a stateful async task (shown in `x-fc-async-task-id`).
    pub is_task: bool,
    /// Enqueue time (ms since the epoch): the task's creation time and first run time.
    pub now_ms: i64,
    /// Where the invocation came from and how to deliver it (a trigger, an HTTP request), as
    /// the async layer encodes it; opaque to the store.
    pub origin: Option<String>,
}

/// What enqueueing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The task was stored.
    New,
    /// A task with this id existed already (caller-given ids are de-duplicated).
    Duplicate {
        /// The request id of the task stored first.
        request_id: String,
    },
}

/// A task a worker has leased.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The row's sequence number; identifies the task in [`Finish`].
    pub seq: i64,
    /// See [`NewTask::task_id`].
    pub task_id: String,
    /// See [`NewTask::request_id`].
    pub request_id: String,
    /// See [`NewTask::function`].
    pub function: String,
    /// See [`NewTask::qualifier`].
    pub qualifier: String,
    /// See [`NewTask::payload`].
    pub payload: Vec<u8>,
    /// Failed attempts recorded so far (throttled runs do not count).
    pub attempts: u32,
    /// Enqueue time (ms since the epoch), against which the maximum event age is checked.
    pub created_ms: i64,
    /// [`NewTask::origin`].
    pub origin: Option<String>,
}

/// How a run ended, as the worker records it.
#[derive(Debug, Clone)]
pub struct Finish {
    /// See [`Leased::seq`].
    pub seq: i64,
    /// `Succeeded`, `Failed`, `Retrying`, `Expired`, `Invalid` or `Stopped`.
    pub status: &'static str,
    /// Failed attempts including this run's, if it counted.
    pub attempts: u32,
    /// For `Retrying`: when to run again.
    pub next_run_ms: i64,
    /// When the task ended (ms since the epoch); `None` while it will run again.
    pub ended_ms: Option<i64>,
    /// The instance that ran it; `None` keeps the one recorded before.
    pub instance_id: Option<String>,
    /// `Code: message` of the last failure.
    pub error: Option<String>,
    /// What the function answered.
    pub return_payload: Option<Vec<u8>>,
    /// How delivery to the destination went; `None` keeps the one recorded before.
    pub destination_status: Option<String>,
    /// Appended to the task's event history (FC's `{status, timestamp, eventDetail}`).
    pub event: Value,
}

/// A stored task (GetAsyncTask / ListAsyncTasks).
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// See [`NewTask::task_id`].
    pub task_id: String,
    /// See [`NewTask::request_id`].
    pub request_id: String,
    /// See [`NewTask::function`].
    pub function: String,
    /// See [`NewTask::qualifier`].
    pub qualifier: String,
    /// See [`NewTask::payload`].
    pub payload: Vec<u8>,
    /// `Enqueued`, `Running`, `Retrying`, `Stopping` or one of the end states of [`Finish::status`].
    pub status: String,
    /// See [`Leased::attempts`].
    pub attempts: u32,
    /// Enqueue time (ms since the epoch).
    pub created_ms: i64,
    /// When the first attempt began (ms since the epoch).
    pub started_ms: Option<i64>,
    /// See [`Finish::ended_ms`].
    pub ended_ms: Option<i64>,
    /// See [`Finish::instance_id`].
    pub instance_id: Option<String>,
    /// See [`Finish::error`].
    pub error: Option<String>,
    /// See [`Finish::return_payload`].
    pub return_payload: Option<Vec<u8>>,
    /// See [`Finish::destination_status`].
    pub destination_status: Option<String>,
    /// The event history, oldest first (a JSON array).
    pub events: Value,
}

/// Filters of ListAsyncTasks.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only tasks in this status.
    pub status: Option<String>,
    /// Only task ids starting with this.
    pub prefix: Option<String>,
    /// Only tasks enqueued at or after this time (ms since the epoch).
    pub started_begin_ms: Option<i64>,
    /// Only tasks enqueued at or before this time (ms since the epoch).
    pub started_end_ms: Option<i64>,
    /// Continue after this sequence number (the page token).
    pub after_seq: Option<i64>,
    /// Most rows returned.
    pub limit: usize,
    /// Newest first (descending sequence numbers) instead of oldest first.
    pub newest_first: bool,
}

/// The queue the async service runs on, whichever store holds it.
#[async_trait::async_trait]
pub trait TaskQueue: Send + Sync {
    /// Durably enqueues (committed and synced when this returns).
    async fn enqueue(&self, task: NewTask) -> Result<Enqueued, StoreError>;
    /// Leases up to `limit` runnable tasks until `now_ms + lease_ms`, marking them Running.
    async fn lease(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Leased>, StoreError>;
    /// Extends the leases of tasks still running here to `until_ms`.
    async fn renew(&self, seqs: Vec<i64>, until_ms: i64) -> Result<(), StoreError>;
    /// Records how a run ended (committed when this returns); a task already ended or stopped is left as it is.
    async fn finish(&self, finish: Finish) -> Result<(), StoreError>;
    /// Asks a task to stop: returns its status afterwards, `None` if there is no such task.
    async fn stop(
        &self,
        function: &str,
        task_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError>;
    /// The task `task_id` of `function`, if there is one.
    fn get(&self, function: &str, task_id: &str) -> Result<Option<TaskRow>, StoreError>;
    /// Tasks waiting or running (Enqueued, Retrying, Running) and the creation time of the
    /// oldest of them (Unix ms), for the metrics. Blocking.
    fn backlog(&self) -> Result<(u64, Option<i64>), StoreError>;
    /// When the earliest task that cannot be leased now becomes leasable (its retry is due or
    /// its lease expires; Unix ms), `None` when no task waits. Blocking. Only asked of a
    /// queue this node alone fills ([`LeasePolicy::filled_here`]).
    fn next_due_ms(&self) -> Result<Option<i64>, StoreError>;
    /// Tasks of `function` matching `filter`, with each row's sequence number (page token).
    fn list(&self, function: &str, filter: &TaskFilter) -> Result<Vec<(i64, TaskRow)>, StoreError>;
    /// How long a lease lasts and how often running tasks renew theirs (`None`: never). A
    /// queue of one node clears leases at start and needs no renewal; a shared queue's
    /// leases are short, so a dead node's work runs again on another soon.
    fn lease_policy(&self) -> LeasePolicy;
}

/// See [`TaskQueue::lease_policy`].
#[derive(Debug, Clone, Copy)]
pub struct LeasePolicy {
    /// How long a lease lasts, in ms.
    pub lease_ms: i64,
    /// How often running tasks renew their leases, in ms (`None`: never).
    pub renew_every_ms: Option<i64>,
    /// Only this node enqueues into the queue and leases from it, so an idle worker loop can
    /// sleep until an enqueue wakes it or [`TaskQueue::next_due_ms`] comes, instead of
    /// polling (a shared queue is filled by other nodes, which cannot wake this one).
    pub filled_here: bool,
}

/// On the embedded store leases only matter after a crash, and start-up clears them, so a
/// lease only bounds how long a stuck run blocks its task.
const SQLITE_LEASE_MS: i64 = 60 * 60 * 1000;

enum Write {
    Enqueue(NewTask, oneshot::Sender<Result<Enqueued, StoreError>>),
    Lease {
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<Leased>, StoreError>>,
    },
    Finish(Finish, oneshot::Sender<Result<(), StoreError>>),
    Renew(Vec<i64>, i64, oneshot::Sender<Result<(), StoreError>>),
    /// Marks a task `Stopping` if it has not ended; returns its status afterwards.
    Stop(
        String,
        String,
        i64,
        oneshot::Sender<Result<Option<String>, StoreError>>,
    ),
}

/// The queue: writes go to the writer thread, reads use a connection of their own.
pub struct Queue {
    tx: mpsc::Sender<Write>,
    read: Mutex<Connection>,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).db()?;
    conn.pragma_update(None, "journal_mode", "WAL").db()?;
    // FULL: a commit is on disk (fsync) before enqueue answers.
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).db()?;
    Ok(conn)
}

impl Queue {
    /// Opens the queue in the store database at `path` (already migrated by `SqliteStore`).
    /// On the embedded single-node store, every lease belongs to a previous run of this
    /// server, so leases are cleared and interrupted stops completed.
    pub fn open(path: &Path) -> Result<Queue, StoreError> {
        let write = open(path)?;
        // The writer's working set (the table's and indexes' hot pages, ~10 MB at a 100k
        // event backlog) stays cached: SQLite's default 2 MB re-read pages on every commit.
        write
            .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .db()?;
        // A checkpoint (copy the WAL into the database, fsync it) every 16 MB of WAL instead
        // of every 4 MB: a page rewritten by many commits is copied once per checkpoint, and
        // the writer stalls for a checkpoint a quarter as often. Commits stay fsync'd.
        write
            .pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
            .db()?;
        write
            .execute(
                "UPDATE async_tasks SET lease_until_ms = 0 WHERE status IN ('Running', 'Retrying')",
                [],
            )
            .db()?;
        write
            .execute(
                "UPDATE async_tasks SET status = 'Stopped' WHERE status = 'Stopping'",
                [],
            )
            .db()?;
        let read = open(path)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("fcx-queue-writer".into())
            .spawn(move || writer(write, rx))?;
        Ok(Queue {
            tx,
            read: Mutex::new(read),
        })
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| StoreError::Corrupt("queue writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Corrupt("queue writer stopped".into()))?
    }
}

#[async_trait::async_trait]
impl TaskQueue for Queue {
    async fn enqueue(&self, task: NewTask) -> Result<Enqueued, StoreError> {
        self.send(|r| Write::Enqueue(task, r)).await
    }

    async fn lease(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Leased>, StoreError> {
        self.send(|reply| Write::Lease {
            now_ms,
            lease_ms,
            limit,
            reply,
        })
        .await
    }

    async fn finish(&self, finish: Finish) -> Result<(), StoreError> {
        self.send(|r| Write::Finish(finish, r)).await
    }

    async fn stop(
        &self,
        function: &str,
        task_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let (f, t) = (function.to_owned(), task_id.to_owned());
        self.send(|r| Write::Stop(f, t, now_ms, r)).await
    }

    /// The earliest `max(next_run_ms, lease_until_ms)` of the tasks not ended. Asked after a
    /// lease found nothing due, so the rows read are the retries waiting and the runs leased.
    fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            "SELECT min(max(next_run_ms, lease_until_ms)) FROM async_tasks
             WHERE status IN ('Enqueued', 'Retrying', 'Running')",
            [],
            |r| r.get(0),
        )
        .db()
    }

    /// Tasks waiting or running (Enqueued, Retrying, Running) and the creation time of the
    /// oldest of them (Unix ms), for the metrics.
    fn backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            "SELECT count(*), min(created_ms) FROM async_tasks
             WHERE status IN ('Enqueued', 'Retrying', 'Running')",
            [],
            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, Option<i64>>(1)?)),
        )
        .db()
    }

    fn get(&self, function: &str, task_id: &str) -> Result<Option<TaskRow>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM async_tasks WHERE function = ?1 AND task_id = ?2"),
            [function, task_id],
            task_row,
        )
        .optional()
        .db()
    }

    fn list(&self, function: &str, filter: &TaskFilter) -> Result<Vec<(i64, TaskRow)>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let cmp = if filter.newest_first { "<" } else { ">" };
        let sql = format!(
            "SELECT seq, {COLUMNS} FROM async_tasks
             WHERE function = ?1
               AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR substr(task_id, 1, length(?3)) = ?3)
               AND (?4 IS NULL OR created_ms >= ?4)
               AND (?5 IS NULL OR created_ms <= ?5)
               AND (?6 IS NULL OR seq {cmp} ?6)
             ORDER BY seq {order} LIMIT ?7"
        );
        let mut stmt = conn.prepare_cached(&sql).db()?;
        let rows = stmt
            .query_map(
                params![
                    function,
                    filter.status,
                    filter.prefix,
                    filter.started_begin_ms,
                    filter.started_end_ms,
                    filter.after_seq,
                    filter.limit as i64
                ],
                |r| Ok((r.get::<_, i64>(0)?, task_row_at(r, 1)?)),
            )
            .db()?
            .collect::<Result<Vec<_>, _>>()
            .db()?;
        Ok(rows)
    }

    async fn renew(&self, seqs: Vec<i64>, until_ms: i64) -> Result<(), StoreError> {
        self.send(|r| Write::Renew(seqs, until_ms, r)).await
    }

    fn lease_policy(&self) -> LeasePolicy {
        LeasePolicy {
            lease_ms: SQLITE_LEASE_MS,
            renew_every_ms: None,
            filled_here: true,
        }
    }
}

const COLUMNS: &str = "task_id, request_id, function, qualifier, payload, status, attempts, \
    created_ms, started_ms, ended_ms, instance_id, error, return_payload, destination_status, events";

fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    task_row_at(r, 0)
}

fn task_row_at(r: &Row<'_>, o: usize) -> rusqlite::Result<TaskRow> {
    let events: String = r.get(o + 14)?;
    Ok(TaskRow {
        task_id: r.get(o)?,
        request_id: r.get(o + 1)?,
        function: r.get(o + 2)?,
        qualifier: r.get(o + 3)?,
        payload: r.get(o + 4)?,
        status: r.get(o + 5)?,
        attempts: r.get(o + 6)?,
        created_ms: r.get(o + 7)?,
        started_ms: r.get(o + 8)?,
        ended_ms: r.get(o + 9)?,
        instance_id: r.get(o + 10)?,
        error: r.get(o + 11)?,
        return_payload: r.get(o + 12)?,
        destination_status: r.get(o + 13)?,
        events: serde_json::from_str(&events).unwrap_or(Value::Array(vec![])),
    })
}

/// The writer thread: block for one request, take every other one already waiting, run them
/// all in one transaction, commit (one fsync), then answer each.
fn writer(mut conn: Connection, rx: mpsc::Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                fail_all(batch, &Arc::new(e));
                continue;
            }
        };
        let mut replies = Vec::with_capacity(batch.len());
        for w in batch {
            replies.push(apply(&tx, w));
        }
        match tx.commit() {
            Ok(()) => replies.into_iter().for_each(Reply::send),
            Err(e) => {
                let e = Arc::new(e);
                replies.into_iter().for_each(|r| r.fail(&e));
            }
        }
    }
}

/// A computed answer, sent only after the commit.
enum Reply {
    Enqueue(
        oneshot::Sender<Result<Enqueued, StoreError>>,
        Result<Enqueued, StoreError>,
    ),
    Lease(
        oneshot::Sender<Result<Vec<Leased>, StoreError>>,
        Result<Vec<Leased>, StoreError>,
    ),
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Stop(
        oneshot::Sender<Result<Option<String>, StoreError>>,
        Result<Option<String>, StoreError>,
    ),
}

impl Reply {
    fn send(self) {
        match self {
            Reply::Enqueue(tx, r) => drop(tx.send(r)),
            Reply::Lease(tx, r) => drop(tx.send(r)),
            Reply::Unit(tx, r) => drop(tx.send(r)),
            Reply::Stop(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, e: &Arc<rusqlite::Error>) {
        let err = || StoreError::database(CommitFailed(Arc::clone(e)));
        match self {
            Reply::Enqueue(tx, _) => drop(tx.send(Err(err()))),
            Reply::Lease(tx, _) => drop(tx.send(Err(err()))),
            Reply::Unit(tx, _) => drop(tx.send(Err(err()))),
            Reply::Stop(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

/// A batch's transaction that could not begin or commit; every write in it gets this, with
/// the database's error as the source.
#[derive(Debug, thiserror::Error)]
#[error("queue commit failed: {0}")]
struct CommitFailed(#[source] Arc<rusqlite::Error>);

fn fail_all(batch: Vec<Write>, e: &Arc<rusqlite::Error>) {
    for w in batch {
        let reply = match w {
            Write::Enqueue(_, tx) => Reply::Enqueue(tx, Ok(Enqueued::New)),
            Write::Lease { reply, .. } => Reply::Lease(reply, Ok(vec![])),
            Write::Finish(_, tx) | Write::Renew(_, _, tx) => Reply::Unit(tx, Ok(())),
            Write::Stop(_, _, _, tx) => Reply::Stop(tx, Ok(None)),
        };
        reply.fail(e);
    }
}

pub(crate) fn event(status: &str, now_ms: i64, detail: &str) -> String {
    serde_json::json!({"status": status, "timestamp": now_ms, "eventDetail": detail}).to_string()
}

const APPEND_EVENT: &str = "json_insert(events, '$[#]', json(?))";

fn apply(tx: &rusqlite::Transaction<'_>, w: Write) -> Reply {
    match w {
        Write::Enqueue(t, reply) => {
            let result = (|| {
                // One cached statement per row; a taken task id inserts nothing.
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO async_tasks (task_id, request_id, function, qualifier, payload,
                            is_task, status, next_run_ms, created_ms, events, origin)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'Enqueued', ?7, ?7, ?8, ?9)
                         ON CONFLICT (task_id) DO NOTHING",
                    ).db()?
                    .execute(params![
                        t.task_id,
                        t.request_id,
                        t.function,
                        t.qualifier,
                        t.payload,
                        t.is_task,
                        t.now_ms,
                        format!("[{}]", event("Enqueued", t.now_ms, "")),
                        t.origin,
                    ]).db()?;
                if inserted == 1 {
                    return Ok(Enqueued::New);
                }
                let request_id: String = tx
                    .prepare_cached("SELECT request_id FROM async_tasks WHERE task_id = ?1")
                    .db()?
                    .query_row([&t.task_id], |r| r.get(0))
                    .db()?;
                Ok(Enqueued::Duplicate { request_id })
            })();
            Reply::Enqueue(reply, result)
        }
        Write::Lease {
            now_ms,
            lease_ms,
            limit,
            reply,
        } => {
            let result = (|| {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "UPDATE async_tasks
                     SET status = 'Running', lease_until_ms = ?2,
                         started_ms = coalesce(started_ms, ?1),
                         events = {APPEND_EVENT}
                     WHERE seq IN (
                         SELECT seq FROM async_tasks
                         WHERE status IN ('Enqueued', 'Retrying', 'Running')
                           AND next_run_ms <= ?1 AND lease_until_ms <= ?1
                         ORDER BY next_run_ms LIMIT ?4)
                     RETURNING seq, task_id, request_id, function, qualifier, payload,
                               attempts, created_ms, origin"
                    ))
                    .db()?;
                let rows = stmt
                    .query_map(
                        params![
                            now_ms,
                            now_ms + lease_ms,
                            event("Running", now_ms, ""),
                            limit as i64
                        ],
                        |r| {
                            Ok(Leased {
                                seq: r.get(0)?,
                                task_id: r.get(1)?,
                                request_id: r.get(2)?,
                                function: r.get(3)?,
                                qualifier: r.get(4)?,
                                payload: r.get(5)?,
                                attempts: r.get(6)?,
                                created_ms: r.get(7)?,
                                origin: r.get(8)?,
                            })
                        },
                    )
                    .db()?
                    .collect::<Result<Vec<_>, _>>()
                    .db()?;
                Ok(rows)
            })();
            Reply::Lease(reply, result)
        }
        Write::Finish(f, reply) => {
            let result = tx
                .prepare_cached(&format!(
                        "UPDATE async_tasks
                         SET status = ?2, attempts = ?3, next_run_ms = ?4, lease_until_ms = 0,
                             ended_ms = ?5, instance_id = coalesce(?6, instance_id),
                             error = ?7, return_payload = ?8,
                             destination_status = coalesce(?9, destination_status),
                             events = {APPEND_EVENT}
                         WHERE seq = ?1 AND status NOT IN ('Stopped', 'Succeeded', 'Failed', 'Expired', 'Invalid')"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        f.seq,
                        f.status,
                        f.attempts,
                        f.next_run_ms,
                        f.ended_ms,
                        f.instance_id,
                        f.error,
                        f.return_payload,
                        f.destination_status,
                        f.event.to_string()
                    ])
                })
                .map(|_| ())
                .db();
            Reply::Unit(reply, result)
        }
        Write::Renew(seqs, until_ms, reply) => {
            let result = (|| {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE async_tasks SET lease_until_ms = ?2
                         WHERE seq = ?1 AND status = 'Running'",
                    )
                    .db()?;
                for seq in seqs {
                    stmt.execute(params![seq, until_ms]).db()?;
                }
                Ok(())
            })();
            Reply::Unit(reply, result)
        }
        Write::Stop(function, task_id, now_ms, reply) => {
            let result = (|| {
                // Not started yet: stopped at once. Running: Stopping until the worker ends it.
                tx.execute(
                    &format!(
                        "UPDATE async_tasks
                         SET status = CASE WHEN status = 'Running' THEN 'Stopping' ELSE 'Stopped' END,
                             ended_ms = CASE WHEN status = 'Running' THEN ended_ms ELSE ?3 END,
                             events = {APPEND_EVENT}
                         WHERE function = ?1 AND task_id = ?2
                           AND status IN ('Enqueued', 'Retrying', 'Running')"
                    ),
                    params![function, task_id, now_ms, event("Stopping", now_ms, "stopped by user")],
                ).db()?;
                tx.query_row(
                    "SELECT status FROM async_tasks WHERE function = ?1 AND task_id = ?2",
                    [&function, &task_id],
                    |r| r.get(0),
                )
                .optional()
                .db()
            })();
            Reply::Stop(reply, result)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn a_failed_commit_is_a_database_error_that_keeps_its_cause() {
        let (tx, mut rx) = oneshot::channel();
        let cause = Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        Reply::Unit(tx, Ok(())).fail(&cause);
        let err = rx.try_recv().unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert!(err.to_string().contains("queue commit failed"), "{err}");
        let commit = err.source().unwrap();
        let sqlite = commit.source().unwrap();
        let sqlite = sqlite.downcast_ref::<Arc<rusqlite::Error>>().unwrap();
        assert_eq!(
            sqlite.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull)
        );
    }
}
