//! The PostgreSQL store, queue, keys and cluster tables against a real PostgreSQL 15 (one
//! server for the target, one database per test).

use std::sync::Arc;

use fcx_model::Function;
use fcx_store::postgres::cluster::Cluster;
use fcx_store::postgres::{Pg, PgQueue, PgStore};
use fcx_store::queue::{Enqueued, Finish, NewTask, TaskFilter, TaskQueue};
use fcx_store::{KeyStore, Store, StoreError};
use fcx_testkit::postgres::{PgServer, TestDatabase};
use fcx_testkit::skip::{self, Needs};

/// One test against its own database.
type Case = fn(&TestDatabase);

fn main() -> std::process::ExitCode {
    let needs = Needs::new().root().executable(
        "/usr/lib/postgresql/15/bin/postgres",
        "package postgresql-15",
    );
    let server: Arc<std::sync::OnceLock<Option<Arc<PgServer>>>> = Arc::default();
    let tests: Vec<(&str, Case)> = vec![
        (
            "store_matches_the_sqlite_semantics",
            store_matches_the_sqlite_semantics,
        ),
        (
            "counters_and_meta_are_atomic_across_connections",
            counters_and_meta_are_atomic_across_connections,
        ),
        (
            "keys_live_in_the_database_sealed_with_the_key_file",
            keys_live_in_the_database_sealed_with_the_key_file,
        ),
        (
            "queue_group_commits_dedups_and_leases_each_row_once",
            queue_group_commits_dedups_and_leases_each_row_once,
        ),
        (
            "an_expired_lease_is_taken_by_another_node",
            an_expired_lease_is_taken_by_another_node,
        ),
        (
            "a_timer_tick_is_claimed_once_however_many_nodes_try",
            a_timer_tick_is_claimed_once_however_many_nodes_try,
        ),
        (
            "domains_timers_and_uids_are_shared_by_the_nodes",
            domains_timers_and_uids_are_shared_by_the_nodes,
        ),
        (
            "limit_shares_never_add_up_past_the_limit",
            limit_shares_never_add_up_past_the_limit,
        ),
        (
            "a_node_late_renewing_its_share_gets_its_fair_part_back",
            a_node_late_renewing_its_share_gets_its_fair_part_back,
        ),
        (
            "a_nonce_is_claimed_by_one_node_only_until_it_expires",
            a_nonce_is_claimed_by_one_node_only_until_it_expires,
        ),
        (
            "heartbeats_list_live_nodes_and_notify_reaches_listeners",
            heartbeats_list_live_nodes_and_notify_reaches_listeners,
        ),
        (
            "migrations_run_once_when_nodes_start_together",
            migrations_run_once_when_nodes_start_together,
        ),
    ];
    skip::run(
        tests
            .into_iter()
            .map(|(name, f)| {
                let server = Arc::clone(&server);
                skip::test(name, &needs, move || {
                    // One server for the target unless the run shares one (FCX_TEST_PG_URL).
                    let own = server
                        .get_or_init(|| {
                            std::env::var_os(fcx_testkit::postgres::SHARED_URL_ENV)
                                .is_none()
                                .then(|| Arc::new(PgServer::start()))
                        })
                        .clone();
                    let db = TestDatabase::create_on(name, own);
                    f(&db)
                })
            })
            .collect(),
    )
}

