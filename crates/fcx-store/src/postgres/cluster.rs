//! What nodes sharing one database coordinate through it, and nothing else (no consensus or
//! gossip of fcx's own): the `nodes` table (each node's address and heartbeat, on the
//! database's clock), change notifications (`NOTIFY fcx_changes` / `LISTEN`), leased shares of
//! cluster-wide limits (`limit_shares`), and timer ticks claimed once cluster-wide
//! (`timer_ticks`).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use super::{db, explain, Pg};
use crate::StoreError;

/// The channel changes are announced on.
pub const CHANNEL: &str = "fcx_changes";

/// The database's clock in ms since the Unix epoch.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A node as the `nodes` table has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node's id (`--node-id`).
    pub id: String,
    /// Where other nodes reach its API (`host:port`).
    pub address: String,
    /// When it started, in ms since the Unix epoch.
    pub started_ms: i64,
    /// Age of its last heartbeat, on the database's clock.
    pub heartbeat_age_ms: i64,
    /// How many more instances it could start at its last heartbeat.
    pub free_instances: u32,
}

/// What the listener hands on.
#[derive(Debug, Clone)]
pub enum Heard {
    /// A payload another node (or this one) published.
    Change(String),
    /// The LISTEN connection was (re)established: notifications may have been missed before,
    /// so everything must be re-read.
    Connected,
    /// The LISTEN connection broke (it is retried).
    Lost(String),
}

/// One node's view of the cluster tables.
pub struct Cluster {
    pg: Arc<Pg>,
    node: String,
}

impl Cluster {
    /// The cluster tables on `pg`, seen from node `node`.
    pub fn new(pg: Arc<Pg>, node: &str) -> Cluster {
        Cluster {
            pg,
            node: node.to_owned(),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The connection pool under it.
    pub fn pg(&self) -> &Arc<Pg> {
        &self.pg
    }

    /// Records that this node is alive at `address`, able to start `free_instances` more
    /// instances (inserting its row the first time).
    pub async fn heartbeat(&self, address: &str, free_instances: u32) -> Result<(), StoreError> {
        let (pg, node, address) = (Arc::clone(&self.pg), self.node.clone(), address.to_owned());
        let free = i32::try_from(free_instances).unwrap_or(i32::MAX);
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute(
                    &format!(
                        "INSERT INTO nodes (id, address, started_ms, heartbeat_ms, free_instances)
                         VALUES ($1, $2, {NOW_MS}, {NOW_MS}, $3)
                         ON CONFLICT (id) DO UPDATE
                            SET address = excluded.address, heartbeat_ms = excluded.heartbeat_ms,
                                free_instances = excluded.free_instances"
                    ),
                    &[&node, &address, &free],
                )
                .await
                .map_err(db("recording the node's heartbeat"))?;
                Ok(())
            })
            .await
    }

