//! Persistence: the [`Store`] trait the control plane uses, its embedded SQLite
//! implementation (WAL, versioned migrations), and the code-package files beside it.
//! A PostgreSQL implementation for multi-node setups will implement the same trait.

mod code;
pub mod keys;
mod migrations;
pub mod queue;
mod sqlite;

pub use code::{CodeStore, StoredCode};
pub use keys::{AccessKeyInfo, KeyStore, NewAccessKey};
pub use sqlite::SqliteStore;

use fcx_model::Function;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("function '{0}' already exists")]
    AlreadyExists(String),
    #[error("function '{0}' does not exist")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Function records and small server metadata. Implementations are safe to share.
pub trait Store: Send + Sync {
    fn create_function(&self, f: &Function) -> Result<(), StoreError>;
    fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError>;
    /// Functions in name order, names starting with `prefix`, after `start_after`.
    fn list_functions(
        &self,
        prefix: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Function>, StoreError>;
    fn update_function(&self, f: &Function) -> Result<(), StoreError>;
    /// Returns whether a function was deleted (its config documents go with it).
    fn delete_function(&self, name: &str) -> Result<bool, StoreError>;
    /// A per-function config document of `kind` (`concurrency`, `provision`, `scaling`).
    fn function_config(&self, name: &str, kind: &str) -> Result<Option<String>, StoreError>;
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
    /// A server-wide value (e.g. the account id), set once.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}
