//! The signed requests' nonces shared by every node (`nonces` table), so a request accepted
//! by one node is refused by all the others too: one `INSERT … ON CONFLICT` per signed
//! request, which inserts a fingerprint not seen yet, or takes over one whose expiry has
//! passed (a nonce may be used again once its first request is outside the date window), and
//! changes nothing when the nonce is still live. Expired rows are deleted every minute.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{db, Pg};
use crate::StoreError;

/// How often expired nonces are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Claims `$1` (a fingerprint) until `$2` (unix seconds): one row when the nonce was free or
/// expired (before `$3`, now), none when another request holds it.
const CLAIM: &str = "INSERT INTO nonces (print, expires_s) VALUES ($1, $2)
     ON CONFLICT (print) DO UPDATE SET expires_s = excluded.expires_s
        WHERE nonces.expires_s < $3";

/// The cluster's nonces on one node.
#[derive(Clone)]
pub struct PgNonces {
    pg: Arc<Pg>,
}

impl PgNonces {
    /// The shared nonces on `pg`; starts deleting expired ones in the background (for the
    /// life of the store's runtime, or until every handle is gone).
    pub fn new(pg: Arc<Pg>) -> PgNonces {
        let weak = Arc::downgrade(&pg);
        pg.handle().spawn(prune_loop(weak));
        PgNonces { pg }
    }

    /// Records nonce fingerprint `print` until `expires`: `true` if no request holds it yet
    /// (on any node), `false` for a replay.
    pub async fn claim(&self, print: u128, expires: i64, now: i64) -> Result<bool, StoreError> {
        let pg = Arc::clone(&self.pg);
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                let key = print.to_le_bytes().to_vec();
                let n = c
                    .execute(CLAIM, &[&key, &expires, &now])
                    .await
                    .map_err(db("recording a signed request's nonce"))?;
                Ok(n == 1)
            })
            .await
    }
}

async fn prune_loop(pg: Weak<Pg>) {
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let Some(pg) = pg.upgrade() else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let pruned = async {
            let c = pg.conn().await?;
            c.execute("DELETE FROM nonces WHERE expires_s < $1", &[&now])
                .await
                .map_err(db("deleting expired nonces"))
        };
        if let Err(e) = pruned.await {
            tracing::warn!(error = %e, "cannot delete expired nonces (retried in a minute)");
        }
    }
}
