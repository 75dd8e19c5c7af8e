//! The async queue on PostgreSQL, shared by every node. Enqueues are group-committed like the
//! SQLite writer's: one task takes every enqueue waiting, inserts them with one statement in
//! one transaction, commits (synchronous_commit: on the server's disk), then answers each.
//! Workers lease rows with `FOR UPDATE SKIP LOCKED`, so nodes never take the same row, for a
//! short time they renew while the run goes on: a node that dies stops renewing, its leases
//! expire and another node runs the work again (at least once).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;

use super::{db, Pg};
use crate::queue::{
    Enqueued, Finish, LeasePolicy, Leased, NewTask, TaskFilter, TaskQueue, TaskRow,
};
use crate::StoreError;

/// Most enqueues committed in one transaction.
const BATCH_MAX: usize = 512;
/// A lease lasts this long unless renewed: the time a dead node's tasks wait.
pub const LEASE_MS: i64 = 10_000;
/// Running tasks renew their leases this often.
pub const RENEW_EVERY_MS: i64 = 3_000;

type Waiting = (NewTask, oneshot::Sender<Result<Enqueued, StoreError>>);

/// The async queue in PostgreSQL: group-committed enqueues, `SKIP LOCKED` leases that expire.
pub struct PgQueue {
    pg: Arc<Pg>,
    node: String,
    enqueues: mpsc::UnboundedSender<Waiting>,
}

impl PgQueue {
    /// The queue in `pg`'s database; `node` is recorded on the rows this node leases.
    pub fn new(pg: Arc<Pg>, node: &str) -> PgQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        pg.handle().spawn(writer(Arc::clone(&pg), rx));
        PgQueue {
            pg,
            node: node.to_owned(),
            enqueues: tx,
        }
    }
}

/// At a node's start: what a previous run of `node` had leased is runnable again at once, and
/// its interrupted stops are completed. Returns how many rows were released.
pub async fn release_leases(pg: &Pg, node: &str) -> Result<u64, StoreError> {
    let c = pg.conn().await?;
    let n = c
        .execute(
            "UPDATE async_tasks SET lease_until_ms = 0
             WHERE leased_by = $1 AND status IN ('Running', 'Retrying') AND lease_until_ms > 0",
            &[&node],
        )
        .await
        .map_err(db("releasing this node's leases"))?;
    c.execute(
        "UPDATE async_tasks SET status = 'Stopped' WHERE leased_by = $1 AND status = 'Stopping'",
        &[&node],
    )
    .await
    .map_err(db("completing interrupted stops"))?;
    Ok(n)
}

/// The group-commit writer of enqueues.
async fn writer(pg: Arc<Pg>, mut rx: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let tasks: Vec<&NewTask> = batch.iter().map(|(t, _)| t).collect();
        match insert(&pg, &tasks).await {
            Ok(results) => {
                for ((_, reply), r) in batch.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                let text = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::database(format!(
                        "enqueue not committed: {text}"
                    ))));
                }
            }
        }
    }
}

/// Inserts `tasks` in one transaction; taken task ids insert nothing and answer with the
/// request id the first enqueue got.
async fn insert(pg: &Pg, tasks: &[&NewTask]) -> Result<Vec<Enqueued>, StoreError> {
    let mut c = pg.conn().await?;
    let tx = c.transaction().await.map_err(db("enqueueing"))?;
    let col = |f: fn(&NewTask) -> String| tasks.iter().map(|t| f(t)).collect::<Vec<String>>();
    let ids = col(|t| t.task_id.clone());
    let requests = col(|t| t.request_id.clone());
    let functions = col(|t| t.function.clone());
    let qualifiers = col(|t| t.qualifier.clone());
    let events = col(|t| format!("[{}]", super::super::queue::event("Enqueued", t.now_ms, "")));
    let payloads: Vec<&[u8]> = tasks.iter().map(|t| t.payload.as_slice()).collect();
    let is_task: Vec<bool> = tasks.iter().map(|t| t.is_task).collect();
    let now: Vec<i64> = tasks.iter().map(|t| t.now_ms).collect();
    let origins: Vec<Option<String>> = tasks.iter().map(|t| t.origin.clone()).collect();
    let inserted = tx
        .query(
            "INSERT INTO async_tasks (task_id, request_id, function, qualifier, payload,
                is_task, status, next_run_ms, created_ms, events, origin)
             SELECT t.id, t.rid, t.f, t.q, t.p, t.it, 'Enqueued', t.now, t.now, t.ev::jsonb, t.o
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[],
                         $6::bool[], $7::bigint[], $8::text[], $9::text[])
                  WITH ORDINALITY AS t(id, rid, f, q, p, it, now, ev, o, ord)
             ORDER BY t.ord
             ON CONFLICT (task_id) DO NOTHING
             RETURNING task_id, request_id",
            &[
                &ids,
                &requests,
                &functions,
                &qualifiers,
                &payloads,
                &is_task,
                &now,
                &events,
                &origins,
            ],
        )
        .await
        .map_err(db("enqueueing"))?;
    let mut new: std::collections::HashMap<String, String> = inserted
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    let mut missing = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        // The first of several equal ids in one batch is the new one.
        if new.get(&t.task_id) == Some(&t.request_id) {
            new.remove(&t.task_id);
            out.push(Some(Enqueued::New));
        } else {
            out.push(None);
            missing.push((i, t.task_id.clone()));
        }
    }
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(|(_, id)| id.clone()).collect();
        let rows = tx
            .query(
                "SELECT task_id, request_id FROM async_tasks WHERE task_id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(db("reading duplicate task ids"))?;
        let known: std::collections::HashMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        for (i, id) in missing {
            let request_id = known.get(&id).cloned().unwrap_or_default();
            out[i] = Some(Enqueued::Duplicate { request_id });
        }
    }
    tx.commit().await.map_err(db("committing enqueues"))?;
    Ok(out
        .into_iter()
        .map(|e| e.unwrap_or(Enqueued::New))
        .collect())
}

