//! Secrets by AccessKey id for the verifier: the data dir's [`KeyStore`] behind an in-memory
//! cache, so a warm request does not touch the database. A miss reads the store again, so a
//! key made with `fcx keys create` while the server runs works at once. That read runs on
//! tokio's blocking pool, never on an async worker.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use fcx_store::{KeyStore, NewAccessKey, StoreError};

/// Name of the file the first admin key is written to.
pub const CREDENTIALS_FILE: &str = "credentials";

/// The verifier's view of the AccessKeys: cached secrets in front of the store.
pub struct Keys {
    store: Arc<KeyStore>,
    cache: RwLock<HashMap<String, Arc<str>>>,
}

/// Why a secret could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking read did not finish (it panicked, or the runtime is shutting down).
    #[error("the key lookup did not finish: {0}")]
    Interrupted(#[source] tokio::task::JoinError),
}

impl Keys {
    /// Serves the keys of `store`, with an empty cache.
    pub fn new(store: KeyStore) -> Keys {
        Keys {
            store: Arc::new(store),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The secret of `id`, `None` for an unknown id.
    pub async fn secret(&self, id: &str) -> Result<Option<Arc<str>>, LookupError> {
        if let Some(s) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(Some(Arc::clone(s)));
        }
        let (store, key) = (Arc::clone(&self.store), id.to_owned());
        let found = tokio::task::spawn_blocking(move || store.secret(&key))
            .await
            .map_err(LookupError::Interrupted)??;
        let Some(secret) = found else {
            return Ok(None);
        };
        let secret: Arc<str> = secret.into();
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), Arc::clone(&secret));
        Ok(Some(secret))
    }

    /// On a data dir without keys, creates an admin key and writes it to
    /// `<data dir>/credentials` (0600); returns the file's path when it did.
    pub fn ensure_admin_key(&self, data_dir: &Path) -> Result<Option<PathBuf>, StoreError> {
        if !self.store.is_empty()? {
            return Ok(None);
        }
        let key = self.store.create("admin (created at first start)")?;
        let path = data_dir.join(CREDENTIALS_FILE);
        write_credentials(&path, &key)?;
        Ok(Some(path))
    }
}

/// `access_key_id=...` / `access_key_secret=...` lines, readable by the owner only.
pub fn write_credentials(path: &Path, key: &NewAccessKey) -> Result<(), StoreError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older file keeps its mode on open: make sure it is private before writing.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(
        file,
        "access_key_id={}\naccess_key_secret={}",
        key.id, key.secret
    )?;
    file.sync_all()?;
    Ok(())
}
