//! Persistence: the [`Store`] trait the control plane uses, its embedded SQLite
//! implementation (WAL, versioned migrations), the code-package files beside it, and (feature
//! `postgres`) the PostgreSQL implementation several nodes share, with its queue and the
//! cluster tables (nodes, limit shares, timer ticks, change notifications).

mod code;
pub mod keys;
mod migrations;
pub mod nonces;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod queue;
mod seal;
mod sqlite;
mod url;

pub use code::{CodeStore, StoredCode};
pub use keys::{AccessKeyInfo, KeyStore, NewAccessKey};
pub use nonces::NonceJournal;
pub use seal::{derived_key, Sealer};
pub use sqlite::SqliteStore;
pub use url::StoreUrl;

use fcx_model::Function;

/// The cause of a database failure, whichever implementation raised it.
pub type DatabaseCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a store operation failed on. No database crate's type appears here: an
/// implementation's own errors become [`StoreError::Database`] with the cause kept as its
/// source, so SQLite and a later PostgreSQL store fit behind the same [`Store`] trait.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the name taken.
    #[error("function '{0}' already exists")]
    AlreadyExists(String),
    /// An update found no such function.
    #[error("function '{0}' does not exist")]
    NotFound(String),
    /// The database refused or failed (locked, disk full, constraint, connection lost...).
    #[error("database error: {0}")]
    Database(#[source] DatabaseCause),
    /// A stored record cannot be read back (bad JSON, undecryptable secret, ...).
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// Every value of a range is taken (e.g. the instance uids of `--instance-uids`).
    #[error("{0}")]
    Exhausted(String),
    /// A file beside the database (code packages, key file) could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// A database failure with `cause` kept as the error's source.
    pub fn database(cause: impl Into<DatabaseCause>) -> StoreError {
        StoreError::Database(cause.into())
    }

    /// Whether the write failed because the data dir's disk is full (SQLite's SQLITE_FULL,
    /// or ENOSPC from a file beside the database): nothing was stored, and retrying once
    /// there is room can succeed.
    pub fn is_disk_full(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = match self {
            StoreError::Io(e) => Some(e),
            StoreError::Database(cause) => Some(cause.as_ref()),
            _ => None,
        };
        while let Some(err) = cur {
            let sqlite = err.downcast_ref::<rusqlite::Error>().or_else(|| {
                err.downcast_ref::<std::sync::Arc<rusqlite::Error>>()
                    .map(|a| &**a)
            });
            if sqlite.and_then(rusqlite::Error::sqlite_error_code)
                == Some(rusqlite::ErrorCode::DiskFull)
            {
                return true;
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                // ENOSPC (ErrorKind::StorageFull is newer than the MSRV).
                if io.raw_os_error() == Some(28) {
                    return true;
                }
            }
            cur = err.source();
        }
        false
    }
}

