//! [`Store`] on PostgreSQL: the same tables and queries as the SQLite store, in PostgreSQL's
//! dialect. Each call runs on the store's runtime ([`Pg::block`]). Secrets are sealed as the
//! SQLite store seals them, with the data dir's `secret.key`, which every node sharing the
//! database holds (the same file: a Kubernetes Secret, or a copy of the first node's). Timer
//! fires are claimed in `timer_ticks`, one claim per tick for the whole cluster.

use std::future::Future;
use std::sync::Arc;

use fcx_model::Function;

use super::cluster::{timer_key, CLAIM_TICK};
use super::{db, Pg};
use crate::seal::Sealer;
use crate::{Store, StoreError, StoredDomain};

/// The [`Store`] in PostgreSQL, shared by every node.
pub struct PgStore {
    pg: Arc<Pg>,
    /// The nodes' common data-dir key.
    sealer: Sealer,
    /// This node's id, recorded with the timer ticks it claims.
    node: String,
}

impl PgStore {
    /// The store on the pool `pg` for node `node`, sealing with `sealer` (every node's must
    /// be the same key).
    pub fn new(pg: Arc<Pg>, sealer: Sealer, node: &str) -> PgStore {
        PgStore {
            pg,
            sealer,
            node: node.to_owned(),
        }
    }

    /// JSON of `f` with its secrets sealed.
    fn encode(&self, f: &Function) -> Result<String, StoreError> {
        let mut f = f.clone();
        let name = f.function_name.clone();
        fcx_model::secret::seal_all(&mut f, &self.sealer, &name).map_err(StoreError::Corrupt)?;
        serde_json::to_string(&f).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The record of `doc` with its secrets opened.
    fn decode(&self, doc: &str) -> Result<Function, StoreError> {
        let mut f: Function =
            serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let name = f.function_name.clone();
        fcx_model::secret::open_all(&mut f, &self.sealer, &name)
            .map_err(|e| StoreError::Corrupt(format!("function '{name}': {e}")))?;
        Ok(f)
    }

    fn seal_key(&self, d: &StoredDomain) -> Result<Option<Vec<u8>>, StoreError> {
        d.private_key
            .as_deref()
            .map(|k| {
                self.sealer
                    .seal(&crate::seal::domain_owner(&d.name), k.as_bytes())
            })
            .transpose()
    }

    fn open_domain(
        &self,
        name: String,
        doc: String,
        sealed: Option<Vec<u8>>,
    ) -> Result<StoredDomain, StoreError> {
        let private_key = match sealed {
            None => None,
            Some(sealed) => {
                let what = format!("the private key of custom domain '{name}'");
                let plain =
                    self.sealer
                        .unseal(&crate::seal::domain_owner(&name), &sealed, &what)?;
                Some(
                    String::from_utf8(plain)
                        .map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8 text")))?,
                )
            }
        };
        Ok(StoredDomain {
            name,
            doc,
            private_key,
        })
    }

    /// The connection pool under it.
    pub fn pg(&self) -> &Arc<Pg> {
        &self.pg
    }

    fn call<T, Fut>(&self, f: impl FnOnce(Arc<Pg>) -> Fut) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.pg.block(f(Arc::clone(&self.pg)))
    }
}