    /// Removes this node's row and its limit shares (a clean stop).
    pub async fn leave(&self) -> Result<(), StoreError> {
        let (pg, node) = (Arc::clone(&self.pg), self.node.clone());
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute("DELETE FROM limit_shares WHERE node = $1", &[&node])
                    .await
                    .map_err(db("returning limit shares"))?;
                c.execute("DELETE FROM nodes WHERE id = $1", &[&node])
                    .await
                    .map_err(db("removing the node"))?;
                Ok(())
            })
            .await
    }

    /// Nodes whose last heartbeat is at most `fresh_ms` old, in id order; older rows are
    /// deleted once they are ten times that old.
    pub async fn live_nodes(&self, fresh_ms: i64) -> Result<Vec<NodeRow>, StoreError> {
        let pg = Arc::clone(&self.pg);
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute(
                    &format!("DELETE FROM nodes WHERE heartbeat_ms < {NOW_MS} - $1"),
                    &[&(fresh_ms * 10)],
                )
                .await
                .map_err(db("forgetting dead nodes"))?;
                let rows = c
                    .query(
                        &format!(
                            "SELECT id, address, started_ms, {NOW_MS} - heartbeat_ms, free_instances
                             FROM nodes
                             WHERE heartbeat_ms >= {NOW_MS} - $1 ORDER BY id COLLATE \"C\""
                        ),
                        &[&fresh_ms],
                    )
                    .await
                    .map_err(db("listing nodes"))?;
                Ok(rows
                    .iter()
                    .map(|r| NodeRow {
                        id: r.get(0),
                        address: r.get(1),
                        started_ms: r.get(2),
                        heartbeat_age_ms: r.get(3),
                        free_instances: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
                    })
                    .collect())
            })
            .await
    }

    /// Announces `payload` to every listening node (this one included), blocking.
    pub fn publish(&self, payload: &str) -> Result<(), StoreError> {
        let (pg, payload) = (Arc::clone(&self.pg), payload.to_owned());
        self.pg.block(async move {
            let c = pg.conn().await?;
            c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
                .map_err(db("announcing a change"))?;
            Ok(())
        })
    }

    /// Listens for announcements on a connection of its own, for the life of the store's
    /// runtime, reconnecting (every `retry`) when the connection breaks.
    pub fn listen(&self, retry: Duration, on: impl Fn(Heard) + Send + Sync + 'static) {
        let config = self.pg.config().clone();
        let shown = self.pg.shown().to_owned();
        self.pg.handle().spawn(async move {
            let mut lost_said = false;
            loop {
                match listen_once(&config, &on).await {
                    Ok(()) => {}
                    Err(e) => {
                        if !lost_said {
                            on(Heard::Lost(format!("LISTEN on {shown}: {e}")));
                        }
                        lost_said = true;
                    }
                }
                tokio::time::sleep(retry).await;
                // Said again after the next success.
                if lost_said {
                    lost_said = false;
                }
            }
        });
    }

    /// Takes a share of the cluster-wide limit `limit` of `scope` for `ttl_ms`. `want` is
    /// what this node could use; `holding` what it holds in flight now (recorded with the
    /// share, so a node that was granted less keeps counting what it already admitted).
    /// Shares are max-min fair over the wants of the nodes holding one, and never make the
    /// recorded shares add up to more than `limit`: the grant is at most what the others'
    /// rows leave. One transaction under an advisory lock per scope.
    ///
    /// A share that lapsed (not renewed within its ttl) no longer counts against the limit,
    /// but while its node is live (a heartbeat at most `live_ms` old, and lapsed at most
    /// that long ago) its want still takes part in the split: a node merely late renewing
    /// (a stalled process or machine) gets its fair part back at its next lease instead of
    /// finding its room handed out to the others as surplus. Rows of dead nodes are deleted.
    pub async fn lease_share(
        &self,
        scope: &str,
        limit: u32,
        want: u32,
        holding: u32,
        ttl_ms: i64,
        live_ms: i64,
    ) -> Result<u32, StoreError> {
        let (pg, node, scope) = (Arc::clone(&self.pg), self.node.clone(), scope.to_owned());
        self.pg
            .run(async move {
                let mut c = pg.conn().await?;
                let tx = c.transaction().await.map_err(db("leasing a limit share"))?;
                tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&scope])
                    .await
                    .map_err(db("locking a limit"))?;
                tx.execute(
                    &format!(
                        "DELETE FROM limit_shares s
                         WHERE s.scope = $1 AND s.expires_ms < {NOW_MS}
                           AND (s.expires_ms < {NOW_MS} - $2 OR NOT EXISTS (
                                SELECT 1 FROM nodes n
                                WHERE n.id = s.node AND n.heartbeat_ms >= {NOW_MS} - $2))"
                    ),
                    &[&scope, &live_ms],
                )
                .await
                .map_err(db("expiring limit shares"))?;
                // A lapsed row (of a live node, the others are gone) holds nothing.
                let rows = tx
                    .query(
                        &format!(
                            "SELECT node, want,
                                    CASE WHEN expires_ms < {NOW_MS} THEN 0 ELSE share END
                             FROM limit_shares WHERE scope = $1 AND node <> $2"
                        ),
                        &[&scope, &node],
                    )
                    .await
                    .map_err(db("reading limit shares"))?;
                let others: Vec<ShareRow> = rows
                    .iter()
                    .map(|r| ShareRow {
                        node: r.get(0),
                        want: r.get::<_, i32>(1).max(0) as u32,
                        share: r.get::<_, i32>(2).max(0) as u32,
                    })
                    .collect();
                let grant = fair_grant(limit, &node, want, &others);
                let recorded = grant.max(holding) as i32;
                tx.execute(
                    &format!(
                        "INSERT INTO limit_shares (scope, node, want, share, expires_ms)
                         VALUES ($1, $2, $3, $4, {NOW_MS} + $5)
                         ON CONFLICT (scope, node) DO UPDATE
                            SET want = excluded.want, share = excluded.share,
                                expires_ms = excluded.expires_ms"
                    ),
                    &[&scope, &node, &(want as i32), &recorded, &ttl_ms],
                )
                .await
                .map_err(db("recording a limit share"))?;
                tx.commit().await.map_err(db("leasing a limit share"))?;
                Ok(grant)
            })
            .await
    }

    /// Returns this node's share of `scope`.
    pub async fn return_share(&self, scope: &str) -> Result<(), StoreError> {
        let (pg, node, scope) = (Arc::clone(&self.pg), self.node.clone(), scope.to_owned());
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                c.execute(
                    "DELETE FROM limit_shares WHERE scope = $1 AND node = $2",
                    &[&scope, &node],
                )
                .await
                .map_err(db("returning a limit share"))?;
                Ok(())
            })
            .await
    }

    /// Claims schedule tick `tick_ms` of `timer` for this node: true for exactly one node
    /// per tick (the row only moves forward), however many try.
    pub async fn claim_tick(&self, timer: &str, tick_ms: i64) -> Result<bool, StoreError> {
        let (pg, node, timer) = (Arc::clone(&self.pg), self.node.clone(), timer.to_owned());
        self.pg
            .run(async move {
                let c = pg.conn().await?;
                let n = c
                    .execute(CLAIM_TICK, &[&timer, &tick_ms, &node])
                    .await
                    .map_err(db("claiming a timer tick"))?;
                Ok(n == 1)
            })
            .await
    }
}

