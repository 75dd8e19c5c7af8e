//! [`Store`] on PostgreSQL: the same tables and queries as the SQLite store, in PostgreSQL's
//! dialect. Each call runs on the store's runtime ([`Pg::block`]).

use std::future::Future;
use std::sync::Arc;

use fcx_model::Function;

use super::{db, Pg};
use crate::{Store, StoreError};

/// The [`Store`] in PostgreSQL, shared by every node.
pub struct PgStore {
    pg: Arc<Pg>,
}

impl PgStore {
    /// The store on the pool `pg`.
    pub fn new(pg: Arc<Pg>) -> PgStore {
        PgStore { pg }
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

fn encode(f: &Function) -> Result<String, StoreError> {
    serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(doc: &str) -> Result<Function, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store for PgStore {
    fn create_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = encode(f)?;
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
        doc.as_deref().map(decode).transpose()
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
        docs.iter().map(|d| decode(d)).collect()
    }

    fn update_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = encode(f)?;
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
}
