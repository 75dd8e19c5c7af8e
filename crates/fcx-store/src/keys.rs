//! AccessKeys for signed requests: ids and secrets in the `access_keys` table, each secret
//! encrypted at rest with the data dir's own key (`seal.rs`: ChaCha20-Poly1305, bound to
//! its id). On a shared PostgreSQL store the table is in that database and every node must
//! hold the same `secret.key` (a Kubernetes Secret, or a copy of the first node's).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::seal::{fill_random, Sealer};
use crate::sqlite::Db;
use crate::{migrations, StoreError};

pub use crate::seal::SECRET_KEY_FILE;

const ID_PREFIX: &str = "FCX";
const ID_RANDOM_LEN: usize = 21;
const SECRET_LEN: usize = 30;

/// A key as created: the only time its secret is shown.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    /// `FCX` and 21 random characters; what a client puts in its `Authorization` header.
    pub id: String,
    /// 30 random characters, stored encrypted.
    pub secret: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
}

/// What `fcx keys ls` shows: never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyInfo {
    /// The key's id.
    pub id: String,
    /// Free text given at creation.
    pub description: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
}

/// Where the `access_keys` table is.
enum Backing {
    Sqlite(Mutex<Connection>),
    #[cfg(feature = "postgres")]
    Postgres(std::sync::Arc<crate::postgres::Pg>),
}

/// The access keys of one data dir (or of the nodes sharing one database).
pub struct KeyStore {
    backing: Backing,
    sealer: Sealer,
}