fn function(name: &str) -> Function {
    let body = serde_json::json!({
        "functionName": name, "runtime": "custom", "handler": "h",
        "code": {"zipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
    });
    let input = fcx_model::parse_create(body.to_string().as_bytes()).unwrap();
    Function::from_create(input, "id".into(), "local", "1", "2026-01-01T00:00:00Z").unwrap()
}

/// A node's store: its own pool, the key file of `key_dir` (the nodes' common secret.key).
fn pg_store(db: &TestDatabase, key_dir: &std::path::Path, node: &str) -> PgStore {
    let sealer = fcx_store::Sealer::open(key_dir).unwrap();
    PgStore::new(Pg::connect(db.url()).unwrap(), sealer, node)
}

fn domains_timers_and_uids_are_shared_by_the_nodes(db: &TestDatabase) {
    let keys = tempfile::tempdir().unwrap();
    let nodes: Vec<Arc<PgStore>> = (0..3)
        .map(|i| Arc::new(pg_store(db, keys.path(), &format!("n{i}"))))
        .collect();
    // Custom domains: the private key sealed at rest, opened by another node.
    let domain = |name: &str, key: Option<&str>| fcx_store::StoredDomain {
        name: name.into(),
        doc: format!("{{\"domainName\":\"{name}\"}}"),
        private_key: key.map(str::to_owned),
    };
    nodes[0]
        .create_custom_domain(&domain("a.example.com", Some("PRIVATE-KEY-A")))
        .unwrap();
    nodes[0]
        .create_custom_domain(&domain("b.example.com", None))
        .unwrap();
    assert!(matches!(
        nodes[1].create_custom_domain(&domain("a.example.com", None)),
        Err(StoreError::AlreadyExists(_))
    ));
    let raw = db
        .psql("SELECT encode(key_enc, 'escape') FROM custom_domains WHERE name = 'a.example.com'")
        .unwrap();
    assert!(
        !raw.contains("PRIVATE-KEY-A"),
        "the key is stored in plain text: {raw}"
    );
    let got = nodes[1]
        .get_custom_domain("a.example.com")
        .unwrap()
        .unwrap();
    assert_eq!(got.private_key.as_deref(), Some("PRIVATE-KEY-A"));
    // An update without a key keeps the stored one.
    let mut changed = domain("a.example.com", None);
    changed.doc = "{\"changed\":true}".into();
    nodes[2].update_custom_domain(&changed).unwrap();
    let got = nodes[0]
        .get_custom_domain("a.example.com")
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.doc.as_str(), got.private_key.as_deref()),
        ("{\"changed\":true}", Some("PRIVATE-KEY-A"))
    );
    assert!(matches!(
        nodes[0].update_custom_domain(&domain("c.example.com", None)),
        Err(StoreError::NotFound(_))
    ));
    let names = |prefix: Option<&str>, after: Option<&str>| -> Vec<String> {
        nodes[1]
            .list_custom_domains(prefix, after, 10)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect()
    };
    assert_eq!(names(None, None), ["a.example.com", "b.example.com"]);
    assert_eq!(names(Some("b."), None), ["b.example.com"]);
    assert_eq!(names(None, Some("a.example.com")), ["b.example.com"]);
    assert!(nodes[2].delete_custom_domain("b.example.com").unwrap());
    assert!(!nodes[2].delete_custom_domain("b.example.com").unwrap());
    // A key file other than the nodes' common one does not open the sealed key.
    let other = tempfile::tempdir().unwrap();
    let stranger = pg_store(db, other.path(), "stranger");
    assert!(matches!(
        stranger.get_custom_domain("a.example.com"),
        Err(StoreError::Corrupt(_))
    ));

    // Timer fires: one node's claim per tick, forward only, forgotten with the trigger.
    for tick in [1000i64, 2000, 3000] {
        let claims: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|n| s.spawn(move || n.claim_timer_fire("f", "t", tick).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            claims.iter().filter(|c| **c).count(),
            1,
            "tick {tick}: {claims:?}"
        );
    }
    assert!(!nodes[1].claim_timer_fire("f", "t", 2000).unwrap());
    assert_eq!(nodes[2].timer_last_fire("f", "t").unwrap(), Some(3000));
    assert_eq!(nodes[2].timer_last_fire("f", "other").unwrap(), None);
    nodes[0].delete_timer_state("f", "t").unwrap();
    assert_eq!(nodes[1].timer_last_fire("f", "t").unwrap(), None);
    assert!(nodes[1].claim_timer_fire("f", "t", 1000).unwrap());

    // Instance uids: nodes allocating at once never share one; each function keeps its own.
    let names: Vec<String> = (0..12).map(|i| format!("fn{i}")).collect();
    let uids: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let node = Arc::clone(&nodes[i % 3]);
                s.spawn(move || node.instance_uid(name, 5000, 5011).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = uids.clone();
    sorted.sort();
    assert_eq!(sorted, (5000..=5011).collect::<Vec<u32>>(), "{uids:?}");
    assert_eq!(nodes[2].instance_uid("fn0", 5000, 5011).unwrap(), uids[0]);
    assert!(matches!(
        nodes[0].instance_uid("fn-late", 5000, 5011),
        Err(StoreError::Exhausted(_))
    ));
}

