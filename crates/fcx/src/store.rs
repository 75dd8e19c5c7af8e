//! `fcx store migrate`: moves a single node's data into the PostgreSQL database several nodes
//! will share (the copy itself is `fcx_store::postgres::migrate`).

use std::path::PathBuf;

use anyhow::{anyhow, bail};

/// `fcx store`: the server's store, managed without a server.
#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Copy a single node's data (SQLite) into a PostgreSQL database for several nodes.
    #[command(after_help = "Example:
  fcx server --data-dir /var/lib/fcx ...        # stop this node first
  fcx store migrate --from sqlite:/var/lib/fcx --to postgres://fcx:secret@db:5432/fcx
  # then start every node with --store postgres://... and the same secret.key

Copies functions, versions, aliases, triggers, scaling and async configs, the account id,
AccessKeys, async tasks not yet run and code packages, in one transaction (a failure leaves
the target as it was). The target must hold no functions yet. AccessKey secrets stay sealed
with <data dir>/secret.key: give every node that file.")]
    Migrate(MigrateArgs),
}

/// `fcx store migrate`.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The node's store: `sqlite:DATA_DIR` (the --data-dir of its stopped `fcx server`).
    #[arg(long, value_name = "sqlite:PATH")]
    from: String,
    /// The PostgreSQL database the nodes will share (migrated first; no functions in it yet).
    #[arg(long, value_name = "postgres://...", env = "FCX_STORE")]
    to: String,
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Migrate(args) = cmd;
    let Some(dir) = args.from.strip_prefix("sqlite:") else {
        bail!(
            "--from {:?}: expected sqlite:PATH, the data dir of the node to move",
            args.from
        );
    };
    let dir = PathBuf::from(dir);
    let to: fcx_store::StoreUrl = args.to.parse().map_err(|e: String| anyhow!(e))?;
    let fcx_store::StoreUrl::Postgres(url) = &to else {
        bail!("--to {to}: expected a PostgreSQL URL postgres://USER:PASSWORD@HOST:PORT/DATABASE");
    };
    eprintln!("fcx: copying {} into {to}", dir.join("fcx.db").display());
    let m = fcx_store::postgres::migrate::from_sqlite(&dir, url)
        .map_err(|e| anyhow!("migrating {} to {to}: {e}", dir.display()))?;
    println!(
        "migrated {} function(s), {} function document(s), {} server value(s), {} AccessKey(s), \
         {} pending async task(s), {} code package(s), {} custom domain(s), {} timer(s), \
         {} instance uid(s)",
        m.functions,
        m.documents,
        m.meta,
        m.keys,
        m.pending_tasks,
        m.code_packages,
        m.custom_domains,
        m.timers,
        m.instance_uids
    );
    if m.keys + m.custom_domains + m.functions > 0 {
        eprintln!(
            "fcx: AccessKeys, custom domains' private keys and functions' secret fields are \
             sealed with {}: copy it into every node's data dir",
            dir.join("secret.key").display()
        );
    }
    Ok(())
}
