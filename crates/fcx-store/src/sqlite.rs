//! The embedded store: one SQLite database in WAL mode. Secret fields of function records
//! are sealed with the data dir's key (`secret.key` beside the database) before they are
//! written and opened when read; records written before that are sealed at open.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fcx_model::Function;
use rusqlite::{params, Connection, OptionalExtension};

use crate::seal::Sealer;
use crate::{migrations, Store, StoreError, StoredDomain};

/// `.db()?` on a rusqlite result inside this crate: the error becomes
/// [`StoreError::Database`]. A trait private to the crate rather than a
/// `From<rusqlite::Error>` impl, which would make rusqlite part of the public API.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(StoreError::database)
    }
}

/// The embedded store: one SQLite database (the data dir's `fcx.db`) in WAL mode, migrated at open.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Seals custom domains' private keys and records' secret fields (the data dir's
    /// `secret.key`).
    sealer: Sealer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it, with the key file
    /// of its directory (created if needed); seals what older records hold in plain text.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path).db()?;
        conn.pragma_update(None, "journal_mode", "WAL").db()?;
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).db()?;
        migrations::apply(&mut conn).db()?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let store = SqliteStore {
            conn: Mutex::new(conn),
            sealer: Sealer::open(dir.unwrap_or(Path::new(".")))?,
        };
        store.seal_plaintext_secrets()?;
        Ok(store)
    }

    /// Rewrites every function record that holds a secret in plain text, sealed.
    fn seal_plaintext_secrets(&self) -> Result<(), StoreError> {
        let docs: Vec<(String, String)> = {
            let conn = self.lock();
            let mut stmt = conn.prepare("SELECT name, doc FROM functions").db()?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            rows
        };
        for (name, doc) in docs {
            let Ok((f, plain)) = self.decode(&doc) else {
                continue;
            };
            if plain {
                let sealed = self.encode(&f)?;
                self.lock()
                    .execute(
                        "UPDATE functions SET doc = ?2 WHERE name = ?1",
                        params![name, sealed],
                    )
                    .db()?;
                tracing::info!(function = %name, "sealed the secrets a stored record held in plain text");
            }
        }
        Ok(())
    }

    /// JSON of `f` with its secrets sealed.
    fn encode(&self, f: &Function) -> Result<String, StoreError> {
        let mut f = f.clone();
        let name = f.function_name.clone();
        fcx_model::secret::seal_all(&mut f, &self.sealer, &name).map_err(StoreError::Corrupt)?;
        serde_json::to_string(&f).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The record of `doc` with its secrets opened, and whether one was in plain text.
    fn decode(&self, doc: &str) -> Result<(Function, bool), StoreError> {
        let mut f: Function =
            serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let name = f.function_name.clone();
        let plain = fcx_model::secret::open_all(&mut f, &self.sealer, &name)
            .map_err(|e| StoreError::Corrupt(format!("function '{name}': {e}")))?;
        Ok((f, plain))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
}

impl Store for SqliteStore {
    fn create_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = self.encode(f)?;
        let result = self.lock().execute(
            "INSERT INTO functions (name, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            params![f.function_name, doc, f.created_time],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::AlreadyExists(f.function_name.clone()))
            }
            Err(e) => Err(StoreError::database(e)),
        }
    }

    fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        let doc: Option<String> = self
            .lock()
            .query_row("SELECT doc FROM functions WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .db()?;
        doc.as_deref()
            .map(|d| self.decode(d).map(|(f, _)| f))
            .transpose()
    }

    fn list_functions(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Function>, StoreError> {
        let conn = self.lock();
        // substr() instead of LIKE: names may hold '_' and '%'-free but LIKE treats '_' as a wildcard.
        let mut stmt = conn
            .prepare_cached(
                "SELECT doc FROM functions
             WHERE (?1 IS NULL OR substr(name, 1, length(?1)) = ?1)
               AND (?2 IS NULL OR name > ?2)
             ORDER BY name LIMIT ?3",
            )
            .db()?;
        let docs = stmt
            .query_map(params![prefix, start_after, limit as i64], |r| {
                r.get::<_, String>(0)
            })
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?;
        drop(stmt);
        drop(conn);
        docs.iter()
            .map(|d| self.decode(d).map(|(f, _)| f))
            .collect()
    }

    fn update_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = self.encode(f)?;
        let n = self
            .lock()
            .execute(
                "UPDATE functions SET doc = ?2, updated_at = ?3 WHERE name = ?1",
                params![f.function_name, doc, f.last_modified_time],
            )
            .db()?;
        if n == 0 {
            return Err(StoreError::NotFound(f.function_name.clone()));
        }
        Ok(())
    }

    fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().db()?;
        let deleted = tx
            .execute("DELETE FROM functions WHERE name = ?1", [name])
            .db()?
            > 0;
        tx.execute("DELETE FROM function_configs WHERE name = ?1", [name])
            .db()?;
        tx.execute("DELETE FROM timer_state WHERE function = ?1", [name])
            .db()?;
        tx.commit().db()?;
        Ok(deleted)
    }

    fn function_config(&self, name: &str, kind: &str) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row(
                "SELECT doc FROM function_configs WHERE name = ?1 AND kind = ?2",
                [name, kind],
                |r| r.get(0),
            )
            .optional()
            .db()
    }

    fn put_function_config(&self, name: &str, kind: &str, doc: &str) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO function_configs (name, kind, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(name, kind) DO UPDATE SET doc = excluded.doc",
                params![name, kind, doc],
            )
            .db()?;
        Ok(())
    }

    fn delete_function_config(&self, name: &str, kind: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .execute(
                "DELETE FROM function_configs WHERE name = ?1 AND kind = ?2",
                [name, kind],
            )
            .db()?
            > 0)
    }

    fn function_configs_of(
        &self,
        name: &str,
        kind_prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, doc FROM function_configs
             WHERE name = ?1 AND substr(kind, 1, length(?2)) = ?2 ORDER BY kind",
            )
            .db()?;
        let rows = stmt
            .query_map([name, kind_prefix], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?;
        Ok(rows)
    }

    fn function_configs(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT name, doc FROM function_configs WHERE kind = ?1")
            .db()?;
        let rows = stmt
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?;
        Ok(rows)
    }

    fn instance_uid(&self, name: &str, first: u32, last: u32) -> Result<u32, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .db()?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT uid FROM instance_uids WHERE function = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        if let Some(uid) = known {
            return Ok(uid as u32);
        }
        let (first, last) = (i64::from(first), i64::from(last));
        let above: Option<i64> = tx
            .query_row(
                "SELECT max(uid) + 1 FROM instance_uids WHERE uid BETWEEN ?1 AND ?2",
                [first, last],
                |r| r.get(0),
            )
            .db()?;
        let mut uid = above.unwrap_or(first);
        if uid > last {
            // The top is taken: the lowest gap in the range.
            uid = tx
                .query_row(
                    "SELECT min(c) FROM (SELECT ?1 AS c UNION SELECT uid + 1 FROM instance_uids
                     WHERE uid BETWEEN ?1 AND ?2)
                     WHERE c <= ?2 AND c NOT IN (SELECT uid FROM instance_uids)",
                    [first, last],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .db()?
                .ok_or_else(|| {
                    StoreError::Exhausted(format!(
                        "every instance uid of {first}-{last} is taken: give --instance-uids \
                         a larger range"
                    ))
                })?;
        }
        tx.execute(
            "INSERT INTO instance_uids (function, uid) VALUES (?1, ?2)",
            params![name, uid],
        )
        .db()?;
        tx.commit().db()?;
        Ok(uid as u32)
    }

    fn cipher(&self) -> &dyn fcx_model::SecretCipher {
        &self.sealer
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .db()
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .db()?;
        Ok(())
    }

    fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
            params![key, value],
        )
        .db()?;
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .db()
    }

    fn next_counter(&self, name: &str, kind: &str) -> Result<u64, StoreError> {
        let doc: String = self
            .lock()
            .query_row(
                "INSERT INTO function_configs (name, kind, doc) VALUES (?1, ?2, '1')
             ON CONFLICT(name, kind) DO UPDATE
                SET doc = CAST(CAST(doc AS INTEGER) + 1 AS TEXT)
             RETURNING doc",
                [name, kind],
                |r| r.get(0),
            )
            .db()?;
        doc.parse()
            .map_err(|_| StoreError::Corrupt(format!("counter {kind} of '{name}' is '{doc}'")))
    }

    fn create_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError> {
        let sealed = self.seal_key(d)?;
        let result = self.lock().execute(
            "INSERT INTO custom_domains (name, doc, key_enc) VALUES (?1, ?2, ?3)",
            params![d.name, d.doc, sealed],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::AlreadyExists(d.name.clone()))
            }
            Err(e) => Err(StoreError::database(e)),
        }
    }

    fn update_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError> {
        let sealed = self.seal_key(d)?;
        let n = self
            .lock()
            .execute(
                "UPDATE custom_domains SET doc = ?2, key_enc = coalesce(?3, key_enc) WHERE name = ?1",
                params![d.name, d.doc, sealed],
            )
            .db()?;
        if n == 0 {
            return Err(StoreError::NotFound(d.name.clone()));
        }
        Ok(())
    }

    fn get_custom_domain(&self, name: &str) -> Result<Option<StoredDomain>, StoreError> {
        let row: Option<(String, Option<Vec<u8>>)> = self
            .lock()
            .query_row(
                "SELECT doc, key_enc FROM custom_domains WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .db()?;
        row.map(|(doc, sealed)| self.open_domain(name.to_owned(), doc, sealed))
            .transpose()
    }

    fn list_custom_domains(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredDomain>, StoreError> {
        let rows: Vec<(String, String, Option<Vec<u8>>)> = {
            let conn = self.lock();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, doc, key_enc FROM custom_domains
                 WHERE (?1 IS NULL OR substr(name, 1, length(?1)) = ?1)
                   AND (?2 IS NULL OR name > ?2)
                 ORDER BY name LIMIT ?3",
                )
                .db()?;
            let rows = stmt
                .query_map(params![prefix, start_after, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            rows
        };
        rows.into_iter()
            .map(|(name, doc, sealed)| self.open_domain(name, doc, sealed))
            .collect()
    }

    fn delete_custom_domain(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM custom_domains WHERE name = ?1", [name])
            .db()?
            > 0)
    }

    fn timer_last_fire(&self, function: &str, trigger: &str) -> Result<Option<i64>, StoreError> {
        self.lock()
            .query_row(
                "SELECT last_fire_ms FROM timer_state WHERE function = ?1 AND trigger = ?2",
                [function, trigger],
                |r| r.get(0),
            )
            .optional()
            .db()
    }

    fn claim_timer_fire(
        &self,
        function: &str,
        trigger: &str,
        fire_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .execute(
                "INSERT INTO timer_state (function, trigger, last_fire_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (function, trigger) DO UPDATE SET last_fire_ms = excluded.last_fire_ms
             WHERE timer_state.last_fire_ms < excluded.last_fire_ms",
                params![function, trigger, fire_ms],
            )
            .db()?;
        Ok(n > 0)
    }

    fn delete_timer_state(&self, function: &str, trigger: &str) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "DELETE FROM timer_state WHERE function = ?1 AND trigger = ?2",
                [function, trigger],
            )
            .db()?;
        Ok(())
    }
}
