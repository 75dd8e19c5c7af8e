//! AccessKeys for signed requests: ids and secrets in the `access_keys` table, each secret
//! encrypted at rest with the data dir's own key (`seal.rs`: ChaCha20-Poly1305, bound to
//! its id).

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

/// The access keys of one data dir.
pub struct KeyStore {
    conn: Mutex<Connection>,
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
            conn: Mutex::new(conn),
            sealer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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

    /// The secret of key `id`, or `None` when there is no such key.
    pub fn secret(&self, id: &str) -> Result<Option<String>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .lock()
            .query_row(
                "SELECT secret_enc FROM access_keys WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .db()?;
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

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<AccessKeyInfo>, StoreError> {
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
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM access_keys", [], |r| r.get(0))
            .db()?;
        Ok(n == 0)
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
