//! The PostgreSQL store several fcx nodes share: the same [`Store`](crate::Store) trait, keys,
//! and queue as the embedded SQLite store, with the same migrations in PostgreSQL's dialect,
//! plus what only a shared store needs (`cluster`: nodes with heartbeats, leased shares of
//! limits, timer ticks claimed once cluster-wide, change notifications over LISTEN/NOTIFY,
//! the signed requests' nonces).
//!
//! The client is `tokio-postgres` with a `deadpool-postgres` pool, driven by a small runtime of
//! its own ([`Pg`]): the store trait is blocking (commands run on tokio's blocking pool) and
//! some callers (the signature check's cache miss) are on async workers, so a call hands its
//! future to that runtime and waits on a plain channel, which is safe from any thread.

pub mod cluster;
pub mod migrate;
mod migrations;
pub mod nonces;
mod queue;
mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use queue::{release_leases, PgQueue};
pub use store::PgStore;

use crate::url::redact;
use crate::StoreError;

/// Connections one node keeps open at most (the LISTEN connection is extra).
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection or a connect before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a store call may take (a lost database answers an error, not a hang).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection pool on a runtime of its own.
pub struct Pg {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    config: tokio_postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime's worker.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A database error kept as the cause, with what was being done.
pub(crate) fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::database(format!("{what}: {}", explain(&e)))
}

/// A PostgreSQL error with the server's own message, detail and code where there is one.
pub(crate) fn explain(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{} ({}){}",
            d.message(),
            d.code().code(),
            d.detail().map(|x| format!(": {x}")).unwrap_or_default()
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn pool_error(shown: &str) -> impl Fn(deadpool_postgres::PoolError) -> StoreError + '_ {
    move |e| {
        let e = match e {
            deadpool_postgres::PoolError::Backend(e) => explain(&e),
            other => other.to_string(),
        };
        StoreError::database(format!("cannot reach PostgreSQL at {shown}: {e}"))
    }
}

/// `f`, or an error once it has taken [`CALL_TIMEOUT`].
async fn bounded<T>(f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::database(format!(
            "PostgreSQL did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

impl Pg {
    /// Connects to `url`, checks the server answers, and applies the migrations (under an
    /// advisory lock, so nodes starting together migrate once).
    pub fn connect(url: &str) -> Result<Arc<Pg>, StoreError> {
        let shown = redact(url);
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::database(format!("invalid PostgreSQL URL {shown}: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        // A cut network shows as an error within seconds, not after TCP's retransmissions.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(CALL_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("fcx");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fcx-pg")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::database(format!("PostgreSQL pool for {shown}: {e}")))?;
        let pg = Arc::new(Pg {
            runtime: Some(runtime),
            handle,
            pool,
            config,
            shown,
        });
        let migrating = Arc::clone(&pg);
        pg.block(async move { migrations::apply(&migrating).await })?;
        Ok(pg)
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error(&self.shown))
    }

    /// Runs `f` on the store's runtime and waits for it from any thread (an async worker
    /// included: the wait is a plain channel receive, like the SQLite store's mutex).
    pub fn block<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(bounded(f).await);
        });
        rx.recv()
            .map_err(|_| StoreError::database("the PostgreSQL runtime stopped"))?
    }

    /// Runs `f` on the store's runtime and awaits it from another runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.handle
            .spawn(bounded(f))
            .await
            .map_err(|e| StoreError::database(format!("PostgreSQL call did not finish: {e}")))?
    }
}