impl KeyStore {
    /// Opens the keys of `data_dir` (which must exist): its database, migrated if needed, and
    /// its key file, created if missing.
    pub fn open(data_dir: &Path) -> Result<KeyStore, StoreError> {
        let sealer = Sealer::open(data_dir)?;
        let mut conn = Connection::open(data_dir.join("fcx.db")).db()?;
        conn.pragma_update(None, "journal_mode", "WAL").db()?;
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).db()?;
        migrations::apply(&mut conn).db()?;
        Ok(KeyStore {
            backing: Backing::Sqlite(Mutex::new(conn)),
            sealer,
        })
    }

    /// The keys in a shared PostgreSQL database, sealed with `<data_dir>/secret.key`.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(
        data_dir: &Path,
        pg: std::sync::Arc<crate::postgres::Pg>,
    ) -> Result<KeyStore, StoreError> {
        let sealer = Sealer::open(data_dir)?;
        Ok(KeyStore {
            backing: Backing::Postgres(pg),
            sealer,
        })
    }

    /// Opens the keys where `store` says: the data dir's database, or a shared one.
    pub fn open_for(data_dir: &Path, store: &crate::StoreUrl) -> Result<KeyStore, StoreError> {
        match store {
            crate::StoreUrl::Sqlite => KeyStore::open(data_dir),
            #[cfg(feature = "postgres")]
            crate::StoreUrl::Postgres(url) => {
                KeyStore::open_postgres(data_dir, crate::postgres::Pg::connect(url)?)
            }
            #[cfg(not(feature = "postgres"))]
            crate::StoreUrl::Postgres(_) => Err(StoreError::database(
                "this fcx was built without the `postgres` feature",
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        match &self.backing {
            Backing::Sqlite(conn) => conn.lock().unwrap_or_else(|p| p.into_inner()),
            #[cfg(feature = "postgres")]
            Backing::Postgres(_) => unreachable!("only called on the SQLite backing"),
        }
    }

    /// Creates a key with a fresh random id and secret.
    pub fn create(&self, description: &str) -> Result<NewAccessKey, StoreError> {
        let id = format!(
            "{ID_PREFIX}{}",
            random_string(ID_RANDOM_LEN, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")?
        );
        let secret = random_string(
            SECRET_LEN,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        )?;
        let sealed = self.sealer.seal(id.as_bytes(), secret.as_bytes())?;
        #[cfg(feature = "postgres")]
        if let Backing::Postgres(pg) = &self.backing {
            let created_at = pg_keys::create(pg, &id, sealed, description)?;
            return Ok(NewAccessKey {
                id,
                secret,
                created_at,
            });
        }
        let created_at: String = self
            .lock()
            .query_row(
                "INSERT INTO access_keys (id, secret_enc, description, created_at)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             RETURNING created_at",
                params![id, sealed, description],
                |r| r.get(0),
            )
            .db()?;
        Ok(NewAccessKey {
            id,
            secret,
            created_at,
        })
    }

    /// Makes sure key `id` exists with `secret` (an operator-given admin key); returns
    /// whether it was added. An existing key of that id is left as it is.
    pub fn import(&self, id: &str, secret: &str, description: &str) -> Result<bool, StoreError> {
        if id.len() < 8 || secret.len() < 16 {
            return Err(StoreError::Corrupt(format!(
                "an imported AccessKey needs an id of at least 8 characters and a secret of at \
                 least 16 (got {} and {})",
                id.len(),
                secret.len()
            )));
        }
        if self.secret(id)?.is_some() {
            return Ok(false);
        }
        let sealed = self.sealer.seal(id.as_bytes(), secret.as_bytes())?;
        #[cfg(feature = "postgres")]
        if let Backing::Postgres(pg) = &self.backing {
            return pg_keys::import(pg, id, sealed, description);
        }
        let n = self
            .lock()
            .execute(
                "INSERT INTO access_keys (id, secret_enc, description, created_at)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
             ON CONFLICT (id) DO NOTHING",
                params![id, sealed, description],
            )
            .db()?;
        Ok(n == 1)
    }

    /// The secret of key `id`, or `None` when there is no such key.
    pub fn secret(&self, id: &str) -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> = match &self.backing {
            #[cfg(feature = "postgres")]
            Backing::Postgres(pg) => pg_keys::sealed(pg, id)?,
            Backing::Sqlite(_) => self.sealed_sqlite(id)?,
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self
            .sealer
            .unseal(id.as_bytes(), &sealed, &format!("access key '{id}'"))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("access key '{id}': secret is not UTF-8")))
    }

    fn sealed_sqlite(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.lock()
            .query_row(
                "SELECT secret_enc FROM access_keys WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .db()
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<AccessKeyInfo>, StoreError> {
        #[cfg(feature = "postgres")]
        if let Backing::Postgres(pg) = &self.backing {
            return pg_keys::list(pg);
        }
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT id, description, created_at FROM access_keys ORDER BY created_at, id")
            .db()?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AccessKeyInfo {
                    id: r.get(0)?,
                    description: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .db()?
            .collect::<Result<Vec<_>, _>>()
            .db()?;
        Ok(rows)
    }

    /// Whether the data dir has no key at all.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        #[cfg(feature = "postgres")]
        if let Backing::Postgres(pg) = &self.backing {
            return Ok(pg_keys::list(pg)?.is_empty());
        }
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM access_keys", [], |r| r.get(0))
            .db()?;
        Ok(n == 0)
    }
}

/// The `access_keys` table on PostgreSQL.
#[cfg(feature = "postgres")]
mod pg_keys {
    use std::sync::Arc;

    use super::AccessKeyInfo;
    use crate::postgres::{db, Pg};
    use crate::StoreError;

    pub(super) fn create(
        pg: &Arc<Pg>,
        id: &str,
        sealed: Vec<u8>,
        description: &str,
    ) -> Result<String, StoreError> {
        let (p, id, description) = (Arc::clone(pg), id.to_owned(), description.to_owned());
        pg.block(async move {
            let c = p.conn().await?;
            let row = c
                .query_one(
                    "INSERT INTO access_keys (id, secret_enc, description, created_at)
                     VALUES ($1, $2, $3,
                             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))
                     RETURNING created_at",
                    &[&id, &sealed, &description],
                )
                .await
                .map_err(db("creating an access key"))?;
            Ok(row.get(0))
        })
    }

    pub(super) fn import(
        pg: &Arc<Pg>,
        id: &str,
        sealed: Vec<u8>,
        description: &str,
    ) -> Result<bool, StoreError> {
        let (p, id, description) = (Arc::clone(pg), id.to_owned(), description.to_owned());
        pg.block(async move {
            let c = p.conn().await?;
            let n = c
                .execute(
                    "INSERT INTO access_keys (id, secret_enc, description, created_at)
                     VALUES ($1, $2, $3,
                             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &sealed, &description],
                )
                .await
                .map_err(db("importing an access key"))?;
            Ok(n == 1)
        })
    }

    pub(super) fn sealed(pg: &Arc<Pg>, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (p, id) = (Arc::clone(pg), id.to_owned());
        pg.block(async move {
            let c = p.conn().await?;
            let row = c
                .query_opt("SELECT secret_enc FROM access_keys WHERE id = $1", &[&id])
                .await
                .map_err(db("reading an access key"))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    pub(super) fn list(pg: &Arc<Pg>) -> Result<Vec<AccessKeyInfo>, StoreError> {
        let p = Arc::clone(pg);
        pg.block(async move {
            let c = p.conn().await?;
            let rows = c
                .query(
                    "SELECT id, description, created_at FROM access_keys
                     ORDER BY created_at, id COLLATE \"C\"",
                    &[],
                )
                .await
                .map_err(db("listing access keys"))?;
            Ok(rows
                .iter()
                .map(|r| AccessKeyInfo {
                    id: r.get(0),
                    description: r.get(1),
                    created_at: r.get(2),
                })
                .collect())
        })
    }
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
fn random_string(len: usize, alphabet: &[u8]) -> Result<String, StoreError> {
    let n = alphabet.len();
    let cutoff = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf)?;
        for &b in &buf {
            if (b as usize) < cutoff && out.len() < len {
                out.push(alphabet[b as usize % n] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(200, b"ab").unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.contains('a') && s.contains('b'));
        assert!(s.chars().all(|c| c == 'a' || c == 'b'));
    }
}
