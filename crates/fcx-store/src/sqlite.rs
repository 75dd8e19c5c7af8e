//! The embedded store: one SQLite database in WAL mode.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fcx_model::Function;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{migrations, Store, StoreError};

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
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path).db()?;
        conn.pragma_update(None, "journal_mode", "WAL").db()?;
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).db()?;
        migrations::apply(&mut conn).db()?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn encode(f: &Function) -> Result<String, StoreError> {
    serde_json::to_string(f).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(doc: &str) -> Result<Function, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store for SqliteStore {
    fn create_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = encode(f)?;
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
        doc.as_deref().map(decode).transpose()
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
        docs.iter().map(|d| decode(d)).collect()
    }

    fn update_function(&self, f: &Function) -> Result<(), StoreError> {
        let doc = encode(f)?;
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
}