fn store_matches_the_sqlite_semantics(db: &TestDatabase) {
    let keys = tempfile::tempdir().unwrap();
    let store = pg_store(db, keys.path(), "n0");
    store.create_function(&function("a_b")).unwrap();
    store.create_function(&function("axb")).unwrap();
    store.create_function(&function("b")).unwrap();
    assert!(matches!(
        store.create_function(&function("b")),
        Err(StoreError::AlreadyExists(n)) if n == "b"
    ));
    assert!(matches!(
        store.update_function(&function("zz")),
        Err(StoreError::NotFound(n)) if n == "zz"
    ));
    assert_eq!(store.get_function("b").unwrap(), Some(function("b")));
    let names = |p: Option<&str>, after: Option<&str>, n| -> Vec<String> {
        store
            .list_functions(p, after, n)
            .unwrap()
            .into_iter()
            .map(|f| f.function_name)
            .collect()
    };
    // '_' is literal in a prefix; paging by name.
    assert_eq!(names(Some("a_"), None, 10), ["a_b"]);
    assert_eq!(names(None, Some("a_b"), 1), ["axb"]);
    store.put_function_config("b", "alias:x", "{}").unwrap();
    store
        .put_function_config("b", "alias:x", "{\"v\":1}")
        .unwrap();
    store
        .put_function_config("b", "version:0000000001", "{}")
        .unwrap();
    assert_eq!(
        store.function_configs_of("b", "alias:").unwrap(),
        [("alias:x".to_string(), "{\"v\":1}".to_string())]
    );
    assert_eq!(store.function_configs("alias:x").unwrap().len(), 1);
    assert!(store.delete_function_config("b", "alias:x").unwrap());
    assert!(!store.delete_function_config("b", "alias:x").unwrap());
    assert!(store.delete_function("b").unwrap());
    assert!(store.function_configs_of("b", "").unwrap().is_empty());
    store.put_code("abc", b"zip bytes").unwrap();
    store.put_code("abc", b"zip bytes").unwrap();
    assert_eq!(
        store.get_code("abc").unwrap().as_deref(),
        Some(&b"zip bytes"[..])
    );
    assert_eq!(store.get_code("nope").unwrap(), None);
}

fn counters_and_meta_are_atomic_across_connections(db: &TestDatabase) {
    // Two "nodes" (pools) taking version ids at once never get the same one.
    let keys = tempfile::tempdir().unwrap();
    let a = Arc::new(pg_store(db, keys.path(), "a"));
    let b = Arc::new(pg_store(db, keys.path(), "b"));
    let threads: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| s.next_counter("f", "version-counter").unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=100).collect::<Vec<u64>>());
    assert_eq!(a.init_meta("account_id", "111").unwrap(), "111");
    assert_eq!(b.init_meta("account_id", "222").unwrap(), "111");
}

fn keys_live_in_the_database_sealed_with_the_key_file(db: &TestDatabase) {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = KeyStore::open_postgres(dir_a.path(), Pg::connect(db.url()).unwrap()).unwrap();
    assert!(a.is_empty().unwrap());
    let key = a.create("admin").unwrap();
    assert!(key.created_at.ends_with('Z'), "{}", key.created_at);
    // A node with the same key file reads it; one with another key file cannot.
    std::fs::copy(
        dir_a.path().join("secret.key"),
        dir_b.path().join("secret.key"),
    )
    .unwrap();
    let b = KeyStore::open_postgres(dir_b.path(), Pg::connect(db.url()).unwrap()).unwrap();
    assert_eq!(
        b.secret(&key.id).unwrap().as_deref(),
        Some(key.secret.as_str())
    );
    assert_eq!(b.list().unwrap()[0].id, key.id);
    let dir_c = tempfile::tempdir().unwrap();
    let c = KeyStore::open_postgres(dir_c.path(), Pg::connect(db.url()).unwrap()).unwrap();
    let err = c.secret(&key.id).unwrap_err();
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
    let stored = db
        .psql("SELECT encode(secret_enc, 'escape') FROM access_keys")
        .unwrap();
    assert!(
        !stored.contains(&key.secret),
        "the secret is stored in clear"
    );
}