impl Store for PgStore {
    fn create_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = self.encode(f)?;
        let (name, created) = (f.function_name.clone(), f.created_time.clone());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute(
                    "INSERT INTO functions (name, doc, created_at, updated_at)
                     VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO NOTHING",
                    &[&name, &doc, &created],
                )
                .await
                .map_err(db("creating a function"))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(name));
            }
            Ok(())
        })
    }

    fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        let name = name.to_owned();
        let doc: Option<String> = self.call(|pg| async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt("SELECT doc FROM functions WHERE name = $1", &[&name])
                .await
                .map_err(db("reading a function"))?;
            Ok(row.map(|r| r.get(0)))
        })?;
        doc.as_deref().map(|d| self.decode(d)).transpose()
    }

    fn list_functions(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Function>, StoreError> {
        let (prefix, after) = (prefix.map(str::to_owned), start_after.map(str::to_owned));
        let docs: Vec<String> = self.call(|pg| async move {
            let c = pg.conn().await?;
            // left() instead of LIKE: '_' in a name is not a wildcard. COLLATE "C": the
            // same byte order as SQLite's, whatever the database's collation.
            let rows = c
                .query(
                    "SELECT doc FROM functions
                     WHERE ($1::text IS NULL OR left(name, length($1)) = $1)
                       AND ($2::text IS NULL OR name COLLATE \"C\" > $2)
                     ORDER BY name COLLATE \"C\" LIMIT $3",
                    &[&prefix, &after, &(limit as i64)],
                )
                .await
                .map_err(db("listing functions"))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        docs.iter().map(|d| self.decode(d)).collect()
    }

    fn update_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = self.encode(f)?;
        let (name, modified) = (f.function_name.clone(), f.last_modified_time.clone());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute(
                    "UPDATE functions SET doc = $2, updated_at = $3 WHERE name = $1",
                    &[&name, &doc, &modified],
                )
                .await
                .map_err(db("updating a function"))?;
            if n == 0 {
                return Err(StoreError::NotFound(name));
            }
            Ok(())
        })
    }

    fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.call(|pg| async move {
            let mut c = pg.conn().await?;
            let tx = c.transaction().await.map_err(db("deleting a function"))?;
            let deleted = tx
                .execute("DELETE FROM functions WHERE name = $1", &[&name])
                .await
                .map_err(db("deleting a function"))?
                > 0;
            tx.execute("DELETE FROM function_configs WHERE name = $1", &[&name])
                .await
                .map_err(db("deleting a function's documents"))?;
            tx.execute(
                "DELETE FROM timer_ticks WHERE left(timer, length($1) + 1) = $1 || '/'",
                &[&name],
            )
            .await
            .map_err(db("deleting a function's timer ticks"))?;
            tx.commit().await.map_err(db("deleting a function"))?;
            Ok(deleted)
        })
    }

    fn function_config(&self, name: &str, kind: &str) -> Result<Option<String>, StoreError> {
        let (name, kind) = (name.to_owned(), kind.to_owned());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt(
                    "SELECT doc FROM function_configs WHERE name = $1 AND kind = $2",
                    &[&name, &kind],
                )
                .await
                .map_err(db("reading a function document"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn put_function_config(&self, name: &str, kind: &str, doc: &str) -> Result<(), StoreError> {
        let (name, kind, doc) = (name.to_owned(), kind.to_owned(), doc.to_owned());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            c.execute(
                "INSERT INTO function_configs (name, kind, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (name, kind) DO UPDATE SET doc = excluded.doc",
                &[&name, &kind, &doc],
            )
            .await
            .map_err(db("writing a function document"))?;
            Ok(())
        })
    }

    fn delete_function_config(&self, name: &str, kind: &str) -> Result<bool, StoreError> {
        let (name, kind) = (name.to_owned(), kind.to_owned());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute(
                    "DELETE FROM function_configs WHERE name = $1 AND kind = $2",
                    &[&name, &kind],
                )
                .await
                .map_err(db("deleting a function document"))?;
            Ok(n > 0)
        })
    }

    fn function_configs(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        let kind = kind.to_owned();
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let rows = c
                .query(
                    "SELECT name, doc FROM function_configs WHERE kind = $1",
                    &[&kind],
                )
                .await
                .map_err(db("reading function documents"))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn function_configs_of(
        &self,
        name: &str,
        kind_prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (name, prefix) = (name.to_owned(), kind_prefix.to_owned());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let rows = c
                .query(
                    "SELECT kind, doc FROM function_configs
                     WHERE name = $1 AND left(kind, length($2)) = $2
                     ORDER BY kind COLLATE \"C\"",
                    &[&name, &prefix],
                )
                .await
                .map_err(db("reading a function's documents"))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await
                .map_err(db("reading server metadata"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await
            .map_err(db("writing server metadata"))?;
            Ok(())
        })
    }

    fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await
            .map_err(db("writing server metadata"))?;
            let row = c
                .query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .await
                .map_err(db("reading server metadata"))?;
            Ok(row.get(0))
        })
    }

    fn next_counter(&self, name: &str, kind: &str) -> Result<u64, StoreError> {
        let (n, k) = (name.to_owned(), kind.to_owned());
        let doc: String = self.call(|pg| async move {
            let c = pg.conn().await?;
            // One statement: the row lock serialises nodes publishing at the same time.
            let row = c
                .query_one(
                    "INSERT INTO function_configs (name, kind, doc) VALUES ($1, $2, '1')
                     ON CONFLICT (name, kind) DO UPDATE
                        SET doc = (function_configs.doc::bigint + 1)::text
                     RETURNING doc",
                    &[&n, &k],
                )
                .await
                .map_err(db("taking the next counter value"))?;
            Ok(row.get(0))
        })?;
        doc.parse()
            .map_err(|_| StoreError::Corrupt(format!("counter {kind} of '{name}' is '{doc}'")))
    }

    fn put_code(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let (sha, bytes) = (sha256.to_owned(), bytes.to_vec());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            c.execute(
                "INSERT INTO code_packages (sha256, data) VALUES ($1, $2)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha, &bytes],
            )
            .await
            .map_err(db("storing a code package"))?;
            Ok(())
        })
    }

    fn get_code(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sha = sha256.to_owned();
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt("SELECT data FROM code_packages WHERE sha256 = $1", &[&sha])
                .await
                .map_err(db("reading a code package"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn instance_uid(&self, name: &str, first: u32, last: u32) -> Result<u32, StoreError> {
        let name = name.to_owned();
        let (first, last) = (i64::from(first), i64::from(last));
        let uid: i64 = self.call(|pg| async move {
            let mut c = pg.conn().await?;
            let tx = c
                .transaction()
                .await
                .map_err(db("allocating an instance uid"))?;
            // Nodes allocating at once take turns: no uid goes to two functions.
            tx.batch_execute("LOCK TABLE instance_uids IN EXCLUSIVE MODE")
                .await
                .map_err(db("locking the instance uids"))?;
            let known = tx
                .query_opt(
                    "SELECT uid FROM instance_uids WHERE function = $1",
                    &[&name],
                )
                .await
                .map_err(db("reading an instance uid"))?;
            if let Some(row) = known {
                return Ok(row.get(0));
            }
            let above: Option<i64> = tx
                .query_one(
                    "SELECT max(uid) + 1 FROM instance_uids WHERE uid BETWEEN $1 AND $2",
                    &[&first, &last],
                )
                .await
                .map_err(db("reading the instance uids"))?
                .get(0);
            let mut uid = above.unwrap_or(first);
            if uid > last {
                // The top is taken: the lowest gap in the range.
                let gap: Option<i64> = tx
                    .query_one(
                        "SELECT min(c) FROM (SELECT $1::BIGINT AS c UNION SELECT uid + 1
                             FROM instance_uids WHERE uid BETWEEN $1 AND $2) AS candidates
                         WHERE c <= $2 AND c NOT IN (SELECT uid FROM instance_uids)",
                        &[&first, &last],
                    )
                    .await
                    .map_err(db("finding a free instance uid"))?
                    .get(0);
                uid = gap.ok_or_else(|| {
                    StoreError::Exhausted(format!(
                        "every instance uid of {first}-{last} is taken: give --instance-uids \
                         a larger range"
                    ))
                })?;
            }
            tx.execute(
                "INSERT INTO instance_uids (function, uid) VALUES ($1, $2)",
                &[&name, &uid],
            )
            .await
            .map_err(db("recording an instance uid"))?;
            tx.commit().await.map_err(db("recording an instance uid"))?;
            Ok(uid)
        })?;
        Ok(uid as u32)
    }

    fn cipher(&self) -> &dyn fcx_model::SecretCipher {
        &self.sealer
    }

    fn create_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError> {
        let sealed = self.seal_key(d)?;
        let (name, doc) = (d.name.clone(), d.doc.clone());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute(
                    "INSERT INTO custom_domains (name, doc, key_enc) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &doc, &sealed],
                )
                .await
                .map_err(db("creating a custom domain"))?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(name));
            }
            Ok(())
        })
    }

    fn update_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError> {
        let sealed = self.seal_key(d)?;
        let (name, doc) = (d.name.clone(), d.doc.clone());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute(
                    "UPDATE custom_domains SET doc = $2, key_enc = coalesce($3, key_enc)
                     WHERE name = $1",
                    &[&name, &doc, &sealed],
                )
                .await
                .map_err(db("updating a custom domain"))?;
            if n == 0 {
                return Err(StoreError::NotFound(name));
            }
            Ok(())
        })
    }

    fn get_custom_domain(&self, name: &str) -> Result<Option<StoredDomain>, StoreError> {
        let key = name.to_owned();
        let row: Option<(String, Option<Vec<u8>>)> = self.call(|pg| async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt(
                    "SELECT doc, key_enc FROM custom_domains WHERE name = $1",
                    &[&key],
                )
                .await
                .map_err(db("reading a custom domain"))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })?;
        row.map(|(doc, sealed)| self.open_domain(name.to_owned(), doc, sealed))
            .transpose()
    }

    fn list_custom_domains(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredDomain>, StoreError> {
        let (prefix, after) = (prefix.map(str::to_owned), start_after.map(str::to_owned));
        let rows: Vec<(String, String, Option<Vec<u8>>)> = self.call(|pg| async move {
            let c = pg.conn().await?;
            let rows = c
                .query(
                    "SELECT name, doc, key_enc FROM custom_domains
                     WHERE ($1::text IS NULL OR left(name, length($1)) = $1)
                       AND ($2::text IS NULL OR name COLLATE \"C\" > $2)
                     ORDER BY name COLLATE \"C\" LIMIT $3",
                    &[&prefix, &after, &(limit as i64)],
                )
                .await
                .map_err(db("listing custom domains"))?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })?;
        rows.into_iter()
            .map(|(name, doc, sealed)| self.open_domain(name, doc, sealed))
            .collect()
    }

    fn delete_custom_domain(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute("DELETE FROM custom_domains WHERE name = $1", &[&name])
                .await
                .map_err(db("deleting a custom domain"))?;
            Ok(n > 0)
        })
    }

    fn timer_last_fire(&self, function: &str, trigger: &str) -> Result<Option<i64>, StoreError> {
        let timer = timer_key(function, trigger);
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let row = c
                .query_opt(
                    "SELECT tick_ms FROM timer_ticks WHERE timer = $1",
                    &[&timer],
                )
                .await
                .map_err(db("reading a timer's last fire"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn claim_timer_fire(
        &self,
        function: &str,
        trigger: &str,
        fire_ms: i64,
    ) -> Result<bool, StoreError> {
        let (timer, node) = (timer_key(function, trigger), self.node.clone());
        self.call(|pg| async move {
            let c = pg.conn().await?;
            let n = c
                .execute(CLAIM_TICK, &[&timer, &fire_ms, &node])
                .await
                .map_err(db("claiming a timer fire"))?;
            Ok(n == 1)
        })
    }

    fn delete_timer_state(&self, function: &str, trigger: &str) -> Result<(), StoreError> {
        let timer = timer_key(function, trigger);
        self.call(|pg| async move {
            let c = pg.conn().await?;
            c.execute("DELETE FROM timer_ticks WHERE timer = $1", &[&timer])
                .await
                .map_err(db("forgetting a timer's last fire"))?;
            Ok(())
        })
    }
}