/// Claims tick `$2` of timer `$1` for node `$3`: the row only moves forward, so of every
/// node trying the same tick exactly one changes it (and a tick at or before the last claimed
/// one is never claimed again).
pub(super) const CLAIM_TICK: &str =
    "INSERT INTO timer_ticks (timer, tick_ms, node) VALUES ($1, $2, $3)
     ON CONFLICT (timer) DO UPDATE
        SET tick_ms = excluded.tick_ms, node = excluded.node
        WHERE timer_ticks.tick_ms < excluded.tick_ms";

/// The `timer_ticks` row of trigger `trigger` of `function` (function names hold no '/').
pub(super) fn timer_key(function: &str, trigger: &str) -> String {
    format!("{function}/{trigger}")
}

/// Another node's row of a limit: what it wants and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    /// The node's id.
    pub node: String,
    /// How many slots it could use lately.
    pub want: u32,
    /// How many slots it holds now (0 once its lease lapsed).
    pub share: u32,
}

/// This node's grant: max-min fair shares of `limit` over every node's want (the remainder of
/// the division going to the first nodes in id order, so all nodes compute the same split),
/// capped by what the others' recorded shares leave, so recorded shares never add up to more
/// than `limit`. A node over its fair share shrinks at its next renewal, as its requests end.
pub fn fair_grant(limit: u32, me: &str, want: u32, others: &[ShareRow]) -> u32 {
    let used: u64 = others.iter().map(|o| u64::from(o.share)).sum();
    let left = u64::from(limit).saturating_sub(used) as u32;
    let mut wants: Vec<(&str, u32)> = others.iter().map(|o| (o.node.as_str(), o.want)).collect();
    wants.push((me, want));
    wants.sort_unstable();
    let alloc = allocate(limit, &wants);
    let mine = wants
        .iter()
        .position(|w| w.0 == me)
        .map(|i| alloc[i])
        .unwrap_or(0);
    mine.min(left)
}

/// Max-min fair allocation of `limit` over `wants` (in id order): a common level is raised
/// until the wants or the limit run out; what the level leaves goes one each to the nodes
/// still wanting more, first in id order; when every want is met, the surplus is spread
/// evenly (so a node alone holds the whole limit, and loses the surplus as others ask).
fn allocate(limit: u32, wants: &[(&str, u32)]) -> Vec<u32> {
    let mut sorted: Vec<u32> = wants.iter().map(|w| w.1).collect();
    sorted.sort_unstable();
    let mut remaining = u64::from(limit);
    let mut level = 0u64;
    let mut met = true;
    for (i, &w) in sorted.iter().enumerate() {
        let n = (sorted.len() - i) as u64;
        let step = u64::from(w) - level;
        if step * n <= remaining {
            remaining -= step * n;
            level = u64::from(w);
        } else {
            level += remaining / n;
            remaining %= n;
            met = false;
            break;
        }
    }
    let mut alloc: Vec<u32> = wants
        .iter()
        .map(|w| (u64::from(w.1).min(level)) as u32)
        .collect();
    let n = wants.len() as u64;
    if met && n > 0 {
        for (i, a) in alloc.iter_mut().enumerate() {
            *a += (remaining / n + u64::from((i as u64) < remaining % n)) as u32;
        }
    } else {
        for (i, w) in wants.iter().enumerate() {
            if remaining > 0 && u64::from(w.1) > level {
                alloc[i] += 1;
                remaining -= 1;
            }
        }
    }
    alloc
}