fn task(id: &str, now_ms: i64) -> NewTask {
    NewTask {
        task_id: id.into(),
        request_id: format!("req-{id}-{now_ms}"),
        function: "f".into(),
        qualifier: "LATEST".into(),
        payload: id.as_bytes().to_vec(),
        is_task: false,
        now_ms,
        origin: Some(format!("origin-{id}")),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn queue_group_commits_dedups_and_leases_each_row_once(db: &TestDatabase) {
    let pg = Pg::connect(db.url()).unwrap();
    let a = Arc::new(PgQueue::new(Arc::clone(&pg), "node-a"));
    let b = Arc::new(PgQueue::new(Pg::connect(db.url()).unwrap(), "node-b"));
    runtime().block_on(async {
        // 300 enqueues at once (several batches), 10 of them repeating a task id.
        let mut joins = Vec::new();
        for i in 0..300 {
            let q = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let id = if i >= 290 {
                format!("t{}", i - 290)
            } else {
                format!("t{i}")
            };
            joins.push(tokio::spawn(async move {
                (id.clone(), q.enqueue(task(&id, 1000)).await.unwrap())
            }));
        }
        let mut dups = 0;
        for j in joins {
            let (_, e) = j.await.unwrap();
            if matches!(e, Enqueued::Duplicate { .. }) {
                dups += 1;
            }
        }
        assert_eq!(dups, 10);
        assert_eq!(db.psql("SELECT count(*) FROM async_tasks").unwrap(), "290");
        // Two nodes leasing at once never take the same row.
        let (la, lb) = tokio::join!(a.lease(2000, 10_000, 200), b.lease(2000, 10_000, 200));
        let (la, lb) = (la.unwrap(), lb.unwrap());
        assert_eq!(la.len() + lb.len(), 290);
        for l in la.iter().chain(lb.iter()) {
            assert_eq!(
                l.origin,
                Some(format!("origin-{}", l.task_id)),
                "origin kept"
            );
        }
        let mut seqs: Vec<i64> = la.iter().chain(lb.iter()).map(|l| l.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 290);
        assert!(
            a.lease(3000, 10_000, 10).await.unwrap().is_empty(),
            "all leased"
        );
        // Finishing one; listing and getting it.
        let first = &la[0];
        a.finish(Finish {
            seq: first.seq,
            status: "Succeeded",
            attempts: 1,
            next_run_ms: 0,
            ended_ms: Some(3000),
            instance_id: Some("i1".into()),
            error: None,
            return_payload: Some(b"ok".to_vec()),
            destination_status: None,
            event: serde_json::json!({"status": "Succeeded"}),
        })
        .await
        .unwrap();
        let row = a.get("f", &first.task_id).unwrap().unwrap();
        assert_eq!(row.status, "Succeeded");
        assert_eq!(row.events.as_array().unwrap().len(), 3, "{:?}", row.events);
        let page = a
            .list(
                "f",
                &TaskFilter {
                    status: Some("Succeeded".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(
            a.stop("f", &la[1].task_id, 3000).await.unwrap().as_deref(),
            Some("Stopping")
        );
    });
}

fn an_expired_lease_is_taken_by_another_node(db: &TestDatabase) {
    let a = PgQueue::new(Pg::connect(db.url()).unwrap(), "node-a");
    let b = PgQueue::new(Pg::connect(db.url()).unwrap(), "node-b");
    runtime().block_on(async {
        a.enqueue(task("x", 0)).await.unwrap();
        let leased = a.lease(0, 1000, 10).await.unwrap();
        assert_eq!(leased.len(), 1);
        // Renewed by its holder: still taken at 1500.
        a.renew(vec![leased[0].seq], 2000).await.unwrap();
        // Another node cannot renew what it does not hold.
        b.renew(vec![leased[0].seq], 99_999).await.unwrap();
        assert!(b.lease(1500, 1000, 10).await.unwrap().is_empty());
        // Node a stops renewing (it died): at 2001 node b runs it again.
        let again = b.lease(2001, 1000, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].task_id, "x");
        assert_eq!(
            db.psql("SELECT leased_by FROM async_tasks").unwrap(),
            "node-b"
        );
    });
}

fn a_timer_tick_is_claimed_once_however_many_nodes_try(db: &TestDatabase) {
    let nodes: Vec<Arc<Cluster>> = (0..3)
        .map(|i| {
            Arc::new(Cluster::new(
                Pg::connect(db.url()).unwrap(),
                &format!("n{i}"),
            ))
        })
        .collect();
    runtime().block_on(async {
        for tick in [1000i64, 2000, 3000] {
            let claims = futures_all(nodes.iter().map(|n| {
                let n = Arc::clone(n);
                async move { n.claim_tick("f/t", tick).await.unwrap() }
            }))
            .await;
            assert_eq!(
                claims.iter().filter(|c| **c).count(),
                1,
                "tick {tick}: {claims:?}"
            );
        }
        // A late node cannot claim a tick already past.
        assert!(!nodes[0].claim_tick("f/t", 2000).await.unwrap());
    });
}

async fn futures_all<T: Send + 'static>(
    futs: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn a_nonce_is_claimed_by_one_node_only_until_it_expires(db: &TestDatabase) {
    use fcx_store::postgres::nonces::PgNonces;
    let nodes: Vec<PgNonces> = (0..3)
        .map(|_| PgNonces::new(Pg::connect(db.url()).unwrap()))
        .collect();
    runtime().block_on(async {
        let now = 1_000_000;
        // Three nodes claim the same nonce at once: exactly one wins.
        let won = futures_all(nodes.iter().map(|n| {
            let n = n.clone();
            async move { n.claim(7, now + 900, now).await.unwrap() }
        }))
        .await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        // Still refused later in its window, by every node.
        for n in &nodes {
            assert!(!n.claim(7, now + 950, now + 100).await.unwrap());
        }
        // Another nonce is free.
        assert!(nodes[1].claim(8, now + 900, now).await.unwrap());
        // Once its window is over the nonce may be used again (a new request, a new expiry).
        assert!(nodes[2].claim(7, now + 2000, now + 901).await.unwrap());
        assert!(!nodes[0].claim(7, now + 2000, now + 902).await.unwrap());
    });
    assert_eq!(db.psql("SELECT count(*) FROM nonces").unwrap(), "2");
}

/// How old a node's heartbeat may be for it to count as live in these tests' leases.
const LIVE_MS: i64 = 5000;

/// `n`'s lease of a share of `limit` of scope "f".
async fn lease(n: &Cluster, limit: u32, want: u32, holding: u32, ttl_ms: i64) -> u32 {
    n.lease_share("f", limit, want, holding, ttl_ms, LIVE_MS)
        .await
        .unwrap()
}

fn limit_shares_never_add_up_past_the_limit(db: &TestDatabase) {
    let nodes: Vec<Arc<Cluster>> = ["a", "b", "c"]
        .iter()
        .map(|n| Arc::new(Cluster::new(Pg::connect(db.url()).unwrap(), n)))
        .collect();
    runtime().block_on(async {
        // "a" alone takes everything it wants.
        assert_eq!(lease(&nodes[0], 4, 10, 0, 5000).await, 4);
        // Others join: nothing is left until "a" shrinks.
        assert_eq!(lease(&nodes[1], 4, 10, 0, 5000).await, 0);
        assert_eq!(lease(&nodes[2], 4, 10, 0, 5000).await, 0);
        // "a" renews while still holding 4 in flight: granted 2, recorded 4.
        assert_eq!(lease(&nodes[0], 4, 10, 4, 5000).await, 2);
        assert_eq!(lease(&nodes[1], 4, 10, 0, 5000).await, 0);
        // Its requests ended: recorded 2, and the others get 1 each.
        assert_eq!(lease(&nodes[0], 4, 10, 0, 5000).await, 2);
        assert_eq!(lease(&nodes[1], 4, 10, 0, 5000).await, 1);
        assert_eq!(lease(&nodes[2], 4, 10, 0, 5000).await, 1);
        let sum = db
            .psql("SELECT sum(share) FROM limit_shares WHERE scope = 'f'")
            .unwrap();
        assert_eq!(sum, "4");
        // Concurrent renewals under the advisory lock still never exceed the limit.
        for _ in 0..5 {
            futures_all(nodes.iter().map(|n| {
                let n = Arc::clone(n);
                async move { lease(&n, 4, 10, 0, 5000).await }
            }))
            .await;
            let sum: u32 = db
                .psql("SELECT sum(share) FROM limit_shares WHERE scope = 'f'")
                .unwrap()
                .parse()
                .unwrap();
            assert!(sum <= 4, "{sum}");
        }
        // A node that leaves returns its share; an expired share (ttl 0) is not counted.
        nodes[0].return_share("f").await.unwrap();
        lease(&nodes[1], 4, 10, 0, 0).await;
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(lease(&nodes[2], 4, 10, 0, 5000).await, 4);
    });
}

/// A live node (fresh heartbeat) whose share lapsed because it renewed late (a stalled
/// process or machine) is not robbed: the others renewing meanwhile keep to their fair part
/// of the split, so the late node's next lease gets its room back. Once it is dead (its
/// heartbeat too old) its row goes and the others may take everything.
fn a_node_late_renewing_its_share_gets_its_fair_part_back(db: &TestDatabase) {
    let nodes: Vec<Cluster> = ["a", "b", "c"]
        .iter()
        .map(|n| Cluster::new(Pg::connect(db.url()).unwrap(), n))
        .collect();
    let share_of = |node: &str| {
        db.psql(&format!(
            "SELECT share FROM limit_shares WHERE scope = 'f' AND node = '{node}'"
        ))
        .unwrap()
    };
    runtime().block_on(async {
        for n in &nodes {
            n.heartbeat("10.0.0.1:9100", 0).await.unwrap();
        }
        // Settled at 10 each of 30 ("a" first alone with all of it, then shrinking).
        assert_eq!(lease(&nodes[0], 30, 1, 0, 5000).await, 30);
        assert_eq!(lease(&nodes[1], 30, 1, 0, 5000).await, 0);
        assert_eq!(lease(&nodes[2], 30, 1, 0, 5000).await, 0);
        for n in &nodes {
            assert_eq!(lease(n, 30, 1, 0, 5000).await, 10);
        }
        // "a" gets busy (wants 9), then renews late: its share lapses (ttl 0) while its
        // heartbeat is fresh.
        assert_eq!(lease(&nodes[0], 30, 9, 10, 0).await, 10);
        std::thread::sleep(std::time::Duration::from_millis(5));
        // "b" and "c" renew meanwhile, each holding its 10: the split still counts a's want
        // (a 16, b 7, c 7), so neither takes a's room as surplus (alone they would get 15).
        assert_eq!(lease(&nodes[1], 30, 1, 10, 5000).await, 7);
        assert_eq!(lease(&nodes[2], 30, 1, 10, 5000).await, 7);
        // "a" is back: what the others' recorded 10 each leave, not nothing.
        assert_eq!(lease(&nodes[0], 30, 9, 10, 5000).await, 10);
        assert_eq!(share_of("a"), "10");

        // "a" dies: its heartbeat goes stale and its share lapses; its row goes at the next
        // lease of another node, which then may take the surplus.
        db.psql("UPDATE nodes SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = 'a'")
            .unwrap();
        lease(&nodes[0], 30, 9, 0, 0).await;
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(lease(&nodes[1], 30, 1, 7, 5000).await, 15);
        assert_eq!(share_of("a"), "");
    });
}

fn heartbeats_list_live_nodes_and_notify_reaches_listeners(db: &TestDatabase) {
    let a = Cluster::new(Pg::connect(db.url()).unwrap(), "a");
    let b = Cluster::new(Pg::connect(db.url()).unwrap(), "b");
    let (tx, rx) = std::sync::mpsc::channel();
    b.listen(std::time::Duration::from_millis(200), move |h| {
        let _ = tx.send(h);
    });
    runtime().block_on(async {
        a.heartbeat("10.0.0.1:9100", 5).await.unwrap();
        b.heartbeat("10.0.0.2:9100", 0).await.unwrap();
        let live = a.live_nodes(5000).await.unwrap();
        assert_eq!(
            live.iter()
                .map(|n| (n.id.as_str(), n.address.as_str(), n.free_instances))
                .collect::<Vec<_>>(),
            [("a", "10.0.0.1:9100", 5), ("b", "10.0.0.2:9100", 0)]
        );
        db.psql("UPDATE nodes SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = 'b'")
            .unwrap();
        assert_eq!(a.live_nodes(5000).await.unwrap().len(), 1);
        b.leave().await.unwrap();
    });
    let wait = |what: &str| loop {
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(fcx_store::postgres::cluster::Heard::Change(p)) if p == what => return,
            Ok(fcx_store::postgres::cluster::Heard::Connected) if what == "connected" => return,
            Ok(_) => continue,
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    wait("connected");
    a.publish("{\"change\":1}").unwrap();
    wait("{\"change\":1}");
    // The listener survives its connection being killed, and says so.
    db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND (query LIKE 'LISTEN%' OR query = 'SELECT 1')").unwrap();
    wait("connected");
    a.publish("{\"change\":2}").unwrap();
    wait("{\"change\":2}");
}

fn migrations_run_once_when_nodes_start_together(db: &TestDatabase) {
    let url = db.url().to_owned();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Pg::connect(&url).map(|_| ()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(db.psql("SELECT count(*) FROM fcx_migrations").unwrap(), "9");
}