const COLUMNS: &str = "task_id, request_id, function, qualifier, payload, status, attempts, \
    created_ms, started_ms, ended_ms, instance_id, error, return_payload, destination_status, \
    events::text";

fn task_row(r: &Row, o: usize) -> TaskRow {
    let events: String = r.get(o + 14);
    TaskRow {
        task_id: r.get(o),
        request_id: r.get(o + 1),
        function: r.get(o + 2),
        qualifier: r.get(o + 3),
        payload: r.get(o + 4),
        status: r.get(o + 5),
        attempts: r.get::<_, i32>(o + 6) as u32,
        created_ms: r.get(o + 7),
        started_ms: r.get(o + 8),
        ended_ms: r.get(o + 9),
        instance_id: r.get(o + 10),
        error: r.get(o + 11),
        return_payload: r.get(o + 12),
        destination_status: r.get(o + 13),
        events: serde_json::from_str(&events).unwrap_or(serde_json::Value::Array(vec![])),
    }
}

#[async_trait::async_trait]
impl TaskQueue for PgQueue {
    async fn enqueue(&self, task: NewTask) -> Result<Enqueued, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.enqueues
            .send((task, reply))
            .map_err(|_| StoreError::database("the PostgreSQL enqueue writer stopped"))?;
        rx.await
            .map_err(|_| StoreError::database("the PostgreSQL enqueue writer stopped"))?
    }

    async fn lease(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Leased>, StoreError> {
        let pg = Arc::clone(&self.pg);
        let node = self.node.clone();
        let event = super::super::queue::event("Running", now_ms, "");
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                let rows = c
                    .query(
                        "UPDATE async_tasks
                         SET status = 'Running', lease_until_ms = $2, leased_by = $5,
                             started_ms = coalesce(started_ms, $1),
                             events = events || jsonb_build_array($3::text::jsonb)
                         WHERE seq IN (
                             SELECT seq FROM async_tasks
                             WHERE status IN ('Enqueued', 'Retrying', 'Running')
                               AND next_run_ms <= $1 AND lease_until_ms <= $1
                             ORDER BY next_run_ms LIMIT $4
                             FOR UPDATE SKIP LOCKED)
                         RETURNING seq, task_id, request_id, function, qualifier, payload,
                                   attempts, created_ms, origin",
                        &[
                            &now_ms,
                            &(now_ms + lease_ms),
                            &event,
                            &(limit as i64),
                            &node,
                        ],
                    )
                    .await
                    .map_err(db("leasing async tasks"))?;
                Ok(rows
                    .iter()
                    .map(|r| Leased {
                        seq: r.get(0),
                        task_id: r.get(1),
                        request_id: r.get(2),
                        function: r.get(3),
                        qualifier: r.get(4),
                        payload: r.get(5),
                        attempts: r.get::<_, i32>(6) as u32,
                        created_ms: r.get(7),
                        origin: r.get(8),
                    })
                    .collect())
            })
            .await
    }

    async fn renew(&self, seqs: Vec<i64>, until_ms: i64) -> Result<(), StoreError> {
        let pg = Arc::clone(&self.pg);
        let node = self.node.clone();
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute(
                    "UPDATE async_tasks SET lease_until_ms = $2
                     WHERE seq = ANY($1) AND status IN ('Running', 'Stopping')
                       AND leased_by = $3",
                    &[&seqs, &until_ms, &node],
                )
                .await
                .map_err(db("renewing async leases"))?;
                Ok(())
            })
            .await
    }

    async fn finish(&self, f: Finish) -> Result<(), StoreError> {
        let pg = Arc::clone(&self.pg);
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute(
                    "UPDATE async_tasks
                     SET status = $2, attempts = $3, next_run_ms = $4, lease_until_ms = 0,
                         ended_ms = $5, instance_id = coalesce($6, instance_id),
                         error = $7, return_payload = $8,
                         destination_status = coalesce($9, destination_status),
                         events = events || jsonb_build_array($10::text::jsonb)
                     WHERE seq = $1
                       AND status NOT IN ('Stopped', 'Succeeded', 'Failed', 'Expired', 'Invalid')",
                    &[
                        &f.seq,
                        &f.status,
                        &(f.attempts as i32),
                        &f.next_run_ms,
                        &f.ended_ms,
                        &f.instance_id,
                        &f.error,
                        &f.return_payload,
                        &f.destination_status,
                        &f.event.to_string(),
                    ],
                )
                .await
                .map_err(db("recording an async outcome"))?;
                Ok(())
            })
            .await
    }

    async fn stop(
        &self,
        function: &str,
        task_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let pg = Arc::clone(&self.pg);
        let (function, task_id) = (function.to_owned(), task_id.to_owned());
        let event = super::super::queue::event("Stopping", now_ms, "stopped by user");
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute(
                    "UPDATE async_tasks
                     SET status = CASE WHEN status = 'Running' THEN 'Stopping' ELSE 'Stopped' END,
                         ended_ms = CASE WHEN status = 'Running' THEN ended_ms ELSE $3 END,
                         events = events || jsonb_build_array($4::text::jsonb)
                     WHERE function = $1 AND task_id = $2
                       AND status IN ('Enqueued', 'Retrying', 'Running')",
                    &[&function, &task_id, &now_ms, &event],
                )
                .await
                .map_err(db("stopping an async task"))?;
                let row = c
                    .query_opt(
                        "SELECT status FROM async_tasks WHERE function = $1 AND task_id = $2",
                        &[&function, &task_id],
                    )
                    .await
                    .map_err(db("reading an async task"))?;
                Ok(row.map(|r| r.get(0)))
            })
            .await
    }

    fn backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        let pg = Arc::clone(&self.pg);
        self.pg.block(async move {
            let c = pg.conn().await?;
            let row = c
                .query_one(
                    "SELECT count(*), min(created_ms) FROM async_tasks
                     WHERE status IN ('Enqueued', 'Retrying', 'Running')",
                    &[],
                )
                .await
                .map_err(db("counting the async backlog"))?;
            Ok((row.get::<_, i64>(0) as u64, row.get::<_, Option<i64>>(1)))
        })
    }

    fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let pg = Arc::clone(&self.pg);
        self.pg.block(async move {
            let c = pg.conn().await?;
            let row = c
                .query_one(
                    "SELECT min(greatest(next_run_ms, lease_until_ms)) FROM async_tasks
                     WHERE status IN ('Enqueued', 'Retrying', 'Running')",
                    &[],
                )
                .await
                .map_err(db("reading when the next async task is due"))?;
            Ok(row.get::<_, Option<i64>>(0))
        })
    }

    fn get(&self, function: &str, task_id: &str) -> Result<Option<TaskRow>, StoreError> {
        let pg = Arc::clone(&self.pg);
        let (function, task_id) = (function.to_owned(), task_id.to_owned());
        self.pg.block(async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {COLUMNS} FROM async_tasks WHERE function = $1 AND task_id = $2"
                    ),
                    &[&function, &task_id],
                )
                .await
                .map_err(db("reading an async task"))?;
            Ok(row.map(|r| task_row(&r, 0)))
        })
    }

    fn list(&self, function: &str, filter: &TaskFilter) -> Result<Vec<(i64, TaskRow)>, StoreError> {
        let pg = Arc::clone(&self.pg);
        let function = function.to_owned();
        let filter = filter.clone();
        self.pg.block(async move {
            let c = pg.conn().await?;
            let order = if filter.newest_first { "DESC" } else { "ASC" };
            let cmp = if filter.newest_first { "<" } else { ">" };
            let sql = format!(
                "SELECT seq, {COLUMNS} FROM async_tasks
                 WHERE function = $1
                   AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR left(task_id, length($3)) = $3)
                   AND ($4::bigint IS NULL OR created_ms >= $4)
                   AND ($5::bigint IS NULL OR created_ms <= $5)
                   AND ($6::bigint IS NULL OR seq {cmp} $6)
                 ORDER BY seq {order} LIMIT $7"
            );
            let rows = c
                .query(
                    &sql,
                    &[
                        &function,
                        &filter.status,
                        &filter.prefix,
                        &filter.started_begin_ms,
                        &filter.started_end_ms,
                        &filter.after_seq,
                        &(filter.limit as i64),
                    ],
                )
                .await
                .map_err(db("listing async tasks"))?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, i64>(0), task_row(r, 1)))
                .collect())
        })
    }

    fn lease_policy(&self) -> LeasePolicy {
        LeasePolicy {
            lease_ms: LEASE_MS,
            renew_every_ms: Some(RENEW_EVERY_MS),
            filled_here: false,
        }
    }
}