/// Function records and small server metadata. Implementations are safe to share.
pub trait Store: Send + Sync {
    /// Stores a new function; [`StoreError::AlreadyExists`] if the name is taken.
    fn create_function(&self, f: &Function) -> Result<(), StoreError>;
    /// The function named `name`, if stored.
    fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError>;
    /// Functions in name order, names starting with `prefix`, after `start_after`.
    fn list_functions(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Function>, StoreError>;
    /// Replaces a stored function; [`StoreError::NotFound`] if there is none of that name.
    fn update_function(&self, f: &Function) -> Result<(), StoreError>;
    /// Returns whether a function was deleted (its config documents go with it).
    fn delete_function(&self, name: &str) -> Result<bool, StoreError>;
    /// A per-function config document of `kind` (`concurrency`, `provision`, `scaling`).
    fn function_config(&self, name: &str, kind: &str) -> Result<Option<String>, StoreError>;
    /// Creates or replaces the document of `kind` of function `name`.
    fn put_function_config(&self, name: &str, kind: &str, doc: &str) -> Result<(), StoreError>;
    /// Returns whether a document was deleted.
    fn delete_function_config(&self, name: &str, kind: &str) -> Result<bool, StoreError>;
    /// Every (function name, document) of `kind`, for loading at start.
    fn function_configs(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Every (kind, document) of function `name` whose kind starts with `kind_prefix`
    /// (versions are stored as `version:<id>`, aliases as `alias:<name>`).
    fn function_configs_of(
        &self,
        name: &str,
        kind_prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// The instance uid of function `name`, allocated from `first..=last` the first time
    /// (the lowest uid above every allocated one, else the lowest free one), and the same
    /// ever after, across restarts and re-creations of the function.
    fn instance_uid(&self, name: &str, first: u32, last: u32) -> Result<u32, StoreError>;
    /// What seals the secret fields of records the control plane stores as documents
    /// (function snapshots of versions): the same key as the store's own records.
    fn cipher(&self) -> &dyn fcx_model::SecretCipher;
    /// A server-wide value (e.g. the account id), set once.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Creates or replaces a server-wide value.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Sets a server-wide value unless one is set; returns the value that holds afterwards
    /// (nodes starting together agree on one account id).
    fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError>;
    /// Adds one to the counter document `kind` of function `name` (starting at 1) and returns
    /// the new value, atomically: two nodes never get the same value.
    fn next_counter(&self, name: &str, kind: &str) -> Result<u64, StoreError>;
    /// Keeps a code package's bytes in the database when nodes share it (they have no common
    /// file system); the embedded store keeps packages as files only and does nothing here.
    fn put_code(&self, _sha256: &str, _bytes: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    /// A package's bytes from the database (`None`: not kept there).
    fn get_code(&self, _sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// Stores a new custom domain (its private key sealed), or `AlreadyExists`.
    fn create_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError>;
    /// Replaces a custom domain, or `NotFound`. A `None` private key keeps the stored one.
    fn update_custom_domain(&self, d: &StoredDomain) -> Result<(), StoreError>;
    /// The domain with its private key opened.
    fn get_custom_domain(&self, name: &str) -> Result<Option<StoredDomain>, StoreError>;
    /// Domains in name order, names starting with `prefix`, after `start_after`.
    fn list_custom_domains(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredDomain>, StoreError>;
    /// Deletes a custom domain; false when there was none.
    fn delete_custom_domain(&self, name: &str) -> Result<bool, StoreError>;

    /// When a timer trigger last fired (ms since the Unix epoch).
    fn timer_last_fire(&self, function: &str, trigger: &str) -> Result<Option<i64>, StoreError>;
    /// Claims the fire of `function`'s timer `trigger` scheduled at `fire_ms`: true when no
    /// fire at or after it was claimed before (a shared store makes this the once-per-tick
    /// decision between nodes).
    fn claim_timer_fire(
        &self,
        function: &str,
        trigger: &str,
        fire_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Forgets a timer trigger's last fire (the trigger was deleted).
    fn delete_timer_state(&self, function: &str, trigger: &str) -> Result<(), StoreError>;
}

/// A custom domain as stored: the FC document (without the private key) and the private key
/// of its certificate, sealed at rest with the data dir's key.
#[derive(Clone, PartialEq)]
pub struct StoredDomain {
    /// The domain name.
    pub name: String,
    /// The FC JSON document.
    pub doc: String,
    /// The sealed private key.
    pub private_key: Option<String>,
}

impl std::fmt::Debug for StoredDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("StoredDomain")
            .field("name", &self.name)
            .field("doc", &self.doc)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<sealed>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod disk_full_tests {
    use super::*;

    #[test]
    fn sqlite_full_and_enospc_are_disk_full_and_others_are_not() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(StoreError::database(full).is_disk_full());
        let nospc = std::io::Error::from_raw_os_error(28);
        assert!(StoreError::Io(nospc).is_disk_full());
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(!StoreError::database(busy).is_disk_full());
        assert!(!StoreError::Corrupt("x".into()).is_disk_full());
    }
}