async fn listen_once(
    config: &tokio_postgres::Config,
    on: &(impl Fn(Heard) + Send + Sync),
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| explain(&e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN below to complete and for notifications.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(explain(&e)));
                    return;
                }
                None => {
                    let _ = tx.send(Err("connection closed".to_owned()));
                    return;
                }
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(e) = listening {
        driver.abort();
        return Err(explain(&e));
    }
    on(Heard::Connected);
    // A dead TCP peer (a cut network) shows only when something is sent: probe.
    let mut probe = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Ok(payload)) => on(Heard::Change(payload)),
                Some(Err(e)) => return Err(e),
                None => return Err("listener stopped".into()),
            },
            _ = probe.tick() => {
                let alive = tokio::time::timeout(Duration::from_secs(3), client.simple_query("SELECT 1")).await;
                match alive {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => { driver.abort(); return Err(explain(&e)); }
                    Err(_) => { driver.abort(); return Err("no answer to a probe within 3 s".into()); }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fair_grant, ShareRow};

    fn row(node: &str, want: u32, share: u32) -> ShareRow {
        ShareRow {
            node: node.into(),
            want,
            share,
        }
    }

    #[test]
    fn shares_are_fair_and_never_add_up_past_the_limit() {
        // Alone: the whole limit, whatever it wants.
        assert_eq!(fair_grant(4, "a", 10, &[]), 4);
        assert_eq!(fair_grant(4, "a", 1, &[]), 4);
        // Wants met, surplus spread: 1 + 1 wanted of 4 -> 2 each.
        assert_eq!(fair_grant(4, "a", 1, &[row("b", 1, 0)]), 2);
        // Three nodes wanting more than there is: 2 + 1 + 1, the extra one to "a".
        let others = |me: &str| -> Vec<ShareRow> {
            ["a", "b", "c"]
                .iter()
                .filter(|n| **n != me)
                .map(|n| row(n, 10, 0))
                .collect()
        };
        assert_eq!(fair_grant(4, "a", 10, &others("a")), 2);
        assert_eq!(fair_grant(4, "b", 10, &others("b")), 1);
        assert_eq!(fair_grant(4, "c", 10, &others("c")), 1);
        // Another node still holds everything: this one waits for it to shrink.
        assert_eq!(fair_grant(4, "b", 10, &[row("a", 10, 4)]), 0);
        // An idle node leaves the rest to the busy one.
        assert_eq!(fair_grant(4, "a", 10, &[row("b", 0, 0)]), 4);
        for limit in 0..10u32 {
            for want in 0..7u32 {
                for (wa, sa, wb, sb) in (0..36u32).map(|i| (i % 6, (i / 6) % 6, i % 4, i / 9)) {
                    let others = [row("a", wa, sa), row("c", wb, sb)];
                    let g = fair_grant(limit, "b", want, &others);
                    assert!(u64::from(g + sa + sb) <= u64::from(limit.max(sa + sb)));
                    if sa + sb >= limit {
                        assert_eq!(g, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn three_nodes_renewing_in_turn_converge_to_the_fair_split() {
        // Node "a" held everything alone; "b" and "c" join wanting as much. Each renewal
        // records max(grant, what the node still has in flight); in-flight drains to the grant.
        let nodes = ["a", "b", "c"];
        let mut share = [4u32, 0, 0];
        for _round in 0..4 {
            for i in 0..3 {
                let others: Vec<ShareRow> = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| row(nodes[j], 10, share[j]))
                    .collect();
                share[i] = fair_grant(4, nodes[i], 10, &others);
                assert!(share.iter().sum::<u32>() <= 4, "{share:?}");
            }
        }
        assert_eq!(share, [2, 1, 1]);
    }
}
